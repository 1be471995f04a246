//! The sink: the HTTP receiver the relay's HTTP target delivers to during the benchmark.
//!
//! It counts what arrives and notes when each notification arrived, found by the event
//! counter in its `Idempotency-Key`, so that the time from the relay's answer to the sink
//! can be measured. It can be slowed to answer each request after a delay, which shows
//! whether a slow target holds up the answers to Sqreen.
//!
//! It runs in the harness process, on a thread and runtime of its own, so that its clock is
//! the load generator's: arrival and answer instants compare directly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::bodies::Factory;

/// What the sink has seen since it was last reset.
#[derive(Debug, Default)]
struct Seen {
    /// Event counter and arrival, in order of arrival, repeats included.
    arrivals: Vec<(u64, Instant)>,
    /// Requests whose key was not one of this run's events.
    foreign: u64,
}

#[derive(Debug)]
struct State {
    factory: Arc<Factory>,
    delay_ms: AtomicU64,
    requests: AtomicU64,
    seen: Mutex<Seen>,
}

/// A running sink.
#[derive(Debug, Clone)]
pub struct Sink {
    addr: SocketAddr,
    state: Arc<State>,
}

/// First arrival of each event since the last reset.
#[derive(Debug, Default)]
pub struct Arrivals {
    pub first: HashMap<u64, Instant>,
    pub repeats: u64,
    pub foreign: u64,
}

impl Sink {
    /// Starts the sink on a loopback port of its own thread.
    pub fn start(factory: Arc<Factory>) -> Result<Sink, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind the sink: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot configure the sink's socket: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the sink has no address: {e}"))?;
        let state = Arc::new(State {
            factory,
            delay_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
        });
        let served = state.clone();
        std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        eprintln!("bench: the sink cannot start a runtime: {error}");
                        return;
                    }
                };
                runtime.block_on(serve(listener, served));
            })
            .map_err(|e| format!("cannot start the sink thread: {e}"))?;
        Ok(Sink { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    /// Every later request is answered after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Requests received so far, all runs together.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Takes what arrived since the last call, and starts afresh.
    pub fn take(&self) -> Arrivals {
        let seen = std::mem::take(
            &mut *self
                .state
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut arrivals = Arrivals {
            foreign: seen.foreign,
            ..Arrivals::default()
        };
        // In order of arrival: the first is kept, later ones are repeats.
        for (counter, at) in seen.arrivals {
            match arrivals.first.entry(counter) {
                std::collections::hash_map::Entry::Occupied(_) => arrivals.repeats += 1,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(at);
                }
            }
        }
        arrivals
    }
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bench: the sink cannot listen: {error}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| receive(request, state.clone()));
            // A connection the relay drops (a killed server) ends here; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn receive(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let counter = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|key| state.factory.counter_of(key));
    // The notification has arrived once its body has.
    let _ = request.into_body().collect().await;
    let at = Instant::now();
    state.requests.fetch_add(1, Ordering::Relaxed);
    {
        let mut seen = state.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match counter {
            Some(counter) => seen.arrivals.push((counter, at)),
            None => seen.foreign += 1,
        }
    }
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}
