//! Project automation, in Rust so that it runs wherever cargo does.
//!
//! - `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.
//!
//! Each step is printed before it runs, so that a failure names the command to rerun.

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Target features of the server; each must build alone.
const TARGET_FEATURES: &[&str] = &["log", "email", "twilio", "slack", "http"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        _ => {
            eprintln!("usage: cargo xtask ci");
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

fn ci() -> Result<(), String> {
    let started = Instant::now();
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
    cargo(&["test", "--workspace", "--all-features"]).run()?;
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
    eprintln!("\nci: every check passed in {:.0?}", started.elapsed());
    Ok(())
}
