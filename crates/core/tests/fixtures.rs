//! Every captured body parses, and its notifications say what the capture says, field by
//! field.

#![allow(clippy::unwrap_used)]

use sqreen_webhook_core::payload::{Ip, Payload};
use sqreen_webhook_core::samples::{SAMPLES, sample};
use sqreen_webhook_core::{Kind, Notification, ParseError, Version, parse};

fn notifications(name: &str) -> Vec<Notification> {
    let sample = sample(name).unwrap_or_else(|| panic!("no sample {name}"));
    parse(sample.body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn only(name: &str) -> Notification {
    let mut all = notifications(name);
    assert_eq!(all.len(), 1, "{name} has one notification");
    all.remove(0)
}

fn addresses(ips: &[Ip]) -> Vec<&str> {
    ips.iter().map(|ip| ip.address.as_str()).collect()
}

#[test]
fn every_sample_parses_into_notifications_with_a_summary_and_an_identity() {
    for sample in SAMPLES {
        let all = parse(sample.body.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", sample.name));
        assert!(!all.is_empty(), "{}", sample.name);
        for n in all {
            assert!(!n.view().summary.is_empty(), "{}", sample.name);
            assert!(!n.identity().as_str().is_empty(), "{}", sample.name);
            assert_ne!(n.kind(), Kind::Unknown, "{}", sample.name);
        }
    }
}

#[test]
fn v1_security_event() {
    let n = only("v1-security-event");
    let v = n.view();
    assert_eq!(v.kind, Kind::SecurityEvent);
    assert_eq!(v.version, Version::V1);
    assert_eq!(v.type_name, "security_event");
    assert_eq!(
        v.application.id.as_deref(),
        Some("5dc3e2bade0bbd00883e6691")
    );
    assert_eq!(v.application.name.as_deref(), Some("sqreentest"));
    assert_eq!(v.environment.as_deref(), Some("development"));
    assert_eq!(v.risk, Some(50));
    assert_eq!(v.category.as_deref(), Some("http_error"));
    assert_eq!(v.event_kind.as_deref(), Some("bot_scanning"));
    assert_eq!(
        v.summary,
        "Potential Automated Vulnerability discovery from 127.0.0.1"
    );
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2019-11-07T09:57:10.817000+00:00")
    );
    assert_eq!(
        v.url.as_deref(),
        Some(
            "https://my.sqreen.com/application/5dc3e2bade0bbd00883e6691/events/5dc3ea7706c8cd0013b6c15c"
        )
    );
    assert_eq!(addresses(&v.ips), ["127.0.0.1"]);
    assert_eq!(v.ips[0].is_tor, Some(false));
    assert_eq!(v.ips[0].geo.as_ref().map(|g| g.code.is_none()), Some(true));
    assert_eq!(
        n.identity().as_str(),
        "security_event:5dc3ea7706c8cd0013b6c15c"
    );
    assert!(n.envelope().is_none());
    assert!(
        matches!(n.payload(), Payload::SecurityEvent(e) if e.id.as_deref() == Some("5dc3ea7706c8cd0013b6c15c"))
    );
}

#[test]
fn v1_security_event_in_compact_json() {
    let v = only("v1-security-event-compact").view().clone();
    assert_eq!(v.kind, Kind::SecurityEvent);
    assert_eq!(v.application.name.as_deref(), Some("sqreened_application"));
    assert_eq!(
        v.application.id.as_deref(),
        Some("5b2229397f4c18001bd6c62c")
    );
    assert_eq!(v.environment.as_deref(), Some("development"));
    assert_eq!(v.risk, Some(50));
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2018-06-17T19:12:53.862000+00:00")
    );
    assert_eq!(
        v.identity.as_str(),
        "security_event:5b26b2b6d1d76b0007c10858"
    );
    assert!(
        v.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://my.sqreen.io/application/38cc"))
    );
}

#[test]
fn v1_security_event_with_geolocation_and_hostname() {
    let v = only("v1-security-event-geo").view().clone();
    assert_eq!(v.application.name.as_deref(), Some("crabshelter"));
    assert_eq!(addresses(&v.ips), ["5.51.199.63"]);
    let ip = &v.ips[0];
    assert_eq!(
        ip.hostname.as_deref(),
        Some("static-5-51-199-63.ftth.abo.bbox.fr")
    );
    let geo = ip.geo.as_ref().unwrap();
    assert_eq!(geo.code.as_deref(), Some("FRA"));
    assert_eq!(geo.city.as_deref(), Some("Paris"));
    assert_eq!(geo.point, Some([2.3003, 48.8412]));
    assert_eq!(ip.is_tor, Some(false));
    assert_eq!(
        v.identity.as_str(),
        "security_event:5c0d328794a2e000081f9234"
    );
}

#[test]
fn v1_security_event_sent_as_a_single_object() {
    let n = only("v1-security-event-object");
    assert_eq!(n.kind(), Kind::SecurityEvent);
    assert_eq!(
        n.identity().as_str(),
        "security_event:5dc4648e2b9b39001387a5ac"
    );
    assert_eq!(
        n.view().occurred_at.as_deref(),
        Some("2019-11-07T18:38:04.948000+00:00")
    );
}

#[test]
fn v1_authentication_event_has_accounts_and_a_tor_ip_but_no_risk() {
    let v = only("v1-authentication-event").view().clone();
    assert_eq!(v.kind, Kind::SecurityEvent);
    assert_eq!(v.category.as_deref(), Some("authentication"));
    assert_eq!(v.event_kind.as_deref(), Some("auth_tor_tentative"));
    assert_eq!(v.risk, None);
    assert_eq!(v.accounts, ["jeff45@harrell.com"]);
    assert_eq!(
        v.summary,
        "Connection to jeff45@harrell.com from TOR (135.96.171.118)"
    );
    assert_eq!(v.ips[0].is_tor, Some(true));
    assert_eq!(
        v.ips[0].geo.as_ref().and_then(|g| g.code.as_deref()),
        Some("ROU")
    );
    assert_eq!(
        v.identity.as_str(),
        "security_event:587b234e4891d57c1bf5c8c9"
    );
}

#[test]
fn v1_pulse() {
    let n = only("v1-pulse");
    let v = n.view();
    assert_eq!(v.kind, Kind::Pulse);
    assert_eq!(v.application.name.as_deref(), Some("APPLICATION"));
    assert_eq!(v.environment.as_deref(), Some("production"));
    assert_eq!(
        v.summary,
        "Massive account takeover attempts on user@example.com"
    );
    assert_eq!(v.category.as_deref(), Some("account_takeover"));
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2019-11-20T21:47:00.090825+00:00")
    );
    assert_eq!(v.identity.as_str(), "pulse:5dd5b454e56c7e0024169b4b");
    let Payload::Pulse(pulse) = n.payload() else {
        panic!("not a pulse")
    };
    assert_eq!(pulse.blocked, Some(true));
    assert_eq!(pulse.pulse_category, None);
    assert_eq!(pulse.date_ended, None);
    assert_eq!(pulse.humanized_geos.as_deref(), Some("Paris, France"));
    assert_eq!(pulse.incidents_count, Some(0));
}

