//! The measurements, in order, and the report they make.
//!
//! The controls run for the whole suite; the relay is started afresh for every run. Each
//! comparison runs in rounds, the subjects in a rotating order within a round, and keeps
//! the median of the rounds, so that a slow spell of the machine falls on every subject
//! alike rather than on one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqreen_webhook_core::Secret;

use super::bodies::Factory;
use super::control;
use super::load::{self, Load, Outcome};
use super::memory::{self, Memory, mib};
use super::micro;
use super::report::{
    BodySize, Budget, Delivery, FixedRate, Machine, MemoryRow, Report, Scaling, Settings,
    Throughput, round,
};
use super::sink::{Arrivals, Sink};
use super::stats::{Latency, NEVER, Samples, median, micros};
use super::subject::{Durability, Process, RelaySetup, start_control, start_relay};

/// The body sizes Sqreen sends: one event, a batch, the largest batch.
const SIZES: [usize; 3] = [1, 10, 1000];

/// How long and how hard each part runs.
#[derive(Debug, Clone)]
struct Plan {
    rounds: usize,
    micro: Duration,
    idle: Duration,
    warmup: Duration,
    /// Per round, for 10-event bodies, whose ratio is a budget.
    throughput: Duration,
    /// Per round, for the other sizes.
    throughput_other: Duration,
    connections: usize,
    connections_1000: usize,
    rate: f64,
    rate_connections: usize,
    latency: Duration,
    /// A lighter fixed rate, for delivery latency without a backlog.
    steady_rate: f64,
    steady: Duration,
    scaling: Duration,
    /// Longest wait for the deliveries of a run to reach the sink.
    drain: Duration,
}

impl Plan {
    /// About two and a half minutes.
    fn full() -> Plan {
        Plan {
            rounds: 3,
            micro: Duration::from_millis(250),
            idle: Duration::from_secs(1),
            warmup: Duration::from_millis(500),
            throughput: Duration::from_secs(3),
            throughput_other: Duration::from_millis(1500),
            connections: 32,
            connections_1000: 4,
            rate: 1000.0,
            rate_connections: 32,
            latency: Duration::from_secs(2),
            steady_rate: 100.0,
            steady: Duration::from_secs(3),
            scaling: Duration::from_millis(1500),
            drain: Duration::from_secs(2),
        }
    }

    /// A smoke test of the harness: every part, briefly.
    fn quick() -> Plan {
        Plan {
            rounds: 1,
            micro: Duration::from_millis(30),
            idle: Duration::from_millis(300),
            warmup: Duration::from_millis(200),
            throughput: Duration::from_millis(600),
            throughput_other: Duration::from_millis(400),
            latency: Duration::from_millis(600),
            steady: Duration::from_millis(800),
            scaling: Duration::from_millis(400),
            drain: Duration::from_millis(500),
            ..Plan::full()
        }
    }
}

/// What a run is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Bare,
    Verify,
    Relay(Durability),
    /// The relay, its HTTP target's sink answering each request after one second.
    SlowSink,
}

impl Subject {
    fn label(self) -> String {
        match self {
            Subject::Bare => "bare control".into(),
            Subject::Verify => "verify+parse control".into(),
            Subject::Relay(Durability::Process) => "relay".into(),
            Subject::Relay(Durability::PowerLoss) => "relay, power_loss".into(),
            Subject::SlowSink => "relay, sink 1 s/request".into(),
        }
    }

    fn is_relay(self) -> bool {
        matches!(self, Subject::Relay(_) | Subject::SlowSink)
    }
}

/// One run's figures.
#[derive(Debug)]
struct Measured {
    outcome: Outcome,
    cpu: Option<Duration>,
    harness_cpu: Option<Duration>,
    peak: Option<Memory>,
    arrivals: Option<Arrivals>,
    /// Requests the sink received per second during the counted window.
    sink_per_s: f64,
}

impl Measured {
    fn cpu_us_per_request(&self, cpu: Option<Duration>) -> Option<f64> {
        let ok = self.outcome.ok;
        cpu.filter(|_| ok > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / ok as f64)
    }
}

struct Bench {
    plan: Plan,
    factory: Arc<Factory>,
    sink: Sink,
    bare: Process,
    verify: Process,
    relay: RelaySetup,
    /// The highest peak of any relay run.
    relay_peak: Option<u64>,
}

/// The parts of the suite, which `--only` can pick from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Micro,
    Throughput,
    Rate,
    Delivery,
    Scaling,
}

