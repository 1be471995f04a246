//! Driving the real `server` binary from the outside, as an operator and Sqreen would: a
//! configuration file, a process that is started, restarted and killed with `kill -9`,
//! signed webhooks posted over loopback, and an HTTP receiver standing in for a SIEM that
//! records every request the relay makes to it.
//!
//! The receiver can be down (its port reserved but nobody listening), answering, or hanging
//! (holding each request without an answer), so that a test can put the relay in each of the
//! situations its delivery guarantees are about. Everything runs on 127.0.0.1.

#![allow(dead_code)] // each test binary uses its own part of these helpers

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use sqlx::Connection as _;
use sqreen_webhook_core::{SIGNATURE_HEADER, Secret, Verifier, sign};
use sqreen_webhook_store::{DeliveryState, Role, StoreOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_server");

/// What Sqreen signs its webhooks with, in these tests.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";
/// What the relay signs its requests to the receiver with.
pub const RECEIVER_SECRET: &str = "e2e-receiver-secret";
/// The header each relay adds to its requests, naming itself, so that the receiver can
/// tell replicas apart.
pub const RELAY_HEADER: &str = "X-Relay-Name";
const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The HTTP target's per-attempt timeout. Short, so that the shortest lease the
/// configuration accepts is short too.
pub const TARGET_TIMEOUT: Duration = Duration::from_secs(1);
/// The shortest lease the configuration accepts for [`TARGET_TIMEOUT`]: twice the timeout
/// and the engine's two seconds of grace.
pub const LEASE: Duration = Duration::from_secs((TARGET_TIMEOUT.as_secs() + 2) * 2);
/// The target's `max_backoff`; the first backoff is 200 ms, doubled at each attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts: the jitter stretches a backoff by up to a quarter.
pub const LONGEST_BACKOFF: Duration = Duration::from_millis(MAX_BACKOFF.as_millis() as u64 * 5 / 4);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a relay may take from being spawned to answering `/readyz`.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long the receiver holds a request in hanging mode before giving up on it itself.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// A port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// An HTTP client for the test itself, never reused across a kill: a pooled connection
/// to a dead process would turn the next request into an error for the wrong reason.
pub fn client() -> reqwest::Client {
    server::app::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// Runs a whole test under one deadline, so that no failure can hang the run.
pub async fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(value) => value,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// One server process: its configuration file, its log, and the process while it runs.
pub struct Relay {
    name: String,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Relay {
    /// Writes the configuration of a relay named `name` (also the value of
    /// [`RELAY_HEADER`] in its requests), on `store`, with one HTTP target, `siem`, that
    /// posts to `receiver`. Nothing is started.
    pub fn new(dir: &Path, name: &str, store: &str, receiver: &str) -> Relay {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        let toml = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
workers = 1
shutdown_timeout = "2s"

[webhook]
secrets = ["{WEBHOOK_SECRET}"]

[store]
url = {store}
lease = "{lease}"

[delivery]
poll_interval = "{poll}"

[[targets]]
name = "siem"
type = "http"
url = {receiver}
secret = "{RECEIVER_SECRET}"
headers = {{ "{RELAY_HEADER}" = {name_value} }}
timeout = "{timeout}"
[targets.retry]
max_attempts = 100
first_backoff = "200ms"
max_backoff = "{max_backoff}"
multiplier = 2.0
"#,
            // A JSON string is a valid TOML basic string: quotes and backslashes escaped.
            store = Value::from(store),
            receiver = Value::from(receiver),
            name_value = Value::from(name),
            lease = sqreen_webhook_core::duration::format_duration(LEASE),
            poll = sqreen_webhook_core::duration::format_duration(POLL_INTERVAL),
            timeout = sqreen_webhook_core::duration::format_duration(TARGET_TIMEOUT),
            max_backoff = sqreen_webhook_core::duration::format_duration(MAX_BACKOFF),
        );
        std::fs::write(&config, toml).expect("write the relay's configuration");
        Relay {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            log: dir.join(format!("{name}.log")),
            port,
            child: None,
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook", self.port)
    }

    /// Starts the binary and waits until it answers `/readyz`. Its log is appended to one
    /// file across restarts.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the relay's log file");
        let child = Command::new(BIN)
            // Only what the test sets: no SQREEN_WEBHOOK__* from the machine, and no .env
            // found above the working directory.
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .current_dir(&self.dir)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the server binary");
        self.child = Some(child);

        let client = client();
        let ready = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited while starting ({status}):\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if let Ok(response) = client.get(&ready).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} is not ready after {READY_WITHIN:?}:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGKILL and reaps the process: no shutdown, no release of leases, as a crash.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        child.kill().expect("kill -9 the relay");
        child.wait().expect("reap the killed relay");
        let mut log = File::options()
            .append(true)
            .open(&self.log)
            .expect("open the relay's log file");
        let _ = std::io::Write::write_all(&mut log, b"---- killed with SIGKILL by the test ----\n");
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts the deliveries in the store at `url` by state, opened as a command-line tool
/// opens it next to a running relay.
pub async fn store_counts(url: &str) -> BTreeMap<&'static str, u64> {
    let options = StoreOptions {
        role: Role::Tool,
        ..StoreOptions::default()
    };
    let store = sqreen_webhook_store::open(url, options)
        .await
        .expect("open the store as a tool");
    store
        .counts()
        .await
        .expect("count the deliveries")
        .into_iter()
        .map(|(state, n): (DeliveryState, u64)| (state.as_str(), n))
        .collect()
}

/// One webhook as Sqreen would send it: a JSON array of security events, each with an id
/// of its own, and the identities the relay derives from them (the `Idempotency-Key`s the
/// receiver will see).
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: Vec<u8>,
    pub keys: Vec<String>,
}

impl Batch {
    /// `events` v1 security events, copies of the built-in sample with ids
    /// `{tag}r{request}e{event}`.
    pub fn new(tag: &str, request: usize, events: usize) -> Batch {
        let sample = sqreen_webhook_core::samples::sample("v1-security-event")
            .expect("the built-in v1 security event");
        let template: Vec<Value> =
            serde_json::from_str(sample.body).expect("the sample is a JSON array");
        let mut elements = Vec::with_capacity(events);
        let mut keys = Vec::with_capacity(events);
        for event in 0..events {
            let id = format!("{tag}r{request}e{event}");
            let mut element = template[0].clone();
            element["id"] = Value::String(id.clone());
            elements.push(element);
            keys.push(format!("security_event:{id}"));
        }
        Batch {
            body: serde_json::to_vec(&elements).expect("serialize the batch"),
            keys,
        }
    }

    /// `requests` batches of 1 to 10 events, sizes spread evenly and reproducibly.
    pub fn stream(tag: &str, requests: usize) -> Vec<Batch> {
        (0..requests)
            .map(|request| Batch::new(tag, request, request * 7 % 10 + 1))
            .collect()
    }
}

/// What the relay answered to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200`, with how many of the notifications the relay had already accepted before.
    Accepted { duplicates: usize },
    /// Any other status.
    Refused { status: u16, body: String },
    /// No answer: the connection was refused or broke.
    Unanswered { error: String },
}