#[test]
fn v1_security_response_without_an_id_is_identified_by_its_content() {
    let n = only("v1-security-response");
    let v = n.view();
    assert_eq!(v.kind, Kind::SecurityResponse);
    assert_eq!(
        v.application.id.as_deref(),
        Some("5dd058775c3feb0021c0bb43")
    );
    assert_eq!(v.application.name.as_deref(), Some("APPLICATION"));
    assert_eq!(v.environment.as_deref(), Some("production"));
    assert_eq!(v.event_kind.as_deref(), Some("Test Playbook"));
    assert_eq!(
        v.summary,
        "playbook \"Test Playbook\" ran against 1 IP (127.0.0.1) and 1 user (sqreen@example.com)"
    );
    assert_eq!(addresses(&v.ips), ["127.0.0.1"]);
    assert_eq!(v.accounts, ["sqreen@example.com"]);
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2019-11-20T21:47:00.097178+00:00")
    );
    assert!(v.identity.as_str().starts_with("sha256:"));
    assert_eq!(v.identity.as_str().len(), "sha256:".len() + 64);
}

#[test]
fn v1_test_object_falls_back_to_type_category_and_kind_for_its_summary() {
    let v = only("v1-test-object").view().clone();
    assert_eq!(v.kind, Kind::Test);
    assert_eq!(v.application.id, None);
    assert_eq!(v.application.name.as_deref(), Some("sqreentest"));
    assert_eq!(v.risk, Some(42));
    assert_eq!(v.summary, "test notification (test / test_kind)");
    assert_eq!(addresses(&v.ips), ["42.42.42.42"]);
    assert_eq!(v.ips[0].is_tor, None);
    assert_eq!(v.identity.as_str(), "test:4d64e9323c5b68ec75c95892cbf3fd2b");
}

