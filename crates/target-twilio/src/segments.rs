//! How many SMS segments a text costs, and how to cut a text so that it fits in a number of
//! segments.
//!
//! An SMS carries 140 bytes. Text that uses only the GSM-7 alphabet packs 160 characters in
//! them; one character outside it (an emoji, a Cyrillic letter, a curly quote) switches the
//! whole message to UCS-2 and the limit drops to 70. A longer message is split into segments
//! that each lose room to a concatenation header: 153 GSM-7 characters or 67 UCS-2 ones per
//! segment. Each segment is billed as one SMS, and phones join them back into one message.
//!
//! Two details make the count differ from a count of characters. The GSM-7 extension
//! characters (`^{}\[~]|€`) take two septets, an escape and the character, and the two are
//! never split across segments. In UCS-2, characters outside the Basic Multilingual Plane
//! (most emoji) take two 16-bit units, a surrogate pair, which is never split either.

/// The alphabet a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The GSM 03.38 default alphabet and its extension table.
    Gsm7,
    /// UTF-16 units, needed as soon as one character is outside GSM-7.
    Ucs2,
}

impl Encoding {
    /// The encoding a text will be sent in.
    pub fn of(text: &str) -> Encoding {
        if text.chars().all(|c| gsm7_septets(c).is_some()) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    /// How many units (septets or UTF-16 units) fit in a message of one segment.
    pub fn single_segment_units(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// How many units fit in each segment of a message of several.
    pub fn multi_segment_units(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }

    /// How many units a character takes in this encoding. A character that GSM-7 cannot
    /// carry is counted as one septet: callers pick the encoding with [`Encoding::of`] first.
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => gsm7_septets(c).unwrap_or(1),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }

    /// The ellipsis that marks a cut without changing the encoding of GSM-7 text: `…` is
    /// not in GSM-7, and one of them would halve the room of the whole message.
    fn ellipsis(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "...",
            Encoding::Ucs2 => "…",
        }
    }
}

/// The septets a character takes in GSM-7: one for the default alphabet, two for the
/// extension table, `None` for a character GSM-7 cannot carry.
pub fn gsm7_septets(c: char) -> Option<usize> {
    match c {
        // The ASCII part of the default alphabet: everything printable but [\]^`{|}~.
        ' '..='Z' | 'a'..='z' | '_' | '\n' | '\r' => Some(1),
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Æ' | 'æ' | 'ß'
        | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => {
            Some(1)
        }
        // Greek capitals, written as escapes: several have look-alikes (Ω and the ohm sign).
        '\u{0393}' | '\u{0394}' | '\u{0398}' | '\u{039B}' | '\u{039E}' | '\u{03A0}'
        | '\u{03A3}' | '\u{03A6}' | '\u{03A8}' | '\u{03A9}' => Some(1),
        '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' | '\u{0C}' => Some(2),
        _ => None,
    }
}

/// How many segments a text is sent in. An empty text still costs one.
pub fn count(text: &str) -> usize {
    let encoding = Encoding::of(text);
    let total: usize = text.chars().map(|c| encoding.units(c)).sum();
    if total <= encoding.single_segment_units() {
        return 1;
    }
    let room = encoding.multi_segment_units();
    let mut segments = 1;
    let mut used = 0;
    for units in text.chars().map(|c| encoding.units(c)) {
        // An escape pair or a surrogate pair that would straddle two segments moves whole
        // to the next one, leaving a unit unused.
        if used + units > room {
            segments += 1;
            used = 0;
        }
        used += units;
    }
    segments
}

/// Whether a text fits in `max_segments` segments.
pub fn fits(text: &str, max_segments: usize) -> bool {
    count(text) <= max_segments
}

/// A cut that ends on a word loses at most this many characters more than a cut in the
/// middle of a word would; past that, the word is cut. A reader is better served by half a
/// long token (a URL, a user agent) than by losing it and the room it took.
const MAX_CHARS_LOST_TO_A_WORD: usize = 20;

