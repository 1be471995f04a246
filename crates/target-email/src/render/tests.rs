//! The renderer on the core's samples, the hostile one above all.

use sqreen_webhook_core::samples::{SAMPLES, sample};
use sqreen_webhook_core::text::is_invisible_mark;
use sqreen_webhook_core::{Notification, parse};

use super::{Email, readable_time, render};

fn first(name: &str) -> Notification {
    let body = sample(name)
        .map(|s| s.body)
        .unwrap_or_else(|| panic!("no sample {name}"));
    parse(body.as_bytes()).unwrap().remove(0)
}

fn email(name: &str) -> Email {
    render(first(name).view(), "[Sqreen]")
}

fn element(json: &str) -> Email {
    render(Notification::from_element(json).unwrap().view(), "[Sqreen]")
}

#[test]
fn the_subject_says_what_happened_and_where() {
    assert_eq!(
        email("v1-security-event").subject,
        "[Sqreen] high risk security event on sqreentest (development)"
    );
    assert_eq!(
        email("v1-security-response").subject,
        "[Sqreen] playbook run on APPLICATION (production)"
    );
    assert_eq!(
        render(first("v2-test").view(), "").subject,
        "test notification on AppToMonitor (development)"
    );
}

#[test]
fn every_sample_shows_its_summary_and_facts_in_both_parts() {
    for s in SAMPLES {
        for notification in parse(s.body.as_bytes()).unwrap() {
            let view = notification.view();
            let email = render(view, "[Sqreen]");
            assert!(email.subject.starts_with("[Sqreen] "), "{}", s.name);
            assert!(
                email.text.contains(&view.summary),
                "{}: {}",
                s.name,
                email.text
            );
            assert!(email.html.starts_with("<!DOCTYPE html>"), "{}", s.name);
            assert!(email.html.ends_with("</html>\n"), "{}", s.name);
            assert!(email.text.contains(view.identity.as_str()), "{}", s.name);
            if let Some(app) = view
                .application
                .display_name()
                .filter(|_| s.name != "hostile")
            {
                assert!(email.text.contains(app), "{}", s.name);
                assert!(email.html.contains(app), "{}", s.name);
            }
        }
    }
}

#[test]
fn a_geolocated_event_lists_its_ip_with_place_and_host() {
    let email = email("v1-security-event-geo");

    assert!(
        email
            .text
            .contains("  - 5.51.199.63 (Paris, FRA; host static-5-51-199-63.ftth.abo.bbox.fr)")
    );
    assert!(
        email.text.contains("Risk:         50 (high)"),
        "{}",
        email.text
    );
    assert!(
        email
            .text
            .contains("Category:     http_error / bot_scanning")
    );
    assert!(email.text.contains("When:         2018-12-09 15:19:35 UTC"));
    assert!(
        email
            .html
            .contains("<li><code>5.51.199.63</code> (Paris, FRA; host ")
    );
    assert!(email.html.contains(
        "<a href=\"https://my.sqreen.io/application/6cf7ade4d1854e5baf4c18adbd08e8e0accb47e93a7c4c648cd6049c9f31109c/events/5c0d328794a2e000081f9234\""
    ));
}

#[test]
fn playbooks_incidents_and_unknown_types_show_what_they_are() {
    let playbook = email("v1-security-response");
    let incident = email("v2-incident");
    let unknown = element(r#"{"sqreen_payload_type": "brand_new", "x": 1}"#);

    assert!(
        playbook.text.contains("Playbook:     Test Playbook"),
        "{}",
        playbook.text
    );
    assert!(playbook.text.contains("  - sqreen@example.com"));
    assert!(
        incident.text.contains("Status:       created"),
        "{}",
        incident.text
    );
    assert!(incident.text.contains(
        "185.220.101.4 (Berlin, DEU; Tor exit node; data centre; host tor-exit.example.net)"
    ));
    assert_eq!(unknown.subject, "[Sqreen] notification brand new");
    assert!(
        unknown.text.contains("Type:         brand_new"),
        "{}",
        unknown.text
    );
}

#[test]
fn html_escapes_every_hostile_value() {
    let html = email("hostile").html;

    for raw in [
        "<script>",
        "<b>",
        "<!here>",
        "<!channel>",
        "<@U024BE7LH>",
        "<https://evil",
        "\"admin\"",
        "'x'",
    ] {
        assert!(!html.contains(raw), "{raw} left raw in {html}");
    }
    for escaped in [
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        "shop &lt;b&gt;prod&lt;/b&gt; &amp; &lt;!here&gt;",
        "&quot;admin&quot;",
        "&lt;!everyone&gt;@evil.example",
        "&lt;https://evil.example|bank.example&gt; .evil",
        "&lt;b&gt;FRA&lt;/b&gt;",
    ] {
        assert!(html.contains(escaped), "{escaped} missing from {html}");
    }
    assert!(
        !html
            .chars()
            .any(|c| is_invisible_mark(c) || (c.is_control() && c != '\n'))
    );
}

#[test]
fn plain_text_and_subject_carry_no_control_characters_or_bidirectional_marks() {
    let email = email("hostile");

    let unsafe_char = |c: char| is_invisible_mark(c) || (c.is_control() && c != '\n');
    assert!(!email.text.chars().any(unsafe_char), "{:?}", email.text);
    assert!(
        !email
            .subject
            .chars()
            .any(|c| c.is_control() || is_invisible_mark(c))
    );
    assert_eq!(
        email.subject,
        "[Sqreen] critical risk security event on shop <b>prod</b> & <!here> (production)"
    );
    assert!(
        email
            .text
            .contains("\"admin\" X-Injected: yes [31m red gnp.exe from 1.2.3.4")
    );
    assert!(email.text.contains("Paris, <b>FRA</b>; Tor exit node"));
}

#[test]
fn only_web_urls_become_links_and_they_are_escaped() {
    let script = element(
        r#"{"sqreen_payload_type": "security_event", "url": "javascript:alert(1)", "risk": 10}"#,
    );
    let quoted = element(
        r#"{"sqreen_payload_type": "security_event", "url": "https://my.sqreen.com/a?b=\"><script>"}"#,
    );

    assert!(!script.html.contains("<a "));
    assert!(!script.text.contains("javascript:"));
    assert!(
        quoted
            .html
            .contains("<a href=\"https://my.sqreen.com/a?b=&quot;&gt;&lt;script&gt;\"")
    );
    assert!(
        quoted
            .text
            .contains("Open in Sqreen: https://my.sqreen.com/a?b=\"><script>")
    );
}

#[test]
fn utc_timestamps_are_shown_plainly_and_others_as_sent() {
    assert_eq!(
        readable_time("2019-11-07T09:57:10.817000+00:00"),
        "2019-11-07 09:57:10 UTC"
    );
    assert_eq!(
        readable_time("2019-11-07T09:57:10Z"),
        "2019-11-07 09:57:10 UTC"
    );
    assert_eq!(
        readable_time("2019-11-07T09:57:10+02:00"),
        "2019-11-07T09:57:10+02:00"
    );
    assert_eq!(readable_time("yesterday"), "yesterday");
}