impl Part {
    const ALL: [(&'static str, Part); 5] = [
        ("micro", Part::Micro),
        ("throughput", Part::Throughput),
        ("rate", Part::Rate),
        ("delivery", Part::Delivery),
        ("scaling", Part::Scaling),
    ];
}

/// Options the launcher passes.
#[derive(Debug)]
struct Options {
    relay: PathBuf,
    out: PathBuf,
    quick: bool,
    profile: String,
    command: String,
    /// The parts to run; all when empty.
    only: Vec<Part>,
}

impl Options {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Runs the suite: `ARGS` are `--relay PATH --out DIR --profile NAME --command TEXT
/// [--quick]`, as the launcher gives them.
pub fn main(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let options = parse(args)?;
    let plan = if options.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("cannot create {}: {e}", options.out.display()))?;
    let (secret, prefix) = fresh_secret();
    let factory = Arc::new(Factory::new(Secret::new(secret.as_str()), prefix)?);

    eprintln!("bench: micro-benchmarks");
    let micro = if options.runs(Part::Micro) {
        micro::run(&factory, &Secret::new(secret.as_str()), &SIZES, plan.micro)?
    } else {
        Vec::new()
    };

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let mut report = runtime.block_on(suite(&options, plan, factory, secret, workers, micro))?;
    report.wall_s = started.elapsed().as_secs_f64();

