//! The command line: serve, check the configuration, sign and send sample webhooks, and
//! look at and requeue deliveries.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sqreen_webhook_core::samples::{SAMPLES, sample};
use sqreen_webhook_core::{SIGNATURE_HEADER, Secret, sign};
use sqreen_webhook_store::{DeliveryRecord, DeliveryState, ListQuery, Requeue, Role};

use crate::app::{Application, install_crypto_provider, open_store};
use crate::config::{self, CONFIG_ENV, ProcessEnv, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "Relays signed Sqreen webhooks to log, email, SMS, Slack and HTTP targets"
)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables SQREEN_WEBHOOK__SECTION__KEY
    /// override its keys.
    #[arg(long, short, global = true, env = CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks (the default).
    Serve(ServeArgs),
    /// Validate the configuration and list the targets.
    CheckConfig,
    /// Print the X-Sqreen-Integrity signature of a body (FILE, or standard input).
    Sign {
        #[arg(long)]
        secret: String,
        file: Option<PathBuf>,
    },
    /// Sign a sample webhook with the configured secret and post it.
    SendSample(SendArgs),
    /// List recent deliveries and their state.
    Deliveries {
        /// Only deliveries in this state: pending, retrying, delivered or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List dead deliveries: those that will not be attempted again by themselves.
    Dead {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put deliveries back in the queue, with their attempts reset.
    Retry {
        /// Delivery ids, as listed by `deliveries`.
        ids: Vec<i64>,
        /// Every dead delivery.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
    },
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Once listening, post this built-in sample to ourselves, to see a notification flow
    /// through (see `send-sample --list`).
    #[arg(long, value_name = "SAMPLE", num_args = 0..=1, default_missing_value = "v1-security-event")]
    pub send_sample: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Where to post; by default the configured listen address.
    #[arg(long)]
    pub url: Option<String>,
    /// A built-in sample, by name.
    #[arg(long, conflicts_with = "file")]
    pub sample: Option<String>,
    /// A file whose bytes are posted as they are.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// List the built-in samples.
    #[arg(long)]
    pub list: bool,
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    Ok(config::load(cli.config.as_deref(), &ProcessEnv)?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        None => serve(settings(&cli)?, None).await,
        Some(Command::Serve(args)) => serve(settings(&cli)?, args.send_sample.clone()).await,
        Some(Command::CheckConfig) => check_config(&cli),
        Some(Command::Sign { secret, file }) => {
            let body = read_body(file.as_ref())?;
            println!("{}", sign(&Secret::new(secret.as_str()), &body));
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::SendSample(args)) => send_sample(&cli, args).await,
        Some(Command::Deliveries { state, limit }) => {
            let state = match state.as_deref() {
                None => None,
                Some(text) => Some(DeliveryState::parse(text).with_context(|| {
                    format!("unknown state {text:?}: expected pending, retrying, delivered or dead")
                })?),
            };
            list(
                &cli,
                ListQuery {
                    state,
                    limit: *limit,
                },
            )
            .await
        }
        Some(Command::Dead { limit }) => {
            list(
                &cli,
                ListQuery {
                    state: Some(DeliveryState::Dead),
                    limit: *limit,
                },
            )
            .await
        }
        Some(Command::Retry { ids, all_dead }) => {
            let which = match (ids.is_empty(), all_dead) {
                (_, true) => Requeue::AllDead,
                (false, false) => Requeue::Ids(ids.clone()),
                (true, false) => bail!("name the deliveries to retry, or use --all-dead"),
            };
            let store = open_store(&settings(&cli)?, Role::Tool).await?;
            let count = store.requeue(which, now_ms()).await?;
            println!("{count} deliveries put back in the queue");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn now_ms() -> i64 {
    sqreen_webhook_delivery::Clock::now(&sqreen_webhook_delivery::SystemClock)
}

async fn serve(settings: Settings, send_sample: Option<String>) -> anyhow::Result<ExitCode> {
    let sample_body = match &send_sample {
        Some(name) => Some(named_sample(name)?),
        None => None,
    };
    let secret = settings.webhook.secrets[0].clone();
    let app = Application::build(settings, Vec::new()).await?;
    if let Some(body) = sample_body {
        let url = format!("http://{}/webhook", app.address());
        actix_web::rt::spawn(async move {
            match post(&url, &secret, body.as_bytes().to_vec()).await {
                Ok((status, text)) => log::info!("sample posted to {url}: {status} {text}"),
                Err(error) => log::error!("cannot post the sample to {url}: {error:#}"),
            }
        });
    }
    app.run().await?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(cli: &Cli) -> anyhow::Result<ExitCode> {
    let source = cli.config.as_ref().map_or_else(
        || "defaults and environment".to_owned(),
        |p| p.display().to_string(),
    );
    let settings = match settings(cli) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{source}: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    install_crypto_provider();
    let mut broken = 0;
    println!("{source}: valid");
    println!("listen: {}", settings.server.listen);
    println!(
        "store: {}",
        sqreen_webhook_store::redact_url(settings.store.url.expose())
    );
    println!("webhook secrets: {}", settings.webhook.secrets.len());
    println!("targets:");
    for target in &settings.targets {
        let status = match crate::targets::build(target) {
            Ok(_) => "ok".to_owned(),
            Err(error) => {
                broken += 1;
                format!("BROKEN: {}", error.message)
            }
        };
        let filter = &target.filter;
        let mut conditions = Vec::new();
        if !filter.types.is_empty() {
            conditions.push(format!("types {}", filter.types.join(",")));
        }
        if let Some(min) = filter.min_risk {
            conditions.push(format!("risk >= {min}"));
        }
        if !filter.environments.is_empty() {
            conditions.push(format!("environments {}", filter.environments.join(",")));
        }
        if !filter.applications.is_empty() {
            conditions.push(format!("applications {}", filter.applications.join(",")));
        }
        let wants = if conditions.is_empty() {
            "everything".to_owned()
        } else {
            conditions.join(", ")
        };
        println!(
            "  - {} ({}): {wants}; {status}",
            target.name,
            target.kind.type_name()
        );
    }
    if broken > 0 {
        eprintln!("{broken} targets cannot be built");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn named_sample(name: &str) -> anyhow::Result<String> {
    match sample(name) {
        Some(sample) => Ok(sample.body.to_owned()),
        None => {
            let names: Vec<&str> = SAMPLES.iter().map(|s| s.name).collect();
            bail!(
                "no sample named {name:?}; the samples are: {}",
                names.join(", ")
            )
        }
    }
}

fn read_body(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read standard input")?;
            Ok(body)
        }
    }
}

async fn send_sample(cli: &Cli, args: &SendArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for sample in SAMPLES {
            println!("{}", sample.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let settings = settings(cli)?;
    let body = match (&args.sample, &args.file) {
        (_, Some(file)) => read_body(Some(file))?,
        (Some(name), None) => named_sample(name)?.into_bytes(),
        (None, None) => named_sample("v1-security-event")?.into_bytes(),
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}/webhook", settings.server.listen));
    let (status, text) = post(&url, &settings.webhook.secrets[0], body).await?;
    println!("{status} {text}");
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn post(
    url: &str,
    secret: &Secret,
    body: Vec<u8>,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    install_crypto_provider();
    let signature = sign(secret, &body);
    let response = reqwest::Client::builder()
        .user_agent("Arachni/v1.2.1")
        .build()?
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot post to {url}"))?;
    let status = response.status();
    Ok((status, response.text().await.unwrap_or_default()))
}

async fn list(cli: &Cli, query: ListQuery) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings(cli)?, Role::Tool).await?;
    let records = store.list(query).await?;
    if records.is_empty() {
        println!("no deliveries");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:<9}  {:>8}  {:<16}  {:<24}  NOTIFICATION / LAST ERROR",
        "ID", "STATE", "ATTEMPTS", "TARGET", "UPDATED"
    );
    for record in &records {
        print_record(record);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_record(record: &DeliveryRecord) {
    println!(
        "{:>8}  {:<9}  {:>8}  {:<16}  {:<24}  {} {}",
        record.id,
        record.state.as_str(),
        record.attempts,
        record.target,
        format_time(record.updated_at),
        record.type_name,
        record.identity,
    );
    if let Some(error) = &record.last_error {
        println!("{:>8}  {}", "", sqreen_webhook_core::text::one_line(error));
    }
}

/// `2026-12-03 12:51:28Z` from milliseconds since the epoch, without a date library.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(1_796_302_288_000), "2026-12-03 12:51:28Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00Z");
    }
}
