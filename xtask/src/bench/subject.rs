//! The processes under test: the relay, started fresh for each run, and the two controls.
//!
//! The relay is the release binary, run as a person would (`server --config FILE serve`):
//! SQLite in a new directory under the bench folder (on the disk the workspace is on, not
//! a `tmpfs` that would make `fsync` free), one HTTP target pointed at the sink, no log
//! target, the default `info` logging written to a file. A fresh relay for each run means
//! that the deliveries one run leaves queued do not take processor time from the next, and
//! that each run's peak memory is its own.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::control;
use super::load::wait_ready;
use super::memory::{self, Memory};

/// How long a process may take to answer its readiness check.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// `[store] durability`: what a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `kill -9` of the relay (SQLite WAL, `synchronous=NORMAL`).
    Process,
    /// A power cut too (`synchronous=FULL`: an fsync per commit).
    PowerLoss,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::PowerLoss => "power_loss",
        }
    }
}

/// A running process under test; killed when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: Option<PathBuf>,
    /// Held open so that a control sees end-of-file, and ends, when the harness does.
    _stdin: Option<ChildStdin>,
    _dir: Option<tempfile::TempDir>,
}

impl Process {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn memory(&self) -> Option<Memory> {
        memory::memory(self.child.id())
    }

    pub fn cpu_time(&self) -> Option<Duration> {
        memory::cpu_time(self.child.id())
    }

    /// An error if the process has ended by itself, with the end of its log.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} ended during the run ({status}){}",
                self.name,
                self.log_tail()
            )),
            Err(error) => Err(format!("cannot check on {}: {error}", self.name)),
        }
    }

    fn log_tail(&self) -> String {
        let Some(text) = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n  ");
        format!("; the end of its log:\n  {tail}")
    }

    async fn wait_ready(mut self) -> Result<Process, String> {
        if let Err(error) = wait_ready(self.addr, "/readyz", START_PATIENCE).await {
            self.check_alive()?;
            return Err(format!("{}: {error}{}", self.name, self.log_tail()));
        }
        Ok(self)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGKILL: the store is safe against it, and a graceful stop would spend its
        // shutdown timeout on deliveries that no longer matter.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a relay run needs.
#[derive(Debug, Clone)]
pub struct RelaySetup {
    pub binary: PathBuf,
    /// The folder in which each relay gets a fresh directory.
    pub work: PathBuf,
    pub secret: String,
    pub workers: usize,
    pub sink_url: String,
}

/// Starts a fresh relay and waits until it is ready.
pub async fn start_relay(setup: &RelaySetup, durability: Durability) -> Result<Process, String> {
    let dir = tempfile::Builder::new()
        .prefix("relay-")
        .tempdir_in(&setup.work)
        .map_err(|e| format!("cannot create a directory in {}: {e}", setup.work.display()))?;
    let port = free_port()?;
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, relay_config(setup, durability, port, dir.path()))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = dir.path().join("relay.log");
    let log_file =
        File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut command = Command::new(&setup.binary);
    command
        .arg("--config")
        .arg(&config)
        .arg("serve")
        // No `.env` of the workspace, no variable of the caller's shell, changes the relay.
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SQREEN_WEBHOOK") {
            command.env_remove(key);
        }
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", setup.binary.display()))?;
    Process {
        name: format!("the relay ({})", durability.as_str()),
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log: Some(log),
        _stdin: None,
        _dir: Some(dir),
    }
    .wait_ready()
    .await
}

fn relay_config(setup: &RelaySetup, durability: Durability, port: u16, dir: &Path) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
workers = {workers}
shutdown_timeout = "1s"

[webhook]
secrets = ["{secret}"]

[store]
url = "sqlite://{db}"
durability = "{durability}"

[[targets]]
name = "sink"
type = "http"
url = "{sink}"
"#,
        workers = setup.workers,
        secret = setup.secret,
        db = dir.join("relay.db").display(),
        durability = durability.as_str(),
        sink = setup.sink_url,
    )
}

/// Starts a control from this very binary and waits until it is ready.
pub async fn start_control(
    kind: control::Kind,
    secret: &str,
    workers: usize,
) -> Result<Process, String> {
    let binary =
        std::env::current_exe().map_err(|e| format!("cannot find the harness binary: {e}"))?;
    let port = free_port()?;
    let mut child = Command::new(&binary)
        .args(["bench", "--control", kind.as_str(), "--port"])
        .arg(port.to_string())
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--secret")
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the {} control: {e}", kind.as_str()))?;
    let stdin = child.stdin.take();
    Process {
        name: format!("the {} control", kind.as_str()),
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log: None,
        _stdin: stdin,
        _dir: None,
    }
    .wait_ready()
    .await
}

/// A loopback port free right now. Another process could take it before the child binds
/// it; on a benchmark machine that does not happen, and the start would fail clearly.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
