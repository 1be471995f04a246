//! Slack target for the Sqreen webhook relay: each notification becomes one Block Kit
//! message in a channel.
//!
//! Two ways in, one per target: an incoming webhook (a URL that posts to the channel it was
//! created for; the URL is the credential), or a bot token with a channel, through the Web
//! API's `chat.postMessage`. Both speak through slack-morphism over hyper and rustls.
//!
//! [`render`] builds the message and escapes every payload value for Slack's markup. The
//! target sends it once per call, within the configured timeout, and says what Slack's
//! answer means: rate limits and outages are transient (with Slack's `Retry-After`), a
//! refused token or channel is permanent with the fix in the message, and a post that got no
//! answer in time is an unknown outcome, since Slack may have shown it already.

mod classify;
pub mod render;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use slack_morphism::prelude::{
    SlackApiChatPostMessageRequest, SlackApiPostWebhookMessageRequest, SlackApiToken,
    SlackApiTokenValue, SlackChannelId, SlackClient, SlackClientHyperConnector,
};
use sqreen_webhook_core::duration::format_duration;
use sqreen_webhook_core::{DeliveryError, Notification, Secret, Target};
use url::{Host, Url};

/// Where the Web API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// Opening a TCP connection may take the per-attempt timeout divided by this. A connection
/// that cannot be opened in time fails as transient, since nothing was sent; the rest of
/// the budget is Slack's to answer, and running out of it is an unknown outcome.
const CONNECT_DIVISOR: u32 = 2;

/// The keys of a `[[targets]]` table of type `slack`.
///
/// Set `webhook_url`, or `token` with `channel`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// An incoming-webhook URL, `https://hooks.slack.com/services/…`. It holds a token.
    pub webhook_url: Option<Secret>,
    /// A bot token, `xoxb-…`, to post with `chat.postMessage`.
    pub token: Option<Secret>,
    /// With `token`: a channel name (`#secops`) or id (`C0123456789`).
    pub channel: Option<String>,
    /// With `token`: the Web API's base URL. Default [`DEFAULT_API_URL`].
    pub api_url: Option<String>,
    /// With `token`: the name shown as the author (needs the `chat:write.customize` scope).
    pub username: Option<String>,
    /// With `token`: the author's icon, as an emoji code such as `:shield:` (needs the
    /// `chat:write.customize` scope).
    pub icon_emoji: Option<String>,
}

/// A configuration that cannot work, naming the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("set `webhook_url`, or `token` and `channel`")]
    NoDestination,
    #[error("set `webhook_url` or `token`, not both")]
    TwoDestinations,
    #[error("`{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("cannot load the system's root certificates for TLS")]
    Certificates(#[source] std::io::Error),
}

fn invalid(key: &'static str, problem: impl Into<String>) -> BuildError {
    BuildError::Invalid {
        key,
        problem: problem.into(),
    }
}

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// Posts each notification to a Slack channel.
pub struct SlackTarget {
    name: String,
    client: SlackClient<Connector>,
    mode: Mode,
    timeout: Duration,
}

/// How a target reaches Slack, validated.
#[derive(Debug)]
pub(crate) enum Mode {
    Webhook {
        url: WebhookUrl,
    },
    Api {
        token: Secret,
        channel: String,
        username: Option<String>,
        icon_emoji: Option<String>,
    },
}

/// An incoming-webhook URL, which must not print: its path is the credential.
pub(crate) struct WebhookUrl(Url);

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Mode {
    /// The channel named in messages, when the configuration names one.
    pub(crate) fn channel(&self) -> Option<&str> {
        match self {
            Mode::Webhook { .. } => None,
            Mode::Api { channel, .. } => Some(channel),
        }
    }

    /// Text that must never appear in an error, longest first.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        let mut secrets = match self {
            Mode::Webhook { url } => {
                let path = url.0.path().trim_matches('/');
                let last = path.rsplit('/').next().filter(|last| last.len() >= 8);
                [Some(url.0.as_str()), Some(path), last]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            Mode::Api { token, .. } => vec![token.expose()],
        };
        secrets.retain(|secret| !secret.is_empty());
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets
    }
}

