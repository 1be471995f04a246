//! A message as the sink received it, and ways to read it back as a mail client would:
//! headers with their encoded words decoded, MIME parts with their transfer encoding undone.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for a bounce.
    pub from: String,
    /// The envelope recipients (`RCPT TO`) the sink accepted, in order.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, lines ending in CRLF, without the
    /// final dot. Bytes that are not UTF-8 are replaced (SMTP clients send 7-bit data).
    pub data: String,
    /// The user who logged in on the connection that sent it, if any. The password is
    /// checked when [`super::SmtpSink::require_login`] asks for one, and never kept.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    fn parsed(&self) -> Option<Message<'_>> {
        MessageParser::default().parse(self.data.as_bytes())
    }

    /// The subject, decoded.
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// A header's value as sent (folded lines joined, not decoded), for headers that are
    /// not text: `Message-ID`, `To`, `Content-Type`, or one of our own.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = self.parsed()?;
        let raw = message.header_raw(name)?;
        Some(raw.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The top-level MIME type, such as `multipart/alternative`.
    pub fn content_type(&self) -> Option<String> {
        let message = self.parsed()?;
        let content_type = message.content_type()?;
        Some(match content_type.subtype() {
            Some(subtype) => format!("{}/{subtype}", content_type.ctype()),
            None => content_type.ctype().to_owned(),
        })
    }

    /// The decoded text of the first leaf part of this MIME type (`text/plain`,
    /// `text/html`). Unlike mail readers, it never makes one type out of the other.
    pub fn part(&self, mime_type: &str) -> Option<String> {
        let (wanted_type, wanted_subtype) = mime_type.split_once('/')?;
        let message = self.parsed()?;
        message
            .parts
            .iter()
            .filter(|part| !matches!(part.body, PartType::Multipart(_)))
            .find(|part| {
                part.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case(wanted_type)
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case(wanted_subtype))
                })
            })
            .and_then(|part| part.text_contents().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::ReceivedMail;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            from: "a@example.com".to_owned(),
            recipients: vec!["b@example.com".to_owned()],
            data: data.replace('\n', "\r\n"),
            auth_user: None,
        }
    }

    #[test]
    fn parts_are_read_back_decoded() {
        let received = mail(
            "Subject: =?utf-8?q?caf=C3=A9?=\n\
             Message-ID: <1@example.com>\n\
             Content-Type: multipart/alternative; boundary=\"b\"\n\
             \n\
             --b\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\
             \n\
             a =3D b\n\
             --b\n\
             Content-Type: text/html; charset=utf-8\n\
             Content-Transfer-Encoding: base64\n\
             \n\
             PHA+aGk8L3A+\n\
             --b--\n",
        );

        assert_eq!(received.subject().as_deref(), Some("café"));
        assert_eq!(
            received.header("message-id").as_deref(),
            Some("<1@example.com>")
        );
        assert_eq!(
            received.content_type().as_deref(),
            Some("multipart/alternative")
        );
        assert_eq!(
            received.part("text/plain").as_deref().map(str::trim),
            Some("a = b")
        );
        assert_eq!(received.part("text/html").as_deref(), Some("<p>hi</p>"));
    }

    #[test]
    fn a_missing_part_is_not_made_up_from_the_other() {
        let received = mail("Subject: x\nContent-Type: text/html\n\n<p>only html</p>\n");

        assert_eq!(received.part("text/plain"), None);
    }
}
