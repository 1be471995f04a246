//! Project automation, in Rust so that it runs wherever cargo does.
//!
//! - `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.
//! - `cargo xtask bench [--quick]`: throughput, latency and memory against controls.
//!
//! Each step is printed before it runs, so that a failure names the command to rerun.

mod bench;

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Target features of the server; each must build alone.
const TARGET_FEATURES: &[&str] = &["log", "email", "twilio", "slack", "http"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::main(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask ci | bench [--quick]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A command to run: program, arguments, extra environment.
struct Step {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn cargo(args: &[&str]) -> Step {
    Step {
        program: env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
    }
}

impl Step {
    fn env(mut self, key: &str, value: &str) -> Step {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn run(&self) -> Result<(), String> {
        let shown = format!(
            "{} {}",
            self.program.rsplit('/').next().unwrap_or(&self.program),
            self.args.join(" ")
        );
        let prefix: String = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        eprintln!("\n==> {prefix}{shown}");
        let started = Instant::now();
        let status = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .status()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        eprintln!("<== {shown}: {status} in {:.0?}", started.elapsed());
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{prefix}{shown}` failed ({status})"))
        }
    }
}

/// Where the store's PostgreSQL tests connect when `DATABASE_URL` is not set: the local
/// server that the README's development section describes.
const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn ci() -> Result<(), String> {
    let started = Instant::now();
    let mut tests = cargo(&["test", "--workspace", "--all-features"]);
    if env::var_os("DATABASE_URL").is_none()
        && env::var_os("SQREEN_WEBHOOK_SKIP_POSTGRES").is_none()
    {
        eprintln!("DATABASE_URL is not set: the PostgreSQL tests use {LOCAL_DATABASE_URL}");
        tests = tests.env("DATABASE_URL", LOCAL_DATABASE_URL);
    }
    cargo(&["fmt", "--all", "--", "--check"]).run()?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    tests.run()?;
    for feature in TARGET_FEATURES {
        cargo(&[
            "build",
            "--package",
            "server",
            "--no-default-features",
            "--features",
            feature,
        ])
        .run()?;
    }
    cargo(&["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;
    // The harness must keep working; no budget is enforced on a shared CI machine.
    bench::main(&["--quick".to_owned()])?;
    eprintln!("\nci: every check passed in {:.0?}", started.elapsed());
    Ok(())
}