impl Answer {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Answer::Accepted { .. })
    }
}

/// Posts `batch` signed as Sqreen signs it.
pub async fn post(client: &reqwest::Client, url: &str, batch: &Batch) -> Answer {
    let signature = sign(&Secret::new(WEBHOOK_SECRET), &batch.body);
    let sent = client
        .post(url)
        .header(SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(batch.body.clone())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Answer::Unanswered {
                error: format!("{error:?}"),
            };
        }
    };
    let status = response.status().as_u16();
    let body = match response.text().await {
        Ok(body) => body,
        Err(error) => {
            return Answer::Unanswered {
                error: format!("{error:?}"),
            };
        }
    };
    if status != 200 {
        return Answer::Refused { status, body };
    }
    let answer: Value = serde_json::from_str(&body).expect("a 200 answer is JSON");
    Answer::Accepted {
        duplicates: answer["duplicates"]
            .as_u64()
            .expect("a 200 answer counts its duplicates") as usize,
    }
}

/// Webhooks posted by a few concurrent senders, as Sqreen's workers would, spread over
/// the relays' URLs in turn. Each batch is posted once, whatever the answer.
pub struct Stream {
    answers: Arc<Mutex<Vec<Option<Answer>>>>,
    accepted: watch::Receiver<usize>,
    senders: JoinSet<()>,
}

