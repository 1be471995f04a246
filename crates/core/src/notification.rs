//! Turning a webhook body into notifications, and the one view of a notification that every
//! target renders.
//!
//! A body is a JSON array of elements, or a single element (the v1 test webhook). An element
//! is a v1 payload (`sqreen_payload_type` and the payload's fields side by side) or a v2
//! envelope (`message_type`, `message`, and delivery metadata). Each element becomes one
//! [`Notification`], whatever its type: an element this crate does not understand is kept
//! as [`Payload::Unknown`] and delivered all the same.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::payload::{Incident, Ip, Payload, Pulse, SecurityEvent, SecurityResponse};
use crate::text::{one_line, truncate};

/// Summaries longer than this are cut: a summary is one line, not a document.
const MAX_SUMMARY_CHARS: usize = 1000;

/// Headlines longer than this are cut: they become subjects and headers.
const MAX_HEADLINE_CHARS: usize = 150;

/// How many IPs or users a generated summary names before it says "and N more".
const SUMMARY_LIST_LEN: usize = 3;

/// A body that cannot be turned into notifications.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body is JSON but neither an array nor an object")]
    NotArrayOrObject,
}

/// The wire format version an element was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// A flat payload with `sqreen_payload_type`.
    V1,
    /// An envelope with `message_type` and `message`.
    V2,
}

/// What a notification is about, whichever version carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SecurityEvent,
    Test,
    Pulse,
    SecurityResponse,
    Incident,
    Unknown,
}

impl Kind {
    /// The name used in configuration filters and machine-readable output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SecurityEvent => "security_event",
            Kind::Test => "test",
            Kind::Pulse => "pulse",
            Kind::SecurityResponse => "security_response",
            Kind::Incident => "incident",
            Kind::Unknown => "unknown",
        }
    }

    /// A short name for people: "security event", "playbook run", …
    pub fn label(self) -> &'static str {
        match self {
            Kind::SecurityEvent => "security event",
            Kind::Test => "test notification",
            Kind::Pulse => "pulse",
            Kind::SecurityResponse => "playbook run",
            Kind::Incident => "incident",
            Kind::Unknown => "notification",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The v2 envelope's delivery metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Envelope {
    /// Null in every capture seen: not usable to recognise a re-sent message.
    pub message_id: Option<String>,
    pub api_version: Option<String>,
    pub date_created: Option<String>,
    pub retry_count: Option<u64>,
}

/// The application a notification is about. Either part may be missing: incidents carry
/// only the id, test webhooks only the name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Application {
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Application {
    /// The name, else the id, else `None`.
    pub fn display_name(&self) -> Option<&str> {
        self.name.as_deref().or(self.id.as_deref())
    }
}

/// A stable identity for a notification, used to recognise one that Sqreen sent again.
///
/// It is `<kind>:<event id>` when the payload has an id, and otherwise `sha256:<hex>` of the
/// payload's canonical JSON (keys sorted, no whitespace) and its type, so that a re-sent
/// element with another `retry_count` or key order has the same identity. Identities
/// contain only ASCII letters, digits and `:._-`, and are safe in headers and file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Identity(String);

impl Identity {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The normalized view of a notification: what a target needs to render it without
/// matching on versions or types.
///
/// Text fields hold what Sqreen sent, which includes attacker-controlled input: every target
/// escapes them for its medium. The summary alone has been made one line (control
/// characters, line breaks and bidirectional marks replaced) and is never empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct View {
    pub kind: Kind,
    /// The type as sent: `sqreen_payload_type` or `message_type` (`http_scan`, …).
    pub type_name: String,
    pub version: Version,
    pub application: Application,
    pub environment: Option<String>,
    pub risk: Option<u32>,
    /// Event category (`http_error`, `authentication`, …), pulse genre or incident status.
    pub category: Option<String>,
    /// Event kind (`bot_scanning`, `auth_tor_tentative`, …) or playbook name.
    pub event_kind: Option<String>,
    pub summary: String,
    /// When it happened, as Sqreen wrote it (ISO 8601).
    pub occurred_at: Option<String>,
    /// The Sqreen dashboard page for it.
    pub url: Option<String>,
    pub ips: Vec<Ip>,
    /// Application users involved: account keys or playbook user identifiers.
    pub accounts: Vec<String>,
    pub identity: Identity,
}

