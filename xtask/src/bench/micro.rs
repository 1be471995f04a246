//! Micro-benchmarks of the two steps every webhook goes through before it is stored:
//! signature verification and parsing, in nanoseconds per byte of body, each beside a
//! control doing the least that step could do (ring's HMAC check alone; parsing into
//! `serde_json::Value`), so that the ratio says what our code adds.
//!
//! A plain harness: each function runs in batches sized to last a few milliseconds, and the
//! median batch is kept, which shrugs off the odd batch that the scheduler interrupted.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ring::hmac;
use serde::Serialize;
use sqreen_webhook_core::{Secret, Verifier};

use super::bodies::Factory;
use super::stats::median;

/// Batches measured per function.
const BATCHES: u32 = 9;

/// One step on one body size, ours and the control.
#[derive(Debug, Clone, Serialize)]
pub struct Micro {
    pub step: &'static str,
    pub events: usize,
    pub bytes: usize,
    pub ns_per_byte: f64,
    pub control: &'static str,
    pub control_ns_per_byte: f64,
    /// Ours over the control: 1.0 is as fast, 2.0 twice as slow.
    pub ratio: f64,
}

/// Measures both steps on bodies of each size in `sizes`, giving each function about
/// `time`.
pub fn run(
    factory: &Factory,
    secret: &Secret,
    sizes: &[usize],
    time: Duration,
) -> Result<Vec<Micro>, String> {
    let verifier = Verifier::new([secret.clone()]).map_err(|e| e.to_string())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut results = Vec::new();
    for &events in sizes {
        let signed = factory.make(events);
        let body = signed.body.as_ref();
        let header = signed.signature.as_bytes();
        let tag = hmac::sign(&key, body);
        let bytes = body.len();

        let ours = per_byte("verify", bytes, time, || {
            black_box(verifier.verify(black_box(body), Some(black_box(header)))).is_ok()
        })?;
        let control = per_byte("ring hmac::verify", bytes, time, || {
            black_box(hmac::verify(&key, black_box(body), tag.as_ref())).is_ok()
        })?;
        results.push(Micro {
            step: "verify signature",
            events,
            bytes,
            ns_per_byte: ours,
            control: "ring hmac::verify",
            control_ns_per_byte: control,
            ratio: ours / control,
        });

        let ours = per_byte("parse", bytes, time, || {
            black_box(sqreen_webhook_core::parse(black_box(body))).is_ok()
        })?;
        let control = per_byte("serde_json::Value", bytes, time, || {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(body))).is_ok()
        })?;
        results.push(Micro {
            step: "parse",
            events,
            bytes,
            ns_per_byte: ours,
            control: "serde_json::Value",
            control_ns_per_byte: control,
            ratio: ours / control,
        });
    }
    Ok(results)
}

/// Nanoseconds per byte of `f` over a `bytes`-long input. `f` returns whether it
/// succeeded, so that a broken step does not pass for a fast one.
fn per_byte(
    step: &str,
    bytes: usize,
    time: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<f64, String> {
    let mut failed = false;
    let mut batch = |calls: u64| {
        let started = Instant::now();
        for _ in 0..calls {
            failed |= !f();
        }
        started.elapsed()
    };
    // Calibrate: how many calls fill one batch.
    let batch_time = time / BATCHES;
    let mut calls: u64 = 1;
    loop {
        let took = batch(calls);
        if took >= batch_time / 4 || calls >= 1 << 30 {
            let per_call = took.as_secs_f64() / calls as f64;
            calls = ((batch_time.as_secs_f64() / per_call.max(1e-12)) as u64).max(1);
            break;
        }
        calls *= 4;
    }
    let batches: Vec<f64> = (0..BATCHES)
        .map(|_| batch(calls).as_secs_f64() * 1e9 / calls as f64 / bytes as f64)
        .collect();
    if failed {
        // A step that fails on its own sample is a harness bug, not a figure.
        return Err(format!("{step} failed on its sample body"));
    }
    median(batches).ok_or_else(|| format!("{step}: no batch measured"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_both_steps_for_each_size() {
        let secret = Secret::new("micro");
        let factory = Factory::new(secret.clone(), 3).unwrap();

        let results = run(&factory, &secret, &[1, 10], Duration::from_millis(20)).unwrap();

        assert_eq!(results.len(), 4);
        for result in &results {
            assert!(result.ns_per_byte > 0.0 && result.control_ns_per_byte > 0.0);
            assert!(result.bytes > 500 * result.events);
        }
    }
}
