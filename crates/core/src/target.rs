//! Where notifications go: the [`Target`] trait, and the errors a delivery can end in.
//!
//! A target delivers one notification per call and says, when it fails, whether trying again
//! can help. It does not retry, queue or time itself out beyond its own request timeout:
//! whoever calls it (the delivery engine) owns retries, backoff, concurrency and persistence,
//! so that every target gets the same guarantees.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::notification::Notification;

/// A destination for notifications: a log, a mailbox, a phone, a chat channel, a service.
#[async_trait]
pub trait Target: Send + Sync {
    /// The name given in configuration, used in logs and in the store.
    fn name(&self) -> &str;

    /// Delivers one notification. Called again with the same notification when a previous
    /// call failed with an error that [`DeliveryError::is_retryable`] allows.
    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError>;
}

/// Whether a failed delivery can succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Trying again may work: the target was unreachable, overloaded or rate limiting.
    Transient,
    /// Trying again cannot work without a person changing something: bad credentials, an
    /// invalid phone number, a channel that does not exist, a payload the target refuses.
    Permanent,
    /// The request was sent and no answer came back: the notification may or may not have
    /// arrived. Retrying risks a duplicate.
    Unknown,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Unknown => "unknown outcome",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery: its kind, a message for people, an optional delay the target asked
/// for, and the underlying error.
///
/// Messages must never contain credentials. Targets that wrap HTTP client errors remove the
/// URL from them when the URL holds a token (Slack incoming webhooks do).
#[derive(Debug)]
pub struct DeliveryError {
    kind: FailureKind,
    message: String,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl DeliveryError {
    fn new(kind: FailureKind, message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            kind,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A failure that a later attempt may not have.
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureKind::Transient, message)
    }

    /// A failure that needs a person to act before any attempt can succeed.
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureKind::Permanent, message)
    }

    /// The request may or may not have been received.
    pub fn unknown(message: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureKind::Unknown, message)
    }

    /// The target asked to wait this long before the next attempt (`Retry-After`).
    pub fn with_retry_after(mut self, delay: Duration) -> DeliveryError {
        self.retry_after = Some(delay);
        self
    }

    /// Keeps the underlying error as the source.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> DeliveryError {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether another attempt may succeed. Unknown outcomes are left to the caller's policy.
    pub fn is_retryable(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

impl fmt::Display for DeliveryError {
    /// The message followed by the chain of causes: `message: cause: cause`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut cause = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl StdError for DeliveryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The kind of failure an HTTP status means, the same way for every HTTP-based target:
/// `408`, `429` and `5xx` are transient, any other `4xx` is permanent, and anything else
/// that is not a success (`1xx`, `3xx`) is permanent too, since following it is a
/// configuration matter. Returns `None` for `2xx`.
pub fn classify_status(status: u16) -> Option<FailureKind> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(FailureKind::Transient),
        _ => Some(FailureKind::Permanent),
    }
}

/// Reads a `Retry-After` value given in seconds. HTTP dates are not used by the services
/// we talk to and are ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_the_message_and_the_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = DeliveryError::transient("cannot reach siem").with_source(io);
        assert_eq!(error.to_string(), "cannot reach siem: connection refused");
        assert!(error.is_retryable());
    }

    #[test]
    fn statuses_are_classified_as_every_target_expects() {
        assert_eq!(classify_status(204), None);
        for transient in [408, 429, 500, 502, 503] {
            assert_eq!(
                classify_status(transient),
                Some(FailureKind::Transient),
                "{transient}"
            );
        }
        for permanent in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(
                classify_status(permanent),
                Some(FailureKind::Permanent),
                "{permanent}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