    let text = report.text();
    println!("{text}");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    let json_path = options.out.join("report.json");
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    let text_path = options.out.join("report.md");
    std::fs::write(&text_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", text_path.display()))?;
    eprintln!(
        "bench: report in {} and {}",
        json_path.display(),
        text_path.display()
    );
    Ok(())
}

fn parse(args: &[String]) -> Result<Options, String> {
    let (mut relay, mut out, mut profile, mut command) = (None, None, None, None);
    let mut quick = false;
    let mut only = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--relay" => relay = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--profile" => profile = Some(value()?),
            "--command" => command = Some(value()?),
            "--quick" => quick = true,
            "--only" => {
                for name in value()?.split(',') {
                    let part = Part::ALL
                        .iter()
                        .find(|(known, _)| *known == name)
                        .ok_or_else(|| format!("--only: unknown part {name:?}"))?;
                    only.push(part.1);
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        relay: relay.ok_or("--relay is needed")?,
        out: out.ok_or("--out is needed")?,
        quick,
        profile: profile.unwrap_or_else(|| "release".into()),
        command: command.unwrap_or_else(|| "cargo xtask bench".into()),
        only,
    })
}

/// A secret and an id prefix that no earlier run used.
fn fresh_secret() -> (String, u32) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = nanos ^ (u128::from(std::process::id()) << 64);
    (
        format!("bench-{mixed:032x}"),
        (nanos as u32) ^ std::process::id(),
    )
}

async fn suite(
    options: &Options,
    plan: Plan,
    factory: Arc<Factory>,
    secret: String,
    workers: usize,
    micro: Vec<micro::Micro>,
) -> Result<Report, String> {
    let sink = Sink::start(factory.clone())?;
    let bare = start_control(control::Kind::Bare, &secret, workers).await?;
    let verify = start_control(control::Kind::Verify, &secret, workers).await?;
    let control_idle = [bare.memory(), verify.memory()];
    let work = options.out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let mut bench = Bench {
        plan: plan.clone(),
        factory: factory.clone(),
        sink: sink.clone(),
        bare,
        verify,
        relay: RelaySetup {
            binary: options.relay.clone(),
            work: work.clone(),
            secret,
            workers,
            sink_url: sink.url(),
        },
        relay_peak: None,
    };

    eprintln!("bench: relay at rest");
    let idle = {
        let relay = start_relay(&bench.relay, Durability::Process).await?;
        tokio::time::sleep(plan.idle).await;
        relay.memory()
    };

    let mut throughput = Vec::new();
    if options.runs(Part::Throughput) {
        for events in [10, 1, 1000] {
            throughput.extend(bench.throughput(events).await?);
        }
    }
    let (fixed_rate, mut delivery) = if options.runs(Part::Rate) {
        bench.fixed_rate().await?
    } else {
        (Vec::new(), Vec::new())
    };
    if options.runs(Part::Delivery) {
        delivery.push(bench.steady_delivery().await?);
    }
    let scaling = if options.runs(Part::Scaling) {
        bench.scaling(&throughput).await?
    } else {
        Vec::new()
    };

    let memory = vec![
        MemoryRow {
            subject: "relay".into(),
            idle_rss_kib: idle.map(|m| m.rss_kib),
            idle_peak_kib: idle.map(|m| m.peak_kib),
            load_peak_kib: bench.relay_peak,
        },
        MemoryRow {
            subject: Subject::Bare.label(),
            idle_rss_kib: control_idle[0].map(|m| m.rss_kib),
            idle_peak_kib: control_idle[0].map(|m| m.peak_kib),
            load_peak_kib: bench.bare.memory().map(|m| m.peak_kib),
        },
        MemoryRow {
            subject: Subject::Verify.label(),
            idle_rss_kib: control_idle[1].map(|m| m.rss_kib),
            idle_peak_kib: control_idle[1].map(|m| m.peak_kib),
            load_peak_kib: bench.verify.memory().map(|m| m.peak_kib),
        },
    ];

    let bodies = SIZES
        .iter()
        .map(|&events| BodySize {
            events,
            bytes: factory.make(events).body.len(),
        })
        .collect();
    let budgets = budgets(&throughput, &fixed_rate, &delivery, &memory, &scaling);
    Ok(Report {
        command: options.command.clone(),
        machine: machine(&work),
        settings: Settings {
            quick: options.quick,
            profile: options.profile.clone(),
            workers,
            rounds: plan.rounds,
            warmup_s: plan.warmup.as_secs_f64(),
            throughput_s: plan.throughput.as_secs_f64(),
            latency_s: plan.latency.as_secs_f64(),
            connections: plan.connections,
            connections_1000: plan.connections_1000,
            rate: plan.rate,
            rate_connections: plan.rate_connections,
        },
        bodies,
        micro,
        throughput,
        fixed_rate,
        delivery,
        memory,
        scaling,
        budgets,
        wall_s: 0.0,
    })
}

impl Bench {
    /// Warms up, then measures `load` against `subject`. With `deliveries`, also waits for
    /// the notifications to reach the sink and returns their arrivals.
    async fn measure(
        &mut self,
        subject: Subject,
        load: Load,
        deliveries: bool,
    ) -> Result<Measured, String> {
        self.sink.set_delay(if subject == Subject::SlowSink {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        });
        let mut relay = match subject {
            Subject::Relay(durability) => Some(start_relay(&self.relay, durability).await?),
            Subject::SlowSink => Some(start_relay(&self.relay, Durability::Process).await?),
            Subject::Bare | Subject::Verify => None,
        };
        let process = match (&relay, subject) {
            (Some(relay), _) => relay,
            (None, Subject::Bare) => &self.bare,
            (None, _) => &self.verify,
        };
        let addr = process.addr();
        if !self.plan.warmup.is_zero() {
            let warmup = Load {
                duration: self.plan.warmup,
                ..load
            };
            load::run(addr, self.factory.clone(), warmup).await?;
        }
        // The warm-up's notifications are not this run's.
        let _ = self.sink.take();
        let (cpu_before, harness_before) = (process.cpu_time(), memory::cpu_time(0));
        let sink_before = self.sink.requests();
        let outcome = load::run(addr, self.factory.clone(), load).await?;
        let sink_per_s =
            (self.sink.requests() - sink_before) as f64 / load.duration.as_secs_f64().max(1e-9);
        let cpu = process
            .cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let harness_cpu = memory::cpu_time(0)
            .zip(harness_before)
            .map(|(after, before)| after.saturating_sub(before));
        let peak = process.memory();
        let arrivals = if deliveries {
            self.wait_for_deliveries().await;
            Some(self.sink.take())
        } else {
            None
        };
        if let Some(relay) = relay.as_mut() {
            relay.check_alive()?;
            if let Some(peak) = peak {
                self.relay_peak = Some(self.relay_peak.unwrap_or(0).max(peak.peak_kib));
            }
        }
        drop(relay);
        self.sink.set_delay(Duration::ZERO);
        if let Some(error) = &outcome.first_error {
            eprintln!(
                "bench: {}: {} requests failed, the first: {error}",
                subject.label(),
                outcome.failed
            );
        }
        Ok(Measured {
            outcome,
            cpu,
            harness_cpu,
            peak,
            arrivals,
            sink_per_s,
        })
    }

