//! One SMTP conversation of the sink: reads commands line by line and answers them, or
//! answers what the test asked for at that step.

use std::io;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{Answer, ReceivedMail, Shared, Step};

/// Whether the conversation goes on after an answer.
enum Flow {
    Continue,
    Close,
}

struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    auth_user: Option<String>,
    from: Option<String>,
    recipients: Vec<String>,
}

/// Runs one conversation to its end. Network errors end it quietly: the client's view of
/// them is what tests look at.
pub(super) async fn run(stream: TcpStream, shared: Arc<Shared>) {
    let (read, write) = stream.into_split();
    let mut session = Session {
        reader: BufReader::new(read),
        writer: write,
        shared,
        auth_user: None,
        from: None,
        recipients: Vec::new(),
    };
    let _ = session.converse().await;
}

impl Session {
    async fn converse(&mut self) -> io::Result<()> {
        match self.shared.answer(Step::Greeting) {
            None => {
                self.reply(220, "127.0.0.1 ESMTP sqreen-webhook-testkit")
                    .await?;
            }
            Some(Answer::Reply { code: 220, text }) => {
                self.reply(220, &text).await?;
            }
            Some(answer) => {
                self.give(&answer).await?;
                return Ok(());
            }
        }
        while let Some(line) = self.read_line().await? {
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let flow = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => self.ehlo(argument).await?,
                "HELO" => self.helo().await?,
                "AUTH" => self.auth(argument).await?,
                "MAIL" => self.mail(argument).await?,
                "RCPT" => self.rcpt(argument).await?,
                "DATA" => self.data().await?,
                "RSET" => {
                    self.reset();
                    self.reply(250, "2.0.0 ok").await?
                }
                "NOOP" => self.reply(250, "2.0.0 ok").await?,
                "QUIT" => {
                    self.reply(221, "2.0.0 bye").await?;
                    Flow::Close
                }
                "STARTTLS" => self.reply(454, "4.7.0 TLS not available").await?,
                _ => self.reply(502, "5.5.2 command not recognized").await?,
            };
            if let Flow::Close = flow {
                break;
            }
        }
        Ok(())
    }

    async fn ehlo(&mut self, client: &str) -> io::Result<Flow> {
        self.reset();
        let text = format!(
            "250-127.0.0.1 greets {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n\
             250 SIZE 10485760\r\n",
            client.trim()
        );
        self.write(text.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn helo(&mut self) -> io::Result<Flow> {
        self.reset();
        self.reply(250, "127.0.0.1").await
    }

    async fn auth(&mut self, argument: &str) -> io::Result<Flow> {
        let mut words = argument.split_whitespace();
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(response) => Some(response),
                    None => self.challenge("").await?,
                };
                response.and_then(|r| decode(&r)).and_then(|plain| {
                    // authorization identity, user, password
                    let mut fields = plain.splitn(3, '\0').skip(1);
                    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(user) => Some(user),
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                let password = self.challenge("UGFzc3dvcmQ6").await?;
                user.and_then(|u| decode(&u))
                    .zip(password.and_then(|p| decode(&p)))
            }
            _ => return self.reply(504, "5.5.4 mechanism not supported").await,
        };
        let Some((user, password)) = credentials else {
            return self.reply(501, "5.5.2 cannot decode the credentials").await;
        };
        if let Some(answer) = self.shared.answer(Step::Auth) {
            return self.give(&answer).await;
        }
        let wanted = self.shared.state().login.clone();
        match wanted {
            Some((u, p)) if u != user || p != password => {
                self.reply(535, "5.7.8 authentication credentials invalid")
                    .await
            }
            _ => {
                self.auth_user = Some(user);
                self.reply(235, "2.7.0 authentication succeeded").await
            }
        }
    }

    /// Sends a `334` challenge and reads the client's answer; `None` when the client
    /// cancelled with `*` or hung up.
    async fn challenge(&mut self, text: &str) -> io::Result<Option<String>> {
        self.reply(334, text).await?;
        let answer = self.read_line().await?;
        Ok(answer
            .map(|line| String::from_utf8_lossy(&line).trim().to_owned())
            .filter(|line| line != "*"))
    }

    async fn mail(&mut self, argument: &str) -> io::Result<Flow> {
        let login_required = self.shared.state().login.is_some();
        if login_required && self.auth_user.is_none() {
            return self.reply(530, "5.7.0 authentication required").await;
        }
        if let Some(answer) = self.shared.answer(Step::MailFrom) {
            return self.give(&answer).await;
        }
        self.reset();
        self.from = Some(path(argument, "FROM:"));
        self.reply(250, "2.1.0 ok").await
    }

    async fn rcpt(&mut self, argument: &str) -> io::Result<Flow> {
        if self.from.is_none() {
            return self.reply(503, "5.5.1 MAIL first").await;
        }
        let recipient = path(argument, "TO:");
        let answer = {
            let state = self.shared.state();
            let own = state.recipient_answers.get(&recipient.to_ascii_lowercase());
            own.or(state.answers.get(&Step::RcptTo)).cloned()
        };
        if let Some(answer) = answer {
            return self.give(&answer).await;
        }
        self.recipients.push(recipient);
        self.reply(250, "2.1.5 ok").await
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if self.recipients.is_empty() {
            return self.reply(503, "5.5.1 RCPT first").await;
        }
        if let Some(answer) = self.shared.answer(Step::Data) {
            return self.give(&answer).await;
        }
        self.reply(354, "end data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        loop {
            let Some(line) = self.read_line().await? else {
                return Ok(Flow::Close);
            };
            if line == b"." {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            data.extend_from_slice(unstuffed);
            data.extend_from_slice(b"\r\n");
        }
        if let Some(answer) = self.shared.answer(Step::EndOfData) {
            self.reset();
            return self.give(&answer).await;
        }
        let mail = ReceivedMail {
            from: self.from.take().unwrap_or_default(),
            recipients: std::mem::take(&mut self.recipients),
            data: String::from_utf8_lossy(&data).into_owned(),
            auth_user: self.auth_user.clone(),
        };
        let count = {
            let mut state = self.shared.state();
            state.mails.push(mail);
            state.mails.len()
        };
        self.shared.accepted.send_replace(count);
        self.reply(250, &format!("2.0.0 queued as {count}")).await
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }

    async fn give(&mut self, answer: &Answer) -> io::Result<Flow> {
        match answer {
            Answer::Reply { code, text } => {
                self.reply(*code, text).await?;
                Ok(if *code == 421 {
                    Flow::Close
                } else {
                    Flow::Continue
                })
            }
            Answer::Close => Ok(Flow::Close),
            Answer::Stall => std::future::pending().await,
        }
    }

    async fn reply(&mut self, code: u16, text: &str) -> io::Result<Flow> {
        self.write(format!("{code} {text}\r\n").as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await
    }

    /// The next line without its line ending, or `None` at the end of the stream.
    async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// The address in `FROM:<a@b> SIZE=10` or `TO:<a@b>`, without its angle brackets.
fn path(argument: &str, prefix: &str) -> String {
    let argument = argument.trim_start();
    let rest = match argument.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &argument[prefix.len()..],
        _ => argument,
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('<') {
        Some(inner) => inner.split('>').next().unwrap_or_default().to_owned(),
        None => rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn decode(base64: &str) -> Option<String> {
    let bytes = BASE64.decode(base64.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn paths_are_read_with_or_without_brackets_and_parameters() {
        assert_eq!(
            path("FROM:<a@example.com> SIZE=10", "FROM:"),
            "a@example.com"
        );
        assert_eq!(path("to: <b@example.com>", "TO:"), "b@example.com");
        assert_eq!(path("FROM:<>", "FROM:"), "");
        assert_eq!(path("TO:c@example.com", "TO:"), "c@example.com");
    }
}
