//! The report: every figure of a run, printed as tables and written as JSON, with the
//! budgets checked against them.
//!
//! The tables are plain text in Markdown's pipe syntax, so that the README's Performance
//! section can take them as they are.

use std::fmt::Write as _;

use serde::Serialize;

use super::memory::mib;
use super::micro::Micro;
use super::stats::Latency;

/// Where and how the run was made.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub disk_of_the_store: String,
}

/// How long each part ran, and with how many connections.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub profile: String,
    pub workers: usize,
    pub rounds: usize,
    pub warmup_s: f64,
    pub throughput_s: f64,
    pub latency_s: f64,
    pub connections: usize,
    pub connections_1000: usize,
    pub rate: f64,
    pub rate_connections: usize,
}

/// The size of the bodies of each batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BodySize {
    pub events: usize,
    pub bytes: usize,
}

/// Requests per second of one subject at one body size, median of the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub events: usize,
    pub subject: String,
    pub connections: usize,
    pub requests_per_s: f64,
    pub events_per_s: f64,
    pub rounds_requests_per_s: Vec<f64>,
    /// Over the verify-and-parse control's requests per second.
    pub vs_verify: Option<f64>,
    /// Over the bare control's requests per second.
    pub vs_bare: Option<f64>,
    /// Processor time of the subject's process per accepted request.
    pub cpu_us_per_request: Option<f64>,
    /// Processor time of the harness (load generator and sink) per request.
    pub harness_cpu_us_per_request: Option<f64>,
    pub latency: Latency,
    pub peak_rss_kib: Option<u64>,
    pub failed: u64,
    /// For the relay: notifications its HTTP target delivered per second meanwhile.
    pub delivered_per_s: Option<f64>,
}

/// Answer time at a fixed request rate.
#[derive(Debug, Clone, Serialize)]
pub struct FixedRate {
    pub subject: String,
    pub events: usize,
    pub rate: f64,
    pub achieved_per_s: f64,
    pub latency: Latency,
    /// Requests that left the load generator more than 2 ms after their slot.
    pub late: u64,
    pub failed: u64,
    pub peak_rss_kib: Option<u64>,
}

/// From the relay's answer to the sink receiving each notification.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub load: String,
    pub events: usize,
    pub rate: f64,
    /// Notifications in the answered requests.
    pub accepted: u64,
    /// Of those, how many reached the sink before the harness stopped waiting.
    pub delivered: u64,
    pub latency: Latency,
    /// Deliveries that reached the sink before the load generator had read the answer
    /// (counted as 0 ms).
    pub before_answer: u64,
    pub repeats: u64,
    /// Requests the sink could not tie to an event of the run (should be none).
    pub foreign: u64,
    /// Notifications the sink received per second while the load ran.
    pub delivered_per_s: Option<f64>,
}

/// Resident memory of a process, at rest and at its peak.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub subject: String,
    pub idle_rss_kib: Option<u64>,
    pub idle_peak_kib: Option<u64>,
    pub load_peak_kib: Option<u64>,
}

/// How the relay's answer time and memory grow with the size of a body.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    pub events: usize,
    pub bytes: usize,
    /// One request at a time, the next when the answer is in.
    pub relay: Latency,
    pub verify_control: Latency,
    /// The relay's peak resident memory under the throughput load of this size.
    pub relay_peak_rss_kib: Option<u64>,
    pub relay_cpu_us_per_request: Option<f64>,
}

/// A budget the issue sets, and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub name: String,
    pub limit: String,
    pub measured: String,
    pub met: Option<bool>,
}

impl Budget {
    pub fn new(name: &str, limit: &str, measured: Option<String>, met: Option<bool>) -> Budget {
        Budget {
            name: name.to_owned(),
            limit: limit.to_owned(),
            measured: measured.unwrap_or_else(|| "not measured".to_owned()),
            met,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub bodies: Vec<BodySize>,
    pub micro: Vec<Micro>,
    pub throughput: Vec<Throughput>,
    pub fixed_rate: Vec<FixedRate>,
    pub delivery: Vec<Delivery>,
    pub memory: Vec<MemoryRow>,
    pub scaling: Vec<Scaling>,
    pub budgets: Vec<Budget>,
    pub wall_s: f64,
}

/// Three significant figures or so: enough for a noisy machine, no false precision.
pub fn round(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), round)
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0))
}

fn mem(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".to_owned(), |k| format!("{:.1}", mib(k)))
}

/// A table in Markdown's pipe syntax, columns padded to line up in a terminal.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String], out: &mut String| {
            out.push('|');
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                // Text left, figures right.
                if i == 0 {
                    let _ = write!(out, " {cell}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(out, " {}{cell} |", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(&self.headers, out);
        out.push('|');
        for (i, width) in widths.iter().enumerate() {
            let dashes = "-".repeat(*width);
            let _ = if i == 0 {
                write!(out, " {dashes} |")
            } else {
                write!(out, " {}: |", &dashes[1..])
            };
        }
        out.push('\n');
        for row in &self.rows {
            line(row, out);
        }
    }
}