#[test]
fn v2_security_event_uses_the_renamed_fields() {
    let n = only("v2-security-event");
    let v = n.view();
    assert_eq!(v.kind, Kind::SecurityEvent);
    assert_eq!(v.version, Version::V2);
    assert_eq!(v.risk, Some(25));
    assert_eq!(v.event_kind.as_deref(), Some("waf"));
    assert_eq!(v.summary, "Attack tentative from 127.0.0.1");
    assert_eq!(
        v.url.as_deref(),
        Some(
            "https://my.sqreen.com/application/5ede853e66ff200020ad47db/events/5ede864a699b1000110a9d81"
        )
    );
    assert_eq!(
        v.identity.as_str(),
        "security_event:5ede864a699b1000110a9d81"
    );
    let envelope = n.envelope().unwrap();
    assert_eq!(envelope.message_id, None);
    assert_eq!(envelope.api_version.as_deref(), Some("2"));
    assert_eq!(envelope.retry_count, Some(0));
    assert_eq!(
        envelope.date_created.as_deref(),
        Some("2020-06-08T19:30:16.039128+00:00")
    );
}

#[test]
fn v2_authentication_events_are_two_notifications_even_without_api_version() {
    let all = notifications("v2-authentication-events");
    assert_eq!(all.len(), 2);
    let (first, second) = (all[0].view(), all[1].view());
    assert_eq!(first.event_kind.as_deref(), Some("auth_tor_tentative"));
    assert_eq!(
        first.identity.as_str(),
        "security_event:587b234e4891d57c1bf5c8c9"
    );
    assert_eq!(
        all[0].envelope().unwrap().message_id.as_deref(),
        Some("5de50f9bf681244a8cbf68f5")
    );
    assert_eq!(second.version, Version::V2);
    assert_eq!(second.event_kind.as_deref(), Some("auth_new_location"));
    assert_eq!(
        second.summary,
        "Connection to tsanchez@yahoo.com from Sag, Romania"
    );
    assert_eq!(
        second.identity.as_str(),
        "security_event:587b234b4891d57c1bf5c766"
    );
    assert_eq!(all[1].envelope().unwrap().api_version, None);
    assert_eq!(all[1].envelope().unwrap().retry_count, Some(1));
    assert_eq!(addresses(&second.ips), ["84.185.129.221"]);
}

#[test]
fn v2_security_response_sent_as_a_single_object() {
    let v = only("v2-security-response-object").view().clone();
    assert_eq!(v.kind, Kind::SecurityResponse);
    assert_eq!(v.application.name.as_deref(), Some("interview_backend"));
    assert_eq!(v.environment.as_deref(), Some("development"));
    // v2 puts the date on the envelope only.
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2020-07-17T22:33:26.287038+00:00")
    );
    assert!(v.identity.as_str().starts_with("sha256:"));
}

#[test]
fn v2_test_keeps_the_v1_field_names() {
    let v = only("v2-test").view().clone();
    assert_eq!(v.kind, Kind::Test);
    assert_eq!(v.application.name.as_deref(), Some("AppToMonitor"));
    assert_eq!(v.risk, Some(42));
    assert_eq!(v.summary, "test notification (test / test_kind)");
    assert_eq!(v.identity.as_str(), "test:33f60cb8a0c07344014826bc1683d84f");
}

#[test]
fn v2_incident_is_named_by_its_message_type() {
    let n = only("v2-incident");
    let v = n.view();
    assert_eq!(v.kind, Kind::Incident);
    assert_eq!(v.type_name, "http_scan");
    assert_eq!(
        v.application.id.as_deref(),
        Some("5ede853e66ff200020ad47db")
    );
    assert_eq!(v.application.name, None);
    assert_eq!(v.environment, None);
    assert_eq!(v.category.as_deref(), Some("created"));
    assert_eq!(
        v.summary,
        "http scan incident created: 1 new IP (185.220.101.4)"
    );
    assert_eq!(
        v.occurred_at.as_deref(),
        Some("2020-09-14T10:01:57.930000+00:00")
    );
    assert_eq!(v.ips[0].datacenter, Some(true));
    assert_eq!(v.ips[0].is_tor, Some(true));
    assert!(v.identity.as_str().starts_with("sha256:"));
}

#[test]
fn hostile_text_reaches_the_summary_as_one_line_without_invisible_marks() {
    let v = only("hostile").view().clone();
    assert!(!v.summary.chars().any(|c| c.is_control()));
    assert!(!v.summary.contains('\u{202e}'));
    assert!(
        v.summary.contains("<!channel>"),
        "markup is left for each target to escape"
    );
}

