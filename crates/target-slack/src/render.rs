//! Slack Block Kit messages for notifications.
//!
//! A message is a header that says what happened and how risky it is, the summary, a grid
//! of fields (application, environment, risk, category, when, IPs, accounts), a button to
//! the Sqreen dashboard and a context line with the notification's identity. Its plain
//! `text` is what Slack shows in desktop and phone notifications, and wherever blocks
//! cannot be displayed.
//!
//! Every payload value is attacker-controlled, and Slack reads `&`, `<` and `>` as markup
//! in text objects: `<!channel>` notifies a whole channel, `<@U…>` pings a person, and
//! `<https://evil.example|your bank>` shows a link under a false name. [`escape`] turns the
//! three characters into the entities Slack displays as the characters themselves, and
//! removes control characters and invisible marks. Texts are cut to Block Kit's limits
//! after escaping, never inside an entity: Slack refuses the whole message when one text is
//! a character too long, and a refused alert is a lost alert.

use std::fmt::Write as _;

use slack_morphism::prelude::{
    SlackActionsBlock, SlackBlock, SlackBlockButtonElement, SlackBlockMarkDownText,
    SlackBlockPlainTextOnly, SlackBlockText, SlackContextBlock, SlackHeaderBlock,
    SlackMessageContent, SlackSectionBlock,
};
use sqreen_webhook_core::payload::Ip;
use sqreen_webhook_core::text::one_line;
use sqreen_webhook_core::{Kind, View};
use url::Url;

/// Block Kit's limits, in characters: header text, section text, one field, button text,
/// fields per section and button URL.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const BUTTON_TEXT_MAX: usize = 75;
const FIELDS_MAX: usize = 10;
const URL_MAX: usize = 3000;

/// The top-level `text` may be longer, but Slack cuts what it shows in a notification
/// long before this.
const FALLBACK_MAX: usize = 3000;

/// One value in a field: an application name, an IP with its place, an account key.
const ITEM_MAX: usize = 200;

/// How many IPs or accounts a field lists before it says how many more there are.
const LIST_LEN: usize = 5;

/// The longest field label, with the `*…*` around it and the line break after it.
const LABEL_MAX: usize = 20;

// A field is a label and at most `LIST_LEN` items and an "and N more" line: it fits by
// construction, so no field needs cutting after it is built.
const _: () = assert!(LABEL_MAX + LIST_LEN * (ITEM_MAX + 1) + 40 <= FIELD_MAX);

const BUTTON_TEXT: &str = "Open in Sqreen";
const _: () = assert!(BUTTON_TEXT.len() <= BUTTON_TEXT_MAX);

/// The whole message: blocks and their plain-text fallback.
pub fn message(view: &View) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(fallback_text(view))
        .with_blocks(blocks(view))
}

/// The plain text Slack shows in notifications: the headline and the summary.
pub fn fallback_text(view: &View) -> String {
    let text = format!("{}: {}", capitalized(&view.headline()), view.summary);
    fit(&text, FALLBACK_MAX)
}

/// The Block Kit blocks: header, summary, fields, dashboard button, context.
pub fn blocks(view: &View) -> Vec<SlackBlock> {
    let mut blocks = vec![
        SlackHeaderBlock::new(SlackBlockPlainTextOnly::from(header_text(view))).into(),
        SlackSectionBlock::new()
            .with_text(mrkdwn(fit(&view.summary, SECTION_MAX)))
            .into(),
    ];
    let fields = fields(view);
    if !fields.is_empty() {
        blocks.push(SlackSectionBlock::new().with_fields(fields).into());
    }
    if let Some(button) = view.url.as_deref().and_then(dashboard_button) {
        blocks.push(button);
    }
    let context = format!("Sqreen {} · {}", view.type_name, view.identity);
    blocks
        .push(SlackContextBlock::new(vec![mrkdwn_text(fit(&context, SECTION_MAX)).into()]).into());
    blocks
}

/// Makes payload text safe in Slack text objects: one line, without control characters or
/// invisible marks, with `&`, `<` and `>` written as `&amp;`, `&lt;` and `&gt;`.
pub fn escape(text: &str) -> String {
    fit(text, usize::MAX)
}

