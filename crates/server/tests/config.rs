//! Configuration: layering, `${VAR}` references, and errors that name what is wrong.

mod support;

use std::time::Duration;

use server::config::{self, ConfigError, from_toml};
use support::FakeEnv;

fn env() -> FakeEnv {
    FakeEnv::default().with("SQREEN_WEBHOOK_SECRET", "from-env")
}

fn problems(result: Result<server::Settings, ConfigError>) -> Vec<String> {
    result
        .expect_err("the configuration should be refused")
        .problems
}

#[test]
fn defaults_need_only_a_secret_and_log_every_notification() {
    let settings = from_toml("", &env()).unwrap();
    assert_eq!(settings.server.listen, "127.0.0.1:8080");
    assert_eq!(settings.server.body_limit, 1024 * 1024);
    assert_eq!(settings.webhook.secrets.len(), 1);
    assert_eq!(settings.webhook.secrets[0].expose(), "from-env");
    assert_eq!(
        settings.store.url.expose(),
        "sqlite://data/sqreen-webhook.db"
    );
    assert_eq!(settings.targets.len(), 1);
    assert_eq!(settings.targets[0].name, "log");
    assert_eq!(settings.targets[0].kind.type_name(), "log");
}

#[test]
fn a_missing_secret_stops_start_up_with_a_message_saying_where_to_set_it() {
    let found = problems(from_toml("", &FakeEnv::default()));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("SQREEN_WEBHOOK_SECRET"), "{found:?}");
}

#[test]
fn variables_are_expanded_in_any_string_and_unset_ones_are_named_with_their_key() {
    let toml = r#"
        [webhook]
        secrets = ["${APP_ONE}", "prefix-${APP_TWO}-$$literal"]
        [store]
        url = "${NOT_SET}"
    "#;
    let env = FakeEnv::default()
        .with("APP_ONE", "one")
        .with("APP_TWO", "two");
    let found = problems(from_toml(toml, &env));
    assert_eq!(
        found,
        ["store.url: environment variable NOT_SET is not set"]
    );

    let settings = from_toml(toml, &env.with("NOT_SET", "sqlite://x.db")).unwrap();
    let secrets: Vec<&str> = settings
        .webhook
        .secrets
        .iter()
        .map(|s| s.expose())
        .collect();
    assert_eq!(secrets, ["one", "prefix-two-$literal"]);
}

#[test]
fn unknown_keys_are_refused_with_their_full_name() {
    let toml = r#"
        [server]
        listn = "0.0.0.0:80"
        [[targets]]
        name = "audit"
        type = "log"
        colour = "red"
        [targets.filter]
        min_rsk = 3
    "#;
    let found = problems(from_toml(toml, &env()));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("server.listn: unknown field `listn`"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("targets[0] (\"audit\").filter.min_rsk: unknown field"),
        "{found:?}"
    );

    let found = problems(from_toml(
        "[[targets]]\nname = \"audit\"\ntype = \"log\"\ncolour = \"red\"\n",
        &env(),
    ));
    assert!(
        found[0].starts_with("targets[0] (\"audit\").colour: unknown field `colour`"),
        "{found:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let toml = r#"
        [server]
        body_limit = 0
        [[targets]]
        name = "a"
        type = "pagerduty"
        [[targets]]
        type = "log"
        [[targets]]
        name = "b c"
        type = "log"
        timeout = "soon"
    "#;
    let found = problems(from_toml(toml, &env()));
    let text = found.join("\n");
    assert!(
        text.contains("server.body_limit: must be more than 0"),
        "{text}"
    );
    assert!(
        text.contains("targets[0] (\"a\").type: unknown type \"pagerduty\""),
        "{text}"
    );
    assert!(text.contains("targets[1]: missing key `name`"), "{text}");
    assert!(text.contains("targets[2] (\"b c\").name"), "{text}");
    assert!(
        text.contains("targets[2] (\"b c\").timeout: invalid duration \"soon\""),
        "{text}"
    );
}

#[test]
fn target_names_must_be_unique() {
    let toml =
        "[[targets]]\nname = \"a\"\ntype = \"log\"\n[[targets]]\nname = \"a\"\ntype = \"log\"\n";
    assert_eq!(
        problems(from_toml(toml, &env())),
        ["targets: the name \"a\" is used twice"]
    );
}

#[test]
fn filters_and_retry_settings_are_read_per_target_over_the_defaults() {
    let toml = r#"
        [[targets]]
        name = "audit"
        type = "log"
        timeout = "3s"
        [targets.filter]
        types = ["security_event", "incident"]
        min_risk = 50
        environments = ["production"]
        [targets.retry]
        max_attempts = 3
        first_backoff = "1s"
    "#;
    let settings = from_toml(toml, &env()).unwrap();
    let target = &settings.targets[0];
    assert_eq!(target.filter.types, ["security_event", "incident"]);
    assert_eq!(target.filter.min_risk, Some(50));
    assert_eq!(target.filter.environments, ["production"]);
    assert_eq!(target.timeout, Duration::from_secs(3));
    assert_eq!(target.retry.max_attempts, 3);
    assert_eq!(target.retry.first_backoff, Duration::from_secs(1));
    assert_eq!(
        target.retry.max_age,
        Duration::from_secs(24 * 3600),
        "unset keys keep their default"
    );
    assert!(
        !target.retry.retry_unknown,
        "only http targets retry unknown outcomes by default"
    );
}

#[test]
fn environment_variables_override_file_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:9000\"\nbody_limit = 100\n",
    )
    .unwrap();
    let env = env()
        .with("SQREEN_WEBHOOK__SERVER__LISTEN", "0.0.0.0:8443")
        .with("SQREEN_WEBHOOK__SERVER__BODY_LIMIT", "2048");

    let settings = config::load(Some(&path), &env).unwrap();

    assert_eq!(settings.server.listen, "0.0.0.0:8443");
    assert_eq!(settings.server.body_limit, 2048);
}

