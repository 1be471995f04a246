//! What an answer, or the lack of one, means for a delivery.
//!
//! The receiver is any HTTP service, so its answer is read the way every HTTP-based target
//! of the relay reads one ([`classify_status`]): `2xx` delivered; `408`, `429` and `5xx`
//! worth another attempt; any other `4xx` refused until a person changes something. A
//! redirect is refused too: following it would send the signed body, and any extra
//! headers, to an address nobody configured.
//!
//! Client errors carry the request URL, which may hold a token: it is removed, and messages
//! name the host alone.

use reqwest::header::{LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use sqreen_webhook_core::target::{classify_status, parse_retry_after};
use sqreen_webhook_core::text::{one_line, truncate};
use sqreen_webhook_core::{DeliveryError, FailureKind};

/// How much of an error answer's body is read: enough for the excerpt, however much
/// whitespace or markup comes first, and no more whatever the receiver sends.
const MAX_BODY_READ: usize = 8 * 1024;

/// How many characters of an error answer's body go into the message.
const EXCERPT_CHARS: usize = 200;

/// The failure a client error means. Connecting covers name resolution and the TLS
/// handshake: until it succeeds nothing was sent. After it, the receiver may have taken the
/// notification even though no answer came back.
pub(crate) fn from_error(host: &str, error: reqwest::Error) -> DeliveryError {
    let error = error.without_url();
    if error.is_connect() {
        DeliveryError::transient(format!("cannot connect to {host}")).with_source(error)
    } else if error.is_timeout() {
        DeliveryError::unknown(format!(
            "no answer from {host} within the timeout; the notification may have arrived"
        ))
        .with_source(error)
    } else if error.is_builder() {
        DeliveryError::permanent(format!("cannot build the request to {host}")).with_source(error)
    } else {
        DeliveryError::unknown(format!(
            "the exchange with {host} broke off after the notification was sent"
        ))
        .with_source(error)
    }
}

/// `Ok` for a `2xx` answer, else the failure it means.
pub(crate) async fn from_response(
    host: &str,
    url: &Url,
    response: Response,
) -> Result<(), DeliveryError> {
    let status = response.status();
    let Some(kind) = classify_status(status.as_u16()) else {
        return Ok(());
    };
    if status.is_redirection() {
        let target = response
            .headers()
            .get(LOCATION)
            .and_then(|location| location.to_str().ok())
            .and_then(|location| url.join(location).ok())
            .and_then(|location| location.host_str().map(str::to_owned))
            .map_or_else(String::new, |to| format!(" to {to}"));
        return Err(DeliveryError::permanent(format!(
            "the receiver at {host} answered {}, a redirect{target}, which is not followed \
             because it would carry the signed notification elsewhere: set url to the final \
             address",
            status_text(status)
        )));
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let excerpt = excerpt(response).await;
    let status = status_text(status);
    Err(match kind {
        FailureKind::Transient => {
            let error = DeliveryError::transient(format!(
                "the receiver at {host} cannot take the notification now: {status}{excerpt}"
            ));
            match retry_after {
                Some(delay) => error.with_retry_after(delay),
                None => error,
            }
        }
        FailureKind::Permanent => DeliveryError::permanent(format!(
            "the receiver at {host} refused the notification: {status}{excerpt}"
        )),
        FailureKind::Unknown => {
            DeliveryError::unknown(format!("the receiver at {host} answered {status}{excerpt}"))
        }
    })
}

/// `400 Bad Request`, or the bare code when it has no standard reason.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `": <the start of the body>"`, on one line, or nothing when the body is empty or cannot
/// be read: the status alone still says what happened.
async fn excerpt(mut response: Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_BODY_READ);
    let text = one_line(&String::from_utf8_lossy(&bytes));
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", truncate(&text, EXCERPT_CHARS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_with_their_reason_when_they_have_one() {
        assert_eq!(status_text(StatusCode::BAD_REQUEST), "400 Bad Request");
        assert_eq!(status_text(StatusCode::from_u16(499).unwrap()), "499");
    }
}