    /// Runs every subject once per round, in an order that rotates from round to round.
    async fn rounds(
        &mut self,
        subjects: &[Subject],
        load: Load,
        deliveries: bool,
        what: &str,
    ) -> Result<Vec<Vec<Measured>>, String> {
        let mut results: Vec<Vec<Measured>> = subjects.iter().map(|_| Vec::new()).collect();
        for number in 0..self.plan.rounds {
            for turn in 0..subjects.len() {
                let index = (turn + number) % subjects.len();
                let subject = subjects[index];
                let measured = self
                    .measure(subject, load, deliveries && subject.is_relay())
                    .await?;
                eprintln!(
                    "bench: {what}, round {}/{}: {} {} req/s, p99 {} ms",
                    number + 1,
                    self.plan.rounds,
                    subject.label(),
                    round(measured.outcome.per_second()),
                    measured
                        .outcome
                        .latencies
                        .summary()
                        .p99_ms
                        .map_or("-".into(), round)
                );
                results[index].push(measured);
            }
        }
        Ok(results)
    }

    async fn throughput(&mut self, events: usize) -> Result<Vec<Throughput>, String> {
        let mut subjects = vec![
            Subject::Bare,
            Subject::Verify,
            Subject::Relay(Durability::Process),
        ];
        if events == 10 {
            subjects.push(Subject::Relay(Durability::PowerLoss));
        }
        let connections = if events >= 1000 {
            self.plan.connections_1000
        } else {
            self.plan.connections
        };
        let load = Load {
            events,
            connections,
            rate: None,
            duration: if events == 10 {
                self.plan.throughput
            } else {
                self.plan.throughput_other
            },
        };
        let what = format!("throughput, {events} events");
        let results = self.rounds(&subjects, load, false, &what).await?;
        let rps: Vec<f64> = results
            .iter()
            .map(|runs| median(runs.iter().map(|m| m.outcome.per_second())).unwrap_or(0.0))
            .collect();
        let (bare, verify) = (rps[0], rps[1]);
        let share = |value: f64, of: f64| (of > 0.0).then(|| value / of);
        Ok(subjects
            .iter()
            .zip(&results)
            .zip(&rps)
            .map(|((subject, runs), &rps)| Throughput {
                events,
                subject: subject.label(),
                connections,
                requests_per_s: rps,
                events_per_s: rps * events as f64,
                rounds_requests_per_s: runs.iter().map(|m| m.outcome.per_second()).collect(),
                vs_verify: share(rps, verify),
                vs_bare: share(rps, bare),
                cpu_us_per_request: median(runs.iter().filter_map(|m| m.cpu_us_per_request(m.cpu))),
                harness_cpu_us_per_request: median(
                    runs.iter()
                        .filter_map(|m| m.cpu_us_per_request(m.harness_cpu)),
                ),
                latency: Latency::combine(
                    &runs
                        .iter()
                        .map(|m| m.outcome.latencies.summary())
                        .collect::<Vec<_>>(),
                ),
                peak_rss_kib: runs.iter().filter_map(|m| m.peak.map(|p| p.peak_kib)).max(),
                failed: runs.iter().map(|m| m.outcome.failed).sum(),
                delivered_per_s: subject
                    .is_relay()
                    .then(|| median(runs.iter().map(|m| m.sink_per_s)))
                    .flatten(),
            })
            .collect())
    }

    /// Answer time at the fixed rate, 10-event bodies, for every subject; delivery time
    /// for the relay with a prompt sink.
    async fn fixed_rate(&mut self) -> Result<(Vec<FixedRate>, Vec<Delivery>), String> {
        let subjects = [
            Subject::Bare,
            Subject::Verify,
            Subject::Relay(Durability::Process),
            Subject::SlowSink,
            Subject::Relay(Durability::PowerLoss),
        ];
        let events = 10;
        let load = Load {
            events,
            connections: self.plan.rate_connections,
            rate: Some(self.plan.rate),
            duration: self.plan.latency,
        };
        let what = format!("{} req/s", self.plan.rate);
        let results = self.rounds(&subjects, load, true, &what).await?;
        let rows = subjects
            .iter()
            .zip(&results)
            .map(|(subject, runs)| FixedRate {
                subject: subject.label(),
                events,
                rate: self.plan.rate,
                achieved_per_s: median(runs.iter().map(|m| m.outcome.per_second())).unwrap_or(0.0),
                latency: Latency::combine(
                    &runs
                        .iter()
                        .map(|m| m.outcome.latencies.summary())
                        .collect::<Vec<_>>(),
                ),
                late: runs.iter().map(|m| m.outcome.late).sum(),
                failed: runs.iter().map(|m| m.outcome.failed).sum(),
                peak_rss_kib: runs.iter().filter_map(|m| m.peak.map(|p| p.peak_kib)).max(),
            })
            .collect();
        let mut deliveries = Vec::new();
        for (subject, runs) in subjects.iter().zip(&results) {
            if matches!(subject, Subject::Relay(_)) {
                let load = format!(
                    "{} req/s × {events} events ({})",
                    self.plan.rate,
                    subject.label()
                );
                deliveries.push(delivery(load, events, self.plan.rate, runs));
            }
        }
        Ok((rows, deliveries))
    }

