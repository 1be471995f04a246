//! What an email says about a notification: a subject, a plain-text part and an HTML part,
//! made from the core's [`View`].
//!
//! Both parts show the same facts, gathered once here as one-line text: every payload
//! value goes through [`one_line`], which removes line breaks, control characters and the
//! bidirectional marks that disguise text. The HTML part then escapes each value, so that
//! markup an attacker typed into a payload is shown, never interpreted. The subject is
//! made of one-line text too, so a payload cannot add headers to the message.

mod html;
mod plain;

use sqreen_webhook_core::payload::Ip;
use sqreen_webhook_core::text::one_line;
use sqreen_webhook_core::{Kind, View};

/// The rendered parts of one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders a notification's view, with `subject_prefix` (such as `[Sqreen]`) before the
/// subject.
pub fn render(view: &View, subject_prefix: &str) -> Email {
    let content = Content::of(view);
    Email {
        subject: subject(view, subject_prefix),
        text: plain::render(&content),
        html: html::render(&content),
    }
}

/// `[Sqreen] high risk security event on my-app (production)`.
pub fn subject(view: &View, prefix: &str) -> String {
    let prefix = one_line(prefix);
    let headline = view.headline();
    if prefix.is_empty() {
        headline
    } else {
        format!("{prefix} {headline}")
    }
}

/// Everything an email shows, as one-line plain text, in the order it is shown.
struct Content {
    headline: String,
    summary: String,
    facts: Vec<(&'static str, String)>,
    risk_level: Option<&'static str>,
    ips: Vec<IpLine>,
    accounts: Vec<String>,
    /// Only `http` and `https` URLs, the only ones worth a link.
    dashboard_url: Option<String>,
    identity: String,
}

/// An IP address and what Sqreen knew of it.
struct IpLine {
    address: String,
    details: Vec<String>,
}

impl Content {
    fn of(view: &View) -> Content {
        Content {
            headline: view.headline(),
            summary: one_line(&view.summary),
            facts: facts(view),
            risk_level: view.risk_level(),
            ips: view.ips.iter().map(IpLine::of).collect(),
            accounts: view
                .accounts
                .iter()
                .map(|account| one_line(account))
                .filter(|account| !account.is_empty())
                .collect(),
            dashboard_url: view.url.as_deref().and_then(web_url),
            identity: view.identity.as_str().to_owned(),
        }
    }
}

fn facts(view: &View) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    let mut add = |label: &'static str, value: Option<String>| {
        if let Some(value) = value.map(|v| one_line(&v)).filter(|v| !v.is_empty()) {
            facts.push((label, value));
        }
    };
    let app = &view.application;
    add(
        "Application",
        match (&app.name, &app.id) {
            (Some(name), Some(id)) if name != id => Some(format!("{name} ({id})")),
            (name, id) => name.clone().or(id.clone()),
        },
    );
    add("Environment", view.environment.clone());
    add(
        "Risk",
        view.risk.map(|risk| match view.risk_level() {
            Some(level) => format!("{risk} ({level})"),
            None => risk.to_string(),
        }),
    );
    match view.kind {
        Kind::SecurityResponse => add("Playbook", view.event_kind.clone()),
        Kind::Incident => add("Status", view.category.clone()),
        Kind::Unknown => add("Type", Some(view.type_name.clone())),
        Kind::SecurityEvent | Kind::Test | Kind::Pulse => {
            let parts: Vec<&str> = [view.category.as_deref(), view.event_kind.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            add("Category", Some(parts.join(" / ")));
        }
    }
    add("When", view.occurred_at.as_deref().map(readable_time));
    facts
}

impl IpLine {
    fn of(ip: &Ip) -> IpLine {
        let mut details = Vec::new();
        if let Some(geo) = &ip.geo {
            let place: Vec<String> = [geo.city.as_deref(), geo.code.as_deref()]
                .into_iter()
                .flatten()
                .map(one_line)
                .filter(|part| !part.is_empty())
                .collect();
            if !place.is_empty() {
                details.push(place.join(", "));
            }
        }
        let flags = [
            (ip.is_tor, "Tor exit node"),
            (ip.vpn, "VPN"),
            (ip.proxy, "proxy"),
            (ip.datacenter, "data centre"),
        ];
        for (flag, label) in flags {
            if flag == Some(true) {
                details.push(label.to_owned());
            }
        }
        if let Some(host) = ip
            .hostname
            .as_deref()
            .map(one_line)
            .filter(|h| !h.is_empty())
        {
            details.push(format!("host {host}"));
        }
        IpLine {
            address: one_line(&ip.address),
            details,
        }
    }
}

/// The URL as one line when it is an `http` or `https` URL, and `None` otherwise
/// (`javascript:` and friends never become links).
fn web_url(url: &str) -> Option<String> {
    let url = one_line(url);
    let scheme = url.split_once("://")?.0;
    let is_web = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http");
    (is_web && !url.contains(' ')).then_some(url)
}

/// `2019-11-07T09:57:10.817000+00:00` as `2019-11-07 09:57:10 UTC`; any other form as sent.
fn readable_time(timestamp: &str) -> String {
    let utc = ["+00:00", "Z", "z", "+0000"]
        .iter()
        .find_map(|suffix| timestamp.strip_suffix(suffix));
    let Some(local) = utc else {
        return timestamp.to_owned();
    };
    let seconds = local.split('.').next().unwrap_or(local);
    let bytes = seconds.as_bytes();
    let shaped = bytes.len() == 19
        && bytes[10].eq_ignore_ascii_case(&b't')
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            13 | 16 => *b == b':',
            10 => true,
            _ => b.is_ascii_digit(),
        });
    if shaped {
        format!("{} {} UTC", &seconds[..10], &seconds[11..])
    } else {
        timestamp.to_owned()
    }
}

#[cfg(test)]
mod tests;
