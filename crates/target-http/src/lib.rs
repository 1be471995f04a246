//! HTTP forwarding target for the Sqreen webhook relay: each notification becomes one signed
//! JSON request to a URL of the user's choosing (a SIEM, a ticketing system, an in-house
//! service).
//!
//! The receiver can trust what it gets without trusting the network: the body is signed
//! the way Sqreen signs its own webhooks (`X-Sqreen-Integrity`, HMAC-SHA256 keyed with the
//! target's secret), so [`sqreen_webhook_core::Verifier`] checks it; and the
//! `Idempotency-Key` header, the notification's identity, is the same on every attempt, so a
//! receiver that saw a delivery whose answer was lost can recognise the retry.
//!
//! - [`config`]: the keys and their validation.
//! - [`render`]: the JSON document sent.
//! - `outcome`: what each answer means for the delivery engine's retries.

pub mod config;
mod outcome;
pub mod render;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, Url, redirect};
use sqreen_webhook_core::{DeliveryError, Notification, SIGNATURE_HEADER, Secret, Target, sign};

pub use config::{BuildError, Config, Method};

/// The header holding the notification's identity, stable across attempts.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Sent with every request so that a receiver's logs say where requests come from.
pub const USER_AGENT: &str = concat!("sqreen-webhook/", env!("CARGO_PKG_VERSION"));

/// Sends notifications to one URL.
pub struct HttpTarget {
    name: String,
    client: Client,
    url: Url,
    host: String,
    method: reqwest::Method,
    secret: Option<Secret>,
    headers: HeaderMap,
}

impl HttpTarget {
    /// Checks `config` and builds the client. `timeout` bounds each attempt, from connecting
    /// to the end of the answer; connecting (name resolution, TCP and TLS) gets half of it,
    /// so that a receiver that cannot be reached is told apart from one that received the
    /// request and did not answer.
    pub fn new(
        name: impl Into<String>,
        config: Config,
        timeout: Duration,
    ) -> Result<HttpTarget, BuildError> {
        let name = name.into();
        if timeout.is_zero() {
            return Err(BuildError::ZeroTimeout);
        }
        let checked = config.check()?;
        // reqwest is built without a default crypto provider; installing one twice is
        // harmless, and whichever target comes first does it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .redirect(redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout / 2)
            .build()
            .map_err(|e| BuildError::Client(e.without_url()))?;
        if checked.secret.is_none() {
            log::warn!(
                "target {name}: no secret, requests to {} are not signed and the receiver cannot authenticate them",
                checked.host
            );
        }
        Ok(HttpTarget {
            name,
            client,
            url: checked.url,
            host: checked.host,
            method: checked.method,
            secret: checked.secret,
            headers: checked.headers,
        })
    }
}

#[async_trait]
impl Target for HttpTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let identity = notification.identity();
        let body = render::body(notification).map_err(|e| {
            DeliveryError::permanent("cannot write the notification as JSON").with_source(e)
        })?;
        let idempotency_key = HeaderValue::from_str(identity.as_str()).map_err(|e| {
            DeliveryError::permanent("the notification identity is not a valid header value")
                .with_source(e)
        })?;
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| outcome::from_error(&self.host, e))?;
        let status = response.status();
        outcome::from_response(&self.host, &self.url, response).await?;
        log::debug!(
            "target {}: delivered {identity} to {} ({status})",
            self.name,
            self.host
        );
        Ok(())
    }
}

impl fmt::Debug for HttpTarget {
    /// Names the host and the extra headers, never the URL (it may hold a token), the
    /// secret or header values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.keys().map(|name| name.as_str()).collect();
        f.debug_struct("HttpTarget")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("host", &self.host)
            .field("signed", &self.secret.is_some())
            .field("headers", &header_names)
            .finish_non_exhaustive()
    }
}