impl Stream {
    pub fn start(batches: &[Batch], urls: &[String], senders: usize) -> Stream {
        let client = client();
        let batches = Arc::new(batches.to_vec());
        let urls = Arc::new(urls.to_vec());
        let queue = Arc::new(Mutex::new((0..batches.len()).collect::<VecDeque<_>>()));
        let answers = Arc::new(Mutex::new(vec![None; batches.len()]));
        let (accepted_tx, accepted) = watch::channel(0);
        let accepted_tx = Arc::new(accepted_tx);
        let mut tasks = JoinSet::new();
        for _ in 0..senders {
            let (client, batches, urls, queue, answers, accepted_tx) = (
                client.clone(),
                batches.clone(),
                urls.clone(),
                queue.clone(),
                answers.clone(),
                accepted_tx.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let Some(index) = queue.lock().expect("queue").pop_front() else {
                        return;
                    };
                    let url = &urls[index % urls.len()];
                    let answer = post(&client, url, &batches[index]).await;
                    if answer.is_accepted() {
                        accepted_tx.send_modify(|n| *n += 1);
                    }
                    answers.lock().expect("answers")[index] = Some(answer);
                }
            });
        }
        Stream {
            answers,
            accepted,
            senders: tasks,
        }
    }

    /// Waits until `count` webhooks were answered `200`.
    pub async fn wait_accepted(&mut self, count: usize, limit: Duration) {
        let reached = tokio::time::timeout(limit, self.accepted.wait_for(|n| *n >= count))
            .await
            .is_ok_and(|changed| changed.is_ok());
        assert!(
            reached,
            "only {} webhooks were accepted within {limit:?}, expected {count}",
            *self.accepted.borrow()
        );
    }

    /// Waits for every sender, and returns each batch's answer, in the batches' order.
    pub async fn finish(mut self) -> Vec<Answer> {
        while let Some(done) = self.senders.join_next().await {
            done.expect("a sender panicked");
        }
        let answers = std::mem::take(&mut *self.answers.lock().expect("answers"));
        answers
            .into_iter()
            .map(|a| a.expect("every batch was posted"))
            .collect()
    }
}

/// How the receiver treats the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `200` at once.
    Answer,
    /// No answer until the mode changes, then `503`: a failed attempt, if its client is
    /// still waiting.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    /// The relay that sent it, from [`RELAY_HEADER`].
    pub relay: String,
    pub at: Instant,
    /// Whether it was answered `200`, that is delivered.
    pub answered: bool,
}

struct Shared {
    verifier: Verifier,
    mode: watch::Sender<Mode>,
    received: Mutex<Vec<Received>>,
    /// Requests refused because their signature or body was wrong.
    refused: Mutex<Vec<String>>,
}

/// A stand-in for the HTTP target's receiver, on a port fixed from the start, so that it
/// can come up late where the relay expects it.
pub struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    server: Option<ServerHandle>,
}

impl Receiver {
    /// A receiver that is down: its port is chosen, nothing listens on it yet.
    pub fn reserve() -> Receiver {
        let secret = Secret::new(RECEIVER_SECRET);
        Receiver {
            port: free_port(),
            shared: Arc::new(Shared {
                verifier: Verifier::new([&secret]).expect("a verifier"),
                mode: watch::Sender::new(Mode::Answer),
                received: Mutex::new(Vec::new()),
                refused: Mutex::new(Vec::new()),
            }),
            server: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    /// Starts listening on the reserved port.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "the receiver is already up");
        let data = web::Data::from(self.shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/alerts", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", self.port))
        .expect("bind the receiver's port")
        .run();
        self.server = Some(server.handle());
        tokio::spawn(server);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Every request so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }

