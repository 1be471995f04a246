//! Signed webhook bodies as Sqreen sends them, each event with an id never sent before.
//!
//! The relay keeps every notification's identity for a day and does not store or deliver a
//! repeat, so a load that sent the same body again would measure the shortcut for
//! duplicates, not the work of a fresh alert. The elements are the captured security and
//! authentication events of the core's samples, byte for byte, with their event id (which
//! also appears in their dashboard URL) replaced by a fresh one. Ids are 24 hex digits,
//! like Sqreen's: a per-run prefix, then a counter, so that the sink can tell which request
//! carried the notification it receives.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{Secret, sign};

/// The samples whose elements make up the bodies: real captures of the events that arrive in
/// numbers during an attack.
const TEMPLATES: &[&str] = &[
    "v1-security-event",
    "v1-security-event-geo",
    "v1-authentication-event",
    "v2-security-event",
    "v1-security-event-compact",
    "v2-authentication-events",
];

/// One element, split around every occurrence of its event id.
#[derive(Debug)]
struct Template {
    parts: Vec<String>,
}

/// A body ready to post, and the counters of the events it carries.
#[derive(Debug, Clone)]
pub struct Signed {
    pub body: Bytes,
    pub signature: String,
    pub first: u64,
    pub events: u32,
}

/// Makes bodies of any size with ids that are never repeated within a run.
#[derive(Debug)]
pub struct Factory {
    templates: Vec<Template>,
    secret: Secret,
    prefix: u32,
    next: AtomicU64,
}

impl Factory {
    /// `prefix` goes in front of every id; a run picks one that no earlier run used.
    pub fn new(secret: Secret, prefix: u32) -> Result<Factory, String> {
        let mut templates = Vec::new();
        for name in TEMPLATES {
            let sample = sample(name).ok_or_else(|| format!("no sample named {name}"))?;
            let trimmed = sample.body.trim();
            let elements: Vec<&RawValue> = if trimmed.starts_with('[') {
                serde_json::from_str(trimmed).map_err(|e| format!("sample {name}: {e}"))?
            } else {
                vec![serde_json::from_str(trimmed).map_err(|e| format!("sample {name}: {e}"))?]
            };
            for element in elements {
                templates.push(Template::new(element.get()).map_err(|e| format!("{name}: {e}"))?);
            }
        }
        let factory = Factory {
            templates,
            secret,
            prefix,
            next: AtomicU64::new(0),
        };
        factory.check()?;
        Ok(factory)
    }

    /// The id of the event numbered `counter`.
    pub fn id(&self, counter: u64) -> String {
        format!("{:08x}{counter:016x}", self.prefix)
    }

    /// The counter in an identity such as `security_event:<id>`, if it is one of ours.
    pub fn counter_of(&self, identity: &str) -> Option<u64> {
        let id = identity.rsplit(':').next()?;
        let (prefix, counter) = (id.get(..8)?, id.get(8..)?);
        if u32::from_str_radix(prefix, 16).ok()? != self.prefix || counter.len() != 16 {
            return None;
        }
        u64::from_str_radix(counter, 16).ok()
    }

    /// A signed body of `events` fresh events.
    pub fn make(&self, events: usize) -> Signed {
        let first = self.next.fetch_add(events as u64, Ordering::Relaxed);
        let body = self.render(first, events);
        let signature = sign(&self.secret, body.as_bytes());
        Signed {
            body: Bytes::from(body),
            signature,
            first,
            events: events as u32,
        }
    }

    fn render(&self, first: u64, events: usize) -> String {
        let mut body = String::with_capacity(events * 800 + 2);
        body.push('[');
        for counter in first..first + events as u64 {
            if counter != first {
                body.push_str(", ");
            }
            let template = &self.templates[(counter % self.templates.len() as u64) as usize];
            template.write(&self.id(counter), &mut body);
        }
        body.push(']');
        body
    }

    /// Proves on every template that the relay will see the fresh id as the identity: a
    /// template whose id the relay took from elsewhere would turn the load into duplicates.
    fn check(&self) -> Result<(), String> {
        let count = self.templates.len() as u64;
        let base = u64::MAX / 2;
        let body = self.render(base, count as usize);
        let notifications = sqreen_webhook_core::parse(body.as_bytes())
            .map_err(|e| format!("a generated body does not parse: {e}"))?;
        for (offset, notification) in notifications.iter().enumerate() {
            let identity = notification.identity().as_str();
            if self.counter_of(identity) != Some(base + offset as u64) {
                return Err(format!(
                    "template {offset} gives the identity {identity}, not its fresh id"
                ));
            }
        }
        Ok(())
    }
}

impl Template {
    fn new(element: &str) -> Result<Template, String> {
        let value: Value = serde_json::from_str(element).map_err(|e| e.to_string())?;
        let id = event_id(&value).ok_or("the element has no event id")?;
        let parts: Vec<String> = element.split(id.as_str()).map(str::to_owned).collect();
        if parts.len() < 2 {
            return Err("the event id does not appear in the element's text".into());
        }
        Ok(Template { parts })
    }

    fn write(&self, id: &str, out: &mut String) {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_str(id);
            }
            out.push_str(part);
        }
    }
}

/// Where Sqreen puts the event id: `id` or `event_id` in v1, inside `message` in v2.
fn event_id(element: &Value) -> Option<String> {
    let payload = element.get("message").unwrap_or(element);
    ["event_id", "id"]
        .iter()
        .find_map(|key| payload.get(*key)?.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_of_a_batch_has_an_identity_never_seen_before() {
        let factory = Factory::new(Secret::new("s"), 0xabcd).unwrap();

        let first = factory.make(10);
        let second = factory.make(10);

        let mut seen = std::collections::HashSet::new();
        for signed in [&first, &second] {
            for notification in sqreen_webhook_core::parse(&signed.body).unwrap() {
                assert!(seen.insert(notification.identity().as_str().to_owned()));
            }
        }
        assert_eq!(seen.len(), 20);
        assert_eq!(second.first, 10);
    }

    #[test]
    fn the_sink_can_read_back_the_counter_of_an_identity() {
        let factory = Factory::new(Secret::new("s"), 7).unwrap();
        let identity = format!("security_event:{}", factory.id(42));

        assert_eq!(factory.counter_of(&identity), Some(42));
        assert_eq!(
            factory.counter_of("security_event:5dc3ea7706c8cd0013b6c15c"),
            None
        );
    }

    #[test]
    fn bodies_carry_a_signature_the_relay_accepts() {
        let factory = Factory::new(Secret::new("bench-secret"), 1).unwrap();
        let verifier = sqreen_webhook_core::Verifier::new([Secret::new("bench-secret")]).unwrap();

        let signed = factory.make(3);

        assert_eq!(
            verifier.verify(&signed.body, Some(signed.signature.as_bytes())),
            Ok(())
        );
    }
}
