//! Configuration: a TOML file, then `SQREEN_WEBHOOK__SECTION__KEY` environment variables,
//! then `${VAR}` references, read once at start-up into typed [`Settings`].
//!
//! Everything is validated before the server starts, and every problem is reported at once
//! with the key it is about: an unknown key, an unset variable, a missing secret, a target
//! type this build does not include. A relay that starts with a broken target would
//! discover it at the first alert, which is the worst moment.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqreen_webhook_core::{Filter, Secret, duration};
use sqreen_webhook_delivery::RetryPolicy;
use sqreen_webhook_store::Durability;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SQREEN_WEBHOOK";
/// The variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "SQREEN_WEBHOOK_CONFIG";
/// The variable that adds one webhook secret, as the original relay read it.
pub const SECRET_ENV: &str = "SQREEN_WEBHOOK_SECRET";

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub webhook: WebhookSettings,
    pub store: StoreSettings,
    pub delivery: DeliverySettings,
    pub targets: Vec<TargetSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port to listen on.
    pub listen: String,
    /// Largest accepted body, in bytes. Sqreen batches up to 1000 notifications.
    #[serde(deserialize_with = "number")]
    pub body_limit: usize,
    /// HTTP worker threads; the number of CPU cores when absent.
    #[serde(deserialize_with = "optional_number")]
    pub workers: Option<usize>,
    /// How long a shutdown waits for requests and deliveries in flight.
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            listen: "127.0.0.1:8080".to_owned(),
            body_limit: 1024 * 1024,
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Every secret that may sign a request: one per Sqreen application, and old and new
    /// while one is rotated.
    pub secrets: Vec<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: Secret,
    /// A notification accepted again within this window is not delivered again.
    #[serde(deserialize_with = "duration::deserialize")]
    pub dedup_window: Duration,
    /// `process` (survives `kill -9`) or `power_loss` (survives a power cut too; slower).
    pub durability: DurabilitySetting,
    /// How long a claimed delivery stays reserved to this process.
    #[serde(deserialize_with = "duration::deserialize")]
    pub lease: Duration,
    /// Delivered notifications are deleted this long after delivery.
    #[serde(deserialize_with = "duration::deserialize")]
    pub retention: Duration,
    /// Most connections to PostgreSQL.
    #[serde(deserialize_with = "number")]
    pub max_connections: u32,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            url: Secret::new("sqlite://data/sqreen-webhook.db"),
            dedup_window: Duration::from_secs(24 * 3600),
            durability: DurabilitySetting::Process,
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySetting {
    Process,
    PowerLoss,
}

impl From<DurabilitySetting> for Durability {
    fn from(setting: DurabilitySetting) -> Durability {
        match setting {
            DurabilitySetting::Process => Durability::Process,
            DurabilitySetting::PowerLoss => Durability::PowerLoss,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Most delivery attempts in flight at once, all targets together.
    #[serde(deserialize_with = "number")]
    pub concurrency: usize,
    /// How often the store is checked for work accepted by other replicas.
    #[serde(deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings {
            concurrency: 64,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub name: String,
    pub kind: TargetKind,
    pub filter: Filter,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub concurrency: usize,
}

/// A target's type and its own settings.
#[derive(Debug, Clone)]
pub enum TargetKind {
    #[cfg(feature = "log")]
    Log(sqreen_webhook_target_log::Config),
    #[cfg(feature = "email")]
    Email(sqreen_webhook_target_email::Config),
    #[cfg(feature = "twilio")]
    Twilio(sqreen_webhook_target_twilio::Config),
    #[cfg(feature = "slack")]
    Slack(sqreen_webhook_target_slack::Config),
    #[cfg(feature = "http")]
    Http(sqreen_webhook_target_http::Config),
}

/// Every target type, built into this binary or not.
pub const TARGET_TYPES: &[&str] = &["log", "email", "twilio", "slack", "http"];

impl TargetKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            #[cfg(feature = "log")]
            TargetKind::Log(_) => "log",
            #[cfg(feature = "email")]
            TargetKind::Email(_) => "email",
            #[cfg(feature = "twilio")]
            TargetKind::Twilio(_) => "twilio",
            #[cfg(feature = "slack")]
            TargetKind::Slack(_) => "slack",
            #[cfg(feature = "http")]
            TargetKind::Http(_) => "http",
        }
    }
}

/// The target types this binary was built with.
pub fn built_in_types() -> Vec<&'static str> {
    let mut types = Vec::new();
    if cfg!(feature = "log") {
        types.push("log");
    }
    if cfg!(feature = "email") {
        types.push("email");
    }
    if cfg!(feature = "twilio") {
        types.push("twilio");
    }
    if cfg!(feature = "slack") {
        types.push("slack");
    }
    if cfg!(feature = "http") {
        types.push("http");
    }
    types
}

/// Everything wrong with a configuration, one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where configuration values come from: a file, and the process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

