//! Building a target from its keys: defaults, what start-up refuses and how it says so, and
//! what `Debug` shows. The TLS modes are checked here by construction: the loopback sink
//! speaks plain text only, so a TLS session is never completed in these tests.

mod common;

use std::time::Duration;

use common::{config, keys};
use serde_json::json;
use sqreen_webhook_target_email::{BuildError, Config, EmailTarget, TlsMode};

fn build(keys: serde_json::Value) -> Result<EmailTarget, BuildError> {
    EmailTarget::new("security-team", config(keys), Duration::from_secs(10))
}

fn refusal(keys: serde_json::Value) -> String {
    match build(keys) {
        Ok(_) => panic!("the keys built a target"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn tls_defaults_to_starttls_and_the_port_follows_the_tls_mode() {
    let minimal =
        json!({"host": "smtp.example.com", "from": "relay@example.com", "to": "a@example.com"});
    let config: Config = serde_json::from_value(minimal.clone()).unwrap();

    assert_eq!(config.tls, TlsMode::Starttls);
    assert_eq!(config.subject_prefix, "[Sqreen]");
    for (tls, port) in [("none", 25), ("starttls", 587), ("tls", 465)] {
        let mut keys = minimal.clone();
        keys["tls"] = tls.into();
        let target = build(keys).unwrap();
        assert!(
            format!("{target:?}").contains(&format!("port: {port},")),
            "{tls}"
        );
    }
}

#[test]
fn to_takes_one_address_or_a_list() {
    let one = config(json!({"host": "h", "from": "r@example.com", "to": "a@example.com"}));
    let many = config(
        json!({"host": "h", "from": "r@example.com", "to": ["a@example.com", "b@example.com"]}),
    );

    assert_eq!(one.to, ["a@example.com"]);
    assert_eq!(many.to.len(), 2);
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let mut keys = keys(25);
    keys["recipients"] = json!(["a@example.com"]);

    let error = serde_json::from_value::<Config>(keys)
        .unwrap_err()
        .to_string();

    assert!(error.contains("unknown field `recipients`"), "{error}");
}

#[test]
fn a_username_without_a_password_is_refused() {
    let mut keys = keys(25);
    keys["username"] = "relay".into();

    assert_eq!(
        refusal(keys),
        "`username` and `password` go together: set both or neither"
    );
}

#[test]
fn a_bad_sender_is_refused_without_repeating_it() {
    let mut keys = keys(25);
    keys["from"] = "Sqreen relay <not-an-address>".into();

    let message = refusal(keys);

    assert!(
        message.starts_with("`from` is not a valid mailbox"),
        "{message}"
    );
    assert!(!message.contains("not-an-address"));
}

#[test]
fn a_bad_recipient_is_refused_by_position() {
    let mut keys = keys(25);
    keys["to"] = json!(["alice@example.com", "bob at example.org"]);

    assert_eq!(refusal(keys), "`to` entry 2 of 2 is not a valid address");
}

#[test]
fn at_least_one_recipient_is_needed() {
    let mut keys = keys(25);
    keys["to"] = json!([]);

    assert_eq!(refusal(keys), "`to` needs at least one address");
}

#[test]
fn a_subject_prefix_on_two_lines_is_refused() {
    let mut keys = keys(25);
    keys["subject_prefix"] = "[Sqreen]\r\nBcc: someone@example.com".into();

    assert_eq!(
        refusal(keys),
        "`subject_prefix` must be one line of visible text"
    );
}

#[test]
fn a_host_with_spaces_is_refused() {
    let mut keys = keys(25);
    keys["host"] = "smtp example com".into();

    assert_eq!(refusal(keys), "`host` is empty or has spaces in it");
}

#[test]
fn debug_output_never_shows_the_password() {
    let mut keys = keys(587);
    keys["tls"] = "starttls".into();
    keys["username"] = "relay".into();
    keys["password"] = "hunter2-secret".into();

    let config = config(keys);
    let target =
        EmailTarget::new("security-team", config.clone(), Duration::from_secs(10)).unwrap();

    let shown = format!("{config:?} {target:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!format!("{target:?}").contains("alice@"), "{target:?}");
}
