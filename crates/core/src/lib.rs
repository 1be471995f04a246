//! Receive Sqreen webhooks in any Rust service: verify their signature, parse their
//! notifications, decide where each one goes.
//!
//! This crate does no network I/O and knows no web framework. A handler gives it the raw
//! body and the `X-Sqreen-Integrity` header, and gets back typed notifications:
//!
//! ```
//! use sqreen_webhook_core::{parse, sign, Kind, Secret, Verifier};
//!
//! // Once, at start-up: every secret that may have signed a request.
//! let verifier = Verifier::new([Secret::new("my-webhook-secret")])?;
//!
//! // In the request handler: verify the raw bytes first, then parse them.
//! let body = br#"[{"sqreen_payload_type": "security_event", "id": "5dc3ea7706c8cd0013b6c15c",
//!     "application_name": "shop", "environment": "production", "risk": 75,
//!     "humanized_description": "SQL injection attempt from 1.2.3.4"}]"#;
//! let header = sign(&Secret::new("my-webhook-secret"), body); // what Sqreen would send
//! verifier.verify(body, Some(header.as_bytes()))?;
//!
//! for notification in parse(body)? {
//!     let view = notification.view();
//!     assert_eq!(view.kind, Kind::SecurityEvent);
//!     assert_eq!(view.application.name.as_deref(), Some("shop"));
//!     assert_eq!(view.risk, Some(75));
//!     assert_eq!(view.summary, "SQL injection attempt from 1.2.3.4");
//!     assert_eq!(notification.identity().as_str(), "security_event:5dc3ea7706c8cd0013b6c15c");
//! }
//!
//! // A tampered body is refused.
//! assert!(verifier.verify(b"[]", Some(header.as_bytes())).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts:
//! - [`signature`]: the verifier, several secrets at once, constant-time comparison.
//! - [`notification`] and [`payload`]: v1 and v2 bodies, arrays or single objects, typed
//!   payloads, a normalized [`View`], and unknown types kept rather than rejected.
//! - [`target`]: the [`Target`] trait that every destination implements, and the
//!   [`DeliveryError`] that tells a retrying caller whether to try again.
//! - [`filter`]: per-target [`Filter`]s and the [`Router`] that applies them.
//! - [`text`]: making attacker-controlled text safe for plain-text media.
//! - [`secret`], [`duration`]: configuration values shared by every target.
//! - [`samples`]: real webhook bodies for trying and testing a receiver.

pub mod duration;
pub mod filter;
pub mod hex;
pub mod notification;
pub mod payload;
pub mod samples;
pub mod secret;
pub mod signature;
pub mod target;
pub mod text;

pub use filter::{Filter, Router};
pub use notification::{
    Application, Envelope, Identity, Kind, Notification, ParseError, Version, View, parse,
};
pub use payload::Payload;
pub use secret::Secret;
pub use signature::{SIGNATURE_HEADER, SignatureError, Verifier, VerifierError, sign};
pub use target::{DeliveryError, FailureKind, Target};
