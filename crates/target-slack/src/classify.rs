//! What Slack's answers mean for a delivery.
//!
//! slack-morphism turns every failed exchange into a `SlackClientError`: a Web API
//! `"ok": false` with its error code, an HTTP status with the body (incoming webhooks answer
//! `403 invalid_token` and the like in plain text), a `429` with its `Retry-After`, a body it
//! could not decode, or a connection error. This module maps each to the core's failure
//! kinds, the same way every target does (unreachable, overloaded or rate limiting:
//! transient; refused: permanent; sent without an answer: unknown), with a message that
//! tells a person what to change.
//!
//! Slack's answers never contain the token, but the cause chain of a connection error is
//! copied with the target's secrets cut out all the same: a webhook URL is a credential, and
//! a proxy or a future library version may well echo it.

use std::error::Error as StdError;
use std::fmt;

use serde_json::Value;
use slack_morphism::errors::{
    SlackClientApiError, SlackClientError, SlackClientHttpError, SlackRateLimitError,
};
use sqreen_webhook_core::duration::format_duration;
use sqreen_webhook_core::target::classify_status;
use sqreen_webhook_core::{DeliveryError, FailureKind};

use crate::Mode;

/// The outcome of one post: `Ok` when Slack took the message.
pub(crate) fn outcome<T>(
    answer: Result<T, SlackClientError>,
    mode: &Mode,
) -> Result<(), DeliveryError> {
    let error = match answer {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    let secrets = mode.secrets();
    Err(match error {
        SlackClientError::ApiError(error) => api_error(&error, mode),
        SlackClientError::HttpError(error) => http_error(&error, mode),
        SlackClientError::RateLimitError(error) => rate_limited(&error),
        SlackClientError::ProtocolError(error) => {
            if accepted(error.json_body.as_deref()) {
                return Ok(());
            }
            DeliveryError::unknown(
                "slack's answer could not be read: the message may have been posted",
            )
            .with_source(Redacted::new(&error.json_error, &secrets))
        }
        SlackClientError::HttpProtocolError(error) => match error.cause {
            Some(cause) => connection_error(cause.as_ref(), &secrets),
            None => DeliveryError::unknown(
                "the exchange with slack failed: the message may have been posted",
            ),
        },
        other => DeliveryError::unknown(
            "reading slack's answer failed: the message may have been posted",
        )
        .with_source(Redacted::new(&other, &secrets)),
    })
}

/// Whether an answer slack-morphism could not decode still says that the message was
/// posted: a webhook's plain `ok` sent without a content type, or a Web API `"ok": true`
/// without a field the library's model expects.
fn accepted(body: Option<&str>) -> bool {
    let Some(body) = body.map(str::trim) else {
        return false;
    };
    body == "ok"
        || serde_json::from_str::<Value>(body)
            .is_ok_and(|answer| answer.get("ok") == Some(&Value::Bool(true)))
}

fn rate_limited(error: &SlackRateLimitError) -> DeliveryError {
    match error.retry_after {
        Some(delay) => DeliveryError::transient(format!(
            "slack is rate limiting this target: retry after {}",
            format_duration(delay)
        ))
        .with_retry_after(delay),
        None => DeliveryError::transient("slack is rate limiting this target"),
    }
}

fn api_error(error: &SlackClientApiError, mode: &Mode) -> DeliveryError {
    let code = code_of(&error.code).unwrap_or("unknown_error");
    let channel = mode.channel().unwrap_or("the channel");
    match code {
        "ratelimited" | "rate_limited" | "message_limit_exceeded" => {
            DeliveryError::transient(format!("slack is rate limiting this target ({code})"))
        }
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => {
            DeliveryError::transient(format!("slack failed to handle the message ({code})"))
        }
        "channel_not_found" => DeliveryError::permanent(format!(
            "slack knows no channel {channel} ({code}): check `channel`, and invite the bot \
             to the channel if it is private"
        )),
        "not_in_channel" => DeliveryError::permanent(format!(
            "the bot is not in {channel} ({code}): invite the bot to the channel \
             (/invite @app-name), or give it the chat:write.public scope"
        )),
        "is_archived" | "channel_is_archived" => DeliveryError::permanent(format!(
            "{channel} is archived ({code}): unarchive it or set another `channel`"
        )),
        "invalid_auth"
        | "not_authed"
        | "token_revoked"
        | "token_expired"
        | "account_inactive"
        | "invalid_token"
        | "org_login_required"
        | "two_factor_setup_required" => DeliveryError::permanent(format!(
            "slack refused the token ({code}): the token is invalid or revoked, or its app \
                 was removed; install the app again and update `token`"
        )),
        "not_allowed_token_type" | "no_permission" => DeliveryError::permanent(format!(
            "slack does not let this token post messages ({code}): use a bot token (xoxb-…) \
             with the chat:write scope"
        )),
        "missing_scope" => {
            let needed = error
                .http_response_body
                .as_deref()
                .and_then(needed_scope)
                .unwrap_or_else(|| "chat:write".to_owned());
            DeliveryError::permanent(format!(
                "the token lacks the {needed} scope ({code}): add it in the app's OAuth & \
                 Permissions page, reinstall the app and update `token` if it changed"
            ))
        }
        "restricted_action"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "restricted_action_non_threadable_channel"
        | "team_access_not_granted"
        | "ekm_access_denied" => DeliveryError::permanent(format!(
            "the workspace does not let the bot post in {channel} ({code}): ask a workspace \
             admin to allow it"
        )),
        "msg_too_long"
        | "msg_blocks_too_long"
        | "no_text"
        | "invalid_blocks"
        | "invalid_blocks_format"
        | "invalid_arguments"
        | "invalid_arg_name"
        | "invalid_array_arg"
        | "invalid_charset"
        | "invalid_form_data"
        | "invalid_json"
        | "json_not_object"
        | "invalid_post_type"
        | "missing_post_type" => DeliveryError::permanent(format!(
            "slack refused the message's format ({code}): this is a bug in the relay, \
                 please report it"
        )),
        _ => DeliveryError::permanent(format!("slack refused the message ({code})")),
    }
}

fn http_error(error: &SlackClientHttpError, mode: &Mode) -> DeliveryError {
    let status = error.status_code.as_u16();
    let code = error.http_response_body.as_deref().and_then(code_of);
    let answer = match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    };
    if classify_status(status) == Some(FailureKind::Transient) {
        return DeliveryError::transient(format!(
            "slack answered {answer}: it is unavailable or overloaded"
        ));
    }
    let message = match (mode, code) {
        (
            Mode::Webhook { .. },
            Some(
                "invalid_token" | "no_service" | "no_service_id" | "no_team" | "team_disabled"
                | "no_active_hooks",
            ),
        ) => format!(
            "the incoming webhook was disabled or removed ({answer}): create a webhook and \
             update `webhook_url`"
        ),
        (Mode::Webhook { .. }, Some("channel_not_found" | "channel_is_archived")) => format!(
            "the webhook's channel was deleted or archived ({answer}): create a webhook for \
             another channel and update `webhook_url`"
        ),
        (Mode::Webhook { .. }, Some("action_prohibited")) => format!(
            "a workspace admin restricted posting in the webhook's channel ({answer}): ask \
             them to allow the app, or create a webhook for another channel"
        ),
        (Mode::Webhook { .. }, Some("posting_to_general_channel_denied")) => format!(
            "only admins may post in the webhook's channel ({answer}): create a webhook for \
             another channel"
        ),
        (
            Mode::Webhook { .. },
            Some(
                "invalid_payload"
                | "too_many_attachments"
                | "no_text"
                | "missing_text_or_fallback_or_attachments",
            ),
        ) => format!(
            "slack refused the message's format ({answer}): this is a bug in the relay, \
             please report it"
        ),
        (Mode::Webhook { .. }, _) => {
            format!("slack refused the post ({answer}): check `webhook_url`")
        }
        (Mode::Api { .. }, _) => {
            format!("slack answered {answer} to chat.postMessage: check `api_url`")
        }
    };
    DeliveryError::permanent(message)
}