#[test]
fn an_unknown_environment_override_is_refused_with_its_key() {
    let env = env().with("SQREEN_WEBHOOK__SERVER__LISTN", "x");
    let found = problems(config::load(None, &env));
    assert!(
        found[0].starts_with("server.listn: unknown field"),
        "{found:?}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let found = problems(config::load(
        Some(std::path::Path::new("/nonexistent/relay.toml")),
        &env(),
    ));
    assert_eq!(
        found,
        ["configuration file /nonexistent/relay.toml does not exist"]
    );
}

#[test]
fn a_lease_shorter_than_twice_a_target_timeout_is_refused() {
    let toml = "[store]\nlease = \"10s\"\n[[targets]]\nname = \"slow\"\ntype = \"log\"\ntimeout = \"30s\"\n";
    let found = problems(from_toml(toml, &env()));
    assert!(
        found[0].starts_with("store.lease: 10s is too short for target \"slow\""),
        "{found:?}"
    );
}

#[test]
fn debug_output_of_the_settings_shows_no_secret() {
    let toml =
        "[webhook]\nsecrets = [\"s3cr3t-value\"]\n[store]\nurl = \"postgres://u:dbpass@h/db\"\n";
    let settings = from_toml(toml, &FakeEnv::default()).unwrap();
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains("s3cr3t-value") && !debug.contains("dbpass"),
        "{debug}"
    );
}

fn example_file() -> String {
    include_str!("../../../config/example.toml").to_owned()
}

#[test]
fn the_example_file_is_valid_as_shipped() {
    let settings = from_toml(&example_file(), &env()).unwrap();
    assert_eq!(settings.targets.len(), 1);
    assert_eq!(settings.targets[0].name, "audit");
}

/// Every commented-out target of the example, uncommented (`## ` lines are alternatives and
/// stay comments), is valid too: the file documents keys that exist.
#[cfg(all(
    feature = "email",
    feature = "twilio",
    feature = "slack",
    feature = "http"
))]
#[test]
fn every_target_of_the_example_file_is_valid_once_uncommented() {
    let mut text = String::new();
    let mut in_target = false;
    for line in example_file().lines() {
        if line.starts_with("# [[targets]]") {
            in_target = true;
        }
        if in_target && line.starts_with("# ") {
            text.push_str(&line[2..]);
        } else {
            in_target = false;
            text.push_str(line);
        }
        text.push('\n');
    }
    let env = env()
        .with("SMTP_USERNAME", "relay@example.com")
        .with("SMTP_PASSWORD", "pw")
        .with("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .with("TWILIO_AUTH_TOKEN", "token")
        .with(
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T000/B000/XXXX",
        )
        .with("SIEM_SECRET", "siem");

    let settings = from_toml(&text, &env).unwrap();

    let types: Vec<&str> = settings
        .targets
        .iter()
        .map(|t| t.kind.type_name())
        .collect();
    assert_eq!(types, ["log", "email", "twilio", "slack", "http"]);
    server::app::install_crypto_provider();
    for target in &settings.targets {
        server::targets::build(target).unwrap_or_else(|e| panic!("{e}"));
    }
}
