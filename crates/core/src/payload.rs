//! Typed access to the payloads Sqreen sends.
//!
//! Field names follow the wire format. Sqreen renamed a few fields between the v1 and v2
//! formats (`risk` became `risk_coefficient`, `id` became `event_id`, `url` became
//! `event_url`), and captures show both spellings in both versions, so every renamed field
//! accepts either name. Every field is optional unless a payload without it would be
//! meaningless: a receiver that rejects an alert because one field is missing loses the alert.
//!
//! Fields this model does not know are not lost: the [`Notification`](crate::Notification)
//! keeps the element's original JSON next to its typed payload.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The payload of one notification, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An attack or suspicious activity detected in an application.
    SecurityEvent(SecurityEvent),
    /// The webhook Sqreen sends when the integration is saved in its dashboard.
    Test(SecurityEvent),
    /// A v1 "pulse": a cluster of related events, such as an account takeover campaign.
    Pulse(Pulse),
    /// A playbook ran and responded to an attack.
    SecurityResponse(SecurityResponse),
    /// A v2 incident (`http_scan`, `account_takeover`, …), named by its `message_type`.
    Incident(Incident),
    /// A type this version does not know, or an element that is not an object. Kept as
    /// received so that it can still be delivered.
    Unknown(Value),
}

/// A security event, and the test event, which has the same shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SecurityEvent {
    #[serde(default, alias = "event_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub application_name: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub event_category: Option<String>,
    #[serde(default)]
    pub event_kind: Option<String>,
    #[serde(default, alias = "risk_coefficient")]
    pub risk: Option<Risk>,
    #[serde(default)]
    pub date_occurred: Option<String>,
    #[serde(default)]
    pub humanized_description: Option<String>,
    #[serde(default, alias = "event_url")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ips: Vec<Ip>,
    #[serde(default)]
    pub application_account_account_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub application_account_account_keys: Vec<AccountKey>,
    #[serde(default)]
    pub application_account_url: Option<String>,
}

/// A risk score. Sqreen sends integers; a float or numeric string is accepted and rounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Risk(pub u32);

impl<'de> Deserialize<'de> for Risk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let value = match Raw::deserialize(deserializer)? {
            Raw::Int(n) => n as f64,
            Raw::Float(f) => f,
            Raw::Text(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom("risk is not a number"))?,
        };
        if !value.is_finite() || value < 0.0 {
            return Err(serde::de::Error::custom("risk is not a positive number"));
        }
        Ok(Risk(value.round().min(f64::from(u32::MAX)) as u32))
    }
}

/// One key identifying an application user (`{"name": "email", "value": "…"}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AccountKey {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "string_or_scalar")]
    pub value: String,
}

/// An IP address involved in an event, with what Sqreen knew of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Ip {
    #[serde(default, alias = "ip_cidr")]
    pub address: String,
    #[serde(default)]
    pub is_tor: Option<bool>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub geo: Option<Geo>,
    #[serde(default)]
    pub date_resolved: Option<String>,
    #[serde(default)]
    pub vpn: Option<bool>,
    #[serde(default)]
    pub proxy: Option<bool>,
    #[serde(default)]
    pub datacenter: Option<bool>,
    #[serde(default)]
    pub critical: Option<bool>,
}

/// Where an IP address was located. Empty (`{}`) when Sqreen did not know.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Geo {
    /// ISO 3166 alpha-3 country code.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    /// `[longitude, latitude]`.
    #[serde(default)]
    pub point: Option<[f64; 2]>,
}

/// A v1 pulse.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Pulse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub application_name: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub humanized_title: Option<String>,
    #[serde(default)]
    pub humanized_geos: Option<String>,
    #[serde(default)]
    pub humanized_accounts: Option<String>,
    #[serde(default)]
    pub pulse_category: Option<String>,
    #[serde(default)]
    pub pulse_genre: Option<String>,
    #[serde(default)]
    pub date_started: Option<String>,
    #[serde(default)]
    pub date_ended: Option<String>,
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub incidents_count: Option<u64>,
    #[serde(default)]
    pub user_agents_count: Option<u64>,
    #[serde(default)]
    pub accounts_count: Option<u64>,
    #[serde(default)]
    pub ip_addresses_count: Option<u64>,
}

/// A playbook run (`security_response`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SecurityResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub properties: ResponseProperties,
    #[serde(default)]
    pub application: ResponseApplication,
    #[serde(default)]
    pub playbook: Playbook,
}

/// What a playbook acted on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ResponseProperties {
    /// IPs or CIDR ranges, from `{"ip_cidr": …}` objects.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ips: Vec<Ip>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub user_identifiers: Vec<String>,
}

/// The application a playbook ran for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ResponseApplication {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
}

/// The playbook that ran.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Playbook {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A v2 incident. Its type is the envelope's `message_type`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Incident {
    #[serde(default)]
    pub incident_thread: Option<String>,
    #[serde(default)]
    pub incident_status: Option<String>,
    #[serde(default)]
    pub date_started: Option<String>,
    #[serde(default)]
    pub date_last_updated: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub new_related_ips: Vec<Ip>,
}

fn string_or_scalar<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
