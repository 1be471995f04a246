//! The Twilio target: one call to the Messages API per recipient, and what its answers mean
//! for the delivery engine.
//!
//! A notification goes to every configured number at once. SMS is not idempotent: Twilio
//! takes no idempotency key, so a message sent again is received again. When some
//! recipients got the SMS and others did not, a retry of the whole delivery would text the
//! first ones again, on every attempt. The target therefore remembers, for a while, which
//! recipients already have a notification whose delivery failed, and skips them when the
//! engine calls again with the same notification. The memory is in-process: after a
//! restart, a retry texts everyone again, and a duplicate is the price of not losing an
//! alert.
//!
//! Because a retry only reaches the recipients still missing, a partial failure is
//! classified by what a retry can still achieve: transient when any recipient failed
//! transiently, else an unknown outcome when any may or may not have been texted, else
//! permanent. The message names the failed recipients by their place in `to`, never by
//! number.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use sqreen_webhook_core::target::{classify_status, parse_retry_after};
use sqreen_webhook_core::text::{one_line, truncate};
use sqreen_webhook_core::{DeliveryError, FailureKind, Identity, Notification, Target};

use crate::config::{BuildError, Config, PhoneNumber, Sender, Settings};
use crate::render;

/// How long the target remembers who already has a notification that failed for others:
/// longer than any sensible retry schedule.
const SENT_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// How many partly delivered notifications are remembered at most; the oldest is forgotten
/// first.
const SENT_CAPACITY: usize = 1024;

/// Error bodies are read up to this size: Twilio's are a few hundred bytes.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Twilio's error messages are cut to this length in ours.
const MAX_TWILIO_MESSAGE_CHARS: usize = 300;

/// Sends each notification as an SMS through Twilio's Messages API.
#[derive(Debug)]
pub struct TwilioTarget {
    name: String,
    client: Client,
    settings: Settings,
    sent: SentMemory,
}

impl TwilioTarget {
    /// Validates the configuration and builds the HTTP client. `timeout` bounds each call
    /// to Twilio, connection included.
    pub fn new(
        name: impl Into<String>,
        config: Config,
        timeout: Duration,
    ) -> Result<TwilioTarget, BuildError> {
        let name = name.into();
        let settings = config.validate(timeout)?;
        if settings.base_url.scheme() == "http" && !is_loopback(&settings.base_url) {
            log::warn!(
                "target {name}: base_url is plain http, the auth token will cross the network in clear"
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Twilio does not redirect; following one would send the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sqreen-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Client)?;
        Ok(TwilioTarget {
            name,
            client,
            settings,
            sent: SentMemory::default(),
        })
    }

    /// Sends one SMS and returns the message SID Twilio gave it.
    async fn send(&self, index: usize, to: &PhoneNumber, body: &str) -> Result<String, Failure> {
        let sender = match &self.settings.sender {
            Sender::Number(number) => ("From", number.as_str()),
            Sender::Service(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let response = self
            .client
            .post(self.settings.messages_url.clone())
            .basic_auth(
                &self.settings.account_sid,
                Some(self.settings.auth_token.expose()),
            )
            .form(&[("To", to.as_str()), sender, ("Body", body)])
            .send()
            .await
            .map_err(|error| Failure::from_transport(index, error))?;
        let status = response.status();
        if status.is_success() {
            let sid = match response.json::<Accepted>().await {
                Ok(accepted) => accepted.sid.as_deref().map(clean_sid).unwrap_or_default(),
                // The status says Twilio took the message; a body lost on the way changes
                // nothing for the recipient.
                Err(_) => String::new(),
            };
            return Ok(sid);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(response).await;
        let error = serde_json::from_slice::<TwilioError>(&body).ok();
        Err(Failure::from_answer(
            index,
            status,
            retry_after,
            error.as_ref(),
            self.settings.auth_token.expose(),
        ))
    }
}

#[async_trait]
impl Target for TwilioTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let body = render::sms(notification.view(), self.settings.max_segments);
        let body = body.as_str();
        let identity = notification.identity();
        let recipients = self.settings.to.len();
        let mut delivered = self
            .sent
            .get(identity)
            .filter(|delivered| delivered.len() == recipients)
            .unwrap_or_else(|| vec![false; recipients]);
        let skipped = delivered.iter().filter(|&&d| d).count();
        if skipped > 0 {
            log::info!(
                "target {}: {identity}: skipping {skipped} recipients texted by an earlier attempt",
                self.name
            );
        }
        let attempts = self
            .settings
            .to
            .iter()
            .enumerate()
            .filter(|(index, _)| !delivered[*index])
            .map(|(index, to)| async move { (index, self.send(index, to, body).await) });
        let mut failures = Vec::new();
        for (index, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(sid) => {
                    delivered[index] = true;
                    log::debug!(
                        "target {}: {identity}: twilio accepted message {sid} for to[{index}]",
                        self.name
                    );
                }
                Err(failure) => failures.push(failure),
            }
        }
        if failures.is_empty() {
            self.sent.forget(identity);
            return Ok(());
        }
        let error = combine(failures, &delivered);
        self.sent.remember(identity, delivered);
        Err(error)
    }
}

/// The body of Twilio's `201 Created`.
#[derive(Deserialize)]
struct Accepted {
    sid: Option<String>,
}

/// The body of Twilio's error answers: `{"code": 21211, "message": "…", "more_info": "…",
/// "status": 400}`.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// Why one recipient did not get the SMS.
#[derive(Debug)]
struct Failure {
    index: usize,
    kind: FailureKind,
    message: String,
    retry_after: Option<Duration>,
    source: Option<reqwest::Error>,
}

impl Failure {
    fn from_transport(index: usize, error: reqwest::Error) -> Failure {
        let (kind, message) = if error.is_connect() {
            // Nothing reached Twilio, whether the connection was refused or timed out.
            (FailureKind::Transient, "cannot connect to twilio")
        } else if error.is_timeout() {
            (
                FailureKind::Unknown,
                "twilio did not answer in time; the sms may have been sent",
            )
        } else if error.is_builder() {
            (FailureKind::Permanent, "cannot build the request to twilio")
        } else {
            (
                FailureKind::Unknown,
                "the connection to twilio failed during the request; the sms may have been sent",
            )
        };
        Failure {
            index,
            kind,
            message: message.to_owned(),
            retry_after: None,
            source: Some(error.without_url()),
        }
    }