impl SlackTarget {
    /// Checks the configuration and prepares the HTTP client. `timeout` bounds each
    /// delivery, from connecting to reading Slack's answer.
    pub fn new(
        name: impl Into<String>,
        config: Config,
        timeout: Duration,
    ) -> Result<SlackTarget, BuildError> {
        if timeout.is_zero() {
            return Err(invalid("timeout", "must be more than zero"));
        }
        let (mode, api_url) = mode(config)?;
        // rustls needs a process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout / CONNECT_DIVISOR));
        // Plain http is refused by the configuration checks except on loopback, for tests
        // and local proxies.
        let https = HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(BuildError::Certificates)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let mut connector = SlackClientHyperConnector::with_connector(https);
        if let Some(api_url) = api_url {
            connector = connector.with_slack_api_url(&api_url);
        }
        Ok(SlackTarget {
            name: name.into(),
            client: SlackClient::new(connector),
            mode,
            timeout,
        })
    }

    async fn post(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let content = render::message(notification.view());
        match &self.mode {
            Mode::Webhook { url } => {
                let request = SlackApiPostWebhookMessageRequest::new(content);
                let answer = self.client.post_webhook_message(&url.0, &request).await;
                classify::outcome(answer, &self.mode)
            }
            Mode::Api {
                token,
                channel,
                username,
                icon_emoji,
            } => {
                let token = SlackApiToken::new(SlackApiTokenValue(token.expose().to_owned()));
                let request =
                    SlackApiChatPostMessageRequest::new(SlackChannelId(channel.clone()), content)
                        .opt_username(username.clone())
                        .opt_icon_emoji(icon_emoji.clone())
                        // Previews of links from the payload would show an attacker's page.
                        .with_unfurl_links(false)
                        .with_unfurl_media(false)
                        .with_link_names(false);
                let session = self.client.open_session(&token);
                let answer = session.chat_post_message(&request).await;
                classify::outcome(answer, &self.mode)
            }
        }
    }
}

#[async_trait]
impl Target for SlackTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let result = match tokio::time::timeout(self.timeout, self.post(notification)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::unknown(format!(
                "no answer from slack within {}: the message may have been posted",
                format_duration(self.timeout)
            ))),
        };
        if result.is_ok() {
            log::debug!(
                "slack message posted: target={} identity={}",
                self.name,
                notification.identity()
            );
        }
        result
    }
}

impl fmt::Debug for SlackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackTarget")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks the keys and returns the mode, and the Web API URL to use when not the default.
fn mode(config: Config) -> Result<(Mode, Option<String>), BuildError> {
    let Config {
        webhook_url,
        token,
        channel,
        api_url,
        username,
        icon_emoji,
    } = config;
    if webhook_url.as_ref().is_some_and(Secret::is_empty) {
        return Err(invalid("webhook_url", "is empty"));
    }
    if token.as_ref().is_some_and(Secret::is_empty) {
        return Err(invalid("token", "is empty"));
    }
    match (webhook_url, token) {
        (None, None) => Err(BuildError::NoDestination),
        (Some(_), Some(_)) => Err(BuildError::TwoDestinations),
        (Some(url), None) => {
            let only_with_token = [
                ("channel", channel.is_some()),
                ("api_url", api_url.is_some()),
                ("username", username.is_some()),
                ("icon_emoji", icon_emoji.is_some()),
            ];
            if let Some((key, _)) = only_with_token.into_iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    "applies to `token` only: an incoming webhook posts to its own channel, \
                     as its own app",
                ));
            }
            let url = url_of("webhook_url", url.expose(), true)?;
            Ok((
                Mode::Webhook {
                    url: WebhookUrl(url),
                },
                None,
            ))
        }
        (None, Some(token)) => {
            check_token(&token)?;
            let channel = channel.ok_or_else(|| {
                invalid(
                    "channel",
                    "is required with `token`: a name (#secops) or an id",
                )
            })?;
            let channel = channel.trim().to_owned();
            if channel.is_empty() || channel.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "channel",
                    "must be a channel name (#secops) or id (C0123456789), without spaces",
                ));
            }
            if let Some(name) = &username
                && (name.trim().is_empty() || name.chars().count() > 80)
            {
                return Err(invalid("username", "must be 1 to 80 characters"));
            }
            if let Some(emoji) = &icon_emoji
                && !is_emoji_code(emoji)
            {
                return Err(invalid(
                    "icon_emoji",
                    "must be an emoji code such as :shield:",
                ));
            }
            let api_url = api_url.as_deref().unwrap_or(DEFAULT_API_URL);
            let parsed = url_of("api_url", api_url, false)?;
            // slack-morphism appends `/chat.postMessage` itself.
            let base = parsed.as_str().trim_end_matches('/').to_owned();
            let mode = Mode::Api {
                token,
                channel,
                username,
                icon_emoji,
            };
            Ok((mode, Some(base)))
        }
    }
}