/// Reads the configuration file at `path` (none: defaults only) and the environment.
pub fn load(path: Option<&Path>, env: &dyn Environment) -> Result<Settings, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError::one(format!(
                "configuration file {} does not exist",
                path.display()
            )));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let overrides: std::collections::HashMap<String, String> = env
        .vars()
        .into_iter()
        .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(Some(overrides)),
    );
    let layered = builder
        .build()
        .map_err(|e| ConfigError::one(e.to_string()))?
        .try_deserialize::<Value>()
        .map_err(|e| ConfigError::one(e.to_string()))?;
    from_value(layered, env)
}

/// Reads configuration from TOML text, for tests and `check-config` on a string.
pub fn from_toml(text: &str, env: &dyn Environment) -> Result<Settings, ConfigError> {
    let value = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Value>())
        .map_err(|e| ConfigError::one(e.to_string()))?;
    from_value(value, env)
}

fn from_value(mut value: Value, env: &dyn Environment) -> Result<Settings, ConfigError> {
    let mut problems = Vec::new();
    expand_variables(&mut value, "", env, &mut problems);
    let Value::Object(mut root) = value else {
        return Err(ConfigError::one("the configuration is not a table"));
    };
    let raw_targets = root.remove("targets");

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Sections {
        server: ServerSettings,
        webhook: WebhookSettings,
        store: StoreSettings,
        delivery: DeliverySettings,
    }
    let sections: Sections = typed(Value::Object(root), "", &mut problems).unwrap_or_default();

    let mut webhook = sections.webhook;
    if let Some(secret) = env.var(SECRET_ENV).filter(|s| !s.is_empty()) {
        webhook.secrets.push(Secret::new(secret));
    }
    let mut seen = BTreeSet::new();
    webhook
        .secrets
        .retain(|s| seen.insert(s.expose().to_owned()));
    if webhook.secrets.is_empty() {
        problems.push(format!(
            "no webhook secret: set {SECRET_ENV}, or webhook.secrets in the configuration file \
             (the secret is shown in Sqreen's webhook settings)"
        ));
    }
    if webhook.secrets.iter().any(Secret::is_empty) {
        problems.push("webhook.secrets: a secret is empty".to_owned());
    }
    if sections.server.body_limit == 0 {
        problems.push("server.body_limit: must be more than 0".to_owned());
    }

    let targets = match raw_targets {
        None => default_targets(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| target(i, item, &mut problems))
            .collect(),
        Some(_) => {
            problems.push("targets: must be an array of tables ([[targets]])".to_owned());
            Vec::new()
        }
    };
    let mut names = BTreeSet::new();
    for t in &targets {
        if !names.insert(t.name.clone()) {
            problems.push(format!("targets: the name {:?} is used twice", t.name));
        }
        let floor = (t.timeout + Duration::from_secs(2)) * 2;
        if sections.store.lease < floor {
            problems.push(format!(
                "store.lease: {} is too short for target {:?} whose timeout is {}; use at least {}",
                duration::format_duration(sections.store.lease),
                t.name,
                duration::format_duration(t.timeout),
                duration::format_duration(floor),
            ));
        }
    }

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Settings {
        server: sections.server,
        webhook,
        store: sections.store,
        delivery: sections.delivery,
        targets,
    })
}

/// With no `[[targets]]`, notifications are logged, so that nothing accepted goes nowhere.
fn default_targets() -> Vec<TargetSettings> {
    #[cfg(feature = "log")]
    {
        vec![TargetSettings {
            name: "log".to_owned(),
            kind: TargetKind::Log(sqreen_webhook_target_log::Config::default()),
            filter: Filter::default(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            concurrency: 8,
        }]
    }
    #[cfg(not(feature = "log"))]
    {
        Vec::new()
    }
}

/// The keys every target has, beside its type's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryOverrides {
    #[serde(default, deserialize_with = "optional_number")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    first_backoff: Option<Duration>,
    #[serde(default)]
    multiplier: Option<f64>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    max_age: Option<Duration>,
    #[serde(default)]
    retry_unknown: Option<bool>,
}

const NAME_HELP: &str = "letters, digits, '-' and '_', at most 64";