impl Report {
    /// The tables, as printed at the end of a run.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(
            out,
            "Machine: {} ({} cores, {:.0} GiB), Linux {}, {}; store on {}.",
            m.cpu, m.cores, m.memory_gib, m.kernel, m.rustc, m.disk_of_the_store
        );
        let sizes: Vec<String> = self
            .bodies
            .iter()
            .map(|b| format!("{} events = {} bytes", b.events, b.bytes))
            .collect();
        let _ = writeln!(
            out,
            "Relay and controls with {} HTTP workers; load generator and sink on the same cores; \
             {} {}; {} round(s), medians; bodies: {}.",
            s.workers,
            s.profile,
            if s.quick { "build, --quick" } else { "build" },
            s.rounds,
            sizes.join(", ")
        );

        let _ = writeln!(
            out,
            "\nThroughput: {} connections ({} for 1000-event bodies), each sending as soon as \
             its answer is in, {} s per round after {} s of warm-up.\n",
            s.connections, s.connections_1000, s.throughput_s, s.warmup_s
        );
        let mut table = Table::new(&[
            "subject",
            "events/req",
            "req/s",
            "events/s",
            "vs verify+parse",
            "vs bare",
            "cpu µs/req",
            "p50 ms",
            "p99 ms",
            "peak RSS MiB",
            "failed",
            "delivered/s",
        ]);
        for t in &self.throughput {
            table.row(vec![
                t.subject.clone(),
                t.events.to_string(),
                round(t.requests_per_s),
                round(t.events_per_s),
                ratio(t.vs_verify),
                ratio(t.vs_bare),
                opt(t.cpu_us_per_request),
                opt(t.latency.p50_ms),
                opt(t.latency.p99_ms),
                mem(t.peak_rss_kib),
                t.failed.to_string(),
                opt(t.delivered_per_s),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(
            out,
            "\nAnswer time at a fixed rate of {} requests per second ({} connections), {} s per round.\n",
            s.rate, s.rate_connections, s.latency_s
        );
        let mut table = Table::new(&[
            "subject",
            "events/req",
            "achieved req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "late",
            "failed",
            "peak RSS MiB",
        ]);
        for r in &self.fixed_rate {
            table.row(vec![
                r.subject.clone(),
                r.events.to_string(),
                round(r.achieved_per_s),
                opt(r.latency.p50_ms),
                opt(r.latency.p99_ms),
                opt(r.latency.max_ms),
                r.late.to_string(),
                r.failed.to_string(),
                mem(r.peak_rss_kib),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(
            out,
            "\nDelivery: from the relay's answer to the sink receiving the notification.\n"
        );
        let mut table = Table::new(&[
            "load",
            "notifications",
            "delivered",
            "delivered/s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ]);
        for d in &self.delivery {
            // No figure for a percentile means that notifications past it never arrived.
            let late = |ms: Option<f64>| {
                if d.accepted > 0 && ms.is_none() {
                    "undelivered".to_owned()
                } else {
                    opt(ms)
                }
            };
            table.row(vec![
                d.load.clone(),
                d.accepted.to_string(),
                d.delivered.to_string(),
                opt(d.delivered_per_s),
                late(d.latency.p50_ms),
                late(d.latency.p99_ms),
                late(d.latency.max_ms),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(out, "\nResident memory (MiB).\n");
        let mut table = Table::new(&["process", "idle", "idle peak", "peak under load"]);
        for row in &self.memory {
            table.row(vec![
                row.subject.clone(),
                mem(row.idle_rss_kib),
                mem(row.idle_peak_kib),
                mem(row.load_peak_kib),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(
            out,
            "\nGrowth with the body: answer time one request at a time; peak memory under the \
             throughput load of that size.\n"
        );
        let mut table = Table::new(&[
            "events/req",
            "bytes",
            "relay p50 ms",
            "relay p99 ms",
            "relay max ms",
            "verify+parse p50 ms",
            "relay cpu µs/req",
            "relay peak RSS MiB",
        ]);
        for g in &self.scaling {
            table.row(vec![
                g.events.to_string(),
                g.bytes.to_string(),
                opt(g.relay.p50_ms),
                opt(g.relay.p99_ms),
                opt(g.relay.max_ms),
                opt(g.verify_control.p50_ms),
                opt(g.relay_cpu_us_per_request),
                mem(g.relay_peak_rss_kib),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(out, "\nMicro-benchmarks (ns per byte of body).\n");
        let mut table = Table::new(&[
            "step",
            "events",
            "bytes",
            "ns/byte",
            "µs/body",
            "control",
            "control ns/byte",
            "ratio",
        ]);
        for micro in &self.micro {
            table.row(vec![
                micro.step.to_owned(),
                micro.events.to_string(),
                micro.bytes.to_string(),
                round(micro.ns_per_byte),
                round(micro.ns_per_byte * micro.bytes as f64 / 1000.0),
                micro.control.to_owned(),
                round(micro.control_ns_per_byte),
                format!("{:.2}", micro.ratio),
            ]);
        }
        table.render(&mut out);

        let _ = writeln!(out, "\nBudgets.\n");
        let mut table = Table::new(&["budget", "limit", "measured", "met"]);
        for b in &self.budgets {
            table.row(vec![
                b.name.clone(),
                b.limit.clone(),
                b.measured.clone(),
                match b.met {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => "-".to_owned(),
                },
            ]);
        }
        table.render(&mut out);
        let _ = writeln!(out, "\n{} in {:.0} s.", self.command, self.wall_s);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up_and_right_align_figures() {
        let mut table = Table::new(&["subject", "req/s"]);
        table.row(vec!["relay".into(), "12".into()]);
        table.row(vec!["bare control".into(), "3456".into()]);
        let mut out = String::new();

        table.render(&mut out);

        assert_eq!(
            out,
            "| subject      | req/s |\n\
             | ------------ | ----: |\n\
             | relay        |    12 |\n\
             | bare control |  3456 |\n"
        );
    }

    #[test]
    fn figures_keep_about_three_significant_digits() {
        assert_eq!(round(12345.6), "12346");
        assert_eq!(round(45.67), "45.7");
        assert_eq!(round(4.567), "4.57");
        assert_eq!(round(0.4567), "0.457");
    }
}
