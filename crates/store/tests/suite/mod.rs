//! The store tests that every implementation must pass, and what they need to run: a fresh
//! database per test ([`Db`]), sample bodies, and a macro that turns each case into a
//! `#[tokio::test]` for a backend.
//!
//! Each backend's test file (`sqlite.rs`, `postgres.rs`) calls [`store_suite!`] with its own
//! way of making a [`Db`], so both run exactly the same cases.

#![allow(dead_code)] // each test binary uses its own half of the backend helpers
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers, like tests, fail loudly

pub mod cases;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use sqreen_webhook_store::{NewBody, NewNotification, Role, Store, StoreOptions};

/// A point in time for tests: 2023-11-14, in milliseconds.
pub const T0: i64 = 1_700_000_000_000;
pub const SECOND: i64 = 1_000;
pub const HOUR: i64 = 3_600 * SECOND;

/// Generates one `#[tokio::test]` per case of [`cases`], each on a fresh database made by
/// `$make` (an async fn returning `Option<Db>`; `None` skips the test).
#[macro_export]
macro_rules! store_suite {
    ($make:path) => {
        $crate::store_suite!(@each $make;
            accept_commits_the_body_and_one_delivery_per_target,
            accept_refuses_a_span_outside_the_body_and_stores_nothing,
            a_notification_accepted_within_the_window_is_a_duplicate,
            a_notification_accepted_before_the_window_is_fresh_again,
            an_identity_twice_in_one_body_is_delivered_once,
            concurrent_accepts_of_one_identity_deliver_it_once,
            concurrent_accepts_from_many_tasks_are_all_committed,
            a_claim_returns_the_element_as_it_was_in_the_body,
            a_leased_delivery_is_not_claimed_again_until_its_lease_expires,
            only_the_lease_owner_can_finish_a_delivery,
            a_lease_that_expired_unclaimed_still_lets_its_owner_finish,
            a_retried_delivery_is_claimed_again_only_once_due,
            a_dead_delivery_is_not_claimed_again,
            claims_take_each_targets_limit_oldest_first,
            a_released_delivery_can_be_claimed_again_at_once,
            dead_deliveries_are_requeued_by_id_or_all_at_once,
            requeue_skips_a_delivery_under_a_live_lease,
            list_filters_by_state_newest_first_and_honours_the_limit,
            prune_deletes_finished_work_and_keeps_dead_and_waiting_deliveries,
            prune_with_a_limit_deletes_a_backlog_in_steps,
            a_rejected_body_is_kept_with_its_reason,
            nul_characters_from_a_payload_or_a_target_are_stored,
            next_due_is_the_earliest_due_time_or_lease_end,
            reopening_the_store_keeps_everything,
            a_database_from_a_newer_version_is_refused,
            ping_answers_on_an_open_store,
        );
    };
    (@each $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(db) = $make().await else { return };
                suite::cases::$case(&db).await;
                db.cleanup().await;
            }
        )*
    };
}

/// A fresh, empty database for one test, and the means to open stores on it.
#[derive(Debug)]
pub struct Db {
    pub url: String,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Postgres {
        admin_url: String,
        schema: String,
    },
}

impl Db {
    /// A new SQLite file in a temporary directory of its own.
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("nested").join("store.db");
        Db {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite { _dir: dir, path },
        }
    }

    /// A new schema on the PostgreSQL at `DATABASE_URL`, so that tests run side by side.
    /// `None` when the run opted out of PostgreSQL.
    pub async fn postgres() -> Option<Db> {
        let Ok(admin_url) = std::env::var("DATABASE_URL") else {
            if std::env::var("SQREEN_WEBHOOK_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("skipped: SQREEN_WEBHOOK_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "the PostgreSQL store tests need a database: set DATABASE_URL \
                 (for example DATABASE_URL=postgres://postgres@127.0.0.1:5432/test), \
                 or set SQREEN_WEBHOOK_SKIP_POSTGRES=1 to skip them"
            );
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "store_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options[search_path]={schema}");
        Some(Db {
            url,
            backend: Backend::Postgres { admin_url, schema },
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// A store on this database, as a server opens it.
    pub async fn open(&self) -> Box<dyn Store> {
        self.open_with(StoreOptions::default()).await
    }

    pub async fn open_with(&self, options: StoreOptions) -> Box<dyn Store> {
        sqreen_webhook_store::open(&self.url, options)
            .await
            .expect("open the store")
    }

    /// A store as a command-line tool opens it, next to a server.
    pub async fn open_tool(&self) -> Box<dyn Store> {
        self.open_with(StoreOptions {
            role: Role::Tool,
            ..StoreOptions::default()
        })
        .await
    }

    /// Reads a body straight from the database: the trait has no reader for them.
    pub async fn body(&self, id: i64) -> Option<(Vec<u8>, Option<String>)> {
        const SQL: &str = "SELECT body, rejected FROM bodies WHERE id = $1";
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(SQL).unwrap();
                let mut rows = stmt.query([id]).unwrap();
                rows.next()
                    .unwrap()
                    .map(|row| (row.get(0).unwrap(), row.get(1).unwrap()))
            }
            Backend::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_as(SQL)
                    .bind(id)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// Pretends a newer version of the relay migrated the database.
    pub async fn set_schema_version(&self, version: i64) {
        const SQL: &str = "UPDATE schema_version SET version = $1";
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute(SQL, [version]).unwrap();
            }
            Backend::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(SQL)
                    .bind(version)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Drops what the test created, when it passed (a failed test leaves its schema for a
    /// look).
    pub async fn cleanup(self) {
        if let Backend::Postgres { admin_url, schema } = &self.backend {
            let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A body as Sqreen sends it: a JSON array of elements, and where each one lies.
#[derive(Debug, Clone)]
pub struct Sample {
    pub bytes: bytes::Bytes,
    pub elements: Vec<(String, Range<usize>)>,
}

impl Sample {
    /// One element per identity; the elements hold non-ASCII text so that spans are bytes.
    pub fn new(identities: &[&str]) -> Sample {
        let mut text = String::from("[");
        let mut elements = Vec::new();
        for (i, identity) in identities.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            let start = text.len();
            text.push_str(&format!(
                r#"{{"id": "{identity}", "event_category": "security_event", "humanized_description": "Attaque détectée — «{i}» ✓"}}"#
            ));
            elements.push(((*identity).to_owned(), start..text.len()));
        }
        text.push(']');
        Sample {
            bytes: text.into_bytes().into(),
            elements,
        }
    }

    /// The body to accept at `received_at`, every element wanted by `targets`.
    pub fn body<'a>(&'a self, received_at: i64, targets: &[&'a str]) -> NewBody<'a> {
        NewBody {
            received_at,
            body: self.bytes.clone(),
            notifications: self
                .elements
                .iter()
                .map(|(identity, span)| NewNotification {
                    identity,
                    type_name: "security_event",
                    span: span.clone(),
                    targets: targets.to_vec(),
                })
                .collect(),
        }
    }

    pub fn element(&self, index: usize) -> &str {
        std::str::from_utf8(&self.bytes[self.elements[index].1.clone()]).unwrap()
    }
}

/// A lease long enough for any test.
pub const LEASE: Duration = Duration::from_secs(60);
