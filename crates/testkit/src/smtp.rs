//! An SMTP server on loopback that records the messages it accepts, for tests of code that
//! sends email.
//!
//! [`SmtpSink::start`] binds `127.0.0.1` on a free port and speaks enough ESMTP for lettre
//! and most clients: the greeting, `EHLO`/`HELO`, `AUTH PLAIN` and `AUTH LOGIN`, `MAIL FROM`,
//! `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP` and `QUIT`. Each accepted message
//! is kept as a [`ReceivedMail`]: envelope, raw data, and the user who logged in, if any.
//!
//! ```
//! use std::time::Duration;
//! use sqreen_webhook_testkit::smtp::{Answer, SmtpSink, Step};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sink = SmtpSink::start().await;
//! sink.answer(Step::RcptTo, Answer::reply(550, "5.1.1 no such mailbox"));
//! // … point the code under test at 127.0.0.1:{sink.port()} and send …
//! assert!(sink.received().is_empty());
//! # }
//! ```
//!
//! A sink can be told to fail at any [`Step`], with a reply code, by closing the connection,
//! or by never answering ([`Answer`]), so that tests can check how failures are classified.
//!
//! It speaks plain TCP only: it does not offer `STARTTLS` and does not accept implicit TLS.
//! Code paths that need TLS can be checked against it only for how they fail.

mod mail;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use mail::ReceivedMail;

/// A point of the SMTP dialogue where the sink can be told to answer otherwise than "yes".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The `220` greeting, as soon as a connection is accepted.
    Greeting,
    /// The final answer to `AUTH`, after the credentials were read.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`, for every recipient (see [`SmtpSink::answer_recipient`] for one).
    RcptTo,
    /// The `DATA` command itself, before the message is sent.
    Data,
    /// The final dot: the server's verdict on the message it has read in full.
    EndOfData,
}

/// What the sink does at a [`Step`] instead of accepting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Answers with this code and text. A `421` also closes the connection, as servers do;
    /// a greeting that is not `220` closes it too.
    Reply { code: u16, text: String },
    /// Closes the connection without a word.
    Close,
    /// Never answers, and keeps the connection open: the client is left to time out.
    Stall,
}

impl Answer {
    pub fn reply(code: u16, text: impl Into<String>) -> Answer {
        Answer::Reply {
            code,
            text: text.into(),
        }
    }
}

/// A running SMTP server on `127.0.0.1`. It stops, and drops every open connection, when
/// dropped.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// How many messages were accepted so far, for [`SmtpSink::wait_for`].
    accepted: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    answers: HashMap<Step, Answer>,
    /// Keyed by the address in lower case.
    recipient_answers: HashMap<String, Answer>,
    login: Option<(String, String)>,
    mails: Vec<ReceivedMail>,
    connections: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves state that is still readable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn answer(&self, step: Step) -> Option<Answer> {
        self.state().answers.get(&step).cloned()
    }
}

impl SmtpSink {
    /// Starts a sink that accepts every message, with or without a login.
    ///
    /// # Panics
    ///
    /// When no port can be bound on `127.0.0.1`: a test cannot go on without one.
    pub async fn start() -> SmtpSink {
        let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(listener) => listener,
            Err(e) => panic!("cannot bind the SMTP sink on 127.0.0.1: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("cannot read the SMTP sink's address: {e}"),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            accepted: watch::Sender::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        SmtpSink {
            addr,
            shared,
            server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answers `step` with `answer` instead of accepting.
    pub fn answer(&self, step: Step, answer: Answer) -> &SmtpSink {
        self.shared.state().answers.insert(step, answer);
        self
    }

    /// From now on, answers `RCPT TO` for this one address with `answer`. It takes precedence
    /// over an answer set for [`Step::RcptTo`].
    pub fn answer_recipient(&self, address: &str, answer: Answer) -> &SmtpSink {
        let key = address.to_ascii_lowercase();
        self.shared.state().recipient_answers.insert(key, answer);
        self
    }

    /// From now on, refuses `MAIL FROM` until a client logged in, and accepts only this user
    /// and password (`535` otherwise).
    pub fn require_login(&self, username: &str, password: &str) -> &SmtpSink {
        self.shared.state().login = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// Goes back to accepting everything: forgets every answer and the required login.
    pub fn heal(&self) -> &SmtpSink {
        let mut state = self.shared.state();
        state.answers.clear();
        state.recipient_answers.clear();
        state.login = None;
        self
    }

    /// The messages accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.state().mails.clone()
    }

    /// How many connections were accepted so far, including those that sent nothing.
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// Waits until at least `count` messages were accepted, and returns all of them.
    ///
    /// # Panics
    ///
    /// When fewer than `count` arrived within `timeout`, saying how many did.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut accepted = self.shared.accepted.subscribe();
        let arrived = tokio::time::timeout(timeout, accepted.wait_for(|n| *n >= count)).await;
        if arrived.is_err() {
            let got = self.shared.state().mails.len();
            panic!("expected {count} message(s) within {timeout:?}, the SMTP sink got {got}");
        }
        self.received()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until aborted. Sessions live in a `JoinSet` owned here, so that
/// aborting this task drops them all, stalled ones included.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                shared.state().connections += 1;
                sessions.spawn(session::run(stream, Arc::clone(&shared)));
            }
            Some(_) = sessions.join_next() => {}
        }
    }
}