    /// Requests that were not signed with [`RECEIVER_SECRET`] or whose body did not carry
    /// its `Idempotency-Key` as `identity`.
    pub fn refused(&self) -> Vec<String> {
        self.shared.refused.lock().expect("refused").clone()
    }

    /// Waits until each of `keys` was answered `200` at least once; on timeout, returns
    /// those still missing.
    pub async fn wait_delivered(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        limit: Duration,
    ) -> Result<Duration, Vec<String>> {
        let started = Instant::now();
        let mut missing: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        loop {
            let answered: std::collections::HashSet<String> = self
                .received()
                .into_iter()
                .filter(|r| r.answered)
                .map(|r| r.key)
                .collect();
            missing.retain(|key| !answered.contains(key));
            if missing.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Sends the stop command now; the runtime ending takes care of the rest.
            drop(server.stop(false));
        }
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = header(IDEMPOTENCY_HEADER);
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.as_bytes());
    let identity = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["identity"].as_str().map(str::to_owned));
    if shared.verifier.verify(&body, signature).is_err() || identity.as_deref() != Some(&key) {
        shared
            .refused
            .lock()
            .expect("refused")
            .push(format!("key {key:?}, identity {identity:?}"));
        return HttpResponse::BadRequest().body("bad signature or identity");
    }

    let mut mode = shared.mode.subscribe();
    let hang = *mode.borrow_and_update() == Mode::Hang;
    shared.received.lock().expect("received").push(Received {
        key,
        relay: header(RELAY_HEADER),
        at: Instant::now(),
        answered: !hang,
    });
    if hang {
        let _ = tokio::time::timeout(HANG_LIMIT, mode.wait_for(|m| *m != Mode::Hang)).await;
        return HttpResponse::ServiceUnavailable().finish();
    }
    HttpResponse::Ok().finish()
}

/// `items` for a failure message: how many, and the first few, so that a broken run does
/// not print thousands of keys.
pub fn listed<T: std::fmt::Debug>(items: &[T]) -> String {
    const SHOWN: usize = 5;
    let more = if items.len() > SHOWN { ", …" } else { "" };
    format!(
        "{}: {:?}{more}",
        items.len(),
        &items[..items.len().min(SHOWN)]
    )
}

/// The requests of `received`, grouped by `Idempotency-Key`.
pub fn by_key(received: &[Received]) -> BTreeMap<&str, Vec<&Received>> {
    let mut keys: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for request in received {
        keys.entry(request.key.as_str()).or_default().push(request);
    }
    keys
}

/// A schema of its own on the PostgreSQL at `DATABASE_URL`, for one test run.
pub struct PgSchema {
    admin_url: String,
    name: String,
    /// The URL a relay uses: `DATABASE_URL` with this schema as its search path.
    pub url: String,
}

impl PgSchema {
    /// `None` when the run opted out of PostgreSQL; without `DATABASE_URL` otherwise, the
    /// test fails saying how to set it.
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let admin_url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                if std::env::var("SQREEN_WEBHOOK_SKIP_POSTGRES").as_deref() == Ok("1") {
                    eprintln!("skipped: SQREEN_WEBHOOK_SKIP_POSTGRES=1");
                    return None;
                }
                panic!(
                    "this test needs PostgreSQL: set DATABASE_URL to a database it may create \
                     schemas in (for example DATABASE_URL=postgres://postgres@127.0.0.1:5432/test, \
                     which `cargo xtask ci` uses by default), or set \
                     SQREEN_WEBHOOK_SKIP_POSTGRES=1 to skip it"
                );
            }
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .subsec_nanos();
        let name = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test's schema");
        let _ = conn.close().await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options[search_path]={name}");
        Some(PgSchema {
            admin_url,
            name,
            url,
        })
    }

    /// Drops the schema and everything in it. A failed test leaves its schema behind, to be
    /// looked at.
    pub async fn drop_schema(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drop the test's schema");
        let _ = conn.close().await;
    }
}
