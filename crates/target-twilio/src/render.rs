//! The text of the SMS sent for a notification.
//!
//! An SMS is read on a lock screen, often by someone woken up, and each segment is billed:
//! the text says what happened and where first (the headline), then the summary, then, if
//! they fit whole in the segments allowed, the most telling IP address and the Sqreen
//! dashboard link. Only the headline and summary are ever cut, after a word, with an
//! ellipsis; the extras are left out rather than cut, since half a link is no link.
//!
//! SMS has no markup, so payload text needs no escaping, but it does need cleaning: control
//! characters and invisible marks are removed (`text::one_line`), so that a payload cannot
//! add lines or reorder what the phone shows. Phones turn URLs and domain names into links,
//! and an SMS from the security relay is one people trust: links and domains in payload
//! text are defanged (`hxxps://evil[.]example`), so that the dashboard link is the only one
//! a person can tap. Typographic punctuation that would switch the whole message to UCS-2
//! (and from 160 characters to 70) is replaced by its GSM-7 look-alike.

use sqreen_webhook_core::View;
use sqreen_webhook_core::payload::Ip;
use sqreen_webhook_core::text::{is_invisible_mark, one_line, truncate};

use crate::segments::{fit, fits};

/// Every SMS starts with this: the person reading may not know the sending number.
const PREFIX: &str = "Sqreen: ";

/// The longest IP address or range worth showing: an IPv6 address with a prefix length.
const MAX_ADDRESS_CHARS: usize = 49;

/// Dashboard links longer than this are not Sqreen's and are left out.
const MAX_URL_CHARS: usize = 300;

/// The SMS text for a notification, in at most `max_segments` segments.
pub fn sms(view: &View, max_segments: usize) -> String {
    let essentials = gsm_lookalikes(&format!(
        "{PREFIX}{}\n{}",
        defang(&one_line(&view.headline())),
        defang(&one_line(&view.summary))
    ));
    let mut text = fit(&essentials, max_segments);
    if text != essentials {
        return text;
    }
    for extra in [ip_line(view), dashboard_url(view)].into_iter().flatten() {
        let candidate = format!("{text}\n{}", gsm_lookalikes(&extra));
        if fits(&candidate, max_segments) {
            text = candidate;
        }
    }
    text
}

/// `IP 1.2.3.4 (FRA, Tor) and 2 more`, for the IP most worth a look, or `None` when the
/// line would only repeat the summary.
fn ip_line(view: &View) -> Option<String> {
    let ip = top_ip(&view.ips)?;
    let address = truncate(&one_line(&ip.address), MAX_ADDRESS_CHARS).into_owned();
    if address.is_empty() {
        return None;
    }
    let mut details = Vec::new();
    if let Some(country) = ip
        .geo
        .as_ref()
        .and_then(|geo| country_code(geo.code.as_deref()?))
    {
        details.push(country);
    }
    if ip.is_tor == Some(true) {
        details.push("Tor".to_owned());
    }
    if details.is_empty() && view.summary.contains(&address) {
        return None;
    }
    let mut line = format!("IP {address}");
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    let others = view.ips.len() - 1;
    if others > 0 {
        line.push_str(&format!(" and {others} more"));
    }
    Some(line)
}

/// The IP Sqreen flagged as critical, else the first Tor exit node, else the first one.
fn top_ip(ips: &[Ip]) -> Option<&Ip> {
    ips.iter()
        .find(|ip| ip.critical == Some(true))
        .or_else(|| ips.iter().find(|ip| ip.is_tor == Some(true)))
        .or_else(|| ips.first())
}

/// An ISO 3166 country code, or `None` for anything that does not look like one: the
/// field comes with the payload, and a code has no reason to hold anything but letters.
fn country_code(code: &str) -> Option<String> {
    let code = code.trim();
    ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

/// The dashboard link, when it is a plain http(s) URL that a phone will make clickable.
fn dashboard_url(view: &View) -> Option<String> {
    let url = view.url.as_deref()?.trim();
    let usable = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= MAX_URL_CHARS
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_mark(c));
    usable.then(|| url.to_owned())
}