/// Escapes text like [`escape`] and cuts it to `max` UTF-16 code units, ending with `…` when
/// cut. Slack does not say how it counts; code units are never fewer than characters, so a
/// text within this count is within Slack's.
fn fit(text: &str, max: usize) -> String {
    let clean = one_line(text);
    let mut out = String::with_capacity(clean.len());
    let mut used = 0;
    let total: usize = clean.chars().map(escaped_len).sum();
    let budget = if total <= max {
        usize::MAX
    } else {
        max.saturating_sub(1)
    };
    for c in clean.chars() {
        let len = escaped_len(c);
        if used + len > budget {
            out.truncate(out.trim_end().len());
            out.push('…');
            break;
        }
        used += len;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        c => c.len_utf16(),
    }
}

fn mrkdwn_text(text: String) -> SlackBlockMarkDownText {
    // Verbatim: Slack leaves bare URLs and channel names as they are instead of turning
    // them into links; only markup this module writes (dates) is parsed.
    SlackBlockMarkDownText::new(text).with_verbatim(true)
}

fn mrkdwn(text: String) -> SlackBlockText {
    mrkdwn_text(text).into()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn header_text(view: &View) -> String {
    let headline = capitalized(&view.headline());
    let marker = match (view.kind, view.risk_level()) {
        (Kind::SecurityEvent, Some("critical")) => "🔴 ",
        (Kind::SecurityEvent, Some("high")) => "🟠 ",
        (Kind::SecurityEvent, Some("medium")) => "🟡 ",
        (Kind::SecurityEvent, Some(_)) => "🔵 ",
        _ => "",
    };
    fit(&format!("{marker}{headline}"), HEADER_MAX)
}

/// Labels for the category and the event kind, which mean different things per kind.
fn labels(kind: Kind) -> (Option<&'static str>, &'static str) {
    match kind {
        Kind::Pulse => (Some("Genre"), "Category"),
        // The category of a playbook run is always "playbook": not worth a field.
        Kind::SecurityResponse => (None, "Playbook"),
        Kind::Incident => (Some("Status"), "Type"),
        Kind::SecurityEvent | Kind::Test | Kind::Unknown => (Some("Category"), "Kind"),
    }
}

fn fields(view: &View) -> Vec<SlackBlockText> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut value = |label: &'static str, value: Option<&str>| {
        if let Some(value) = value.map(|v| fit(v, ITEM_MAX)).filter(|v| !v.is_empty()) {
            fields.push((label, value));
        }
    };
    value("Application", view.application.display_name());
    value("Environment", view.environment.as_deref());
    let (category_label, kind_label) = labels(view.kind);
    if let Some(label) = category_label {
        value(label, view.category.as_deref());
    }
    value(kind_label, view.event_kind.as_deref());
    if view.kind == Kind::Unknown {
        value("Type", Some(&view.type_name));
    }
    if let (Some(risk), Some(level)) = (view.risk, view.risk_level()) {
        fields.push(("Risk", format!("{risk} ({level})")));
    }
    if let Some(when) = view.occurred_at.as_deref() {
        let shown = date_token(when).unwrap_or_else(|| fit(when, ITEM_MAX));
        if !shown.is_empty() {
            fields.push(("When", shown));
        }
    }
    let ips: Vec<String> = view
        .ips
        .iter()
        .map(ip_line)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(list) = list(&ips) {
        let label = match (view.kind, ips.len()) {
            (Kind::Incident, _) => "New IPs",
            (_, 1) => "IP",
            _ => "IPs",
        };
        fields.push((label, list));
    }
    let accounts: Vec<String> = view
        .accounts
        .iter()
        .map(|a| fit(a, ITEM_MAX))
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(list) = list(&accounts) {
        let label = match (view.kind, accounts.len()) {
            (Kind::SecurityResponse, 1) => "User",
            (Kind::SecurityResponse, _) => "Users",
            (_, 1) => "Account",
            _ => "Accounts",
        };
        fields.push((label, list));
    }
    fields.truncate(FIELDS_MAX);
    fields
        .into_iter()
        .map(|(label, value)| mrkdwn(format!("*{label}*\n{value}")))
        .collect()
}

