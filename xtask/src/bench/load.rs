//! The load generator: signed bodies posted over kept-alive HTTP/1.1 connections.
//!
//! Two shapes of load. Closed: a fixed number of connections, each sending its next request
//! as soon as the answer to the last arrives, which finds the most requests per second a
//! server sustains. Open: requests on a fixed schedule whatever the answers do, which is
//! how latency must be measured; a request whose slot comes while every connection is busy
//! goes out late, and is counted so, rather than silently spacing the load out.
//!
//! hyper's client is used without a pool so that each task owns one connection: the load
//! stays exactly as concurrent as asked, and a slow answer holds up its own connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::bodies::{Factory, Signed};
use super::stats::{Samples, micros};

/// A request that starts this much after its slot is counted as late.
const LATE: Duration = Duration::from_millis(2);

/// One kept-alive connection to a server.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))?;
        tokio::spawn(async move {
            // Ends with an error when the server closes the connection; the next request
            // on it fails and the caller reconnects.
            let _ = connection.await;
        });
        Ok(Connection { addr, sender })
    }

    /// Posts a body to `/webhook` and reads the whole answer.
    pub async fn post(&mut self, signed: &Signed) -> Result<StatusCode, String> {
        let request = Request::post("/webhook")
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                sqreen_webhook_core::SIGNATURE_HEADER,
                signed.signature.as_str(),
            )
            .body(Full::new(signed.body.clone()))
            .map_err(|e| format!("cannot build a request: {e}"))?;
        self.send(request).await
    }

    /// A `GET`, for readiness checks.
    pub async fn get(&mut self, path: &str) -> Result<StatusCode, String> {
        let request = Request::get(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("cannot build a request: {e}"))?;
        self.send(request).await
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<StatusCode, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        Ok(status)
    }
}

/// Asks `path` until the server answers 200 or `patience` runs out.
pub async fn wait_ready(addr: SocketAddr, path: &str, patience: Duration) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match Connection::open(addr).await {
            Ok(mut connection) => match connection.get(path).await {
                Ok(StatusCode::OK) => return Ok(()),
                Ok(status) => last = format!("answered {status}"),
                Err(error) => last = error,
            },
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{addr} not ready within {patience:?}: {last}"))
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Events per body.
    pub events: usize,
    pub connections: usize,
    /// Requests per second for an open load; `None` for a closed one.
    pub rate: Option<f64>,
    pub duration: Duration,
}

/// A counted request that was answered `200`: when, and which events it carried.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub first: u64,
    pub events: u32,
    pub at: Instant,
}

/// What a run measured, over its counted part.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered `200`.
    pub ok: u64,
    /// Requests answered otherwise, or not answered.
    pub failed: u64,
    /// Requests that left more than [`LATE`] after their slot (open load only).
    pub late: u64,
    /// The counted window.
    pub elapsed: Duration,
    /// Answer time of each request answered `200`, from sending to the end of the answer.
    pub latencies: Samples,
    pub answers: Vec<Answer>,
    /// The first failure, to show when a run had any.
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What one connection's task saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    late: u64,
    latencies: Vec<u32>,
    answers: Vec<Answer>,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, error: String) {
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }
}

/// The clock of a run, shared by its connections.
struct Schedule {
    start: Instant,
    end: Instant,
    /// For an open load: time between slots, and the next slot to take.
    interval: Option<Duration>,
    next_slot: AtomicU64,
}

impl Schedule {
    /// The next slot's time, or `None` when the run is over.
    fn take_slot(&self) -> Option<Instant> {
        let interval = self.interval?;
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let due = self.start + interval.mul_f64(slot as f64);
        (due < self.end).then_some(due)
    }
}

/// Runs `load` against the server at `addr`.
pub async fn run(addr: SocketAddr, factory: Arc<Factory>, load: Load) -> Result<Outcome, String> {
    let mut connections = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        connections.push(Connection::open(addr).await?);
    }
    let start = Instant::now();
    let schedule = Arc::new(Schedule {
        start,
        end: start + load.duration,
        interval: load.rate.map(|rate| Duration::from_secs_f64(1.0 / rate)),
        next_slot: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for connection in connections {
        let (schedule, factory) = (schedule.clone(), factory.clone());
        tasks.spawn(drive(connection, schedule, factory, load.events));
    }
    let mut outcome = Outcome {
        elapsed: load.duration,
        ..Outcome::default()
    };
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.map_err(|e| format!("a load task failed: {e}"))?;
        outcome.ok += tally.ok;
        outcome.failed += tally.failed;
        outcome.late += tally.late;
        latencies.extend(tally.latencies);
        outcome.answers.extend(tally.answers);
        if outcome.first_error.is_none() {
            outcome.first_error = tally.first_error;
        }
    }
    outcome.latencies = Samples::new(latencies);
    Ok(outcome)
}

/// One connection's loop: closed (next request when the answer is in) or open (next slot).
async fn drive(
    mut connection: Connection,
    schedule: Arc<Schedule>,
    factory: Arc<Factory>,
    events: usize,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        // The body is made before waiting for its slot so that it leaves on time.
        let signed = factory.make(events);
        let due = if schedule.interval.is_some() {
            let Some(due) = schedule.take_slot() else {
                break;
            };
            tokio::time::sleep_until(due.into()).await;
            Some(due)
        } else {
            if Instant::now() >= schedule.end {
                break;
            }
            None
        };
        let sent = Instant::now();
        let result = connection.post(&signed).await;
        let done = Instant::now();
        // Closed load: a request answered after the end is not counted, so that requests
        // per second are not biased by the last ones. Open load: every slot counts.
        let counted = due.is_some() || done <= schedule.end;
        match result {
            Ok(StatusCode::OK) if counted => {
                tally.ok += 1;
                tally.latencies.push(micros(done - sent));
                tally.answers.push(Answer {
                    first: signed.first,
                    events: signed.events,
                    at: done,
                });
                if due.is_some_and(|due| sent.saturating_duration_since(due) > LATE) {
                    tally.late += 1;
                }
            }
            Ok(StatusCode::OK) => {}
            Ok(status) => {
                if counted {
                    tally.fail(format!("answered {status}"));
                }
            }
            Err(error) => {
                if counted {
                    tally.fail(error);
                }
                match Connection::open(connection.addr).await {
                    Ok(fresh) => connection = fresh,
                    Err(error) => {
                        tally.fail(error);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    tally
}
