//! The store suite on SQLite, and what only the embedded store does: the lock file that
//! keeps a second server off a database, and the release of a dead server's leases.

mod suite;

use sqreen_webhook_store::{ListQuery, Role, StoreError, StoreOptions, sqlite::SqliteStore};
use suite::{Db, LEASE, Sample, T0};

async fn sqlite() -> Option<Db> {
    Some(Db::sqlite())
}

store_suite!(sqlite);

fn path(db: &Db) -> &str {
    db.url.strip_prefix("sqlite://").unwrap_or(&db.url)
}

#[tokio::test]
async fn a_second_server_on_the_same_file_is_refused() {
    let db = Db::sqlite();
    let _server = db.open().await;

    let second = SqliteStore::open(path(&db), StoreOptions::default()).await;

    assert!(matches!(second, Err(StoreError::Locked(_))), "{second:?}");
}

#[tokio::test]
async fn a_tool_opens_the_file_next_to_a_server_and_sees_its_work() {
    let db = Db::sqlite();
    let server = db.open().await;
    server
        .accept(Sample::new(&["a"]).body(T0, &["http"]))
        .await
        .unwrap();

    let tool = SqliteStore::open(
        path(&db),
        StoreOptions {
            role: Role::Tool,
            ..StoreOptions::default()
        },
    )
    .await;

    let listed = sqreen_webhook_store::Store::list(&tool.unwrap(), ListQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn a_server_opens_the_file_again_once_the_first_is_dropped() {
    let db = Db::sqlite();
    drop(db.open().await);

    let again = SqliteStore::open(path(&db), StoreOptions::default()).await;

    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn a_server_releases_the_leases_of_the_server_before_it() {
    let db = Db::sqlite();
    let crashed = db.open().await;
    crashed
        .accept(Sample::new(&["a"]).body(T0, &["http"]))
        .await
        .unwrap();
    let leased = crashed
        .claim("crashed", T0, LEASE, &[("http", 10)])
        .await
        .unwrap();
    drop(crashed);

    let server = db.open().await;

    let listed = server.list(ListQuery::default()).await.unwrap();
    assert_eq!(listed[0].lease_owner, None);
    let claims = server
        .claim("new", T0 + 1, LEASE, &[("http", 10)])
        .await
        .unwrap();
    assert_eq!(
        claims.iter().map(|c| c.id).collect::<Vec<_>>(),
        [leased[0].id]
    );
}

#[tokio::test]
async fn the_store_creates_the_directories_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a").join("b").join("relay.db");

    let store = sqreen_webhook_store::open(
        &format!("sqlite://{}", file.display()),
        StoreOptions::default(),
    )
    .await;

    assert!(store.is_ok());
    assert!(file.exists());
}

#[tokio::test]
async fn a_url_naming_no_file_is_refused() {
    let result = sqreen_webhook_store::open("sqlite://", StoreOptions::default()).await;

    assert!(matches!(result, Err(StoreError::Open(_))));
}

#[tokio::test]
async fn a_tool_refuses_a_file_that_does_not_exist_rather_than_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.db");
    let options = StoreOptions {
        role: Role::Tool,
        ..StoreOptions::default()
    };

    let result = sqreen_webhook_store::open(&format!("sqlite://{}", file.display()), options).await;

    assert!(
        matches!(&result, Err(StoreError::Open(message)) if message.contains("there is no database at"))
    );
    assert!(!file.exists());
}
