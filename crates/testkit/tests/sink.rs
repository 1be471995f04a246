//! The sink spoken to by hand, line by line, as a client would: what it records and how it
//! answers when told to refuse.

use std::time::Duration;

use sqreen_webhook_testkit::smtp::{Answer, SmtpSink, Step};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A bare SMTP client: sends a line, returns the last line of the reply.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(sink: &SmtpSink) -> (Client, String) {
        let stream = TcpStream::connect(sink.addr())
            .await
            .expect("connect to the sink");
        let mut client = Client {
            stream: BufReader::new(stream),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    async fn send(&mut self, line: &str) -> String {
        self.write(line).await;
        self.reply().await
    }

    async fn write(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write to the sink");
    }

    /// The reply's last line (`250 ok` after `250-…` lines), or "" when the server hung up.
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            if self
                .stream
                .read_line(&mut line)
                .await
                .expect("read from the sink")
                == 0
            {
                return String::new();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn records_the_envelope_and_dot_unstuffed_data() {
    let sink = SmtpSink::start().await;
    let (mut client, greeting) = Client::connect(&sink).await;

    assert!(greeting.starts_with("220 "));
    assert!(client.send("EHLO test").await.starts_with("250 "));
    assert!(
        client
            .send("MAIL FROM:<a@example.com> BODY=8BITMIME")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .send("RCPT TO:<b@example.com>")
            .await
            .starts_with("250")
    );
    assert!(client.send("DATA").await.starts_with("354"));
    client.write("Subject: hi\r\n\r\n..hidden\r\nend").await;
    assert!(client.send(".").await.starts_with("250"));
    assert!(client.send("QUIT").await.starts_with("221"));

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.from, "a@example.com");
    assert_eq!(mail.recipients, ["b@example.com"]);
    assert_eq!(mail.data, "Subject: hi\r\n\r\n.hidden\r\nend\r\n");
    assert_eq!(mail.subject().as_deref(), Some("hi"));
}

#[tokio::test]
async fn auth_login_is_checked_and_its_user_recorded() {
    let sink = SmtpSink::start().await;
    sink.require_login("relay", "secret");
    let (mut client, _) = Client::connect(&sink).await;
    client.send("EHLO test").await;

    assert!(
        client
            .send("MAIL FROM:<a@example.com>")
            .await
            .starts_with("530")
    );
    assert_eq!(client.send("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert_eq!(client.send("cmVsYXk=").await, "334 UGFzc3dvcmQ6");
    assert!(
        client.send("d3Jvbmc=").await.starts_with("535"),
        "wrong password"
    );
    client.send("AUTH LOGIN cmVsYXk=").await;
    assert!(client.send("c2VjcmV0").await.starts_with("235"));
    client.send("MAIL FROM:<a@example.com>").await;
    client.send("RCPT TO:<b@example.com>").await;
    client.send("DATA").await;
    client.send("\r\n.").await;

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.auth_user.as_deref(), Some("relay"));
}

#[tokio::test]
async fn rset_forgets_the_transaction() {
    let sink = SmtpSink::start().await;
    let (mut client, _) = Client::connect(&sink).await;
    client.send("HELO test").await;
    client.send("MAIL FROM:<a@example.com>").await;
    client.send("RCPT TO:<b@example.com>").await;

    assert!(client.send("RSET").await.starts_with("250"));
    assert!(client.send("DATA").await.starts_with("503"));
    assert!(client.send("NOOP").await.starts_with("250"));
}

#[tokio::test]
async fn answers_what_it_is_told_and_heals() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::RcptTo, Answer::reply(550, "5.1.1 no such mailbox"))
        .answer_recipient("vip@example.com", Answer::reply(451, "4.3.0 later"));
    let (mut client, _) = Client::connect(&sink).await;
    client.send("EHLO test").await;
    client.send("MAIL FROM:<a@example.com>").await;

    assert_eq!(
        client.send("RCPT TO:<b@example.com>").await,
        "550 5.1.1 no such mailbox"
    );
    assert_eq!(
        client.send("RCPT TO:<VIP@example.com>").await,
        "451 4.3.0 later"
    );
    sink.heal();
    assert!(
        client
            .send("RCPT TO:<b@example.com>")
            .await
            .starts_with("250")
    );
}

#[tokio::test]
async fn a_421_answer_closes_the_connection() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::MailFrom, Answer::reply(421, "4.3.2 shutting down"));
    let (mut client, _) = Client::connect(&sink).await;
    client.send("EHLO test").await;

    assert_eq!(
        client.send("MAIL FROM:<a@example.com>").await,
        "421 4.3.2 shutting down"
    );
    assert_eq!(client.reply().await, "", "the server hung up");
}

#[tokio::test]
#[should_panic(expected = "expected 1 message(s) within 50ms, the SMTP sink got 0")]
async fn waiting_for_a_message_that_never_comes_fails_the_test() {
    let sink = SmtpSink::start().await;

    sink.wait_for(1, Duration::from_millis(50)).await;
}
