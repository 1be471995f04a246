//! The settings of a Twilio target, and their validation.
//!
//! Everything that can be checked without calling Twilio is checked when the target is
//! built, so that a typo in a phone number stops the relay at start-up rather than losing
//! the first alert. Error messages name the key at fault but never repeat its value: a
//! value in the wrong key may be the auth token, and phone numbers are personal data.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use sqreen_webhook_core::Secret;

/// Where the Twilio REST API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// One segment more than most alerts need: room for the dashboard link.
pub const DEFAULT_MAX_SEGMENTS: usize = 2;

/// Twilio advises against messages of more than ten segments, and refuses bodies longer
/// than 1600 characters, which ten GSM-7 segments stay under.
pub const MAX_SEGMENTS_LIMIT: usize = 10;

/// Twilio target settings: the `[[targets]]` keys other than the common ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The account SID, `AC` followed by 32 hexadecimal digits.
    pub account_sid: String,
    /// The account's auth token, the password of the API's basic authentication.
    pub auth_token: Secret,
    /// The sending number, in E.164 form (`+15005550006`). Exactly one of `from` and
    /// `messaging_service_sid` is set.
    #[serde(default)]
    pub from: Option<PhoneNumber>,
    /// A messaging service (`MG` followed by 32 hexadecimal digits) that picks the sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The numbers to text: one number, or a list of them.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<PhoneNumber>,
    /// The API's address; tests point it at a fake.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The most segments an SMS may take; the text is cut to fit.
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_max_segments() -> usize {
    DEFAULT_MAX_SEGMENTS
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PhoneNumber>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(PhoneNumber),
        Many(Vec<PhoneNumber>),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::One(number) => vec![number],
        Raw::Many(numbers) => numbers,
    })
}

/// A phone number as configured. `Debug` does not show it: numbers are personal data and
/// configuration gets printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn new(number: impl Into<String>) -> PhoneNumber {
        PhoneNumber(number.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the number is in E.164 form: `+`, a country code that does not start
    /// with 0, and at most 15 digits in all.
    pub fn is_e164(&self) -> bool {
        let Some(digits) = self.0.strip_prefix('+') else {
            return false;
        };
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[phone number]")
    }
}

/// A configuration that cannot make a working target.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "`account_sid` must be \"AC\" followed by 32 hexadecimal digits, as shown in the Twilio console"
    )]
    AccountSid,
    #[error("`auth_token` is empty")]
    AuthToken,
    #[error("set `from` or `messaging_service_sid`: twilio needs a sender")]
    NoSender,
    #[error("set only one of `from` and `messaging_service_sid`")]
    TwoSenders,
    #[error(
        "`from` must be a phone number in E.164 form, such as +15005550006 (a plus sign and digits only); use `messaging_service_sid` for short codes and alphanumeric senders"
    )]
    From,
    #[error("`messaging_service_sid` must be \"MG\" followed by 32 hexadecimal digits")]
    MessagingServiceSid,
    #[error("`to` holds no phone number")]
    NoRecipient,
    #[error(
        "`to[{0}]` must be a phone number in E.164 form, such as +15005550001 (a plus sign and digits only)"
    )]
    To(usize),
    #[error("`to[{index}]` repeats `to[{first}]`: each number would get every alert twice")]
    RepeatedRecipient { index: usize, first: usize },
    #[error("`base_url` {0}")]
    BaseUrl(&'static str),
    #[error("`max_segments` must be between 1 and {MAX_SEGMENTS_LIMIT}, not {0}")]
    MaxSegments(usize),
    #[error("the timeout must be longer than zero")]
    Timeout,
    #[error("cannot build the http client")]
    Client(#[source] reqwest::Error),
}

/// Who sends the SMS.
#[derive(Debug, Clone)]
pub(crate) enum Sender {
    Number(PhoneNumber),
    Service(String),
}

/// A configuration that passed validation.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) account_sid: String,
    pub(crate) auth_token: Secret,
    pub(crate) sender: Sender,
    pub(crate) to: Vec<PhoneNumber>,
    pub(crate) base_url: Url,
    pub(crate) messages_url: Url,
    pub(crate) max_segments: usize,
}