fn target(index: usize, item: Value, problems: &mut Vec<String>) -> Option<TargetSettings> {
    let Value::Object(mut table) = item else {
        problems.push(format!("targets[{index}]: must be a table"));
        return None;
    };
    let name = match table.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            problems.push(format!("targets[{index}].name: must be a string"));
            return None;
        }
        None => {
            problems.push(format!("targets[{index}]: missing key `name`"));
            return None;
        }
    };
    let at = format!("targets[{index}] ({name:?})");
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!("{at}.name: {NAME_HELP}"));
    }
    let type_name = match table.remove("type") {
        Some(Value::String(t)) => t,
        _ => {
            problems.push(format!(
                "{at}: missing key `type` (one of {})",
                TARGET_TYPES.join(", ")
            ));
            return None;
        }
    };
    let filter: Filter = match table.remove("filter") {
        Some(value) => typed(value, &format!("{at}.filter"), problems)?,
        None => Filter::default(),
    };
    let timeout = match table.remove("timeout") {
        Some(value) => typed_with(
            value,
            &format!("{at}.timeout"),
            problems,
            duration::deserialize,
        )?,
        None => Duration::from_secs(10),
    };
    let concurrency = match table.remove("concurrency") {
        Some(value) => typed_with(value, &format!("{at}.concurrency"), problems, number)?,
        None => 8,
    };
    if concurrency == 0 {
        problems.push(format!("{at}.concurrency: must be at least 1"));
    }
    let mut retry = RetryPolicy {
        retry_unknown: type_name == "http",
        ..RetryPolicy::default()
    };
    if let Some(value) = table.remove("retry") {
        let o: RetryOverrides = typed(value, &format!("{at}.retry"), problems)?;
        retry = RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(retry.max_attempts),
            first_backoff: o.first_backoff.unwrap_or(retry.first_backoff),
            multiplier: o.multiplier.unwrap_or(retry.multiplier),
            max_backoff: o.max_backoff.unwrap_or(retry.max_backoff),
            max_age: o.max_age.unwrap_or(retry.max_age),
            retry_unknown: o.retry_unknown.unwrap_or(retry.retry_unknown),
        };
        if let Err(error) = retry.validate() {
            problems.push(format!("{at}.retry: {error}"));
        }
    }
    let rest = Value::Object(table);
    let kind = target_kind(&type_name, rest, &at, problems)?;
    Some(TargetSettings {
        name,
        kind,
        filter,
        retry,
        timeout,
        concurrency,
    })
}

fn target_kind(
    type_name: &str,
    rest: Value,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<TargetKind> {
    match type_name {
        #[cfg(feature = "log")]
        "log" => typed(rest, at, problems).map(TargetKind::Log),
        #[cfg(feature = "email")]
        "email" => typed(rest, at, problems).map(TargetKind::Email),
        #[cfg(feature = "twilio")]
        "twilio" => typed(rest, at, problems).map(TargetKind::Twilio),
        #[cfg(feature = "slack")]
        "slack" => typed(rest, at, problems).map(TargetKind::Slack),
        #[cfg(feature = "http")]
        "http" => typed(rest, at, problems).map(TargetKind::Http),
        known if TARGET_TYPES.contains(&known) => {
            problems.push(format!(
                "{at}.type: {known:?} is not built into this server; build it with `--features {known}`"
            ));
            None
        }
        unknown => {
            problems.push(format!(
                "{at}.type: unknown type {unknown:?}; expected one of {}",
                TARGET_TYPES.join(", ")
            ));
            None
        }
    }
}

/// Deserializes `value`, recording a problem that names the key path on failure.
fn typed<T: DeserializeOwned>(value: Value, at: &str, problems: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(error) => {
            problems.push(describe(at, &error.path().to_string(), error.inner()));
            None
        }
    }
}

fn typed_with<T>(
    value: Value,
    at: &str,
    problems: &mut Vec<String>,
    f: fn(Value) -> Result<T, serde_json::Error>,
) -> Option<T> {
    f(value)
        .map_err(|e| problems.push(format!("{at}: {e}")))
        .ok()
}

fn describe(at: &str, path: &str, error: &serde_json::Error) -> String {
    let path = if path == "." { "" } else { path };
    let key = match (at.is_empty(), path.is_empty()) {
        (true, true) => "configuration".to_owned(),
        (true, false) => path.to_owned(),
        (false, true) => at.to_owned(),
        (false, false) => format!("{at}.{path}"),
    };
    format!("{key}: {error}")
}

/// Replaces `${VAR}` in every string with the variable's value (`$$` is a literal `$`).
fn expand_variables(
    value: &mut Value,
    path: &str,
    env: &dyn Environment,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(text) if text.contains('$') => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(missing) => {
                problems.push(format!("{path}: environment variable {missing} is not set"))
            }
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_variables(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Object(map) => expand_map(map, path, env, problems),
        _ => {}
    }
}

fn expand_map(
    map: &mut Map<String, Value>,
    path: &str,
    env: &dyn Environment,
    problems: &mut Vec<String>,
) {
    for (key, item) in map.iter_mut() {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        expand_variables(item, &child, env, problems);
    }
}

/// Expands one string; on failure returns the name of the first unset variable.
pub fn expand(text: &str, env: &dyn Environment) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[at..]);
                rest = "";
                continue;
            };
            let name = &body[..end];
            match env.var(name) {
                Some(value) => out.push_str(&value),
                None => return Err(name.to_owned()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A number, or a string holding one (environment variables are strings).
fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + TryFrom<u64>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    let invalid = || serde::de::Error::custom("expected a positive whole number");
    match Raw::deserialize(deserializer)? {
        Raw::Int(n) => T::try_from(n).map_err(|_| invalid()),
        Raw::Text(text) => text.trim().parse().map_err(|_| invalid()),
    }
}

fn optional_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Wrapper<T: std::str::FromStr + TryFrom<u64>>(#[serde(deserialize_with = "number")] T);
    Ok(Option::<Wrapper<T>>::deserialize(deserializer)?.map(|w| w.0))
}