/// Makes the links and domain names of payload text unclickable: `http://` becomes
/// `hxxp://` and the dots of a domain name become `[.]`, the notation security people
/// already read. Dotted numbers (IP addresses, versions) are left alone.
fn defang(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut unschemed = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices("http") {
        let after = &lower[at + 4..];
        if at >= rest && (after.starts_with("://") || after.starts_with("s://")) {
            unschemed.push_str(&text[rest..at + 1]);
            unschemed.push_str("xx");
            rest = at + 3;
        }
    }
    unschemed.push_str(&text[rest..]);

    let is_host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut out = String::with_capacity(unschemed.len() + 16);
    let mut run = String::new();
    for c in unschemed.chars().chain(std::iter::once(' ')) {
        if is_host_char(c) {
            run.push(c);
            continue;
        }
        out.push_str(&defang_domain(&run));
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// `evil.example` becomes `evil[.]example`; a run of letters, digits, dots and dashes that
/// does not end in a label of letters, as a domain name does, is returned as it is.
fn defang_domain(run: &str) -> String {
    let name = run.trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let is_domain = labels.len() >= 2
        && labels.iter().all(|label| !label.is_empty())
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if is_domain {
        format!("{}{}", labels.join("[.]"), &run[name.len()..])
    } else {
        run.to_owned()
    }
}

/// Replaces punctuation outside GSM-7 with the GSM-7 character it looks like. Letters are
/// left alone: a name spelled differently is a different name.
fn gsm_lookalikes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{00B4}' | '`' => {
                out.push('\'');
            }
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
            | '\u{00BB}' => out.push('"'),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{2022}' | '\u{00B7}' => out.push('*'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::{Encoding, count};
    use sqreen_webhook_core::samples::{SAMPLES, sample};
    use sqreen_webhook_core::{Notification, parse};

    fn notifications(name: &str) -> Vec<Notification> {
        parse(sample(name).expect("a built-in sample").body.as_bytes()).expect("a sample parses")
    }

    fn first(name: &str) -> View {
        notifications(name)[0].view().clone()
    }

    fn element(json: &str) -> View {
        Notification::from_element(json)
            .expect("valid json")
            .view()
            .clone()
    }

    #[test]
    fn every_sample_fits_the_segments_allowed_and_starts_with_the_headline() {
        for sample in SAMPLES {
            for notification in parse(sample.body.as_bytes()).expect("a sample parses") {
                let view = notification.view();
                for max_segments in 1..=3 {
                    let text = sms(view, max_segments);

                    assert!(count(&text) <= max_segments, "{}: {text}", sample.name);
                    let headline_start: String = view.headline().chars().take(20).collect();
                    assert!(
                        text.starts_with(&format!("Sqreen: {headline_start}")),
                        "{}: {text}",
                        sample.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_security_event_shows_headline_summary_and_the_dashboard_link_in_two_segments() {
        let text = sms(&first("v1-security-event"), 2);

        assert_eq!(
            text,
            "Sqreen: high risk security event on sqreentest (development)\n\
             Potential Automated Vulnerability discovery from 127.0.0.1\n\
             https://my.sqreen.com/application/5dc3e2bade0bbd00883e6691/events/5dc3ea7706c8cd0013b6c15c"
        );
        assert_eq!(count(&text), 2);
    }

    #[test]
    fn in_one_segment_the_link_is_left_out_rather_than_cut() {
        let text = sms(&first("v1-security-event"), 1);

        assert_eq!(
            text,
            "Sqreen: high risk security event on sqreentest (development)\n\
             Potential Automated Vulnerability discovery from 127.0.0.1"
        );
    }

    #[test]
    fn the_ip_line_gives_country_and_tor_flag() {
        let text = sms(&first("v1-authentication-event"), 2);

        assert_eq!(
            text,
            "Sqreen: security event on Demo app (production)\n\
             Connection to jeff45@harrell[.]com from TOR (135.96.171.118)\n\
             IP 135.96.171.118 (ROU, Tor)\n\
             https://my.sqreen.com/application/d8b47501fad44fb28d09967e1f1b09a258d85f4ba5d44e759b886f9663e7cf01/events/587b234e4891d57c1bf5c8c9"
        );
    }

    #[test]
    fn an_ip_already_in_the_summary_with_nothing_to_add_is_not_repeated() {
        let text = sms(&first("v2-security-event"), 3);

        assert_eq!(text.matches("127.0.0.1").count(), 1, "{text}");
    }

    #[test]
    fn an_ip_with_a_country_is_shown_even_when_the_summary_names_it() {
        let text = sms(&first("v1-security-event-geo"), 2);

        assert!(text.contains("\nIP 5.51.199.63 (FRA)\n"), "{text}");
    }

    #[test]
    fn the_critical_ip_is_the_one_shown() {
        let view = element(
            r#"{"sqreen_payload_type": "security_event", "humanized_description": "scan",
                "ips": [{"address": "10.0.0.1"}, {"address": "10.0.0.2", "critical": true,
                "geo": {"code": "nld"}}, {"address": "10.0.0.3", "is_tor": true}]}"#,
        );

        let text = sms(&view, 1);

        assert!(text.ends_with("\nIP 10.0.0.2 (NLD) and 2 more"), "{text}");
    }

    #[test]
    fn a_test_notification_says_it_is_a_test() {
        let text = sms(&first("v2-test"), 2);

        assert_eq!(
            text,
            "Sqreen: test notification on AppToMonitor (development)\n\
             test notification (test / test_kind)\n\
             IP 42.42.42.42\n\
             http://test"
        );
    }

    #[test]
    fn a_pulse_gives_its_title_and_link() {
        let text = sms(&first("v1-pulse"), 2);

        assert_eq!(
            text,
            "Sqreen: pulse on APPLICATION (production)\n\
             Massive account takeover attempts on user@example[.]com\n\
             https://my.sqreen.com/application/5dd058775c3feb0021c0bb43/pulses/5dd5b454e56c7e0024169b4b"
        );
    }

    #[test]
    fn a_playbook_run_names_the_playbook_and_what_it_acted_on() {
        for name in ["v1-security-response", "v2-security-response-object"] {
            let text = sms(&first(name), 1);

            assert!(text.starts_with("Sqreen: playbook run on "), "{text}");
            assert!(
                text.ends_with(
                    "\nplaybook \"Test Playbook\" ran against 1 IP (127.0.0.1) and 1 user (sqreen@example[.]com)"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn an_incident_gives_its_type_status_and_new_ips() {
        let text = sms(&first("v2-incident"), 1);

        assert_eq!(
            text,
            "Sqreen: incident http scan on 5ede853e66ff200020ad47db\n\
             http scan incident created: 1 new IP (185.220.101.4)\n\
             IP 185.220.101.4 (DEU, Tor)"
        );
    }

    #[test]
    fn a_notification_of_an_unknown_type_says_its_type() {
        let view = element(
            r#"{"sqreen_payload_type": "quota_warning", "application_name": "shop", "environment": "production"}"#,
        );

        let text = sms(&view, 1);

        assert_eq!(
            text,
            "Sqreen: notification quota warning\n\
             notification of unknown type \"quota_warning\""
        );
    }

    #[test]
    fn every_security_event_of_a_body_is_rendered_on_its_own() {
        let texts: Vec<String> = notifications("v2-authentication-events")
            .iter()
            .map(|n| sms(n.view(), 2))
            .collect();

        assert!(texts.len() > 1);
        assert!(
            texts
                .iter()
                .all(|t| t.starts_with("Sqreen: security event on Demo app"))
        );
        assert_ne!(texts[0], texts[1]);
    }

    #[test]
    fn hostile_text_cannot_add_lines_or_hide_characters() {
        let text = sms(&first("hostile"), 3);

        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || is_invisible_mark(c)),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("Sqreen: critical risk security event on shop"),
            "{text}"
        );
        assert!(lines[1].starts_with("Login of <!channel>"), "{text}");
        assert!(
            lines[1].contains("\"admin\" X-Injected: yes [31m red gnp[.]exe from 1.2.3.4"),
            "{text}"
        );
        assert!(
            lines[1].contains("<hxxps://evil[.]example/phish|Reset your password>"),
            "{text}"
        );
        assert_eq!(
            text.matches("://").count(),
            2,
            "only the dashboard link is left: {text}"
        );
        assert!(!text.contains("Paris"), "the city is not shown: {text}");
        assert!(
            text.contains("\nIP 1.2.3.4 (Tor)"),
            "a country code with markup is dropped: {text}"
        );
        assert!(lines.len() <= 4, "{text}");
    }

    #[test]
    fn a_long_summary_is_cut_after_a_word_and_the_extras_are_left_out() {
        let view = element(&format!(
            r#"{{"sqreen_payload_type": "security_event", "application_name": "shop", "risk": 80,
                "humanized_description": "{}", "url": "https://my.sqreen.com/x",
                "ips": [{{"address": "1.2.3.4", "is_tor": true}}]}}"#,
            "SQL injection attempt ".repeat(30)
        ));

        let text = sms(&view, 2);

        assert!(text.starts_with("Sqreen: critical risk security event on shop\nSQL injection"));
        assert!(
            text.ends_with("attempt...") || text.ends_with("injection..."),
            "{text}"
        );
        assert_eq!(count(&text), 2);
        assert!(!text.contains("https://"), "{text}");
    }

    #[test]
    fn a_summary_outside_gsm7_is_sent_in_ucs2_and_cut_to_its_limits() {
        let view = element(&format!(
            r#"{{"sqreen_payload_type": "security_event", "application_name": "магазин",
                "humanized_description": "{}"}}"#,
            "попытка входа ".repeat(20)
        ));

        let text = sms(&view, 1);

        assert_eq!(Encoding::of(&text), Encoding::Ucs2);
        assert!(text.ends_with('…'), "{text}");
        assert!(text.encode_utf16().count() <= 70, "{text}");
    }

    #[test]
    fn typographic_punctuation_is_replaced_to_stay_in_gsm7() {
        let view = element(
            r#"{"sqreen_payload_type": "security_event", "application_name": "shop",
                "humanized_description": "“Admin” login — from ‘nowhere’…"}"#,
        );

        let text = sms(&view, 1);

        assert!(
            text.ends_with("\n\"Admin\" login - from 'nowhere'..."),
            "{text}"
        );
        assert_eq!(Encoding::of(&text), Encoding::Gsm7);
    }

    #[test]
    fn links_and_domain_names_in_payload_text_are_defanged_and_numbers_are_not() {
        let cases = [
            (
                "reset at https://evil.example/x now",
                "reset at hxxps://evil[.]example/x now",
            ),
            ("HTTP://Bank.Example.", "HxxP://Bank[.]Example."),
            (
                "login of admin@www.shop.co.uk",
                "login of admin@www[.]shop[.]co[.]uk",
            ),
            (
                "from 1.2.3.4 with curl/7.64.1",
                "from 1.2.3.4 with curl/7.64.1",
            ),
            ("e.g. a..b and http-client", "e.g. a..b and http-client"),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(defang(text), expected, "{text}");
        }
    }

    #[test]
    fn a_link_that_is_not_http_is_left_out() {
        let view = element(
            r#"{"sqreen_payload_type": "security_event", "humanized_description": "scan",
                "url": "javascript:alert(1)"}"#,
        );

        let text = sms(&view, 3);

        assert!(!text.contains("javascript"), "{text}");
    }
}