impl Config {
    pub(crate) fn validate(self, timeout: Duration) -> Result<Settings, BuildError> {
        if !is_sid(&self.account_sid, "AC") {
            return Err(BuildError::AccountSid);
        }
        if self.auth_token.expose().trim().is_empty() {
            return Err(BuildError::AuthToken);
        }
        let sender = match (self.from, self.messaging_service_sid) {
            (None, None) => return Err(BuildError::NoSender),
            (Some(_), Some(_)) => return Err(BuildError::TwoSenders),
            (Some(number), None) if number.is_e164() => Sender::Number(number),
            (Some(_), None) => return Err(BuildError::From),
            (None, Some(sid)) if is_sid(&sid, "MG") => Sender::Service(sid),
            (None, Some(_)) => return Err(BuildError::MessagingServiceSid),
        };
        if self.to.is_empty() {
            return Err(BuildError::NoRecipient);
        }
        for (index, number) in self.to.iter().enumerate() {
            if !number.is_e164() {
                return Err(BuildError::To(index));
            }
            if let Some(first) = self.to[..index].iter().position(|n| n == number) {
                return Err(BuildError::RepeatedRecipient { index, first });
            }
        }
        if !(1..=MAX_SEGMENTS_LIMIT).contains(&self.max_segments) {
            return Err(BuildError::MaxSegments(self.max_segments));
        }
        if timeout.is_zero() {
            return Err(BuildError::Timeout);
        }
        let base_url = parse_base_url(&self.base_url)?;
        let messages_url = Url::parse(&format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base_url.as_str().trim_end_matches('/'),
            self.account_sid
        ))
        .map_err(|_| BuildError::BaseUrl("does not make a valid messages URL"))?;
        Ok(Settings {
            account_sid: self.account_sid,
            auth_token: self.auth_token,
            sender,
            to: self.to,
            base_url,
            messages_url,
            max_segments: self.max_segments,
        })
    }
}