/// A failure below HTTP. hyper says whether it happened while connecting, when nothing has
/// been sent yet; after that, the message may have arrived.
fn connection_error(
    cause: &(dyn StdError + Send + Sync + 'static),
    secrets: &[&str],
) -> DeliveryError {
    let error = match cause.downcast_ref::<hyper_util::client::legacy::Error>() {
        Some(hyper) if hyper.is_connect() => DeliveryError::transient("cannot connect to slack"),
        Some(_) => DeliveryError::unknown(
            "the connection to slack broke during the request: the message may have been posted",
        ),
        // Building the request failed (a URL or header slack-morphism could not write).
        None => DeliveryError::permanent("cannot build the request to slack"),
    };
    error.with_source(Redacted::new(cause, secrets))
}

/// Slack's error codes are short snake_case words; anything else in a body (an HTML error
/// page from a proxy) is not repeated in a message.
fn code_of(body: &str) -> Option<&str> {
    let code = body.trim();
    let plausible = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.'));
    plausible.then_some(code)
}

/// The scopes a `missing_scope` answer says are needed (`"needed": "chat:write"`).
fn needed_scope(body: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    let needed = answer.get("needed")?.as_str()?.trim();
    let plausible = (1..=200).contains(&needed.len())
        && needed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b','));
    plausible.then(|| needed.to_owned())
}