/// One notification: an element of a webhook body.
#[derive(Debug, Clone)]
pub struct Notification {
    payload: Payload,
    envelope: Option<Envelope>,
    element: Box<RawValue>,
    span: Range<usize>,
    view: View,
}

impl Notification {
    /// Parses one element, as found in a body or as kept by a store.
    pub fn from_element(json: &str) -> Result<Notification, ParseError> {
        let raw: &RawValue = serde_json::from_str(json)?;
        let offset = raw.get().as_ptr() as usize - json.as_ptr() as usize;
        Ok(Notification::from_raw(raw, offset))
    }

    fn from_raw(raw: &RawValue, offset: usize) -> Notification {
        let (version, type_name, envelope, source) = classify(raw);
        let payload = typed_payload(version, &type_name, source);
        let view = View::build(version, type_name, &payload, envelope.as_ref(), source);
        Notification {
            payload,
            envelope,
            element: raw.to_owned(),
            span: offset..offset + raw.get().len(),
            view,
        }
    }

    /// The normalized view.
    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn kind(&self) -> Kind {
        self.view.kind
    }

    pub fn identity(&self) -> &Identity {
        &self.view.identity
    }

    /// The typed payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The v2 envelope's metadata, `None` for v1 elements.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// The element's JSON exactly as received, unknown fields included.
    pub fn element(&self) -> &RawValue {
        &self.element
    }

    /// Where the element lies in the body it was parsed from, in bytes.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}

/// Parses a webhook body (a JSON array of elements, or one element) into notifications.
///
/// Only a body that is not JSON, or JSON that is neither an array nor an object, is an
/// error: elements of unknown types, and elements that are not objects, become
/// [`Payload::Unknown`] notifications.
pub fn parse(body: &[u8]) -> Result<Vec<Notification>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        // serde_json reports invalid UTF-8 with a position; let it word the error.
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => ParseError::NotJson(e),
            Ok(_) => ParseError::NotArrayOrObject,
        }
    })?;
    let base = text.as_ptr() as usize;
    let offset_of = |raw: &RawValue| raw.get().as_ptr() as usize - base;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(text)?;
            Ok(elements
                .into_iter()
                .map(|raw| Notification::from_raw(raw, offset_of(raw)))
                .collect())
        }
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_str(text)?;
            Ok(vec![Notification::from_raw(raw, offset_of(raw))])
        }
        _ => {
            // Let serde_json say what is wrong with text that is not JSON at all.
            serde_json::from_str::<serde::de::IgnoredAny>(text)?;
            Err(ParseError::NotArrayOrObject)
        }
    }
}

/// The fields that tell the version and type of an element. Anything else is skipped here.
#[derive(Deserialize)]
struct Probe<'a> {
    sqreen_payload_type: Option<String>,
    message_type: Option<String>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    message_id: Option<String>,
    api_version: Option<Value>,
    date_created: Option<String>,
    retry_count: Option<u64>,
}

/// Returns the version, type name, envelope and payload source of an element.
fn classify(raw: &RawValue) -> (Version, String, Option<Envelope>, &RawValue) {
    let Ok(probe) = serde_json::from_str::<Probe<'_>>(raw.get()) else {
        return (Version::V1, Kind::Unknown.as_str().to_owned(), None, raw);
    };
    if let Some(message_type) = probe.message_type {
        let envelope = Envelope {
            message_id: probe.message_id,
            api_version: probe.api_version.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            date_created: probe.date_created,
            retry_count: probe.retry_count,
        };
        (
            Version::V2,
            message_type,
            Some(envelope),
            probe.message.unwrap_or(raw),
        )
    } else if let Some(payload_type) = probe.sqreen_payload_type {
        (Version::V1, payload_type, None, raw)
    } else {
        (Version::V1, Kind::Unknown.as_str().to_owned(), None, raw)
    }
}

fn typed_payload(version: Version, type_name: &str, source: &RawValue) -> Payload {
    fn typed<'a, T: Deserialize<'a>>(source: &'a RawValue, wrap: fn(T) -> Payload) -> Payload {
        serde_json::from_str(source.get()).map_or_else(|_| unknown(source), wrap)
    }
    match (type_name, version) {
        ("security_event", _) => typed(source, Payload::SecurityEvent),
        ("test", _) => typed(source, Payload::Test),
        ("pulse", _) => typed(source, Payload::Pulse),
        ("security_response", _) => typed(source, Payload::SecurityResponse),
        (_, Version::V2) if source.get().starts_with('{') => typed(source, Payload::Incident),
        _ => unknown(source),
    }
}

