//! What the tests of this crate share: a target pointed at a loopback SMTP sink, and the
//! core's sample notifications.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{DeliveryError, Notification, Target, parse};
use sqreen_webhook_target_email::{Config, EmailTarget};
use sqreen_webhook_testkit::smtp::SmtpSink;

/// Long enough for a loopback exchange on a busy machine, short enough for timeout tests.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// How long a test waits for the sink to report a message.
pub const WAIT: Duration = Duration::from_secs(5);

/// The keys of a plain-text target for `port` on loopback, to be changed by each test.
pub fn keys(port: u16) -> Value {
    json!({
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": "Sqreen relay <relay@example.com>",
        "to": ["alice@example.com", "bob@example.org"],
    })
}

pub fn config(keys: Value) -> Config {
    serde_json::from_value(keys).expect("keys make a config")
}

pub fn target(keys: Value) -> EmailTarget {
    EmailTarget::new("security-team", config(keys), TIMEOUT).expect("config builds a target")
}

pub fn target_for(sink: &SmtpSink) -> EmailTarget {
    target(keys(sink.port()))
}

pub fn notification(name: &str) -> Notification {
    let body = sample(name)
        .unwrap_or_else(|| panic!("no sample {name}"))
        .body;
    parse(body.as_bytes()).expect("samples parse").remove(0)
}

/// Delivers the `v1-security-event` sample and returns the error it must end in.
pub async fn failure(target: &EmailTarget) -> DeliveryError {
    match target.deliver(&notification("v1-security-event")).await {
        Ok(()) => panic!("the delivery succeeded"),
        Err(error) => error,
    }
}