/// `1.2.3.4 (host.example) · Paris, FRA · Tor`, escaped.
fn ip_line(ip: &Ip) -> String {
    let mut line = one_line(&ip.address);
    if let Some(host) = ip.hostname.as_deref().map(one_line)
        && !host.is_empty()
        && host != line
    {
        let _ = write!(line, " ({host})");
    }
    let place: Vec<String> = ip
        .geo
        .iter()
        .flat_map(|geo| [geo.city.as_deref(), geo.code.as_deref()])
        .flatten()
        .map(one_line)
        .filter(|part| !part.is_empty())
        .collect();
    if !place.is_empty() {
        let _ = write!(line, " · {}", place.join(", "));
    }
    if ip.is_tor == Some(true) {
        line.push_str(" · Tor");
    }
    fit(&line, ITEM_MAX)
}

/// Escaped items, one a line, the first [`LIST_LEN`] of them.
fn list(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut text = items[..items.len().min(LIST_LEN)].join("\n");
    if items.len() > LIST_LEN {
        let _ = write!(text, "\n_and {} more_", items.len() - LIST_LEN);
    }
    Some(text)
}

/// A button to the dashboard page, for an http or https URL only: anything else (a
/// `javascript:` URL, a relative path) is left out rather than offered to a click.
fn dashboard_button(url: &str) -> Option<SlackBlock> {
    let url = Url::parse(url.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.as_str().len() > URL_MAX
    {
        return None;
    }
    let button = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(BUTTON_TEXT))
        .with_action_id("open_in_sqreen".into())
        .with_url(url);
    Some(SlackActionsBlock::new(vec![button.into()]).into())
}