fn unknown(source: &RawValue) -> Payload {
    Payload::Unknown(serde_json::from_str(source.get()).unwrap_or(Value::Null))
}

impl View {
    /// The risk in words, on Sqreen's scale: `low` below 25, `medium` below 50, `high`
    /// below 75, `critical` above.
    pub fn risk_level(&self) -> Option<&'static str> {
        self.risk.map(|risk| match risk {
            0..=24 => "low",
            25..=49 => "medium",
            50..=74 => "high",
            _ => "critical",
        })
    }

    /// One line saying what happened and where, for subjects and headers: `high risk
    /// security event on my-app (production)`. Plain text made of payload values: escape it
    /// for the medium.
    pub fn headline(&self) -> String {
        let mut line = match self.risk_level() {
            Some(level) if matches!(self.kind, Kind::SecurityEvent | Kind::Incident) => {
                format!("{level} risk {}", self.kind.label())
            }
            _ => self.kind.label().to_owned(),
        };
        if self.kind == Kind::Incident || self.kind == Kind::Unknown {
            line.push_str(&format!(" {}", self.type_name.replace('_', " ")));
        }
        if let Some(app) = self.application.display_name() {
            line.push_str(" on ");
            line.push_str(app);
        }
        if let Some(env) = &self.environment {
            line.push_str(&format!(" ({env})"));
        }
        truncate(&one_line(&line), MAX_HEADLINE_CHARS).into_owned()
    }
}

impl View {
    fn build(
        version: Version,
        type_name: String,
        payload: &Payload,
        envelope: Option<&Envelope>,
        source: &RawValue,
    ) -> View {
        let sent_at = envelope.and_then(|e| e.date_created.clone());
        let mut view = View {
            kind: Kind::Unknown,
            type_name,
            version,
            application: Application::default(),
            environment: None,
            risk: None,
            category: None,
            event_kind: None,
            summary: String::new(),
            occurred_at: None,
            url: None,
            ips: Vec::new(),
            accounts: Vec::new(),
            identity: Identity(String::new()),
        };
        let id = match payload {
            Payload::SecurityEvent(event) => {
                view.fill_from_event(Kind::SecurityEvent, event);
                event.id.clone()
            }
            Payload::Test(event) => {
                view.fill_from_event(Kind::Test, event);
                event.id.clone()
            }
            Payload::Pulse(pulse) => {
                view.fill_from_pulse(pulse);
                pulse.id.clone()
            }
            Payload::SecurityResponse(response) => {
                view.fill_from_response(response);
                response.id.clone()
            }
            Payload::Incident(incident) => {
                view.fill_from_incident(incident);
                None
            }
            Payload::Unknown(_) => {
                view.summary = format!("notification of unknown type \"{}\"", view.type_name);
                None
            }
        };
        if view.occurred_at.is_none() {
            view.occurred_at = sent_at;
        }
        view.summary = truncate(&one_line(&view.summary), MAX_SUMMARY_CHARS).into_owned();
        if view.summary.is_empty() {
            view.summary = view.kind.label().to_owned();
        }
        view.identity = identity(view.kind, &view.type_name, id.as_deref(), source);
        view
    }

