//! One SMTP transaction, step by step, on lettre's connection.
//!
//! lettre's transport sends a message in one call and reports a failure without saying at
//! which command it happened. Classifying failures needs exactly that: a `550` to `RCPT`
//! names a bad recipient, the same code after the message names a rejected message, and a
//! silence after the message means it may have arrived. So the transaction runs command by
//! command here, and records in a [`Stage`] how far it got.

use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use crate::config::{Settings, TlsMode};

/// Login mechanisms we offer, in order of preference. Both send the password as is, which
/// is why `tls = "none"` is for trusted networks only.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// How far a transaction got: the step under way when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, the TLS handshake of `tls = "tls"`, the greeting and `EHLO`.
    Connect,
    Starttls,
    Login,
    /// `MAIL FROM`.
    Sender,
    /// `RCPT TO` for the recipient at this index of `to`.
    Recipient(usize),
    /// The `DATA` command, before any of the message was sent.
    Data,
    /// Sending the message and waiting for the server's verdict on it.
    Message,
}

/// A recipient the server refused for good, while others may have been accepted.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub index: usize,
    pub error: SmtpError,
}

/// A transaction whose message the server accepted.
pub(crate) struct Sent {
    pub connection: AsyncSmtpConnection,
    /// Recipients refused with a `5xx`: the message went to the others.
    pub refused: Vec<Refusal>,
}

/// Why a transaction stopped before the server accepted the message.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The server answered no, or the connection failed, at this stage.
    Smtp(Stage, SmtpError),
    NoStarttls,
    NoLoginMechanism,
    /// An address is not ASCII and the server does not offer `SMTPUTF8`.
    NoSmtpUtf8,
    /// Every recipient was refused with a `5xx`.
    EveryRecipientRefused(Vec<Refusal>),
}

/// Sends `message` to every address of `to`, keeping `stage` up to date so that a caller
/// that stops waiting knows what was already sent.
pub(crate) async fn send(
    settings: &Settings,
    hello: &ClientId,
    timeout: Duration,
    message: &[u8],
    stage: &mut Stage,
) -> Result<Sent, Failed> {
    *stage = Stage::Connect;
    let implicit_tls = match settings.tls {
        TlsMode::Tls => settings.tls_parameters.clone(),
        TlsMode::None | TlsMode::Starttls => None,
    };
    let server = (settings.host.as_str(), settings.port);
    let mut connection =
        AsyncSmtpConnection::connect_tokio1(server, Some(timeout), hello, implicit_tls, None)
            .await
            .map_err(|e| Failed::Smtp(Stage::Connect, e))?;

    if let (TlsMode::Starttls, Some(parameters)) = (settings.tls, &settings.tls_parameters) {
        *stage = Stage::Starttls;
        if !connection.can_starttls() {
            return Err(Failed::NoStarttls);
        }
        connection
            .starttls(parameters.clone(), hello)
            .await
            .map_err(|e| Failed::Smtp(Stage::Starttls, e))?;
    }

    if let Some(login) = &settings.login {
        *stage = Stage::Login;
        let mechanism = connection
            .server_info()
            .get_auth_mechanism(&MECHANISMS)
            .ok_or(Failed::NoLoginMechanism)?;
        let credentials =
            Credentials::new(login.username.clone(), login.password.expose().to_owned());
        connection
            .auth(&[mechanism], &credentials)
            .await
            .map_err(|e| Failed::Smtp(Stage::Login, e))?;
    }

    *stage = Stage::Sender;
    let parameters = mail_parameters(&connection, settings, message)?;
    let sender = Mail::new(Some(settings.from.email.clone()), parameters);
    connection
        .command(sender)
        .await
        .map_err(|e| Failed::Smtp(Stage::Sender, e))?;

    let mut refused = Vec::new();
    for (index, address) in settings.to.iter().enumerate() {
        *stage = Stage::Recipient(index);
        match connection.command(Rcpt::new(address.clone(), vec![])).await {
            Ok(_) => {}
            // A bad address must not keep the alert from the good ones. Anything else
            // (a deferral, a broken connection) fails the whole transaction, so that a
            // retry reaches everyone once.
            Err(error) if error.is_permanent() => refused.push(Refusal { index, error }),
            Err(error) => return Err(Failed::Smtp(*stage, error)),
        }
    }
    if refused.len() == settings.to.len() {
        return Err(Failed::EveryRecipientRefused(refused));
    }

    *stage = Stage::Data;
    connection
        .command(Data)
        .await
        .map_err(|e| Failed::Smtp(Stage::Data, e))?;
    *stage = Stage::Message;
    connection
        .message(message)
        .await
        .map_err(|e| Failed::Smtp(Stage::Message, e))?;
    Ok(Sent {
        connection,
        refused,
    })
}

/// `MAIL FROM` parameters: `SMTPUTF8` for addresses that need it, `BODY=8BITMIME` for a
/// message that is not 7-bit (lettre encodes its parts, so this is a safeguard).
fn mail_parameters(
    connection: &AsyncSmtpConnection,
    settings: &Settings,
    message: &[u8],
) -> Result<Vec<MailParameter>, Failed> {
    let server = connection.server_info();
    let mut parameters = Vec::new();
    let ascii = |address: &Address| AsRef::<str>::as_ref(address).is_ascii();
    if !ascii(&settings.from.email) || !settings.to.iter().all(ascii) {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err(Failed::NoSmtpUtf8);
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() && server.supports_feature(Extension::EightBitMime) {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}
