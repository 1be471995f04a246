//! SMTP failures as the delivery engine's [`DeliveryError`]s, classified the way every
//! target classifies: the server unreachable, a `4xx` reply or a broken connection before
//! the message was sent are transient; a `5xx` reply is permanent, with a message that says
//! what to fix; no answer after the message was sent is an unknown outcome.
//!
//! Messages name the host, the key to check and the user who logged in, but never the
//! password and never an address: recipients are "recipient 2 of 3 (at example.org)".
//! Server replies are kept as the error's source with every address's local part cut out,
//! since servers like to repeat the address they refuse.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use sqreen_webhook_core::DeliveryError;
use sqreen_webhook_core::text::one_line;

use crate::config::{Settings, TlsMode};
use crate::smtp::{Failed, Refusal, Stage};

/// A negative reply of the server, addresses cut out.
#[derive(Debug)]
struct Reply {
    code: u16,
    text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl StdError for Reply {}

impl Reply {
    fn of(error: &SmtpError) -> Option<Reply> {
        let code = error.status()?;
        let text = error.source().map(|s| s.to_string()).unwrap_or_default();
        Some(Reply {
            code: code.into(),
            text: without_local_parts(&one_line(&text)),
        })
    }
}

/// What went wrong underneath a lettre error: the last error of its chain. lettre's own
/// messages repeat their cause, which the chain printed by [`DeliveryError`] would show
/// twice.
#[derive(Debug)]
struct Cause(String);

impl Cause {
    fn of(error: &SmtpError) -> Cause {
        let mut root: &dyn StdError = error;
        while let Some(next) = root.source() {
            root = next;
        }
        Cause(one_line(&root.to_string()))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Cause {}

pub(crate) fn classify(settings: &Settings, failed: Failed) -> DeliveryError {
    let host = &settings.host;
    match failed {
        Failed::NoStarttls => DeliveryError::permanent(format!(
            "the SMTP server {host} does not offer STARTTLS: use `tls = \"tls\"` if it \
             expects TLS from the start (port 465), or `tls = \"none\"` on a trusted network"
        )),
        Failed::NoLoginMechanism => DeliveryError::permanent(format!(
            "the SMTP server {host} offers no login we support (PLAIN, LOGIN): remove \
             `username` and `password` if it needs none"
        )),
        Failed::NoSmtpUtf8 => DeliveryError::permanent(format!(
            "the SMTP server {host} cannot take non-ASCII addresses (no SMTPUTF8): check \
             `from` and `to`"
        )),
        Failed::EveryRecipientRefused(refused) => {
            refused_recipients(settings, &refused, "none of them got the message")
        }
        Failed::Smtp(stage, error) => match Reply::of(&error) {
            Some(reply) => replied(settings, stage, error.is_transient(), reply),
            None => broken(settings, stage, error),
        },
    }
}

/// The message reached some recipients and the server refused the others for good.
pub(crate) fn partly_refused(settings: &Settings, refused: &[Refusal]) -> DeliveryError {
    refused_recipients(settings, refused, "the others got the message")
}

/// The attempt ran out of time at `stage`.
pub(crate) fn timed_out(settings: &Settings, stage: Stage, timeout: Duration) -> DeliveryError {
    let host = &settings.host;
    if stage == Stage::Message {
        DeliveryError::unknown(format!(
            "no answer from the SMTP server {host} within {timeout:?} after the message was \
             sent: it may or may not have been accepted"
        ))
    } else {
        DeliveryError::transient(format!(
            "the SMTP server {host} did not answer within {timeout:?} {}",
            doing(settings, stage)
        ))
    }
}

fn replied(settings: &Settings, stage: Stage, transient: bool, reply: Reply) -> DeliveryError {
    let host = &settings.host;
    let verb = if transient { "deferred" } else { "refused" };
    let user = settings.login.as_ref().map_or("", |l| l.username.as_str());
    let message = match stage {
        Stage::Connect if transient => format!("the SMTP server {host} is not taking mail now"),
        Stage::Connect => format!("the SMTP server {host} refused the connection"),
        Stage::Starttls => format!("the SMTP server {host} {verb} STARTTLS"),
        Stage::Login if transient => {
            format!("the SMTP server {host} could not check the login for user {user} now")
        }
        Stage::Login => format!(
            "the SMTP server {host} refused the login for user {user}: check `username` and \
             `password`"
        ),
        Stage::Sender if reply.code == 530 => {
            format!("the SMTP server {host} requires a login: set `username` and `password`")
        }
        Stage::Sender => format!(
            "the SMTP server {host} {verb} the sender in `from` (at {})",
            settings.from.email.domain()
        ),
        Stage::Recipient(index) => {
            format!(
                "the SMTP server {host} {verb} {}",
                recipient(settings, index)
            )
        }
        Stage::Data if transient => format!("the SMTP server {host} is not taking messages now"),
        Stage::Data => format!("the SMTP server {host} refused to take a message"),
        Stage::Message => format!("the SMTP server {host} {verb} the message"),
    };
    let error = if transient {
        DeliveryError::transient(message)
    } else {
        DeliveryError::permanent(message)
    };
    error.with_source(reply)
}

fn broken(settings: &Settings, stage: Stage, error: SmtpError) -> DeliveryError {
    let (host, port) = (&settings.host, settings.port);
    let handshake =
        stage == Stage::Starttls || (stage == Stage::Connect && settings.tls == TlsMode::Tls);
    let delivery_error = if stage == Stage::Message {
        DeliveryError::unknown(format!(
            "the connection to the SMTP server {host} broke after the message was sent: it \
             may or may not have been accepted"
        ))
    } else if handshake && is_invalid_data(&error) {
        DeliveryError::permanent(format!(
            "TLS with the SMTP server {host}:{port} failed: check `tls` (\"{}\"), `port` and \
             the server's certificate",
            settings.tls
        ))
    } else if stage == Stage::Connect && error.is_response() {
        DeliveryError::transient(format!(
            "no valid greeting from the SMTP server {host}:{port}"
        ))
    } else if stage == Stage::Connect {
        DeliveryError::transient(format!("cannot reach the SMTP server {host}:{port}"))
    } else {
        DeliveryError::transient(format!(
            "the connection to the SMTP server {host} broke {}",
            doing(settings, stage)
        ))
    };
    delivery_error.with_source(Cause::of(&error))
}

fn refused_recipients(settings: &Settings, refused: &[Refusal], outcome: &str) -> DeliveryError {
    let which: Vec<String> = refused
        .iter()
        .map(|r| recipient(settings, r.index))
        .collect();
    let mut error = DeliveryError::permanent(format!(
        "the SMTP server {} refused {}, {outcome}: check `to`",
        settings.host,
        which.join(", ")
    ));
    if let Some(reply) = refused.first().and_then(|r| Reply::of(&r.error)) {
        error = error.with_source(reply);
    }
    error
}

/// "recipient 2 of 3 (at example.org)".
fn recipient(settings: &Settings, index: usize) -> String {
    let domain = settings.to.get(index).map_or("?", |a| a.domain());
    format!(
        "recipient {} of {} (at {domain})",
        index + 1,
        settings.to.len()
    )
}

fn doing(settings: &Settings, stage: Stage) -> String {
    match stage {
        Stage::Connect => "while connecting".to_owned(),
        Stage::Starttls => "during STARTTLS".to_owned(),
        Stage::Login => "during the login".to_owned(),
        Stage::Sender => "after MAIL FROM".to_owned(),
        Stage::Recipient(index) => format!("after RCPT TO for {}", recipient(settings, index)),
        Stage::Data => "after DATA, before the message was sent".to_owned(),
        Stage::Message => "after the message was sent".to_owned(),
    }
}

/// Whether the failure is a TLS one: tokio-rustls reports handshake and certificate
/// errors as `InvalidData` I/O errors.
fn is_invalid_data(error: &SmtpError) -> bool {
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::InvalidData;
        }
        cause = current.source();
    }
    false
}

/// Cuts the local part out of every address in a server reply: `<bob@example.org>`
/// becomes `<…@example.org>`.
fn without_local_parts(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.find('@') {
            Some(at) => {
                let start = word[..at]
                    .rfind(['<', '(', '"', '\'', ':', ',', ';', '[', '='])
                    .map_or(0, |i| i + 1);
                format!("{}…{}", &word[..start], &word[at..])
            }
            None => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::without_local_parts;

    #[test]
    fn addresses_in_server_replies_lose_their_local_part() {
        assert_eq!(
            without_local_parts("5.1.1 <bob@example.org>: Recipient address rejected"),
            "5.1.1 <…@example.org>: Recipient address rejected"
        );
        assert_eq!(
            without_local_parts("user=alice@example.com unknown"),
            "user=…@example.com unknown"
        );
        assert_eq!(
            without_local_parts("mailbox unavailable"),
            "mailbox unavailable"
        );
    }
}