    /// Delivery time at a rate the relay delivers without building a backlog.
    async fn steady_delivery(&mut self) -> Result<Delivery, String> {
        let events = 10;
        let load = Load {
            events,
            connections: self.plan.rate_connections,
            rate: Some(self.plan.steady_rate),
            duration: self.plan.steady,
        };
        eprintln!(
            "bench: delivery at {} req/s × {events} events",
            self.plan.steady_rate
        );
        let measured = self
            .measure(Subject::Relay(Durability::Process), load, true)
            .await?;
        Ok(delivery(
            format!("{} req/s × {events} events (relay)", self.plan.steady_rate),
            events,
            self.plan.steady_rate,
            std::slice::from_ref(&measured),
        ))
    }

    /// Answer time one request at a time, for each size, relay and verify control.
    async fn scaling(&mut self, throughput: &[Throughput]) -> Result<Vec<Scaling>, String> {
        let mut rows = Vec::new();
        for events in SIZES {
            let load = Load {
                events,
                connections: 1,
                rate: None,
                duration: self.plan.scaling,
            };
            let what = format!("one at a time, {events} events");
            let subjects = [Subject::Verify, Subject::Relay(Durability::Process)];
            let results = self.rounds(&subjects[..], load, false, &what).await?;
            let latency = |runs: &[Measured]| {
                Latency::combine(
                    &runs
                        .iter()
                        .map(|m| m.outcome.latencies.summary())
                        .collect::<Vec<_>>(),
                )
            };
            let relay_throughput = throughput.iter().find(|t| {
                t.events == events && t.subject == Subject::Relay(Durability::Process).label()
            });
            rows.push(Scaling {
                events,
                bytes: self.factory.make(events).body.len(),
                relay: latency(&results[1]),
                verify_control: latency(&results[0]),
                relay_peak_rss_kib: relay_throughput.and_then(|t| t.peak_rss_kib),
                relay_cpu_us_per_request: median(
                    results[1]
                        .iter()
                        .filter_map(|m| m.cpu_us_per_request(m.cpu)),
                ),
            });
        }
        Ok(rows)
    }

