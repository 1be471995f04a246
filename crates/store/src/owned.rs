//! Owned, checked copies of what callers hand to the store, and the time arithmetic both
//! implementations share.
//!
//! The SQLite writer runs on its own thread and the PostgreSQL group commit in its own task,
//! so a body must outlive the call that submitted it: its notifications are copied (the
//! bytes themselves are shared) once their spans have been checked, so that a wrong span is
//! refused at the door instead of being stored and failing every later claim.

use std::time::Duration;

use bytes::Bytes;

use crate::{DeliveryState, Millis, NewBody, Outcome, StoreError};

/// A body to accept, owned.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub received_at: Millis,
    pub bytes: Bytes,
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Clone)]
pub(crate) struct Notification {
    pub identity: String,
    pub type_name: String,
    pub span_start: i64,
    pub span_len: i64,
    pub targets: Vec<String>,
}

impl Body {
    /// Copies `body`, refusing spans that fall outside it or cut a UTF-8 character.
    pub fn check(body: &NewBody<'_>) -> Result<Body, StoreError> {
        let mut notifications = Vec::with_capacity(body.notifications.len());
        for (index, n) in body.notifications.iter().enumerate() {
            let Some(slice) = body.body.get(n.span.clone()) else {
                return Err(StoreError::Invalid(format!(
                    "notification {index} spans bytes {:?}, outside the body of {} bytes",
                    n.span,
                    body.body.len()
                )));
            };
            if std::str::from_utf8(slice).is_err() {
                return Err(StoreError::Invalid(format!(
                    "notification {index} spans bytes {:?}, which are not UTF-8 text",
                    n.span
                )));
            }
            notifications.push(Notification {
                identity: storable(n.identity),
                type_name: storable(n.type_name),
                span_start: to_i64(n.span.start)?,
                span_len: to_i64(slice.len())?,
                targets: n.targets.iter().map(|t| (*t).to_owned()).collect(),
            });
        }
        Ok(Body {
            received_at: body.received_at,
            bytes: body.body.clone(),
            notifications,
        })
    }
}

/// `text` as every database can keep it: PostgreSQL refuses NUL characters in text, and
/// identities and error messages come from what others sent. A NUL becomes U+FFFD, the
/// same way each time, so that de-duplication still recognises a re-sent identity.
pub(crate) fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn to_i64(n: usize) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("offset {n} is too large")))
}

/// A duration in milliseconds, saturating (a lease or window that long means "forever").
pub(crate) fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

/// The element text of a claim: the body was checked as UTF-8 on the way in, so the lossy
/// conversion only matters for a database edited by hand, where a mangled character beats a
/// delivery that can never be claimed.
pub(crate) fn element_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A limit from the API as SQL wants it.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    if limit == 0 {
        i64::MAX
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }
}

/// The state, due time and error an outcome writes.
pub(crate) fn outcome_columns(
    outcome: &Outcome,
) -> (DeliveryState, Option<Millis>, Option<String>) {
    match outcome {
        Outcome::Delivered => (DeliveryState::Delivered, None, None),
        Outcome::Retry { at, error } => (DeliveryState::Retrying, Some(*at), Some(storable(error))),
        Outcome::Dead { error } => (DeliveryState::Dead, None, Some(storable(error))),
    }
}