/// Slack's date markup for an ISO 8601 time (`2019-11-07T09:57:10.817+00:00`): each reader
/// sees it in their own time zone, and clients that cannot render it show the time as
/// sent. `None` for text that is not such a time, which is then shown escaped as it is.
fn date_token(text: &str) -> Option<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = bytes.get(from..to)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let separators_ok = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        rest = &fraction[end..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 || &rest[3..4] != ":" || hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let unix = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    let zone = if offset_minutes == 0 {
        "UTC".to_owned()
    } else {
        format!("UTC{rest}")
    };
    let fallback = format!("{} {} {zone}", &text[..10], &text[11..19]);
    Some(format!(
        "<!date^{unix}^{{date_short_pretty}} at {{time_secs}}|{fallback}>"
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date, counting years from March so that
/// the leap day ends a year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use sqreen_webhook_core::samples::SAMPLES;
    use sqreen_webhook_core::{Notification, parse};

    fn sample(name: &str) -> Vec<Notification> {
        let sample = sqreen_webhook_core::samples::sample(name).expect("sample exists");
        parse(sample.body.as_bytes()).expect("sample parses")
    }

    fn first(name: &str) -> Notification {
        sample(name).remove(0)
    }

    fn json_of(view: &View) -> Value {
        serde_json::to_value(message(view)).expect("message serializes")
    }

    /// Every `text` string in the message, with the JSON path it was found at.
    fn texts(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let here = format!("{path}.{key}");
                    match value {
                        Value::String(s) if key == "text" => out.push((here, s.clone())),
                        other => texts(other, &here, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    texts(item, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    fn all_texts(view: &View) -> Vec<(String, String)> {
        let mut out = Vec::new();
        texts(&json_of(view), "", &mut out);
        out
    }

    fn utf16(text: &str) -> usize {
        text.encode_utf16().count()
    }

    #[test]
    fn escape_writes_slack_control_characters_as_entities() {
        assert_eq!(
            escape("<!channel> & <@U024BE7LH> <https://evil.example|bank>"),
            "&lt;!channel&gt; &amp; &lt;@U024BE7LH&gt; &lt;https://evil.example|bank&gt;"
        );
    }

    #[test]
    fn escape_removes_control_characters_and_bidirectional_marks() {
        assert_eq!(
            escape("a\r\nb\u{1b}[31m \u{202e}gnp.exe\u{7}\u{200f}\u{0}"),
            "a b [31m gnp.exe"
        );
    }

    #[test]
    fn fit_never_cuts_inside_an_entity() {
        let cut = fit(&"a&".repeat(100), 12);
        assert_eq!(cut, "a&amp;a…");
        assert!(utf16(&cut) <= 12);
    }

    #[test]
    fn fit_keeps_text_that_fits_exactly() {
        assert_eq!(fit("<>", 8), "&lt;&gt;");
        assert_eq!(fit("<>", 7), "&lt;…");
    }

    #[test]
    fn hostile_text_leaves_no_mention_link_or_control_character() {
        let notification = first("hostile");

        let texts = all_texts(notification.view());

        let joined: String = texts.iter().map(|(_, t)| t.as_str()).collect();
        for forged in [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U024BE7LH>",
            "<https://",
        ] {
            assert!(!joined.contains(forged), "{forged} survived: {joined}");
        }
        assert!(joined.contains("&lt;!channel&gt;"));
        assert!(joined.contains("&lt;!here&gt;"));
        assert!(joined.contains("&lt;!everyone&gt;@evil.example"));
        assert!(joined.contains("&lt;https://evil.example/phish|Reset your password&gt;"));
        assert!(joined.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"admin\""));
        for (path, text) in &texts {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "control character at {path}: {text:?}"
            );
            assert!(
                !text
                    .chars()
                    .any(sqreen_webhook_core::text::is_invisible_mark),
                "invisible mark at {path}: {text:?}"
            );
            // The only markup left is the date this module writes.
            let without_date = text.replace("<!date^1573120630^", "");
            assert!(!without_date.contains('<'), "markup at {path}: {text:?}");
        }
    }

    #[test]
    fn hostile_ip_shows_its_place_and_tor_flag_escaped() {
        let notification = first("hostile");

        let texts = all_texts(notification.view());

        let ip = texts
            .iter()
            .find(|(_, t)| t.starts_with("*IP*"))
            .map(|(_, t)| t.clone())
            .expect("an IP field");
        assert_eq!(
            ip,
            "*IP*\n1.2.3.4 (&lt;https://evil.example|bank.example&gt; .evil) · Paris, &lt;b&gt;FRA&lt;/b&gt; · Tor"
        );
    }

    #[test]
    fn every_sample_stays_within_block_kit_limits() {
        for sample in SAMPLES {
            for notification in parse(sample.body.as_bytes()).expect("sample parses") {
                let value = json_of(notification.view());
                let blocks = value["blocks"].as_array().expect("blocks");
                let header = blocks[0]["text"]["text"].as_str().expect("header text");
                assert_eq!(blocks[0]["type"], "header", "{}", sample.name);
                assert_eq!(blocks[0]["text"]["type"], "plain_text", "{}", sample.name);
                assert!(!header.is_empty() && utf16(header) <= HEADER_MAX);
                for block in blocks {
                    if let Some(text) = block["text"]["text"].as_str() {
                        assert!(utf16(text) <= SECTION_MAX, "{}", sample.name);
                    }
                    if let Some(fields) = block["fields"].as_array() {
                        assert!(!fields.is_empty() && fields.len() <= FIELDS_MAX);
                        for field in fields {
                            let text = field["text"].as_str().expect("field text");
                            assert!(utf16(text) <= FIELD_MAX, "{}", sample.name);
                        }
                    }
                }
                let fallback = value["text"].as_str().expect("fallback text");
                assert!(!fallback.is_empty() && utf16(fallback) <= FALLBACK_MAX);
            }
        }
    }

    #[test]
    fn long_hostile_values_are_cut_to_the_limits_after_escaping() {
        let element = json!({
            "sqreen_payload_type": "security_event",
            "application_name": "<&>".repeat(400),
            "risk": 80,
            "humanized_description": "&".repeat(999),
            "application_account_account_keys":
                (0..40).map(|i| json!({"name": "email", "value": format!("{i}{}", "<".repeat(300))}))
                    .collect::<Vec<_>>(),
            "ips": (0..40).map(|i| json!({"address": format!("10.0.0.{i}"), "hostname": ">".repeat(500)}))
                .collect::<Vec<_>>(),
        });
        let notification = Notification::from_element(&element.to_string()).expect("parses");

        let value = json_of(notification.view());

        let blocks = value["blocks"].as_array().expect("blocks");
        assert!(utf16(blocks[0]["text"]["text"].as_str().expect("header")) <= HEADER_MAX);
        let summary = blocks[1]["text"]["text"].as_str().expect("summary");
        assert!(utf16(summary) <= SECTION_MAX && summary.ends_with("&amp;…"));
        for field in blocks[2]["fields"].as_array().expect("fields") {
            let text = field["text"].as_str().expect("field text");
            assert!(utf16(text) <= FIELD_MAX, "{text}");
        }
        assert!(value.to_string().contains("_and 35 more_"));
    }

    #[test]
    fn security_event_has_fields_a_button_and_a_fallback_text() {
        let notification = first("v1-security-event-geo");

        let value = json_of(notification.view());

        assert_eq!(
            value["text"],
            "High risk security event on crabshelter (development): Potential Automated \
             Vulnerability discovery from 5.51.199.63"
        );
        let blocks = value["blocks"].as_array().expect("blocks");
        assert_eq!(
            blocks[0]["text"]["text"],
            "🟠 High risk security event on crabshelter (development)"
        );
        let fields: Vec<&str> = blocks[2]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["text"].as_str().expect("text"))
            .collect();
        assert_eq!(
            fields,
            [
                "*Application*\ncrabshelter",
                "*Environment*\ndevelopment",
                "*Category*\nhttp_error",
                "*Kind*\nbot_scanning",
                "*Risk*\n50 (high)",
                "*When*\n<!date^1544368775^{date_short_pretty} at {time_secs}|2018-12-09 15:19:35 UTC>",
                "*IP*\n5.51.199.63 (static-5-51-199-63.ftth.abo.bbox.fr) · Paris, FRA",
            ]
        );
        assert_eq!(blocks[3]["type"], "actions");
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "https://my.sqreen.io/application/6cf7ade4d1854e5baf4c18adbd08e8e0accb47e93a7c4c648cd6049c9f31109c/events/5c0d328794a2e000081f9234"
        );
        assert_eq!(blocks[3]["elements"][0]["text"]["text"], "Open in Sqreen");
        assert_eq!(
            blocks[4]["elements"][0]["text"],
            "Sqreen security_event · security_event:5c0d328794a2e000081f9234"
        );
    }

    #[test]
    fn v2_security_event_renders_like_v1() {
        let notification = first("v2-security-event");

        let value = json_of(notification.view());

        let blocks = value["blocks"].as_array().expect("blocks");
        assert_eq!(
            blocks[0]["text"]["text"],
            "🟡 Medium risk security event on romain_test (development)"
        );
        assert_eq!(blocks[1]["text"]["text"], "Attack tentative from 127.0.0.1");
        assert_eq!(blocks[3]["elements"][0]["type"], "button");
    }

    #[test]
    fn test_notification_says_it_is_a_test() {
        let notification = first("v2-test");

        let value = json_of(notification.view());

        assert_eq!(
            value["blocks"][0]["text"]["text"],
            "Test notification on AppToMonitor (development)"
        );
        assert!(
            value["text"]
                .as_str()
                .expect("text")
                .starts_with("Test notification")
        );
    }

    #[test]
    fn pulse_shows_its_title_and_genre() {
        let notification = first("v1-pulse");

        let value = json_of(notification.view());

        assert_eq!(
            value["blocks"][0]["text"]["text"],
            "Pulse on APPLICATION (production)"
        );
        assert_eq!(
            value["blocks"][1]["text"]["text"],
            "Massive account takeover attempts on user@example.com"
        );
        let fields = value["blocks"][2]["fields"].to_string();
        assert!(fields.contains("*Genre*\\naccount_takeover"), "{fields}");
        assert!(fields.contains("*Account*\\nuser@example.com"), "{fields}");
    }

    #[test]
    fn playbook_run_names_the_playbook_and_its_targets() {
        let notification = first("v1-security-response");

        let value = json_of(notification.view());

        assert_eq!(
            value["blocks"][0]["text"]["text"],
            "Playbook run on APPLICATION (production)"
        );
        let fields = value["blocks"][2]["fields"].to_string();
        assert!(fields.contains("*Playbook*\\nTest Playbook"), "{fields}");
        assert!(fields.contains("*IP*\\n127.0.0.1"), "{fields}");
        assert!(fields.contains("*User*\\nsqreen@example.com"), "{fields}");
        assert!(!fields.contains("*Category*"), "{fields}");
    }

    #[test]
    fn incident_shows_its_status_and_new_ips_with_country_and_tor() {
        let notification = first("v2-incident");

        let value = json_of(notification.view());

        assert_eq!(
            value["blocks"][0]["text"]["text"],
            "Incident http scan on 5ede853e66ff200020ad47db"
        );
        let fields = value["blocks"][2]["fields"].to_string();
        assert!(fields.contains("*Status*\\ncreated"), "{fields}");
        assert!(fields.contains("*Type*\\nhttp_scan"), "{fields}");
        assert!(
            fields.contains("*New IPs*\\n185.220.101.4 (tor-exit.example.net) · Berlin, DEU · Tor"),
            "{fields}"
        );
    }

    #[test]
    fn unknown_type_is_rendered_generically_with_its_type() {
        let notification =
            Notification::from_element(r#"{"sqreen_payload_type": "brand_new", "x": 1}"#)
                .expect("parses");

        let value = json_of(notification.view());

        assert_eq!(value["blocks"][0]["text"]["text"], "Notification brand new");
        assert_eq!(
            value["blocks"][1]["text"]["text"],
            "notification of unknown type \"brand_new\""
        );
        assert_eq!(value["blocks"][2]["fields"][0]["text"], "*Type*\nbrand_new");
    }

    #[test]
    fn dashboard_button_is_only_for_http_urls() {
        for (url, shown) in [
            ("https://my.sqreen.com/x", true),
            ("http://test", true),
            ("javascript:alert(1)", false),
            ("/relative/path", false),
            ("file:///etc/passwd", false),
        ] {
            let element = json!({"sqreen_payload_type": "security_event", "url": url});
            let notification = Notification::from_element(&element.to_string()).expect("parses");

            let value = json_of(notification.view());

            let has_button = value["blocks"]
                .as_array()
                .expect("blocks")
                .iter()
                .any(|b| b["type"] == "actions");
            assert_eq!(has_button, shown, "{url}");
        }
    }

    #[test]
    fn readme_shows_what_the_renderer_writes() {
        let notification = first("v1-authentication-event");

        let rendered = serde_json::to_string_pretty(&message(notification.view()))
            .expect("message serializes");

        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&format!("```json\n{rendered}\n```")),
            "update the README's example with:\n{rendered}"
        );
    }

    #[test]
    fn dates_become_slack_date_markup_in_utc() {
        assert_eq!(
            date_token("2019-11-07T09:57:10.817000+00:00").as_deref(),
            Some("<!date^1573120630^{date_short_pretty} at {time_secs}|2019-11-07 09:57:10 UTC>")
        );
        assert_eq!(
            date_token("2019-11-07T10:57:10+01:00").as_deref(),
            Some(
                "<!date^1573120630^{date_short_pretty} at {time_secs}|2019-11-07 10:57:10 UTC+01:00>"
            )
        );
        assert_eq!(
            date_token("2000-02-29T00:00:00Z").as_deref(),
            Some("<!date^951782400^{date_short_pretty} at {time_secs}|2000-02-29 00:00:00 UTC>")
        );
    }

    #[test]
    fn text_that_is_not_a_date_is_shown_escaped() {
        for bad in [
            "yesterday",
            "2019-11-07",
            "2019-11-07T09:57:10",
            "2019-13-07T09:57:10Z",
        ] {
            assert_eq!(date_token(bad), None, "{bad}");
        }
        let element =
            json!({"sqreen_payload_type": "security_event", "date_occurred": "<!here> soon"});
        let notification = Notification::from_element(&element.to_string()).expect("parses");
        let fields = json_of(notification.view())["blocks"][2]["fields"].to_string();
        assert!(fields.contains("*When*\\n&lt;!here&gt; soon"), "{fields}");
    }
}