/// Whether a Twilio SID has this two-letter prefix followed by 32 hexadecimal digits.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_base_url(text: &str) -> Result<Url, BuildError> {
    let url = Url::parse(text.trim()).map_err(|_| BuildError::BaseUrl("is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(BuildError::BaseUrl("must start with https://"));
    }
    if url.host_str().is_none() {
        return Err(BuildError::BaseUrl("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BuildError::BaseUrl(
            "must not hold credentials: set `account_sid` and `auth_token`",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BuildError::BaseUrl("must not have a query or a fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
    const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn config(extra: &str) -> Result<Config, String> {
        let base =
            format!("account_sid = \"{ACCOUNT_SID}\"\nauth_token = \"token-value\"\n{extra}");
        toml::from_str(&base).map_err(|e| e.to_string())
    }

    fn build(extra: &str) -> Result<Settings, BuildError> {
        config(extra).expect("the keys parse").validate(TIMEOUT)
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let settings = build("from = \"+15005550006\"\nto = \"+15005550001\"").expect("valid");

        assert_eq!(settings.max_segments, 2);
        assert_eq!(settings.to.len(), 1);
        assert_eq!(
            settings.messages_url.as_str(),
            format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
        );
    }

    #[test]
    fn to_takes_one_number_or_a_list() {
        let one = build("from = \"+15005550006\"\nto = \"+15005550001\"").expect("valid");
        let list = build("from = \"+15005550006\"\nto = [\"+15005550001\", \"+33612345678\"]")
            .expect("valid");

        assert_eq!(one.to, vec![PhoneNumber::new("+15005550001")]);
        assert_eq!(list.to.len(), 2);
    }

    #[test]
    fn a_messaging_service_can_replace_the_sending_number() {
        let settings = build(&format!(
            "messaging_service_sid = \"{SERVICE_SID}\"\nto = \"+15005550001\""
        ))
        .expect("valid");

        assert!(matches!(settings.sender, Sender::Service(sid) if sid == SERVICE_SID));
    }

    #[test]
    fn a_base_url_with_a_path_keeps_it() {
        let settings = build(
            "from = \"+15005550006\"\nto = \"+15005550001\"\nbase_url = \"http://127.0.0.1:8080/twilio/\"",
        )
        .expect("valid");

        assert_eq!(
            settings.messages_url.as_str(),
            format!("http://127.0.0.1:8080/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
        );
    }

    #[test]
    fn refuses_an_account_sid_that_is_not_one() {
        for sid in [
            "",
            "AC123",
            "SK0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdeg",
        ] {
            let config = toml::from_str::<Config>(&format!(
                "account_sid = \"{sid}\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\nto = \"+15005550001\""
            ))
            .expect("the keys parse");

            let error = config.validate(TIMEOUT).expect_err(sid);

            assert!(matches!(error, BuildError::AccountSid), "{sid}: {error}");
        }
    }

    #[test]
    fn refuses_an_empty_auth_token() {
        let config = toml::from_str::<Config>(&format!(
            "account_sid = \"{ACCOUNT_SID}\"\nauth_token = \" \"\nfrom = \"+15005550006\"\nto = \"+15005550001\""
        ))
        .expect("the keys parse");

        assert!(matches!(
            config.validate(TIMEOUT),
            Err(BuildError::AuthToken)
        ));
    }

    #[test]
    fn needs_exactly_one_sender() {
        let none = build("to = \"+15005550001\"");
        let both = build(&format!(
            "from = \"+15005550006\"\nmessaging_service_sid = \"{SERVICE_SID}\"\nto = \"+15005550001\""
        ));

        assert!(matches!(none, Err(BuildError::NoSender)));
        assert!(matches!(both, Err(BuildError::TwoSenders)));
    }

    #[test]
    fn refuses_numbers_that_are_not_e164_and_names_the_key() {
        for number in [
            "15005550006",
            "+1 500 555 0006",
            "+1-500-555-0006",
            "+0123456",
            "+1",
            "+1234567890123456",
            "MyCompany",
        ] {
            let from = build(&format!("from = \"{number}\"\nto = \"+15005550001\""));
            let to = build(&format!(
                "from = \"+15005550006\"\nto = [\"+15005550001\", \"{number}\"]"
            ));

            assert!(matches!(from, Err(BuildError::From)), "{number}");
            let error = to.expect_err(number);
            assert!(matches!(error, BuildError::To(1)), "{number}");
            assert!(error.to_string().starts_with("`to[1]` must be"), "{error}");
        }
    }

    #[test]
    fn refuses_a_messaging_service_sid_that_is_not_one() {
        let error = build(
            "messaging_service_sid = \"AC0123456789abcdef0123456789abcdef\"\nto = \"+15005550001\"",
        );

        assert!(matches!(error, Err(BuildError::MessagingServiceSid)));
    }

    #[test]
    fn refuses_an_empty_list_of_recipients_and_a_repeated_one() {
        let empty = build("from = \"+15005550006\"\nto = []");
        let repeated = build(
            "from = \"+15005550006\"\nto = [\"+15005550001\", \"+15005550002\", \"+15005550001\"]",
        );

        assert!(matches!(empty, Err(BuildError::NoRecipient)));
        assert!(matches!(
            repeated,
            Err(BuildError::RepeatedRecipient { index: 2, first: 0 })
        ));
    }

    #[test]
    fn refuses_a_config_without_recipients_or_with_unknown_keys() {
        let missing = config("from = \"+15005550006\"").expect_err("to is required");
        let unknown = config("from = \"+15005550006\"\nto = \"+15005550001\"\nmax_segment = 3")
            .expect_err("a misspelt key");

        assert!(missing.contains("missing field `to`"), "{missing}");
        assert!(unknown.contains("unknown field `max_segment`"), "{unknown}");
    }

    #[test]
    fn refuses_max_segments_out_of_range() {
        for max in [0, 11] {
            let error = build(&format!(
                "from = \"+15005550006\"\nto = \"+15005550001\"\nmax_segments = {max}"
            ));

            assert!(
                matches!(error, Err(BuildError::MaxSegments(m)) if m == max),
                "{max}"
            );
        }
    }

    #[test]
    fn refuses_base_urls_that_cannot_be_the_api() {
        for (url, reason) in [
            ("api.twilio.com", "is not a URL"),
            ("ftp://api.twilio.com", "must start with https://"),
            (
                "https://AC1:token@api.twilio.com",
                "must not hold credentials",
            ),
            ("https://api.twilio.com/?x=1", "must not have a query"),
        ] {
            let error = build(&format!(
                "from = \"+15005550006\"\nto = \"+15005550001\"\nbase_url = \"{url}\""
            ))
            .expect_err(url);

            assert!(
                error
                    .to_string()
                    .starts_with(&format!("`base_url` {reason}")),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn refuses_a_zero_timeout() {
        let config =
            config("from = \"+15005550006\"\nto = \"+15005550001\"").expect("the keys parse");

        assert!(matches!(
            config.validate(Duration::ZERO),
            Err(BuildError::Timeout)
        ));
    }

    #[test]
    fn debug_output_shows_neither_the_token_nor_the_numbers() {
        let config = config("from = \"+15005550006\"\nto = [\"+15005550001\", \"+33612345678\"]")
            .expect("the keys parse");

        let printed = format!(
            "{config:?} {:?}",
            config.clone().validate(TIMEOUT).expect("valid")
        );

        assert!(!printed.contains("token-value"), "{printed}");
        for digits in ["5005550006", "5005550001", "612345678"] {
            assert!(!printed.contains(digits), "{printed}");
        }
        assert!(printed.contains("[phone number]"), "{printed}");
    }
}
