//! Email target for the Sqreen webhook relay: one message per notification over SMTP, with
//! a subject that says what happened and where, a plain-text part and an HTML part.
//!
//! ```no_run
//! use std::time::Duration;
//! use sqreen_webhook_target_email::{Config, EmailTarget};
//!
//! let config: Config = serde_json::from_value(serde_json::json!({
//!     "host": "smtp.example.com",
//!     "username": "relay",
//!     "password": "app-password",
//!     "from": "Sqreen relay <relay@example.com>",
//!     "to": ["security@example.com"],
//! }))?;
//! let target = EmailTarget::new("security-team", config, Duration::from_secs(10))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts:
//! - [`config`]: the keys, their defaults, and their validation at start-up.
//! - [`render`]: the subject and both parts, escaped for their medium.
//! - `smtp` and `failure`: the SMTP transaction step by step, and what each failure means
//!   for a retry.
//!
//! TLS (`tls = "starttls"` or `"tls"`) uses rustls with the Mozilla root certificates.

pub mod config;
mod failure;
pub mod render;
mod smtp;
mod target;

pub use config::{BuildError, Config, TlsMode};
pub use target::EmailTarget;
