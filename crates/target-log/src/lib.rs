//! The log target: one line per notification through the `log` crate.
//!
//! The line carries the type, application, environment, risk and summary, each made one
//! line and stripped of control characters and invisible marks, so that a payload cannot
//! forge log lines or hide text in a terminal. The raw payload is never logged.

use async_trait::async_trait;
use serde::Deserialize;
use sqreen_webhook_core::text::one_line;
use sqreen_webhook_core::{DeliveryError, Notification, Target, View};

/// Log target settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The level of the lines: `error`, `warn`, `info` (default), `debug` or `trace`.
    #[serde(default)]
    pub level: Level,
}

/// A log level, as written in configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl From<Level> for log::Level {
    fn from(level: Level) -> log::Level {
        match level {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
            Level::Trace => log::Level::Trace,
        }
    }
}

/// Writes each notification as one log line, under the log target `sqreen_webhook::alert`.
#[derive(Debug)]
pub struct LogTarget {
    name: String,
    level: log::Level,
}

/// The `log` target name of the lines, to filter them with `RUST_LOG`.
pub const LOG_TARGET: &str = "sqreen_webhook::alert";

impl LogTarget {
    pub fn new(name: impl Into<String>, config: Config) -> LogTarget {
        LogTarget {
            name: name.into(),
            level: config.level.into(),
        }
    }
}

#[async_trait]
impl Target for LogTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        log::log!(target: LOG_TARGET, self.level, "{}", line(notification.view()));
        Ok(())
    }
}

/// The log line for a notification:
/// `security_event app="shop" env="production" risk=75 id=security_event:5dc… summary="…"`.
pub fn line(view: &View) -> String {
    let field = |value: Option<&str>| match value {
        Some(text) => format!("{:?}", one_line(text)),
        None => "-".to_owned(),
    };
    let risk = view.risk.map_or_else(|| "-".to_owned(), |r| r.to_string());
    format!(
        "{} app={} env={} risk={} id={} summary={:?}",
        one_line(&view.type_name),
        field(view.application.display_name()),
        field(view.environment.as_deref()),
        risk,
        view.identity,
        view.summary,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqreen_webhook_core::parse;
    use sqreen_webhook_core::samples::sample;

    fn view_of(name: &str) -> View {
        parse(sample(name).unwrap().body.as_bytes()).unwrap()[0]
            .view()
            .clone()
    }

    #[test]
    fn the_line_has_type_application_environment_risk_and_summary() {
        assert_eq!(
            line(&view_of("v1-security-event")),
            "security_event app=\"sqreentest\" env=\"development\" risk=50 \
             id=security_event:5dc3ea7706c8cd0013b6c15c \
             summary=\"Potential Automated Vulnerability discovery from 127.0.0.1\""
        );
    }

    #[test]
    fn missing_fields_are_dashes() {
        let text = line(&view_of("v2-incident"));
        assert!(
            text.starts_with("http_scan app=\"5ede853e66ff200020ad47db\" env=- risk=- "),
            "{text}"
        );
    }

    #[test]
    fn hostile_text_cannot_break_the_line_or_hide_characters() {
        let text = line(&view_of("hostile"));
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() || sqreen_webhook_core::text::is_invisible_mark(c)),
            "{text:?}"
        );
        assert!(
            !text.contains("\\u{"),
            "no escaped marks left either: {text}"
        );
    }

    #[test]
    fn the_raw_payload_is_not_in_the_line() {
        let text = line(&view_of("v1-authentication-event"));
        assert!(!text.contains("date_resolved"));
        assert!(!text.contains("135.96.171.118\","));
    }
}
