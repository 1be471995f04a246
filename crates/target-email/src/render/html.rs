//! The HTML part: the same facts as the text part in a small table, styled inline because
//! mail clients drop style sheets. Every value passes through [`escape`], in text and in
//! attributes alike.

use std::fmt::Write as _;

use super::Content;

/// Colours for the risk badge, by risk level.
fn risk_colour(level: &str) -> &'static str {
    match level {
        "critical" => "#b00020",
        "high" => "#d9480f",
        "medium" => "#b08800",
        _ => "#2b8a3e",
    }
}

pub(super) fn render(content: &Content) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(&content.headline));
    out.push_str("</head>\n<body style=\"font-family: Helvetica, Arial, sans-serif; ");
    out.push_str("color: #1f2328; line-height: 1.4;\">\n");

    let _ = write!(
        out,
        "<h2 style=\"margin: 0 0 8px;\">{}",
        escape(&content.headline)
    );
    if let Some(level) = content.risk_level {
        let _ = write!(
            out,
            " <span style=\"background: {}; color: #ffffff; border-radius: 4px; \
             padding: 1px 6px; font-size: 14px;\">{}</span>",
            risk_colour(level),
            escape(level)
        );
    }
    out.push_str("</h2>\n");
    let _ = writeln!(
        out,
        "<p style=\"font-size: 16px;\">{}</p>",
        escape(&content.summary)
    );

    if !content.facts.is_empty() {
        out.push_str("<table cellpadding=\"4\" style=\"border-collapse: collapse;\">\n");
        for (label, value) in &content.facts {
            let _ = writeln!(
                out,
                "<tr><th align=\"left\" style=\"color: #59636e;\">{}</th><td>{}</td></tr>",
                escape(label),
                escape(value)
            );
        }
        out.push_str("</table>\n");
    }

    if !content.ips.is_empty() {
        out.push_str("<h3 style=\"margin: 16px 0 4px;\">IP addresses</h3>\n<ul>\n");
        for ip in &content.ips {
            let _ = write!(out, "<li><code>{}</code>", escape(&ip.address));
            if !ip.details.is_empty() {
                let _ = write!(out, " ({})", escape(&ip.details.join("; ")));
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    if !content.accounts.is_empty() {
        out.push_str("<h3 style=\"margin: 16px 0 4px;\">Accounts</h3>\n<ul>\n");
        for account in &content.accounts {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(account));
        }
        out.push_str("</ul>\n");
    }
    if let Some(url) = &content.dashboard_url {
        let _ = writeln!(
            out,
            "<p><a href=\"{}\" style=\"color: #0969da;\">Open in Sqreen</a></p>",
            escape(url)
        );
    }

    let _ = writeln!(
        out,
        "<p style=\"color: #59636e; font-size: 12px;\">Notification {}, relayed by \
         sqreen-webhook.</p>",
        escape(&content.identity)
    );
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