/// An https URL, or an http one on loopback (tests, a local proxy): anything else would
/// send a credential in the clear. The value is never repeated when it is a secret.
fn url_of(key: &'static str, value: &str, secret: bool) -> Result<Url, BuildError> {
    let (quoted, not) = if secret {
        (String::new(), String::new())
    } else {
        (format!(" ({value:?})"), format!(", not {value:?}"))
    };
    let url = Url::parse(value.trim())
        .map_err(|error| invalid(key, format!("is not a valid URL{quoted}: {error}")))?;
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(invalid(
            key,
            format!("must be an https URL (plain http only on loopback){not}"),
        )),
    }
}

fn check_token(token: &Secret) -> Result<(), BuildError> {
    let value = token.expose();
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("token", "must not contain spaces or line breaks"));
    }
    if !value.starts_with("xox") {
        return Err(invalid(
            "token",
            "does not look like a slack token: expected a bot token (xoxb-…)",
        ));
    }
    Ok(())
}

fn is_emoji_code(text: &str) -> bool {
    text.len() > 2
        && text.starts_with(':')
        && text.ends_with(':')
        && text[1..text.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str) -> Config {
        Config {
            webhook_url: Some(Secret::new(url)),
            ..Config::default()
        }
    }

    fn bot(channel: Option<&str>) -> Config {
        Config {
            token: Some(Secret::new("xoxb-1-2-abcdef")),
            channel: channel.map(str::to_owned),
            ..Config::default()
        }
    }

    fn build(config: Config) -> Result<SlackTarget, BuildError> {
        SlackTarget::new("secops", config, Duration::from_secs(10))
    }

    fn error_of(config: Config) -> String {
        build(config).expect_err("refused").to_string()
    }

    #[test]
    fn builds_a_webhook_target_and_a_bot_target() {
        assert!(build(webhook("https://hooks.slack.com/services/T0/B0/abcdefgh")).is_ok());
        assert!(build(bot(Some("#secops"))).is_ok());
    }

    #[test]
    fn refuses_a_configuration_without_destination_or_with_two() {
        assert_eq!(
            error_of(Config::default()),
            "set `webhook_url`, or `token` and `channel`"
        );
        let both = Config {
            webhook_url: Some(Secret::new("https://hooks.slack.com/services/T0/B0/x")),
            ..bot(Some("#secops"))
        };
        assert_eq!(error_of(both), "set `webhook_url` or `token`, not both");
    }

    #[test]
    fn refuses_empty_secrets_by_name() {
        assert_eq!(error_of(webhook("")), "`webhook_url` is empty");
        let empty = Config {
            token: Some(Secret::new("")),
            ..bot(Some("#secops"))
        };
        assert_eq!(error_of(empty), "`token` is empty");
    }

    #[test]
    fn refuses_a_webhook_url_in_clear_text_without_repeating_it() {
        let error = error_of(webhook("http://hooks.slack.com/services/T0/B0/abcdefgh"));

        assert_eq!(
            error,
            "`webhook_url` must be an https URL (plain http only on loopback)"
        );
        let error = error_of(webhook("hooks.slack.com/services/T0/B0/abcdefgh"));
        assert!(
            error.starts_with("`webhook_url` is not a valid URL"),
            "{error}"
        );
        assert!(!error.contains("abcdefgh"), "{error}");
    }

    #[test]
    fn accepts_plain_http_on_loopback_only() {
        assert!(build(webhook("http://127.0.0.1:8080/services/T0/B0/abcdefgh")).is_ok());
        assert!(build(webhook("http://localhost/services/T0/B0/abcdefgh")).is_ok());
        let remote_api = Config {
            api_url: Some("http://slack.example/api/".to_owned()),
            ..bot(Some("#secops"))
        };
        assert_eq!(
            error_of(remote_api),
            "`api_url` must be an https URL (plain http only on loopback), not \
             \"http://slack.example/api/\""
        );
    }

    #[test]
    fn refuses_a_token_without_channel_or_with_a_bad_channel() {
        assert_eq!(
            error_of(bot(None)),
            "`channel` is required with `token`: a name (#secops) or an id"
        );
        assert!(error_of(bot(Some("sec ops"))).starts_with("`channel` must be"));
    }

    #[test]
    fn refuses_something_that_is_not_a_slack_token() {
        let app_token = Config {
            token: Some(Secret::new("xapp-1-A0-secret")),
            ..bot(Some("#secops"))
        };
        let error = error_of(app_token);

        assert_eq!(
            error,
            "`token` does not look like a slack token: expected a bot token (xoxb-…)"
        );
        assert!(!error.contains("secret"));
    }

    #[test]
    fn refuses_token_keys_next_to_a_webhook() {
        for key in ["channel", "api_url", "username", "icon_emoji"] {
            let mut config = webhook("https://hooks.slack.com/services/T0/B0/abcdefgh");
            match key {
                "channel" => config.channel = Some("#secops".to_owned()),
                "api_url" => config.api_url = Some(DEFAULT_API_URL.to_owned()),
                "username" => config.username = Some("Sqreen".to_owned()),
                _ => config.icon_emoji = Some(":shield:".to_owned()),
            }

            let error = error_of(config);

            assert!(
                error.starts_with(&format!("`{key}` applies to `token` only")),
                "{error}"
            );
        }
    }

    #[test]
    fn refuses_an_icon_that_is_not_an_emoji_code() {
        let config = Config {
            icon_emoji: Some("shield".to_owned()),
            ..bot(Some("#secops"))
        };
        assert_eq!(
            error_of(config),
            "`icon_emoji` must be an emoji code such as :shield:"
        );
    }

    #[test]
    fn configuration_rejects_unknown_keys_and_hides_secrets() {
        let unknown = serde_json::from_value::<Config>(serde_json::json!({
            "webhook_url": "https://hooks.slack.com/services/T0/B0/abcdefgh",
            "chanel": "#secops",
        }));
        let error = unknown.expect_err("unknown key").to_string();
        assert!(error.contains("unknown field `chanel`"), "{error}");

        let config: Config = serde_json::from_value(serde_json::json!({
            "token": "xoxb-1-2-abcdef", "channel": "#secops",
        }))
        .expect("valid");
        assert!(!format!("{config:?}").contains("abcdef"));
    }

    #[test]
    fn debug_never_shows_the_webhook_url_or_the_token() {
        let webhook =
            build(webhook("https://hooks.slack.com/services/T0/B0/abcdefgh")).expect("builds");
        let bot = build(bot(Some("#secops"))).expect("builds");

        let shown = format!("{webhook:?} {bot:?}");

        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(!shown.contains("hooks.slack.com"), "{shown}");
        assert!(shown.contains("#secops"), "{shown}");
    }

    #[test]
    fn secrets_of_a_webhook_are_its_url_path_and_last_segment() {
        let (mode, _) =
            mode(webhook("https://hooks.slack.com/services/T0/B0/abcdefgh")).expect("valid");

        assert_eq!(
            mode.secrets(),
            [
                "https://hooks.slack.com/services/T0/B0/abcdefgh",
                "services/T0/B0/abcdefgh",
                "abcdefgh",
            ]
        );
    }
}
