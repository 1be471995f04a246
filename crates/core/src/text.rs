//! Plain-text hygiene for attacker-controlled strings.
//!
//! Payload text reaches terminals, log files and phones. These helpers make it one line and
//! strip what can disguise it there: control characters (terminal escapes, carriage returns
//! that overwrite a log line) and the invisible marks that reorder or hide text
//! (bidirectional overrides that turn `exe.pdf` into `fdp.exe`, zero-width characters).
//! Escaping for a markup language (HTML, Slack mrkdwn) is each target's job, on top of this.

use std::borrow::Cow;

/// Makes text one line: control characters and line breaks become spaces, invisible
/// formatting marks are removed, runs of whitespace collapse to one space, and the ends are
/// trimmed.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if is_invisible_mark(c) {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Whether a character changes how text around it is displayed without being visible:
/// bidirectional embeddings, overrides and isolates, directional marks, zero-width
/// characters and the byte-order mark.
pub fn is_invisible_mark(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' |
        '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Cuts text to at most `max_chars` characters, ending with `…` when it was cut.
pub fn truncate(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some(_) if max_chars == 0 => Cow::Borrowed(""),
        Some(_) => {
            let end = text
                .char_indices()
                .nth(max_chars - 1)
                .map_or(text.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..end]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_replaces_line_breaks_and_terminal_escapes_with_spaces() {
        assert_eq!(one_line("a\r\nb\u{1b}[31mc\u{7}\td"), "a b [31mc d");
    }

    #[test]
    fn one_line_removes_bidirectional_overrides_and_zero_width_marks() {
        assert_eq!(
            one_line("photo\u{202e}gpj.exe\u{200b}\u{2066}x\u{feff}"),
            "photogpj.exex"
        );
    }

    #[test]
    fn one_line_collapses_and_trims_whitespace() {
        assert_eq!(one_line("  a \n\n  b  "), "a b");
    }

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text_on_a_character() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("abc", 0), "");
    }
}