/// An error chain copied as text, with the target's secrets replaced by `[redacted]`.
#[derive(Debug)]
struct Redacted {
    message: String,
    source: Option<Box<Redacted>>,
}

impl Redacted {
    fn new(error: &(dyn StdError + 'static), secrets: &[&str]) -> Redacted {
        Redacted {
            message: redact(error.to_string(), secrets),
            source: error
                .source()
                .map(|source| Box::new(Redacted::new(source, secrets))),
        }
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Redacted {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

/// Replaces every secret in `text`, longest first so that a URL goes before its path.
fn redact(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret) {
            text = text.replace(secret, "[redacted]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kept_only_when_they_look_like_slack_codes() {
        assert_eq!(code_of(" channel_not_found\n"), Some("channel_not_found"));
        assert_eq!(code_of("<html><body>Not Found</body></html>"), None);
        assert_eq!(code_of("ok /services/T000/B000/secret"), None);
        assert_eq!(code_of(""), None);
    }

    #[test]
    fn plain_ok_and_ok_true_count_as_posted() {
        assert!(accepted(Some("ok")));
        assert!(accepted(Some(r#"{"ok": true, "unexpected": 1}"#)));
        assert!(!accepted(Some(r#"{"ok": false}"#)));
        assert!(!accepted(Some("<html>")));
        assert!(!accepted(None));
    }

    #[test]
    fn needed_scope_is_read_from_a_missing_scope_answer() {
        let body = r#"{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"x"}"#;
        assert_eq!(needed_scope(body).as_deref(), Some("chat:write"));
        assert_eq!(needed_scope(r#"{"needed": "<!here>"}"#), None);
    }

    #[test]
    fn redacted_chains_replace_every_secret_at_every_level() {
        let inner = std::io::Error::other("cannot reach /services/T0/B0/abcdefgh");
        let outer = DeliveryError::transient("see https://hooks.example/services/T0/B0/abcdefgh")
            .with_source(inner);
        let secrets = [
            "https://hooks.example/services/T0/B0/abcdefgh",
            "services/T0/B0/abcdefgh",
        ];

        let redacted = Redacted::new(&outer, &secrets);

        let shown = format!("{redacted} / {:?}", redacted);
        assert!(!shown.contains("abcdefgh"), "{shown}");
        assert_eq!(
            redacted.source().map(ToString::to_string).as_deref(),
            Some("cannot reach /[redacted]")
        );
    }
}
