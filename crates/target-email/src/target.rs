//! [`EmailTarget`]: one email per notification, to every address of `to`, in one SMTP
//! transaction on a fresh connection.
//!
//! Alerts are rare, so a connection is not kept between them: an idle connection would be
//! closed by the server anyway, and a fresh one tells at once whether the server is there.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::extension::ClientId;
use sqreen_webhook_core::{DeliveryError, Notification, Target};

use crate::config::{BuildError, Config, Settings, TlsMode};
use crate::render::{Email, render};
use crate::{failure, smtp};

/// How long to wait for the answer to `QUIT` once the message was accepted: the delivery
/// has succeeded by then, so this only bounds politeness.
const QUIT_GRACE: Duration = Duration::from_secs(1);

/// Sends notifications by email over SMTP.
pub struct EmailTarget {
    name: String,
    settings: Settings,
    hello: ClientId,
    timeout: Duration,
}

impl EmailTarget {
    /// Validates `config` (addresses, login, TLS set-up) without connecting. `timeout`
    /// bounds one whole attempt, from connecting to the server's answer to the message.
    pub fn new(
        name: impl Into<String>,
        config: Config,
        timeout: Duration,
    ) -> Result<EmailTarget, BuildError> {
        // lettre's rustls needs a process-wide crypto provider; installing it twice is a
        // no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let name = name.into();
        let settings = Settings::validate(config)?;
        if settings.login.is_some() && settings.tls == TlsMode::None && !is_loopback(&settings.host)
        {
            log::warn!("email target {name}: the SMTP password travels unencrypted (tls = none)");
        }
        Ok(EmailTarget {
            name,
            settings,
            hello: ClientId::default(),
            timeout,
        })
    }

    /// The message for one notification, as it will be sent.
    fn message(&self, notification: &Notification) -> Result<Message, DeliveryError> {
        let view = notification.view();
        let Email {
            subject,
            text,
            html,
        } = render(view, &self.settings.subject_prefix);
        let mut builder = Message::builder()
            .from(self.settings.from.clone())
            .subject(subject)
            .message_id(Some(self.message_id(notification)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Sqreen-Kind"),
                view.kind.as_str().to_owned(),
            ));
        if let Some(risk) = view.risk {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Sqreen-Risk"),
                risk.to_string(),
            ));
        }
        for address in &self.settings.to {
            builder = builder.to(Mailbox::new(None, address.clone()));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| DeliveryError::permanent("cannot build the email").with_source(e))
    }

    /// The same for every attempt at one notification, so that mail systems that drop
    /// duplicates drop the copy a retry may have made.
    fn message_id(&self, notification: &Notification) -> String {
        let identity: Vec<String> = notification
            .identity()
            .as_str()
            .split(':')
            .map(atom)
            .collect();
        let domain = self.settings.from.email.domain();
        let domain = if domain.is_ascii() {
            domain
        } else {
            "sqreen-webhook.invalid"
        };
        format!("<{}.{}@{domain}>", identity.join("."), atom(&self.name))
    }
}

/// Text reduced to what a `Message-ID` may hold on either side of its dots.
fn atom(text: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect()
}

#[async_trait]
impl Target for EmailTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let message = self.message(notification)?.formatted();
        let mut stage = smtp::Stage::Connect;
        let transaction = smtp::send(
            &self.settings,
            &self.hello,
            self.timeout,
            &message,
            &mut stage,
        );
        let sent = match tokio::time::timeout(self.timeout, transaction).await {
            Err(_) => return Err(failure::timed_out(&self.settings, stage, self.timeout)),
            Ok(Err(failed)) => return Err(failure::classify(&self.settings, failed)),
            Ok(Ok(sent)) => sent,
        };
        let mut connection = sent.connection;
        let _ = tokio::time::timeout(QUIT_GRACE.min(self.timeout), connection.quit()).await;
        if !sent.refused.is_empty() {
            return Err(failure::partly_refused(&self.settings, &sent.refused));
        }
        log::debug!(
            "email sent: target={} identity={}",
            self.name,
            notification.identity()
        );
        Ok(())
    }
}

impl fmt::Debug for EmailTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTarget")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
