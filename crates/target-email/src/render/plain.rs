//! The plain-text part: aligned facts and lists, for mail clients that show no HTML and
//! for people who prefer text. Every value is already one line (see the parent module).

use super::Content;

/// Values start in this column, past the longest label ("Application:") and two spaces.
const LABEL_WIDTH: usize = 14;

pub(super) fn render(content: &Content) -> String {
    let mut out = String::new();
    line(&mut out, &content.headline);
    out.push('\n');
    line(&mut out, &content.summary);
    out.push('\n');

    for (label, value) in &content.facts {
        let label = format!("{label}:");
        line(&mut out, &format!("{label:<LABEL_WIDTH$}{value}"));
    }

    if !content.ips.is_empty() {
        out.push('\n');
        line(&mut out, "IP addresses:");
        for ip in &content.ips {
            if ip.details.is_empty() {
                line(&mut out, &format!("  - {}", ip.address));
            } else {
                line(
                    &mut out,
                    &format!("  - {} ({})", ip.address, ip.details.join("; ")),
                );
            }
        }
    }
    if !content.accounts.is_empty() {
        out.push('\n');
        line(&mut out, "Accounts:");
        for account in &content.accounts {
            line(&mut out, &format!("  - {account}"));
        }
    }
    if let Some(url) = &content.dashboard_url {
        out.push('\n');
        line(&mut out, &format!("Open in Sqreen: {url}"));
    }

    out.push('\n');
    // "-- " is the signature separator that mail clients recognise and fold away.
    line(&mut out, "-- ");
    line(
        &mut out,
        &format!(
            "Notification {}, relayed by sqreen-webhook.",
            content.identity
        ),
    );
    out
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}