    fn fill_from_event(&mut self, kind: Kind, event: &SecurityEvent) {
        self.kind = kind;
        self.application = Application {
            id: event.application_id.clone(),
            name: event.application_name.clone(),
        };
        self.environment = event.environment.clone();
        self.risk = event.risk.map(|r| r.0);
        self.category = event.event_category.clone();
        self.event_kind = event.event_kind.clone();
        self.occurred_at = event.date_occurred.clone();
        self.url = event.url.clone();
        self.ips = event.ips.clone();
        self.accounts = event
            .application_account_account_keys
            .iter()
            .map(|key| key.value.clone())
            .chain(event.application_account_account_id.clone())
            .filter(|value| !value.is_empty())
            .collect();
        self.summary = match event.humanized_description.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => text.to_owned(),
            _ => self.fallback_summary(),
        };
    }

    fn fill_from_pulse(&mut self, pulse: &Pulse) {
        self.kind = Kind::Pulse;
        self.application = Application {
            id: pulse.application_id.clone(),
            name: pulse.application_name.clone(),
        };
        self.environment = pulse.environment.clone();
        self.category = pulse.pulse_genre.clone();
        self.event_kind = pulse.pulse_category.clone();
        self.occurred_at = pulse.date_started.clone();
        self.url = pulse.url.clone();
        self.accounts = pulse.humanized_accounts.iter().cloned().collect();
        self.summary = match pulse.humanized_title.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => text.to_owned(),
            _ => self.fallback_summary(),
        };
    }

    fn fill_from_response(&mut self, response: &SecurityResponse) {
        self.kind = Kind::SecurityResponse;
        self.application = Application {
            id: response.application.id.clone(),
            name: response.application.name.clone(),
        };
        self.environment = response.application.environment.clone();
        self.category = Some("playbook".to_owned());
        self.event_kind = response.playbook.name.clone();
        self.occurred_at = response.date_created.clone();
        self.ips = response.properties.ips.clone();
        self.accounts = response.properties.user_identifiers.clone();
        let playbook = response.playbook.name.as_deref().unwrap_or("unnamed");
        let mut summary = format!("playbook \"{playbook}\" ran");
        let targets: Vec<String> = [
            counted(
                "IP",
                &self
                    .ips
                    .iter()
                    .map(|ip| ip.address.as_str())
                    .collect::<Vec<_>>(),
            ),
            counted(
                "user",
                &self.accounts.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !targets.is_empty() {
            summary.push_str(" against ");
            summary.push_str(&targets.join(" and "));
        }
        self.summary = summary;
    }

    fn fill_from_incident(&mut self, incident: &Incident) {
        self.kind = Kind::Incident;
        self.application = Application {
            id: incident.application_id.clone(),
            name: None,
        };
        self.category = incident.incident_status.clone();
        self.event_kind = Some(self.type_name.clone());
        self.occurred_at = incident
            .date_last_updated
            .clone()
            .or(incident.date_started.clone());
        self.ips = incident.new_related_ips.clone();
        let status = incident.incident_status.as_deref().unwrap_or("reported");
        let mut summary = format!("{} incident {status}", self.type_name.replace('_', " "));
        let addresses: Vec<&str> = self.ips.iter().map(|ip| ip.address.as_str()).collect();
        if let Some(ips) = counted("new IP", &addresses) {
            summary.push_str(": ");
            summary.push_str(&ips);
        }
        self.summary = summary;
    }

    /// "security event (http_error / bot_scanning)", for payloads without human text.
    fn fallback_summary(&self) -> String {
        let parts: Vec<&str> = [self.category.as_deref(), self.event_kind.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if parts.is_empty() {
            self.kind.label().to_owned()
        } else {
            format!("{} ({})", self.kind.label(), parts.join(" / "))
        }
    }
}

/// "2 IPs (1.2.3.4, 5.6.7.8)", or `None` for an empty list.
fn counted(noun: &str, items: &[&str]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let plural = if items.len() == 1 { "" } else { "s" };
    let shown = items[..items.len().min(SUMMARY_LIST_LEN)].join(", ");
    let more = items.len().saturating_sub(SUMMARY_LIST_LEN);
    Some(if more > 0 {
        format!("{} {noun}{plural} ({shown} and {more} more)", items.len())
    } else {
        format!("{} {noun}{plural} ({shown})", items.len())
    })
}

fn identity(kind: Kind, type_name: &str, id: Option<&str>, source: &RawValue) -> Identity {
    let usable = |id: &&str| {
        (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if let Some(id) = id.filter(usable) {
        return Identity(format!("{}:{id}", kind.as_str()));
    }
    let value: Value = serde_json::from_str(source.get()).unwrap_or(Value::Null);
    let mut canonical = String::with_capacity(source.get().len() + type_name.len() + 1);
    canonical.push_str(type_name);
    canonical.push('\n');
    write_canonical(&value, &mut canonical);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    Identity(format!("sha256:{}", crate::hex::encode(digest.as_ref())))
}

/// Writes JSON with object keys sorted and no whitespace, whatever order the map keeps.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