/// Cuts a text to fit in `max_segments` segments, after a word when possible, and ends it
/// with an ellipsis (`...` when the kept text is GSM-7, `…` when it is UCS-2). A text that
/// fits already is returned unchanged. `max_segments` below one is taken as one.
pub fn fit(text: &str, max_segments: usize) -> String {
    let max_segments = max_segments.max(1);
    if fits(text, max_segments) {
        return text.to_owned();
    }
    let cut = |end: usize| -> Option<String> {
        let kept = text[..end].trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-' | '.')
        });
        if kept.is_empty() {
            return None;
        }
        let candidate = format!("{kept}{}", Encoding::of(kept).ellipsis());
        fits(&candidate, max_segments).then_some(candidate)
    };
    // Each candidate is checked whole rather than by counting once: whether a prefix fits
    // depends on its own encoding, which changes when a UCS-2 character is cut off.
    let longest = |ends: &mut dyn Iterator<Item = usize>| {
        ends.filter_map(|end| cut(end).map(|text| (end, text)))
            .last()
    };
    let at_word = longest(
        &mut text
            .char_indices()
            .filter(|&(i, c)| i > 0 && c.is_whitespace())
            .map(|(i, _)| i),
    );
    let at_char = longest(&mut text.char_indices().skip(1).map(|(i, _)| i));
    match (at_word, at_char) {
        (Some((word_end, word)), Some((char_end, _)))
            if text[word_end..char_end].chars().count() <= MAX_CHARS_LOST_TO_A_WORD =>
        {
            word
        }
        (Some((_, word)), None) => word,
        (_, Some((_, chars))) => chars,
        (None, None) => Encoding::Gsm7.ellipsis().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_gsm7_and_takes_one_segment_up_to_160_characters() {
        let text = "a".repeat(160);

        assert_eq!(Encoding::of(&text), Encoding::Gsm7);
        assert_eq!(count(&text), 1);
        assert_eq!(count(&format!("{text}a")), 2);
    }

    #[test]
    fn gsm7_messages_of_several_segments_hold_153_characters_each() {
        assert_eq!(count(&"a".repeat(306)), 2);
        assert_eq!(count(&"a".repeat(307)), 3);
        assert_eq!(count(&"a".repeat(459)), 3);
    }

    #[test]
    fn the_accented_letters_and_greek_capitals_of_gsm7_do_not_force_ucs2() {
        let text = "Café à Zürich: £5, ¥3, ΔΣΩ, ¿qué? ¡olé! Ñ§ø";

        assert_eq!(Encoding::of(text), Encoding::Gsm7);
    }

    #[test]
    fn extension_characters_count_as_two() {
        let eighty = "€".repeat(80);

        assert_eq!(Encoding::of(&eighty), Encoding::Gsm7);
        assert_eq!(count(&eighty), 1);
        assert_eq!(count(&format!("{eighty}a")), 2);
        assert_eq!(count("^{}\\[~]|"), 1);
    }

    #[test]
    fn an_extension_character_is_never_split_across_two_segments() {
        // 152 septets, then an escape pair: 154 does not fit in the first segment of 153.
        let text = format!("{}[{}", "a".repeat(152), "a".repeat(152));

        assert_eq!(count(&text), 3, "the pair moves to the second segment");
        assert_eq!(
            count(&format!("{}[{}", "a".repeat(151), "a".repeat(151))),
            2
        );
    }

    #[test]
    fn one_character_outside_gsm7_makes_the_whole_text_ucs2() {
        let text = format!("{}é", "a".repeat(69));
        let cyrillic = format!("{}ж", "a".repeat(69));

        assert_eq!(Encoding::of(&text), Encoding::Gsm7);
        assert_eq!(Encoding::of(&cyrillic), Encoding::Ucs2);
        assert_eq!(count(&cyrillic), 1);
        assert_eq!(count(&format!("{cyrillic}a")), 2);
        assert_eq!(count(&format!("{}ж", "a".repeat(133))), 2);
        assert_eq!(count(&format!("{}ж", "a".repeat(134))), 3);
    }

    #[test]
    fn emoji_take_two_units_and_are_never_split() {
        assert_eq!(Encoding::of("🚨"), Encoding::Ucs2);
        assert_eq!(count(&"🚨".repeat(35)), 1);
        assert_eq!(count(&"🚨".repeat(36)), 2);
        // 66 units then a pair: the pair does not fit in the one unit left and moves on.
        assert_eq!(count(&format!("{}🚨{}", "ж".repeat(66), "ж".repeat(65))), 2);
        assert_eq!(count(&format!("{}🚨{}", "ж".repeat(66), "ж".repeat(66))), 3);
    }

    #[test]
    fn a_text_that_fits_is_not_touched() {
        let text = "high risk security event on shop (production)";

        assert_eq!(fit(text, 1), text);
    }

    #[test]
    fn a_long_gsm7_text_is_cut_after_a_word_with_three_dots() {
        let text = "word ".repeat(40);

        let cut = fit(&text, 1);

        assert!(cut.ends_with("word..."), "{cut}");
        assert_eq!(cut.chars().count(), 157, "31 words and the dots: {cut}");
        assert_eq!(Encoding::of(&cut), Encoding::Gsm7);
        assert_eq!(count(&cut), 1);
    }

    #[test]
    fn a_cut_fills_the_segments_allowed() {
        let text = "word ".repeat(200);

        let cut = fit(&text, 2);

        assert_eq!(count(&cut), 2);
        assert!(cut.len() > 300, "{}", cut.len());
    }

    #[test]
    fn a_cut_counts_extension_characters_as_two() {
        let text = "{a} ".repeat(60);

        let cut = fit(&text, 1);

        assert!(cut.ends_with("{a}..."), "{cut}");
        let septets: usize = cut.chars().map(|c| gsm7_septets(c).unwrap_or(99)).sum();
        assert!(septets <= 160, "{septets}");
        assert!(septets > 150, "{septets}");
    }

    #[test]
    fn a_ucs2_text_is_cut_with_one_ellipsis_character() {
        let text = "тревога ".repeat(20);

        let cut = fit(&text, 1);

        assert!(cut.ends_with("тревога…"), "{cut}");
        assert_eq!(
            cut.chars().count(),
            64,
            "8 words, 7 spaces and the ellipsis: {cut}"
        );
        assert_eq!(count(&cut), 1);
    }

    #[test]
    fn cutting_off_the_only_ucs2_character_brings_back_gsm7_room() {
        let text = format!("{} ✓", "word ".repeat(40));

        let cut = fit(&text, 1);

        assert_eq!(Encoding::of(&cut), Encoding::Gsm7);
        assert!(cut.ends_with("word..."), "{cut}");
        assert!(cut.len() > 150, "GSM-7 room, not UCS-2 room: {cut}");
    }

    #[test]
    fn emoji_are_cut_whole() {
        let text = "🚨".repeat(100);

        let cut = fit(&text, 1);

        assert_eq!(cut, format!("{}…", "🚨".repeat(34)));
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_in_the_middle() {
        let text = "x".repeat(500);

        let cut = fit(&text, 1);

        assert_eq!(cut, format!("{}...", "x".repeat(157)));
    }

    #[test]
    fn a_long_word_after_short_ones_is_cut_rather_than_dropped() {
        let text = format!("see {}", "x".repeat(500));

        let cut = fit(&text, 1);

        assert_eq!(cut, format!("see {}...", "x".repeat(153)));
    }

    #[test]
    fn a_cut_on_a_word_drops_the_punctuation_before_the_ellipsis() {
        let text = format!("{}, and more", "a".repeat(157));

        let cut = fit(&text, 1);

        assert_eq!(cut, format!("{}...", "a".repeat(157)));
    }
}
