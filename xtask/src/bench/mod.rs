//! `cargo xtask bench [--quick] [--dev]`: how fast and how lean the relay is, measured
//! against two controls on the same machine, in a bounded time.
//!
//! `cargo xtask` runs a debug build of this crate, which would make a slow load generator.
//! So this entry point only builds the relay and the harness in release mode, then hands
//! over to the release harness (`xtask bench --run …`), which starts the controls as its
//! own children (`xtask bench --control …`). `--dev` skips the release build and measures
//! the dev profile: a smoke test that the harness works, whose figures mean nothing.
//!
//! The parts: [`bodies`] makes signed bodies with fresh event ids, [`load`] sends them,
//! [`control`] runs the controls, [`sink`] receives the relay's deliveries, [`subject`]
//! starts the relay, [`memory`] reads `/proc`, [`micro`] times verification and parsing,
//! [`suite`] runs it all and [`report`] prints it. Results go to `target/bench/` (under
//! `CARGO_TARGET_DIR` when it is set): `report.json` and `report.md`.

mod bodies;
mod control;
mod load;
mod memory;
mod micro;
mod report;
mod sink;
mod stats;
mod subject;
mod suite;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--dev] [--only PART,...]
  --quick  every measurement, briefly (under 30 s once built)
  --dev    measure the dev build: checks the harness, the figures mean nothing
  --only   some parts only: micro, throughput, rate, delivery, scaling";

/// The `bench` subcommand, with the arguments after it.
pub fn main(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("--control") => control::main(&args[1..]),
        Some("--run") => suite::main(&args[1..]),
        _ => launch(args),
    }
}

fn launch(args: &[String]) -> Result<(), String> {
    let (mut quick, mut dev) = (false, false);
    let mut only = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--dev" => dev = true,
            "--only" => only = Some(rest.next().ok_or("--only needs a list of parts")?.clone()),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = target_directory(&cargo)?;
    let profile = if dev { "debug" } else { "release" };
    let mut build = Command::new(&cargo);
    build.args(["build", "--package", "server", "--package", "xtask"]);
    if !dev {
        build.arg("--release");
    }
    eprintln!("bench: building the relay and the harness ({profile})");
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("the {profile} build failed ({status})"));
    }
    let built = started.elapsed();

    let binaries = target.join(profile);
    let mut command = vec!["cargo xtask bench".to_owned()];
    command.extend(args.iter().cloned());
    let mut run = Command::new(binaries.join("xtask"));
    run.args(["bench", "--run", "--relay"])
        .arg(binaries.join("server"))
        .arg("--out")
        .arg(target.join("bench"))
        .args(["--profile", profile, "--command", &command.join(" ")]);
    if quick {
        run.arg("--quick");
    }
    if let Some(only) = only {
        run.args(["--only", &only]);
    }
    let status = run
        .status()
        .map_err(|e| format!("cannot start the {profile} harness: {e}"))?;
    eprintln!(
        "bench: {:.0} s in all, {:.0} s of it building",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("the benchmark failed ({status})"))
    }
}

/// The workspace's target directory as cargo sees it: `CARGO_TARGET_DIR`, a configured
/// `build.target-dir`, or `target/`.
fn target_directory(cargo: &str) -> Result<PathBuf, String> {
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
    metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata gives no target directory".to_owned())
}