#[test]
fn unknown_types_and_non_object_elements_are_kept_as_unknown_notifications() {
    let body = br#"[{"sqreen_payload_type": "brand_new", "x": 1},
                    {"message_type": "security_event", "message": 7},
                    42,
                    {"no_type": true}]"#;
    let all = parse(body).unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|n| n.kind() == Kind::Unknown));
    assert_eq!(all[0].view().type_name, "brand_new");
    assert_eq!(
        all[0].view().summary,
        "notification of unknown type \"brand_new\""
    );
    assert!(matches!(all[0].payload(), Payload::Unknown(v) if v["x"] == 1));
    assert_eq!(all[2].element().get(), "42");
}

#[test]
fn extra_fields_are_kept_in_the_element() {
    let body = br#"[{"sqreen_payload_type":"security_event","id":"abc","new_field":{"a":[1,2]}}]"#;
    let n = &parse(body).unwrap()[0];
    assert_eq!(n.kind(), Kind::SecurityEvent);
    let element: serde_json::Value = serde_json::from_str(n.element().get()).unwrap();
    assert_eq!(element["new_field"]["a"][1], 2);
}

#[test]
fn spans_point_at_each_element_in_the_body() {
    let body = notifications_body("v2-authentication-events");
    for n in parse(body.as_bytes()).unwrap() {
        assert_eq!(&body[n.span()], n.element().get());
    }
}

fn notifications_body(name: &str) -> &'static str {
    sample(name).unwrap().body
}

#[test]
fn a_resent_element_has_the_same_identity_whatever_its_retry_count_or_key_order() {
    let first =
        br#"[{"message_type":"http_scan","retry_count":0,"message":{"a":1,"b":{"c":2,"d":3}}}]"#;
    let again =
        br#"[{"retry_count":3,"message":{"b":{"d":3,"c":2},"a":1},"message_type":"http_scan"}]"#;
    let other =
        br#"[{"message_type":"http_scan","retry_count":0,"message":{"a":2,"b":{"c":2,"d":3}}}]"#;
    let id = |body: &[u8]| parse(body).unwrap()[0].identity().clone();
    assert_eq!(id(first), id(again));
    assert_ne!(id(first), id(other));
}

#[test]
fn an_id_with_unsafe_characters_is_hashed_instead() {
    let body = br#"[{"sqreen_payload_type":"security_event","id":"a b\r\nX-Evil: 1"}]"#;
    let n = &parse(body).unwrap()[0];
    assert!(n.identity().as_str().starts_with("sha256:"));
}

#[test]
fn an_empty_array_has_no_notifications() {
    assert!(parse(b" [ ] ").unwrap().is_empty());
}

#[test]
fn bodies_that_are_not_json_arrays_or_objects_are_errors() {
    assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
    assert!(matches!(parse(b"[{\"a\":"), Err(ParseError::NotJson(_))));
    assert!(matches!(parse(b"\xff\xfe"), Err(ParseError::NotJson(_))));
    assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
    assert!(matches!(
        parse(b"\"text\""),
        Err(ParseError::NotArrayOrObject)
    ));
    assert!(matches!(parse(b"12"), Err(ParseError::NotArrayOrObject)));
}

#[test]
fn a_field_of_an_unexpected_type_keeps_the_notification_as_unknown() {
    let body = br#"[{"sqreen_payload_type":"security_event","id":"abc","ips":"not a list"}]"#;
    let n = &parse(body).unwrap()[0];
    assert_eq!(n.kind(), Kind::Unknown);
    assert_eq!(n.view().type_name, "security_event");
}

#[test]
fn headlines_say_what_happened_and_where() {
    let headline = |name: &str| notifications(name)[0].view().headline();
    assert_eq!(
        headline("v1-security-event"),
        "high risk security event on sqreentest (development)"
    );
    assert_eq!(
        headline("v2-security-event"),
        "medium risk security event on romain_test (development)"
    );
    assert_eq!(
        headline("v1-authentication-event"),
        "security event on Demo app (production)"
    );
    assert_eq!(
        headline("v2-test"),
        "test notification on AppToMonitor (development)"
    );
    assert_eq!(headline("v1-pulse"), "pulse on APPLICATION (production)");
    assert_eq!(
        headline("v1-security-response"),
        "playbook run on APPLICATION (production)"
    );
    assert_eq!(
        headline("v2-incident"),
        "incident http scan on 5ede853e66ff200020ad47db"
    );
}