    fn from_answer(
        index: usize,
        status: StatusCode,
        retry_after: Option<Duration>,
        error: Option<&TwilioError>,
        token: &str,
    ) -> Failure {
        let kind = classify_status(status.as_u16()).unwrap_or(FailureKind::Permanent);
        let mut message = format!("twilio answered {}", status.as_u16());
        if let Some(error) = error {
            if let Some(code) = error.code {
                message.push_str(&format!(" with error {code}"));
            }
            if let Some(text) = error.message.as_deref() {
                let text = scrub(text, token);
                message.push_str(&format!(": {}", text.trim_end_matches('.')));
            }
        }
        if kind == FailureKind::Permanent {
            message.push_str(&format!(
                ": {}",
                hint(status, error.and_then(|e| e.code), index)
            ));
            if let Some(link) = error
                .and_then(|e| e.more_info.as_deref())
                .and_then(docs_link)
            {
                message.push_str(&format!(" ({link})"));
            }
        }
        Failure {
            index,
            kind,
            message,
            retry_after: retry_after.filter(|_| kind == FailureKind::Transient),
            source: None,
        }
    }
}

/// What a person should do about a refused message.
fn hint(status: StatusCode, code: Option<u32>, index: usize) -> String {
    match (status.as_u16(), code) {
        (_, Some(20003)) | (401, _) => "check `account_sid` and `auth_token`".to_owned(),
        (_, Some(20404)) | (404, _) => "check `account_sid` and `base_url`".to_owned(),
        (_, Some(21211 | 21614)) => format!("check the number in `to[{index}]`"),
        (_, Some(21408)) => format!(
            "allow texting the country of `to[{index}]` in the Twilio console's geographic permissions"
        ),
        (_, Some(21610)) => format!(
            "the recipient in `to[{index}]` replied STOP and must reply START to get alerts again"
        ),
        (_, Some(21212 | 21606 | 21659)) => {
            "check `from`: it must be a Twilio number of the account that can send SMS".to_owned()
        }
        (300..=399, _) => "check `base_url`: twilio does not redirect".to_owned(),
        _ => "retrying cannot help".to_owned(),
    }
}

/// Twilio's documentation link for an error, when it is one.
fn docs_link(link: &str) -> Option<&str> {
    let link = link.trim();
    (link.starts_with("https://www.twilio.com/docs/")
        && link.len() <= 200
        && !link.chars().any(|c| c.is_whitespace() || c.is_control()))
    .then_some(link)
}

/// Twilio's error text, made safe to log: one line, short, with phone numbers (Twilio
/// quotes them: "The 'To' number +1… is not a valid phone number") and the token removed.
fn scrub(text: &str, token: &str) -> String {
    let text = one_line(text);
    let text = if token.is_empty() {
        text
    } else {
        text.replace(token, "[redacted]")
    };
    let text = without_phone_numbers(&text);
    truncate(&text, MAX_TWILIO_MESSAGE_CHARS).into_owned()
}

/// Replaces what looks like a phone number by `[phone number]`: a `+` or `(` and at least
/// seven digits, written with spaces, dots, dashes or parentheses (`+1 (500) 555-0001`), or
/// eight digits or more in a row that are not part of a word. Twilio's error codes (five
/// digits), SIDs (digits among letters) and dates (`2010-04-01`) stay.
fn without_phone_numbers(text: &str) -> String {
    const MIN_DIGITS_WRITTEN: usize = 7;
    const MIN_DIGITS_BARE: usize = 8;
    let is_part = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-' | '(' | ')');
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_a_word = i == 0 || !chars[i - 1].is_alphanumeric();
        let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        let found = if matches!(c, '+' | '(') && next_is_digit {
            let end = chars[i..]
                .iter()
                .position(|&c| !is_part(c))
                .map_or(chars.len(), |n| i + n);
            // The separators after the last digit belong to the sentence.
            let last_digit = chars[i..end]
                .iter()
                .rposition(char::is_ascii_digit)
                .map_or(i, |n| i + n);
            let digits = chars[i..end].iter().filter(|c| c.is_ascii_digit()).count();
            (digits >= MIN_DIGITS_WRITTEN).then_some(last_digit + 1)
        } else if c.is_ascii_digit() && starts_a_word {
            let end = chars[i..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(chars.len(), |n| i + n);
            let ends_a_word = chars.get(end).is_none_or(|c| !c.is_alphanumeric());
            (end - i >= MIN_DIGITS_BARE && ends_a_word).then_some(end)
        } else {
            None
        };
        match found {
            Some(end) => {
                out.push_str("[phone number]");
                i = end;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A message SID for logs: Twilio's are `SM` and hex, anything else is cut down to that.
fn clean_sid(sid: &str) -> String {
    sid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect()
}

/// One error for all the recipients that failed, of the kind that says what a retry can
/// still achieve.
fn combine(failures: Vec<Failure>, delivered: &[bool]) -> DeliveryError {
    let rank = |kind: FailureKind| match kind {
        FailureKind::Transient => 0,
        FailureKind::Unknown => 1,
        FailureKind::Permanent => 2,
    };
    let kind = failures
        .iter()
        .map(|f| f.kind)
        .min_by_key(|&k| rank(k))
        .unwrap_or(FailureKind::Permanent);
    let retry_after = failures
        .iter()
        .filter(|f| f.kind == FailureKind::Transient)
        .filter_map(|f| f.retry_after)
        .max();
    let recipients = delivered.len();
    let names: Vec<String> = failures
        .iter()
        .map(|f| format!("to[{}]", f.index))
        .collect();
    let mut message = if recipients == 1 {
        format!("sms to {} failed", names.join(", "))
    } else {
        format!(
            "sms to {} failed ({} of {recipients} recipients)",
            names.join(", "),
            failures.len()
        )
    };
    for failure in &failures {
        if failures.len() == 1 {
            message.push_str(&format!(": {}", failure.message));
        } else {
            message.push_str(&format!("; to[{}]: {}", failure.index, failure.message));
        }
    }
    let texted = delivered.iter().filter(|&&d| d).count();
    match texted {
        0 => {}
        1 => message.push_str("; 1 other recipient has it and is skipped on retry"),
        n => message.push_str(&format!(
            "; {n} other recipients have it and are skipped on retry"
        )),
    }
    let mut error = match kind {
        FailureKind::Transient => DeliveryError::transient(message),
        FailureKind::Unknown => DeliveryError::unknown(message),
        FailureKind::Permanent => DeliveryError::permanent(message),
    };
    if let Some(delay) = retry_after {
        error = error.with_retry_after(delay);
    }
    // The cause chain of the failure that decided the kind, which is the one to act on.
    if let Some(source) = failures
        .into_iter()
        .filter(|f| f.kind == kind)
        .find_map(|f| f.source)
    {
        error = error.with_source(source);
    }
    error
}

async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    body
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Which recipients already have a notification that some others did not get.
#[derive(Debug, Default)]
struct SentMemory {
    entries: Mutex<HashMap<Identity, (Instant, Vec<bool>)>>,
}

impl SentMemory {
    /// Which recipients already have this notification, if an earlier attempt left some
    /// without it.
    fn get(&self, identity: &Identity) -> Option<Vec<bool>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (recorded, delivered) = entries.get(identity)?;
        (recorded.elapsed() < SENT_MEMORY).then(|| delivered.clone())
    }

    /// Forgets a notification that every recipient now has.
    fn forget(&self, identity: &Identity) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(identity);
    }

    fn remember(&self, identity: &Identity, delivered: Vec<bool>) {
        if !delivered.contains(&true) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (recorded, _)| recorded.elapsed() < SENT_MEMORY);
        if entries.len() >= SENT_CAPACITY {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (recorded, _))| *recorded)
                .map(|(identity, _)| identity.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(identity.clone(), (Instant::now(), delivered));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_in_twilio_messages_are_removed_and_error_codes_kept() {
        let cases = [
            (
                "The 'To' number +15005550001 is not a valid phone number.",
                "The 'To' number [phone number] is not a valid phone number.",
            ),
            (
                "To +1 (500) 555-0001, from 33612345678",
                "To [phone number], from [phone number]",
            ),
            ("error 21211 at 10:42", "error 21211 at 10:42"),
            (
                "The requested resource /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json was not found",
                "The requested resource /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json was not found",
            ),
            (
                "(see 20003) for 15005550001.",
                "(see 20003) for [phone number].",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(scrub(text, "secret-token"), expected);
        }
    }

    #[test]
    fn the_token_is_removed_from_twilio_messages() {
        assert_eq!(
            scrub("bad credentials secret-token\r\nfor you", "secret-token"),
            "bad credentials [redacted] for you"
        );
    }

    #[test]
    fn sids_are_cleaned_for_logs() {
        assert_eq!(clean_sid("SM123\u{1b}[31m abc"), "SM12331mabc");
    }

    fn failure(index: usize, kind: FailureKind, retry_after: Option<u64>) -> Failure {
        Failure {
            index,
            kind,
            message: format!("{kind} failure"),
            retry_after: retry_after.map(Duration::from_secs),
            source: None,
        }
    }

    #[test]
    fn a_partial_failure_is_transient_when_a_retry_can_still_reach_someone() {
        let failures = vec![
            failure(1, FailureKind::Permanent, None),
            failure(2, FailureKind::Transient, Some(30)),
            failure(3, FailureKind::Transient, Some(5)),
        ];

        let error = combine(failures, &[true, false, false, false]);

        assert_eq!(error.kind(), FailureKind::Transient);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(
            error.message(),
            "sms to to[1], to[2], to[3] failed (3 of 4 recipients); \
             to[1]: permanent failure; to[2]: transient failure; to[3]: transient failure; \
             1 other recipient has it and is skipped on retry"
        );
    }

    #[test]
    fn a_partial_failure_is_unknown_before_permanent() {
        let failures = vec![
            failure(0, FailureKind::Permanent, None),
            failure(1, FailureKind::Unknown, None),
        ];

        let error = combine(failures, &[false, false]);

        assert_eq!(error.kind(), FailureKind::Unknown);
    }

    #[test]
    fn the_memory_keeps_who_was_texted_until_told_to_forget() {
        let memory = SentMemory::default();
        let notification =
            Notification::from_element(r#"{"sqreen_payload_type": "test", "id": "abc"}"#)
                .expect("valid");

        memory.remember(notification.identity(), vec![true, false]);
        let remembered = memory.get(notification.identity());
        memory.forget(notification.identity());

        assert_eq!(remembered, Some(vec![true, false]));
        assert_eq!(memory.get(notification.identity()), None);
    }

    #[test]
    fn the_memory_keeps_nothing_when_nobody_was_texted() {
        let memory = SentMemory::default();
        let notification =
            Notification::from_element(r#"{"sqreen_payload_type": "test", "id": "abc"}"#)
                .expect("valid");

        memory.remember(notification.identity(), vec![false, false]);

        assert_eq!(memory.get(notification.identity()), None);
    }
}
