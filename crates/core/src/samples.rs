//! Real webhook bodies, captured from Sqreen, built into the crate.
//!
//! They let a receiver be tried without Sqreen, which no longer sends webhooks (the
//! server's `send-sample` command posts them), and let tests of code that embeds this crate
//! use the real thing. `v2-incident` and `hostile` are not captures: the first follows the
//! documented incident format, the second carries hostile text in every field that
//! attackers control (Slack mentions and links, HTML, terminal escapes, bidirectional
//! overrides), to check that a renderer escapes them.

/// A named sample body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub name: &'static str,
    pub body: &'static str,
}

macro_rules! samples {
    ($($name:literal),* $(,)?) => {
        /// Every built-in sample.
        pub const SAMPLES: &[Sample] = &[
            $(Sample { name: $name, body: include_str!(concat!("../fixtures/", $name, ".json")) },)*
        ];
    };
}

samples![
    "v1-security-event",
    "v1-security-event-compact",
    "v1-security-event-geo",
    "v1-security-event-object",
    "v1-authentication-event",
    "v1-pulse",
    "v1-security-response",
    "v1-test-object",
    "v2-security-event",
    "v2-authentication-events",
    "v2-security-response-object",
    "v2-test",
    "v2-incident",
    "hostile",
];

/// The sample with this name (the file name without `.json`).
pub fn sample(name: &str) -> Option<&'static Sample> {
    SAMPLES.iter().find(|s| s.name == name)
}
