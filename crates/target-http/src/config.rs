//! The `[[targets]]` keys of an HTTP target, and their validation.
//!
//! Everything that can be checked without sending a request is checked here, once, when the
//! target is built: a URL the relay cannot use, a header a server would reject or that would
//! smuggle a second header in, an empty secret left by an undefined environment variable.
//! A mistake then stops start-up instead of losing the first alert.
//!
//! The URL and the header values are treated as credentials: receivers often put a token
//! in the URL's path or query, and headers such as `Authorization` carry one. Neither is
//! ever printed, in `Debug` output, logs or errors; only the host is named.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sqreen_webhook_core::{SIGNATURE_HEADER, Secret};

use crate::IDEMPOTENCY_HEADER;

/// Headers the relay sets itself, or that belong to the HTTP layer: a configured value
/// would be sent twice, contradict the body or break the framing of the request.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "user-agent",
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
];

/// The keys of an HTTP target, other than those every target has (`name`, `type`, `filter`,
/// `retry`, `timeout`, `concurrency`), which the server reads itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where notifications are sent: an `http://` or `https://` URL. Credentials in it
    /// (`https://user:password@host/…`) are sent as basic authentication.
    pub url: Secret,
    /// Signs each body with HMAC-SHA256 in the `X-Sqreen-Integrity` header. Without it,
    /// requests are not signed and the receiver cannot tell them from forgeries.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra headers sent with every request, such as `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `POST` (the default) or `PUT`.
    #[serde(default)]
    pub method: Method,
}

impl Config {
    /// A configuration that posts unsigned notifications to `url`, without extra headers.
    pub fn new(url: impl Into<Secret>) -> Config {
        Config {
            url: url.into(),
            secret: None,
            headers: BTreeMap::new(),
            method: Method::default(),
        }
    }
}

/// The HTTP method requests are sent with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Method {
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "PUT", alias = "put")]
    Put,
}

impl Method {
    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        }
    }
}

/// Why an HTTP target cannot be built. Messages name the key at fault and never quote a
/// header value, the secret or the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("url is not a valid URL: {0}")]
    InvalidUrl(#[source] Box<dyn StdError + Send + Sync>),
    #[error("url must start with http:// or https://, not {0}://")]
    UnsupportedScheme(String),
    #[error("url has no host")]
    MissingHost,
    #[error(
        "secret is empty: give it a value (is its environment variable defined?) or remove the key to send unsigned requests"
    )]
    EmptySecret,
    #[error("headers: {0:?} is not a valid header name")]
    InvalidHeaderName(String),
    #[error(
        "headers.{0}: the value is not a valid header value (it must be one line without control characters)"
    )]
    InvalidHeaderValue(String),
    #[error("headers.{0} is set by the relay and cannot be configured")]
    ReservedHeader(String),
    #[error("headers.{0} is given more than once (header names are case-insensitive)")]
    DuplicateHeader(String),
    #[error("url holds credentials and headers.Authorization is set too: keep only one of them")]
    AuthorizationTwice,
    #[error("timeout must be more than zero")]
    ZeroTimeout,
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A configuration that passed validation, in the types requests are built from.
pub(crate) struct Checked {
    pub(crate) url: Url,
    /// `host` or `host:port`, the one part of the URL that may appear in logs and errors.
    pub(crate) host: String,
    pub(crate) secret: Option<Secret>,
    pub(crate) headers: HeaderMap,
    pub(crate) method: reqwest::Method,
}

impl Config {
    pub(crate) fn check(self) -> Result<Checked, BuildError> {
        let url = Url::parse(self.url.expose().trim())
            .map_err(|e| BuildError::InvalidUrl(Box::new(e)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BuildError::UnsupportedScheme(url.scheme().to_owned()));
        }
        let host = match (url.host_str(), url.port()) {
            (None | Some(""), _) => return Err(BuildError::MissingHost),
            (Some(host), None) => host.to_owned(),
            (Some(host), Some(port)) => format!("{host}:{port}"),
        };
        if self.secret.as_ref().is_some_and(Secret::is_empty) {
            return Err(BuildError::EmptySecret);
        }
        let headers = extra_headers(&self.headers)?;
        let url_has_credentials = !url.username().is_empty() || url.password().is_some();
        if url_has_credentials && headers.contains_key(reqwest::header::AUTHORIZATION) {
            return Err(BuildError::AuthorizationTwice);
        }
        Ok(Checked {
            url,
            host,
            secret: self.secret,
            headers,
            method: self.method.to_reqwest(),
        })
    }
}

