//! The JSON document an HTTP target sends for one notification.
//!
//! A receiver gets both forms of the notification: the normalized view, the same for every
//! version and type, which is what most receivers want; and the element exactly as Sqreen
//! sent it, for fields the view does not carry. The element is embedded byte for byte, not
//! re-serialized, so that nothing Sqreen sent is lost or reordered:
//!
//! ```json
//! {"identity": "…", "headline": "…", "risk_level": "high", "notification": {…}, "element": {…}}
//! ```
//!
//! JSON escaping is the one escaping this medium needs; serde_json does it for every string
//! of the view. The element is valid JSON by construction (it was parsed from the body).

use serde::Serialize;
use serde_json::value::RawValue;
use sqreen_webhook_core::{Identity, Notification, View};

#[derive(Serialize)]
struct Document<'a> {
    /// Also the `Idempotency-Key` header: a receiver can deduplicate on either.
    identity: &'a Identity,
    /// One line for titles: `high risk security event on shop (production)`.
    headline: String,
    /// `low`, `medium`, `high` or `critical`, `null` when the notification has no risk.
    risk_level: Option<&'static str>,
    notification: &'a View,
    element: &'a RawValue,
}

impl<'a> Document<'a> {
    fn new(notification: &'a Notification) -> Document<'a> {
        let view = notification.view();
        Document {
            identity: notification.identity(),
            headline: view.headline(),
            risk_level: view.risk_level(),
            notification: view,
            element: notification.element(),
        }
    }
}

/// The request body for `notification`, on one line. These are the exact bytes that are
/// signed and sent.
pub fn body(notification: &Notification) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Document::new(notification))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde::Deserialize;
    use serde_json::Value;
    use sqreen_webhook_core::samples::{SAMPLES, sample};

    fn notifications(name: &str) -> Vec<Notification> {
        let sample = sample(name).unwrap();
        sqreen_webhook_core::parse(sample.body.as_bytes()).unwrap()
    }

    #[derive(Deserialize)]
    struct Received<'a> {
        #[serde(borrow)]
        element: &'a RawValue,
    }

    #[test]
    fn every_sample_carries_its_element_byte_for_byte() {
        for sample in SAMPLES {
            for notification in notifications(sample.name) {
                let body = body(&notification).unwrap();

                let received: Received<'_> = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    received.element.get(),
                    notification.element().get(),
                    "{}",
                    sample.name
                );
            }
        }
    }

    #[test]
    fn every_sample_carries_its_view_identity_and_headline() {
        for sample in SAMPLES {
            for notification in notifications(sample.name) {
                let view = notification.view();

                let json: Value = serde_json::from_slice(&body(&notification).unwrap()).unwrap();

                let name = sample.name;
                assert_eq!(json["identity"], notification.identity().as_str(), "{name}");
                assert_eq!(json["headline"], view.headline(), "{name}");
                assert_eq!(json["notification"]["kind"], view.kind.as_str(), "{name}");
                assert_eq!(json["notification"]["summary"], view.summary, "{name}");
                assert_eq!(json["notification"]["identity"], json["identity"], "{name}");
                match view.risk_level() {
                    Some(level) => assert_eq!(json["risk_level"], level, "{name}"),
                    None => assert!(json["risk_level"].is_null(), "{name}"),
                }
            }
        }
    }

    #[test]
    fn hostile_text_arrives_intact_and_escaped_for_json() {
        let notification = notifications("hostile").remove(0);
        let view = notification.view();

        let body = body(&notification).unwrap();

        // Control characters (terminal escapes, line breaks that would forge a log line)
        // only ever appear as JSON escapes.
        assert!(
            !body.iter().any(|&b| b < 0x20),
            "raw control character in the body"
        );
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["notification"]["application"]["name"],
            "shop <b>prod</b> & <!here>"
        );
        assert_eq!(json["notification"]["environment"], "production\u{202e}");
        assert_eq!(json["notification"]["summary"], view.summary);
        assert_eq!(
            json["element"]["humanized_description"]
                .as_str()
                .map(|d| d.contains("\r\nX-Injected: yes\u{1b}[31m")),
            Some(true)
        );
    }

    #[test]
    fn each_kind_of_notification_is_named_in_the_view() {
        let expected = [
            ("v1-security-event", "security_event"),
            ("v2-security-event", "security_event"),
            ("v2-test", "test"),
            ("v1-pulse", "pulse"),
            ("v1-security-response", "security_response"),
            ("v2-incident", "incident"),
        ];
        for (name, kind) in expected {
            let notification = notifications(name).remove(0);

            let json: Value = serde_json::from_slice(&body(&notification).unwrap()).unwrap();

            assert_eq!(json["notification"]["kind"], kind, "{name}");
        }
        let unknown =
            Notification::from_element(r#"{"message_type": "new_thing", "message": 3}"#).unwrap();
        let json: Value = serde_json::from_slice(&body(&unknown).unwrap()).unwrap();
        assert_eq!(json["notification"]["kind"], "unknown");
        assert_eq!(json["element"]["message"], 3);
    }

    /// The README shows a real body; this keeps it what the renderer produces.
    #[test]
    fn the_readme_example_is_what_a_security_event_renders_to() {
        let notification = notifications("v1-security-event").remove(0);

        let pretty = serde_json::to_string_pretty(&Document::new(&notification)).unwrap();

        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&pretty),
            "README.md should contain this example:\n{pretty}"
        );
    }
}