    /// Waits until the sink has had nothing for a moment, or the drain time is over.
    async fn wait_for_deliveries(&self) {
        let deadline = Instant::now() + self.plan.drain;
        let quiet = Duration::from_millis(300);
        let mut last = self.sink.requests();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.sink.requests();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }
}

/// Delivery figures of some runs: for each notification of each answered request, the
/// time from the answer to its first arrival at the sink.
fn delivery(load: String, events: usize, rate: f64, runs: &[Measured]) -> Delivery {
    let (mut accepted, mut delivered, mut before_answer) = (0, 0, 0);
    let (mut repeats, mut foreign) = (0, 0);
    // Pooled over the rounds; a notification that never arrived counts as later than any
    // that did, so that a backlog shows in the percentiles instead of thinning them.
    let mut latencies = Vec::new();
    for run in runs {
        let Some(arrivals) = &run.arrivals else {
            continue;
        };
        repeats += arrivals.repeats;
        foreign += arrivals.foreign;
        for answer in &run.outcome.answers {
            for counter in answer.first..answer.first + u64::from(answer.events) {
                accepted += 1;
                let Some(&at) = arrivals.first.get(&counter) else {
                    latencies.push(NEVER);
                    continue;
                };
                delivered += 1;
                if at < answer.at {
                    before_answer += 1;
                }
                latencies.push(micros(at.saturating_duration_since(answer.at)));
            }
        }
    }
    Delivery {
        load,
        events,
        rate,
        accepted,
        delivered,
        latency: Samples::new(latencies).summary(),
        before_answer,
        repeats,
        foreign,
        delivered_per_s: median(runs.iter().map(|m| m.sink_per_s)),
    }
}

fn budgets(
    throughput: &[Throughput],
    fixed_rate: &[FixedRate],
    delivery: &[Delivery],
    memory: &[MemoryRow],
    scaling: &[Scaling],
) -> Vec<Budget> {
    let relay = Subject::Relay(Durability::Process).label();
    let ms = |v: f64| format!("{} ms", round(v));
    let mut budgets = Vec::new();

    let row = throughput
        .iter()
        .find(|t| t.events == 10 && t.subject == relay);
    budgets.push(Budget::new(
        "throughput, 10-event bodies, vs verify+parse control",
        "≥ 50%",
        row.and_then(|t| {
            Some(format!(
                "{:.0}% ({:.0}% of bare)",
                t.vs_verify? * 100.0,
                t.vs_bare? * 100.0
            ))
        }),
        row.and_then(|t| t.vs_verify).map(|v| v >= 0.5),
    ));

    let normal = fixed_rate
        .iter()
        .find(|r| r.subject == relay)
        .and_then(|r| r.latency.p99_ms);
    budgets.push(Budget::new(
        "answer p99 at the fixed rate",
        "≤ 5 ms",
        normal.map(ms),
        normal.map(|p99| p99 <= 5.0),
    ));
    let slow = fixed_rate
        .iter()
        .find(|r| r.subject == Subject::SlowSink.label())
        .and_then(|r| r.latency.p99_ms);
    budgets.push(Budget::new(
        "answer p99 with the sink at 1 s/request",
        "unchanged: ≤ 1.5 × + 0.5 ms",
        slow.zip(normal)
            .map(|(slow, normal)| format!("{} (vs {})", ms(slow), ms(normal))),
        slow.zip(normal)
            .map(|(slow, normal)| slow <= normal * 1.5 + 0.5),
    ));

    let at_rate = delivery.first().filter(|d| d.accepted > 0);
    let p50 = at_rate.and_then(|d| d.latency.p50_ms);
    budgets.push(Budget::new(
        "delivery p50 at the fixed rate",
        "≤ 20 ms",
        at_rate.map(|d| {
            format!(
                "{} ({} of {} delivered)",
                p50.map_or("most undelivered".into(), ms),
                d.delivered,
                d.accepted
            )
        }),
        at_rate.map(|_| p50.is_some_and(|p| p <= 20.0)),
    ));

    let relay_memory = memory.iter().find(|m| m.subject == "relay");
    let load_peak = relay_memory.and_then(|m| m.load_peak_kib);
    budgets.push(Budget::new(
        "relay peak RSS under load (every run)",
        "≤ 32 MiB",
        load_peak.map(|k| format!("{:.1} MiB", mib(k))),
        load_peak.map(|k| mib(k) <= 32.0),
    ));
    let idle_peak = relay_memory.and_then(|m| m.idle_peak_kib);
    budgets.push(Budget::new(
        "relay peak RSS at rest",
        "≤ 16 MiB",
        idle_peak.map(|k| format!("{:.1} MiB", mib(k))),
        idle_peak.map(|k| mib(k) <= 16.0),
    ));

    let big = scaling
        .iter()
        .find(|s| s.events == 1000)
        .and_then(|s| s.relay.p99_ms);
    budgets.push(Budget::new(
        "1000-event body answered (p99, one at a time)",
        "≤ 50 ms",
        big.map(ms),
        big.map(|p99| p99 <= 50.0),
    ));
    budgets
}

/// What the report says about the machine.
fn machine(work: &std::path::Path) -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map_or("unknown processor".to_owned(), |m| m.trim().to_owned());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc,
        disk_of_the_store: filesystem_of(work, &read("/proc/self/mounts")),
    }
}

/// The filesystem `path` is on, from the mount table: `ext4 (/dev/vda)`.
fn filesystem_of(path: &std::path::Path, mounts: &str) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then_some((point.len(), kind, device))
        })
        .max_by_key(|(len, _, _)| *len)
        .map_or("unknown filesystem".to_owned(), |(_, kind, device)| {
            format!("{kind} ({device})")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_is_the_longest_mount_point_holding_the_path() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";

        assert_eq!(
            filesystem_of(std::path::Path::new("/tmp/x/y"), mounts),
            "tmpfs (tmpfs)"
        );
        assert_eq!(
            filesystem_of(std::path::Path::new("/work/target"), mounts),
            "ext4 (/dev/vda)"
        );
    }

    #[test]
    fn the_quick_plan_is_a_fraction_of_the_full_one() {
        let (full, quick) = (Plan::full(), Plan::quick());

        assert!(quick.rounds < full.rounds && quick.throughput < full.throughput);
        assert_eq!(quick.rate, full.rate);
    }
}