fn extra_headers(configured: &BTreeMap<String, Secret>) -> Result<HeaderMap, BuildError> {
    let mut headers = HeaderMap::with_capacity(configured.len());
    for (name, value) in configured {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError::InvalidHeaderName(name.clone()))?;
        if RESERVED_HEADERS
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(header.as_str()))
        {
            return Err(BuildError::ReservedHeader(name.clone()));
        }
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| BuildError::InvalidHeaderValue(name.clone()))?;
        // Keeps the value out of `HeaderMap`'s Debug output and out of HTTP/2 header
        // compression tables.
        value.set_sensitive(true);
        if headers.insert(header, value).is_some() {
            return Err(BuildError::DuplicateHeader(name.clone()));
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headers(headers: &[(&str, &str)]) -> Config {
        let mut config = Config::new("https://siem.example.com/hooks/sqreen");
        config.headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Secret::new(*value)))
            .collect();
        config
    }

    fn check_error(config: Config) -> BuildError {
        match config.check() {
            Ok(_) => panic!("the configuration was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn accepts_http_and_https_urls_and_names_their_host() {
        for (url, host) in [
            ("https://siem.example.com/hooks/sqreen", "siem.example.com"),
            ("http://127.0.0.1:8080/hook", "127.0.0.1:8080"),
            ("  https://[::1]:9443/  ", "[::1]:9443"),
        ] {
            let checked = Config::new(url).check().unwrap();

            assert_eq!(checked.host, host, "{url}");
        }
    }

    #[test]
    fn refuses_a_url_that_is_not_http() {
        let cases = [
            ("siem.example.com/hooks", "url is not a valid URL"),
            (
                "ftp://files.example.com/",
                "url must start with http:// or https://, not ftp://",
            ),
            ("mailto:security@example.com", "not mailto://"),
            ("http://", "url is not a valid URL"),
            ("https://example.com:99999/", "url is not a valid URL"),
        ];
        for (url, expected) in cases {
            let error = check_error(Config::new(url));

            assert!(error.to_string().contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn refuses_an_empty_secret() {
        let mut config = Config::new("https://siem.example.com/");
        config.secret = Some(Secret::new(""));

        let error = check_error(config);

        assert!(matches!(error, BuildError::EmptySecret), "{error}");
        assert!(error.to_string().starts_with("secret is empty"));
    }

    #[test]
    fn refuses_header_names_that_are_not_tokens() {
        for name in ["X Team", "X-Team:", "", "Été"] {
            let error = check_error(with_headers(&[(name, "security")]));

            assert!(
                matches!(error, BuildError::InvalidHeaderName(_)),
                "{name:?}: {error}"
            );
        }
    }

    #[test]
    fn refuses_a_header_value_that_would_inject_another_header_without_quoting_it() {
        let value = "Bearer s3cr3t\r\nX-Injected: yes";

        let error = check_error(with_headers(&[("Authorization", value)]));

        assert!(
            matches!(error, BuildError::InvalidHeaderValue(_)),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("headers.Authorization:"),
            "{error}"
        );
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn refuses_the_headers_the_relay_sets_itself_whatever_their_case() {
        for name in [
            "Content-Type",
            "user-agent",
            "X-SQREEN-INTEGRITY",
            "Idempotency-Key",
            "Content-Length",
            "Host",
        ] {
            let error = check_error(with_headers(&[(name, "x")]));

            assert_eq!(
                error.to_string(),
                format!("headers.{name} is set by the relay and cannot be configured")
            );
        }
    }

    #[test]
    fn refuses_a_header_given_twice_in_different_cases() {
        let error = check_error(with_headers(&[("X-Team", "a"), ("x-team", "b")]));

        assert!(matches!(error, BuildError::DuplicateHeader(_)), "{error}");
    }

    #[test]
    fn refuses_credentials_in_the_url_next_to_an_authorization_header() {
        let mut config = with_headers(&[("Authorization", "Bearer token")]);
        config.url = Secret::new("https://user:password@siem.example.com/");

        let error = check_error(config);

        assert!(matches!(error, BuildError::AuthorizationTwice), "{error}");
        assert!(!error.to_string().contains("password"));
    }

    #[test]
    fn marks_extra_header_values_sensitive() {
        let checked = with_headers(&[("Authorization", "Bearer s3cr3t"), ("X-Team", "security")])
            .check()
            .unwrap();

        assert!(checked.headers.values().all(HeaderValue::is_sensitive));
        assert!(!format!("{:?}", checked.headers).contains("s3cr3t"));
    }

    #[test]
    fn reads_every_key_and_defaults_to_post() {
        let full = serde_json::json!({
            "url": "https://siem.example.com/hooks/sqreen",
            "secret": "signing-secret",
            "headers": {"X-Team": "security"},
            "method": "PUT",
        });

        let config: Config = serde_json::from_value(full).unwrap();
        let minimal: Config =
            serde_json::from_value(serde_json::json!({"url": "https://siem.example.com/"}))
                .unwrap();

        assert_eq!(config.method, Method::Put);
        assert_eq!(
            config.secret.as_ref().map(Secret::expose),
            Some("signing-secret")
        );
        assert_eq!(config.headers["X-Team"].expose(), "security");
        assert_eq!(minimal.method, Method::Post);
        assert!(minimal.secret.is_none() && minimal.headers.is_empty());
    }

    #[test]
    fn accepts_the_method_in_either_case_and_refuses_others() {
        let read = |method: &str| {
            serde_json::from_value::<Config>(
                serde_json::json!({"url": "https://siem.example.com/", "method": method}),
            )
            .map(|config| config.method)
        };

        assert_eq!(read("post").unwrap(), Method::Post);
        assert_eq!(read("put").unwrap(), Method::Put);
        assert!(read("GET").is_err());
    }

    #[test]
    fn refuses_unknown_keys() {
        let typo = serde_json::json!({"url": "https://siem.example.com/", "header": {}});

        let error = serde_json::from_value::<Config>(typo).unwrap_err();

        assert!(
            error.to_string().contains("unknown field `header`"),
            "{error}"
        );
    }

    #[test]
    fn debug_shows_neither_the_url_the_secret_nor_header_values() {
        let mut config = with_headers(&[("Authorization", "Bearer s3cr3t-header")]);
        config.url = Secret::new("https://siem.example.com/hooks?token=s3cr3t-url");
        config.secret = Some(Secret::new("s3cr3t-signing"));

        let debug = format!("{config:?}");

        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("Authorization"), "{debug}");
    }
}
