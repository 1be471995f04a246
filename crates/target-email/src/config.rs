//! The keys of an email target, and their validation into what a delivery needs.
//!
//! Everything that can be checked without talking to the server is checked here, once, so
//! that a typo in an address stops the relay at start-up rather than at the first alert.

use std::fmt;

use lettre::Address;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::TlsParameters;
use serde::{Deserialize, Deserializer};
use sqreen_webhook_core::Secret;
use sqreen_webhook_core::text::one_line;

/// The target-specific keys of a `[[targets]]` table with `type = "email"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The SMTP server's host name (or address).
    pub host: String,
    /// Defaults by `tls`: 25 for `none`, 587 for `starttls`, 465 for `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Login, with `password`; both or neither.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender mailbox: `relay@example.com` or `Sqreen relay <relay@example.com>`.
    pub from: String,
    /// One address, or a list of them.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// Put before every subject; empty for none.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text, for a relay on a trusted network or on the same host.
    None,
    /// Plain text upgraded with `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl TlsMode {
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_subject_prefix() -> String {
    "[Sqreen]".to_owned()
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(address) => vec![address],
        OneOrMany::Many(addresses) => addresses,
    })
}

/// A configuration that cannot work, naming the key at fault. Messages never repeat an
/// address or a password.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`host` is empty or has spaces in it")]
    Host,
    #[error("`port` cannot be 0")]
    Port,
    #[error("`username` and `password` go together: set both or neither")]
    HalfLogin,
    #[error("`username` is empty")]
    EmptyUsername,
    #[error("`from` is not a valid mailbox (`relay@example.com` or `Name <relay@example.com>`)")]
    From(#[source] lettre::address::AddressError),
    #[error("`to` needs at least one address")]
    NoRecipient,
    #[error("`to` entry {position} of {count} is not a valid address")]
    To {
        position: usize,
        count: usize,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("`subject_prefix` must be one line of visible text")]
    SubjectPrefix,
    #[error("cannot set up TLS for `host`")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// A login for the SMTP server. `Debug` shows the password as `[redacted]`.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub username: String,
    pub password: Secret,
}

/// A validated configuration.
#[derive(Clone)]
pub(crate) struct Settings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Built once: it loads the root certificates. `None` for `tls = "none"`.
    pub tls_parameters: Option<TlsParameters>,
    pub login: Option<Login>,
    pub from: Mailbox,
    pub to: Vec<Address>,
    pub subject_prefix: String,
}

impl Settings {
    pub fn validate(config: Config) -> Result<Settings, BuildError> {
        let host = config.host.trim().to_owned();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(BuildError::Host);
        }
        let port = config.port.unwrap_or(config.tls.default_port());
        if port == 0 {
            return Err(BuildError::Port);
        }
        let login = match (config.username, config.password) {
            (None, None) => None,
            (Some(username), Some(password)) if !username.trim().is_empty() => Some(Login {
                username: username.trim().to_owned(),
                password,
            }),
            (Some(_), Some(_)) => return Err(BuildError::EmptyUsername),
            _ => return Err(BuildError::HalfLogin),
        };
        let from: Mailbox = config.from.trim().parse().map_err(BuildError::From)?;
        let count = config.to.len();
        if count == 0 {
            return Err(BuildError::NoRecipient);
        }
        let to = config
            .to
            .iter()
            .enumerate()
            .map(|(i, address)| {
                address
                    .trim()
                    .parse::<Address>()
                    .map_err(|source| BuildError::To {
                        position: i + 1,
                        count,
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subject_prefix = config.subject_prefix.trim().to_owned();
        if one_line(&subject_prefix) != subject_prefix {
            return Err(BuildError::SubjectPrefix);
        }
        // FIXME: only public certificate authorities are trusted (webpki roots); a relay
        // whose certificate comes from a private one needs a `ca_file` key that does not
        // exist yet.
        let tls_parameters = match config.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => {
                Some(TlsParameters::new_rustls(host.clone()).map_err(BuildError::Tls)?)
            }
        };
        Ok(Settings {
            host,
            port,
            tls: config.tls,
            tls_parameters,
            login,
            from,
            to,
            subject_prefix,
        })
    }
}

impl fmt::Debug for Settings {
    /// Says how the target connects without listing addresses, which end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("login", &self.login)
            .field("from_domain", &self.from.email.domain())
            .field("recipients", &self.to.len())
            .field("subject_prefix", &self.subject_prefix)
            .finish_non_exhaustive()
    }
}
