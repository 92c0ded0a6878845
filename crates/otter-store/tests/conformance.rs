//! One conformance suite for every store backend.
//!
//! Each behaviour is written once, as an `async fn` over `&dyn Store` (or over a [`TestDb`] when
//! it needs to reconnect, or over a [`Fresh`] database when it is about migrations), and the
//! `conformance!` macro at the bottom turns it into one `#[tokio::test]` per backend:
//! `sqlite::products_are_unique`, `postgres::products_are_unique`…
//! Run one backend with `cargo test -p otter-store --test conformance sqlite::`.
//!
//! A backend is one `async fn() -> Option<Fresh>` that makes a new, empty database (or returns
//! `None` to skip). SQLite always runs, in a temporary directory. PostgreSQL runs on a throwaway
//! cluster that `otter_testkit::postgres` starts once per test process (a new database per
//! test); without PostgreSQL binaries it prints a SKIP line, and fails under `CI=true`.

use std::path::Path;

use otter_core::access::Access;
use otter_core::model::{
    ApiKey, Artifact, Device, DeviceSeen, Page, Product, Release, ReleasePatch, ReportState,
    UploadSession,
};
use otter_core::ott::OneTimeToken;
use otter_core::version::Scheme;
use otter_store::sql::SqlStore;
use otter_store::{NewReport, PageRequest, ProductStore as _, Store, StoreError};
use serde_json::json;
use sqlx::Row as _;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Its migrations' directory name under `migrations/`.
    fn dir(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A new, empty database: no tables, not even sqlx's bookkeeping.
struct Fresh {
    url: String,
    backend: Backend,
    /// Keeps a SQLite database's directory alive until the test ends.
    dir: Option<TempDir>,
}

/// A migrated database for one test, and what it takes to connect to it again.
struct TestDb {
    url: String,
    store: SqlStore,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// Migrates `fresh` the way an operator would (`otter migrate` on PostgreSQL; SQLite
    /// migrates itself on connect) and connects.
    async fn open(fresh: Fresh) -> TestDb {
        let Fresh { url, backend, dir } = fresh;
        if backend == Backend::Postgres {
            let applied = SqlStore::migrate(&url)
                .await
                .unwrap_or_else(|e| panic!("migrating {url}: {e}"));
            assert_eq!(applied, migration_count(backend));
        }
        let store = SqlStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        TestDb {
            url,
            store,
            _dir: dir,
        }
    }

    fn store(&self) -> &dyn Store {
        &self.store
    }

    /// Closes every connection and connects to the same database again.
    async fn reconnect(&mut self) {
        self.store.close().await;
        self.store = SqlStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("reconnecting to {}: {e}", self.url));
    }
}

/// SQLite: a new file in a new temporary directory (created by the first connection).
async fn sqlite() -> Option<Fresh> {
    let dir = tempfile::tempdir().expect("temporary directory");
    Some(Fresh {
        url: format!("sqlite://{}/otter.db", dir.path().display()),
        backend: Backend::Sqlite,
        dir: Some(dir),
    })
}

/// PostgreSQL: a new database on the test process's throwaway cluster.
async fn postgres() -> Option<Fresh> {
    let cluster = otter_testkit::postgres::start()?;
    Some(Fresh {
        url: cluster.fresh_database_url(),
        backend: Backend::Postgres,
        dir: None,
    })
}

/// How many migrations a backend has (one file each).
fn migration_count(backend: Backend) -> usize {
    std::fs::read_dir(migrations_dir(backend))
        .expect("migrations directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

fn migrations_dir(backend: Backend) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend.dir())
}

/// A plain sqlx pool on `url`, to set a schema up by hand.
async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// Generates one `#[tokio::test]` per behaviour in a module named after the backend.
/// `store:` behaviours take `&dyn Store`; `db:` behaviours take `&mut TestDb`; `fresh:`
/// behaviours take an unmigrated [`Fresh`] database.
macro_rules! backend_tests {
    (
        $backend:ident,
        [$($store_test:ident),* $(,)?],
        [$($db_test:ident),* $(,)?],
        [$($fresh_test:ident),* $(,)?] $(,)?
    ) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $store_test() {
                    if let Some(fresh) = super::$backend().await {
                        let db = super::TestDb::open(fresh).await;
                        super::$store_test(db.store()).await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $db_test() {
                    if let Some(fresh) = super::$backend().await {
                        let mut db = super::TestDb::open(fresh).await;
                        super::$db_test(&mut db).await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $fresh_test() {
                    if let Some(fresh) = super::$backend().await {
                        super::$fresh_test(fresh).await;
                    }
                }
            )*
        }
    };
}

macro_rules! conformance {
    (
        store: [$($store_test:ident),* $(,)?],
        db: [$($db_test:ident),* $(,)?],
        fresh: [$($fresh_test:ident),* $(,)?] $(,)?
    ) => {
        backend_tests!(sqlite, [$($store_test),*], [$($db_test),*], [$($fresh_test),*]);
        backend_tests!(postgres, [$($store_test),*], [$($db_test),*], [$($fresh_test),*]);
    };
}

conformance! {
    store: [
        products_create_get_list,
        products_are_unique,
        products_paginate,
        lists_sort_byte_wise,
        artifacts_are_content_addressed,
        releases_round_trip_with_increasing_seq,
        release_versions_are_unique_per_product,
        releases_need_a_known_product_and_artifact,
        releases_list_newest_first_and_paginate,
        releases_reject_invalid_cursors,
        patch_release_changes_only_given_flags,
        catalog_versions_count_bumps_per_product,
        concurrent_catalog_bumps_are_atomic,
        record_seen_upserts,
        older_sightings_never_win,
        devices_paginate_by_id,
        reports_list_newest_first_and_filter_by_device,
        reports_reject_invalid_cursors,
        upload_sessions_lifecycle,
        tokens_are_idempotent,
        product_keys_round_trip,
        device_access_rules_set_replace_and_delete,
        devices_keep_attributes_and_auto_update,
        api_keys_add_list_delete,
        one_time_tokens_are_used_once_and_spent_once,
        signing_keys_are_set_per_kind,
        roots_and_release_signatures,
        conflicts_name_what_exists_not_the_database,
    ],
    db: [data_survives_reconnect],
    fresh: [
        connect_on_an_empty_database,
        migrate_applies_each_migration_once,
        migrate_finishes_a_partly_migrated_database,
        concurrent_migrations_take_turns,
        schema_from_another_otter_is_refused,
    ],
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000;

fn product(name: &str, scheme: Scheme) -> Product {
    Product {
        name: name.to_owned(),
        scheme,
        created_at: T0,
    }
}

/// A distinct artifact per `n`, with digests of the right lengths.
fn artifact(n: u8, filename: &str) -> Artifact {
    Artifact {
        sha256: format!("{n:064x}"),
        sha1: format!("{n:040x}"),
        md5: format!("{n:032x}"),
        size: 1000 + u64::from(n),
        filename: filename.to_owned(),
        created_at: T0 + i64::from(n),
    }
}

/// A release with every optional field empty; `seq` is for the store to assign.
fn release(product: &str, version: &str, artifact: &Artifact) -> Release {
    Release {
        seq: 0,
        product: product.to_owned(),
        version: version.to_owned(),
        artifact: artifact.clone(),
        channels: vec!["stable".to_owned()],
        release_date: "2026-05-22T11:30:00-04:00".to_owned(),
        min_source_version: None,
        mandatory: false,
        deprecated: false,
        yanked: false,
        title: None,
        summary: None,
        release_notes_url: None,
        metadata: json!({}),
        created_at: T0 + 100,
    }
}

fn seen(product: &str, id: &str, version: Option<&str>, channel: &str, at: i64) -> DeviceSeen {
    DeviceSeen {
        product: product.to_owned(),
        id: id.to_owned(),
        current_version: version.map(str::to_owned),
        current_hash: version.map(|v| format!("hash-of-{v}")),
        channel: channel.to_owned(),
        at,
        attributes: None,
    }
}

fn report(device: &str, version: &str, state: ReportState, at: i64) -> NewReport {
    NewReport {
        product: "door-sensor".to_owned(),
        device: device.to_owned(),
        version: version.to_owned(),
        state,
        message: None,
        created_at: at,
    }
}

fn upload(id: &str, updated_at: i64) -> UploadSession {
    UploadSession {
        id: id.to_owned(),
        filename: format!("{id}.bin"),
        size: 4096,
        sha256: "ab".repeat(32),
        offset: 0,
        created_at: updated_at,
        updated_at,
    }
}

fn first(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

fn after(limit: u32, cursor: &Option<String>) -> PageRequest {
    PageRequest {
        limit,
        cursor: Some(cursor.clone().expect("a next cursor")),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Publishes `versions` of `product` in order, each with its own artifact.
async fn publish(store: &dyn Store, product: &str, versions: &[&str]) -> Vec<Release> {
    let mut out = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let n = u8::try_from(i).unwrap() + 1;
        let stored = store
            .put_artifact(&artifact(n, &format!("{product}-{version}.bin")))
            .await
            .unwrap();
        out.push(
            store
                .create_release(&release(product, version, &stored))
                .await
                .unwrap(),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Products and artifacts
// ---------------------------------------------------------------------------------------------

async fn products_create_get_list(store: &dyn Store) {
    assert!(store.all_products().await.unwrap().is_empty());
    let door = product("door-sensor", Scheme::Semver);
    let gate = product("gate", Scheme::Opaque);
    let attic = product("attic", Scheme::Lexical);
    for p in [&door, &gate, &attic] {
        store.create_product(p).await.unwrap();
    }

    assert_eq!(store.get_product("gate").await.unwrap(), Some(gate.clone()));
    assert_eq!(
        store.get_product("attic").await.unwrap(),
        Some(attic.clone())
    );
    assert_eq!(store.get_product("nope").await.unwrap(), None);

    let by_name = vec![attic, door, gate];
    assert_eq!(store.all_products().await.unwrap(), by_name);
    let page = store.list_products(&first(10)).await.unwrap();
    assert_eq!(page.items, by_name);
    assert_eq!(page.next_cursor, None);
}

async fn products_are_unique(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let err = store
        .create_product(&Product {
            created_at: T0 + 5,
            ..product("door-sensor", Scheme::Opaque)
        })
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(what) => assert_eq!(what, "product"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The first one is untouched.
    assert_eq!(
        store.get_product("door-sensor").await.unwrap(),
        Some(product("door-sensor", Scheme::Semver))
    );
    assert_eq!(store.all_products().await.unwrap().len(), 1);
}

async fn products_paginate(store: &dyn Store) {
    for name in ["e", "c", "a", "d", "b"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let names = |page: &Page<Product>| {
        page.items
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };

    let p1 = store.list_products(&first(2)).await.unwrap();
    assert_eq!(names(&p1), ["a", "b"]);
    assert!(p1.next_cursor.is_some());
    let p2 = store
        .list_products(&after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&p2), ["c", "d"]);
    assert!(p2.next_cursor.is_some());
    let p3 = store
        .list_products(&after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&p3), ["e"]);
    assert_eq!(p3.next_cursor, None);

    // A last page that is exactly full has no next cursor either.
    let p = store.list_products(&first(5)).await.unwrap();
    assert_eq!(names(&p), ["a", "b", "c", "d", "e"]);
    assert_eq!(p.next_cursor, None);
    let p = store.list_products(&first(4)).await.unwrap();
    let rest = store
        .list_products(&after(4, &p.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&rest), ["e"]);
    assert_eq!(rest.next_cursor, None);
}

/// Lists sort and page by bytes, as SQLite does, whatever the PostgreSQL server's locale (the
/// test cluster sorts text like en-US, where "a" < "B").
async fn lists_sort_byte_wise(store: &dyn Store) {
    let names = ["b", "B", "a_1", "a-2", "A", "é", "Z", "aa"];
    for name in names {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort(); // byte-wise: "A" "B" "Z" "a-2" "a_1" "aa" "b" "é"
    let all: Vec<String> = store
        .all_products()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(all, expected);
    let mut paged = Vec::new();
    let mut page = store.list_products(&first(3)).await.unwrap();
    loop {
        paged.extend(page.items.iter().map(|p| p.name.clone()));
        if page.next_cursor.is_none() {
            break;
        }
        page = store
            .list_products(&after(3, &page.next_cursor))
            .await
            .unwrap();
    }
    assert_eq!(paged, expected);

    let batch: Vec<DeviceSeen> = names
        .iter()
        .map(|id| seen("door-sensor", id, None, "stable", T0))
        .collect();
    store.record_seen(&batch).await.unwrap();
    let mut ids = Vec::new();
    let mut page = store.list_devices("door-sensor", &first(3)).await.unwrap();
    loop {
        ids.extend(page.items.iter().map(|d| d.id.clone()));
        if page.next_cursor.is_none() {
            break;
        }
        page = store
            .list_devices("door-sensor", &after(3, &page.next_cursor))
            .await
            .unwrap();
    }
    assert_eq!(ids, expected);
}

async fn artifacts_are_content_addressed(store: &dyn Store) {
    let original = artifact(7, "fw-1.0.0.bin");
    assert_eq!(store.get_artifact(&original.sha256).await.unwrap(), None);
    assert_eq!(store.put_artifact(&original).await.unwrap(), original);

    // The same bytes uploaded again under another name and time: the first record stands.
    let again = Artifact {
        filename: "renamed.bin".to_owned(),
        created_at: original.created_at + 1000,
        ..original.clone()
    };
    assert_eq!(store.put_artifact(&again).await.unwrap(), original);
    assert_eq!(
        store.get_artifact(&original.sha256).await.unwrap(),
        Some(original.clone())
    );

    let other = artifact(8, "other.bin");
    assert_eq!(store.put_artifact(&other).await.unwrap(), other);
    assert_eq!(
        store.get_artifact(&other.sha256).await.unwrap(),
        Some(other)
    );
    assert_eq!(
        store.get_artifact(&original.sha256).await.unwrap(),
        Some(original)
    );
}

// ---------------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------------

async fn releases_round_trip_with_increasing_seq(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let a2 = store.put_artifact(&artifact(2, "b.bin")).await.unwrap();

    let plain = store
        .create_release(&release("door-sensor", "1.0.0", &a1))
        .await
        .unwrap();
    let full_input = Release {
        channels: vec!["beta".to_owned(), "stable".to_owned()],
        min_source_version: Some("0.9.0".to_owned()),
        mandatory: true,
        title: Some("Faster pairing".to_owned()),
        summary: Some("Pairs in half the time; fixes the stuck LED.".to_owned()),
        release_notes_url: Some("https://example.com/notes/1.1.0".to_owned()),
        metadata: json!({
            "build": 4711,
            "signed": true,
            "boards": ["rev-a", "rev-b"],
            "nested": { "x": null, "y": 1.5 }
        }),
        created_at: T0 + 200,
        ..release("door-sensor", "1.1.0", &a2)
    };
    let full = store.create_release(&full_input).await.unwrap();

    assert!(plain.seq > 0, "seq {} should be positive", plain.seq);
    assert!(
        full.seq > plain.seq,
        "seq should increase: {} then {}",
        plain.seq,
        full.seq
    );
    // Apart from the seq, what was given is what is returned…
    assert_eq!(
        plain,
        Release {
            seq: plain.seq,
            ..release("door-sensor", "1.0.0", &a1)
        }
    );
    assert_eq!(
        full,
        Release {
            seq: full.seq,
            ..full_input
        }
    );
    // …and what is read back, with the artifact joined in.
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(plain.clone())
    );
    let read = store
        .get_release("door-sensor", "1.1.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, full);
    assert_eq!(read.artifact, a2);
    assert_eq!(read.channels, ["beta", "stable"]);
    assert_eq!(read.metadata["boards"], json!(["rev-a", "rev-b"]));

    assert_eq!(
        store.get_release("door-sensor", "9.9.9").await.unwrap(),
        None
    );
    assert_eq!(store.get_release("nope", "1.0.0").await.unwrap(), None);

    // all_releases is in publish order.
    assert_eq!(
        store.all_releases("door-sensor").await.unwrap(),
        vec![plain, full]
    );
    assert!(store.all_releases("nope").await.unwrap().is_empty());
}

async fn release_versions_are_unique_per_product(store: &dyn Store) {
    for name in ["door-sensor", "gate"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let a2 = store.put_artifact(&artifact(2, "b.bin")).await.unwrap();
    let first = store
        .create_release(&release("door-sensor", "1.0.0", &a1))
        .await
        .unwrap();

    // Same version again, even with another artifact: refused, the first one stands.
    let err = store
        .create_release(&release("door-sensor", "1.0.0", &a2))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(what) => assert_eq!(what, "release"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.all_releases("door-sensor").await.unwrap(),
        vec![first]
    );

    // Another product may use the same version (and the same artifact).
    let gate = store
        .create_release(&release("gate", "1.0.0", &a1))
        .await
        .unwrap();
    assert_eq!(
        store.get_release("gate", "1.0.0").await.unwrap(),
        Some(gate)
    );
}

async fn releases_need_a_known_product_and_artifact(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let stored = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let unknown_artifact = artifact(2, "never-uploaded.bin");

    assert!(
        store
            .create_release(&release("door-sensor", "1.0.0", &unknown_artifact))
            .await
            .is_err()
    );
    assert!(
        store
            .create_release(&release("nope", "1.0.0", &stored))
            .await
            .is_err()
    );
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        None
    );
    assert!(store.all_releases("door-sensor").await.unwrap().is_empty());
    assert!(store.all_releases("nope").await.unwrap().is_empty());
}

async fn releases_list_newest_first_and_paginate(store: &dyn Store) {
    for name in ["door-sensor", "gate"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    // Interleave another product's releases to show they stay out of the list.
    let door1 = publish(store, "door-sensor", &["1.0.0", "1.1.0"]).await;
    publish(store, "gate", &["5.0.0"]).await;
    let door2 = publish(store, "door-sensor", &["1.2.0", "2.0.0", "2.1.0"]).await;
    let all: Vec<Release> = door1.into_iter().chain(door2).collect();
    let versions = |page: &Page<Release>| {
        page.items
            .iter()
            .map(|r| r.version.clone())
            .collect::<Vec<_>>()
    };

    let p1 = store.list_releases("door-sensor", &first(2)).await.unwrap();
    assert_eq!(versions(&p1), ["2.1.0", "2.0.0"]);
    assert_eq!(p1.items[0], all[4], "list items are full, joined releases");
    assert!(p1.next_cursor.is_some());
    let p2 = store
        .list_releases("door-sensor", &after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(versions(&p2), ["1.2.0", "1.1.0"]);
    assert!(p2.next_cursor.is_some());
    let p3 = store
        .list_releases("door-sensor", &after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(versions(&p3), ["1.0.0"]);
    assert_eq!(p3.next_cursor, None);

    let everything = store
        .list_releases("door-sensor", &first(100))
        .await
        .unwrap();
    let newest_first: Vec<Release> = all.iter().rev().cloned().collect();
    assert_eq!(everything.items, newest_first);
    assert_eq!(everything.next_cursor, None);

    let gate = store.list_releases("gate", &first(100)).await.unwrap();
    assert_eq!(versions(&gate), ["5.0.0"]);
    let none = store.list_releases("nope", &first(100)).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next_cursor, None);
}

async fn releases_reject_invalid_cursors(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    publish(store, "door-sensor", &["1.0.0"]).await;
    for cursor in ["not-a-cursor", "", "1.0.0"] {
        let err = store
            .list_releases(
                "door-sensor",
                &PageRequest {
                    limit: 10,
                    cursor: Some(cursor.to_owned()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidCursor),
            "cursor {cursor:?}: expected InvalidCursor, got {err:?}"
        );
    }
}

async fn patch_release_changes_only_given_flags(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let a = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let created = store
        .create_release(&Release {
            mandatory: true,
            title: Some("Hotfix".to_owned()),
            ..release("door-sensor", "1.0.0", &a)
        })
        .await
        .unwrap();

    let yanked = store
        .patch_release(
            "door-sensor",
            "1.0.0",
            &ReleasePatch {
                yanked: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expected = Release {
        yanked: true,
        ..created.clone()
    };
    assert_eq!(yanked, expected);
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(expected.clone())
    );

    let flipped = store
        .patch_release(
            "door-sensor",
            "1.0.0",
            &ReleasePatch {
                deprecated: Some(true),
                yanked: Some(false),
                mandatory: Some(false),
            },
        )
        .await
        .unwrap();
    let expected = Release {
        deprecated: true,
        yanked: false,
        mandatory: false,
        ..created.clone()
    };
    assert_eq!(flipped, expected);
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(expected.clone())
    );

    // An empty patch changes nothing.
    assert_eq!(
        store
            .patch_release("door-sensor", "1.0.0", &ReleasePatch::default())
            .await
            .unwrap(),
        expected
    );

    for (product, version) in [("door-sensor", "9.9.9"), ("nope", "1.0.0")] {
        let err = store
            .patch_release(
                product,
                version,
                &ReleasePatch {
                    yanked: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound),
            "{product} {version}: expected NotFound, got {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Catalogue versions
// ---------------------------------------------------------------------------------------------

fn sorted_versions(mut v: Vec<(String, i64)>) -> Vec<(String, i64)> {
    v.sort();
    v
}

async fn catalog_versions_count_bumps_per_product(store: &dyn Store) {
    assert!(store.catalog_versions().await.unwrap().is_empty());
    // The counter starts at 1 and goes up by one per bump, separately for each product.
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 1);
    assert_eq!(
        store.catalog_versions().await.unwrap(),
        [("door-sensor".to_owned(), 1)]
    );
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 2);
    assert_eq!(store.bump_catalog("gate").await.unwrap(), 1);
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 3);
    assert_eq!(
        sorted_versions(store.catalog_versions().await.unwrap()),
        [("door-sensor".to_owned(), 3), ("gate".to_owned(), 1)]
    );
    // A product need not exist yet (the bump may come first), and names are exact.
    assert_eq!(store.bump_catalog("Door-Sensor").await.unwrap(), 1);
    assert_eq!(
        sorted_versions(store.catalog_versions().await.unwrap()),
        [
            ("Door-Sensor".to_owned(), 1),
            ("door-sensor".to_owned(), 3),
            ("gate".to_owned(), 1)
        ]
    );
}

/// Bumps from many connections at once (several nodes publishing) each get their own number.
async fn concurrent_catalog_bumps_are_atomic(store: &dyn Store) {
    const BUMPS: i64 = 24;
    let bumps =
        (0..BUMPS).map(|i| store.bump_catalog(if i % 3 == 0 { "gate" } else { "door-sensor" }));
    let results = futures_util::future::join_all(bumps).await;
    let (mut door, mut gate) = (Vec::new(), Vec::new());
    for (i, result) in results.into_iter().enumerate() {
        let version = result.unwrap_or_else(|e| panic!("bump {i}: {e}"));
        if i % 3 == 0 {
            gate.push(version)
        } else {
            door.push(version)
        }
    }
    door.sort_unstable();
    gate.sort_unstable();
    assert_eq!(door, (1..=BUMPS * 2 / 3).collect::<Vec<_>>());
    assert_eq!(gate, (1..=BUMPS / 3).collect::<Vec<_>>());
    assert_eq!(
        sorted_versions(store.catalog_versions().await.unwrap()),
        [
            ("door-sensor".to_owned(), BUMPS * 2 / 3),
            ("gate".to_owned(), BUMPS / 3)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Devices and reports
// ---------------------------------------------------------------------------------------------

async fn devices(store: &dyn Store) -> Vec<Device> {
    store
        .list_devices("door-sensor", &first(100))
        .await
        .unwrap()
        .items
}

/// Batches from several nodes land in any order: a sighting older than the stored one changes
/// nothing, so last_seen never goes back and a stale check-in never overwrites a newer version.
async fn older_sightings_never_win(store: &dyn Store) {
    store
        .record_seen(&[seen("door-sensor", "dev-1", Some("1.1.0"), "beta", T0 + 10)])
        .await
        .unwrap();
    store
        .record_seen(&[seen(
            "door-sensor",
            "dev-1",
            Some("1.0.0"),
            "stable",
            T0 + 5,
        )])
        .await
        .unwrap();
    let dev1 = devices(store).await.remove(0);
    assert_eq!(dev1.current_version.as_deref(), Some("1.1.0"));
    assert_eq!(dev1.channel, "beta");
    assert_eq!((dev1.first_seen, dev1.last_seen), (T0 + 10, T0 + 10));
    // Within the same second the later write wins (one node's queue keeps its order).
    store
        .record_seen(&[seen("door-sensor", "dev-1", Some("1.2.0"), "beta", T0 + 10)])
        .await
        .unwrap();
    assert_eq!(
        devices(store).await[0].current_version.as_deref(),
        Some("1.2.0")
    );
}

async fn record_seen_upserts(store: &dyn Store) {
    store
        .record_seen(&[
            seen("door-sensor", "dev-1", Some("1.0.0"), "stable", T0),
            seen("door-sensor", "dev-2", None, "beta", T0 + 1),
        ])
        .await
        .unwrap();
    let list = devices(store).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, "dev-1");
    assert_eq!(list[0].current_version.as_deref(), Some("1.0.0"));
    assert_eq!(list[0].current_hash.as_deref(), Some("hash-of-1.0.0"));
    assert_eq!(list[0].channel, "stable");
    assert_eq!((list[0].first_seen, list[0].last_seen), (T0, T0));
    assert_eq!(list[1].id, "dev-2");
    assert_eq!(list[1].current_version, None);
    assert_eq!(list[1].current_hash, None);
    assert_eq!((list[1].first_seen, list[1].last_seen), (T0 + 1, T0 + 1));

    // One batch, dev-1 twice: a new version, then a sighting without one on another channel.
    // The later sighting wins, but does not forget the version; first_seen is kept.
    store
        .record_seen(&[
            seen("door-sensor", "dev-1", Some("1.1.0"), "stable", T0 + 10),
            seen("door-sensor", "dev-3", Some("0.9.0"), "stable", T0 + 11),
            seen("door-sensor", "dev-1", None, "beta", T0 + 20),
            // Same id under another product is another device.
            seen("gate", "dev-1", Some("5.0.0"), "stable", T0 + 30),
        ])
        .await
        .unwrap();
    let list = devices(store).await;
    let ids: Vec<&str> = list.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["dev-1", "dev-2", "dev-3"]);
    let dev1 = &list[0];
    assert_eq!(dev1.product, "door-sensor");
    assert_eq!(dev1.current_version.as_deref(), Some("1.1.0"));
    assert_eq!(dev1.current_hash.as_deref(), Some("hash-of-1.1.0"));
    assert_eq!(dev1.channel, "beta");
    assert_eq!(dev1.first_seen, T0);
    assert_eq!(dev1.last_seen, T0 + 20);
    // dev-2 was not in the batch and is unchanged.
    assert_eq!(list[1].last_seen, T0 + 1);
    assert_eq!(list[1].channel, "beta");

    let gate = store.list_devices("gate", &first(100)).await.unwrap().items;
    assert_eq!(gate.len(), 1);
    assert_eq!(gate[0].current_version.as_deref(), Some("5.0.0"));
    assert_eq!((gate[0].first_seen, gate[0].last_seen), (T0 + 30, T0 + 30));

    // A device that had no version reports one later.
    store
        .record_seen(&[seen(
            "door-sensor",
            "dev-2",
            Some("2.0.0"),
            "stable",
            T0 + 40,
        )])
        .await
        .unwrap();
    let dev2 = devices(store).await.remove(1);
    assert_eq!(dev2.current_version.as_deref(), Some("2.0.0"));
    assert_eq!(dev2.channel, "stable");
    assert_eq!((dev2.first_seen, dev2.last_seen), (T0 + 1, T0 + 40));

    // An empty batch is fine.
    store.record_seen(&[]).await.unwrap();
    assert_eq!(devices(store).await.len(), 3);
}

async fn devices_paginate_by_id(store: &dyn Store) {
    let batch: Vec<DeviceSeen> = ["d", "b", "e", "a", "c"]
        .into_iter()
        .map(|id| seen("door-sensor", id, Some("1.0.0"), "stable", T0))
        .chain([seen("gate", "aa", None, "stable", T0)])
        .collect();
    store.record_seen(&batch).await.unwrap();
    let ids = |page: &Page<Device>| page.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>();

    let p1 = store.list_devices("door-sensor", &first(2)).await.unwrap();
    assert_eq!(ids(&p1), ["a", "b"]);
    let p2 = store
        .list_devices("door-sensor", &after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(ids(&p2), ["c", "d"]);
    let p3 = store
        .list_devices("door-sensor", &after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(ids(&p3), ["e"]);
    assert_eq!(p3.next_cursor, None);
}

async fn reports_list_newest_first_and_filter_by_device(store: &dyn Store) {
    let inputs = [
        report("dev-1", "1.1.0", ReportState::Downloading, T0),
        report("dev-2", "1.1.0", ReportState::Downloading, T0 + 1),
        report("dev-1", "1.1.0", ReportState::Installed, T0 + 2),
        NewReport {
            message: Some("checksum mismatch".to_owned()),
            ..report("dev-2", "1.1.0", ReportState::Failed, T0 + 3)
        },
        report("dev-1", "1.2.0", ReportState::RolledBack, T0 + 4),
    ];
    let mut stored = Vec::new();
    for input in &inputs {
        let r = store.insert_report(input).await.unwrap();
        assert_eq!(
            (
                &r.product,
                &r.device,
                &r.version,
                r.state,
                &r.message,
                r.created_at
            ),
            (
                &input.product,
                &input.device,
                &input.version,
                input.state,
                &input.message,
                input.created_at
            )
        );
        stored.push(r);
    }
    for pair in stored.windows(2) {
        assert!(pair[1].id > pair[0].id, "report ids should increase");
    }
    // Another product's report stays out of door-sensor's lists.
    store
        .insert_report(&NewReport {
            product: "gate".to_owned(),
            ..report("dev-1", "5.0.0", ReportState::Installed, T0 + 5)
        })
        .await
        .unwrap();

    let all = store
        .list_reports("door-sensor", None, &first(100))
        .await
        .unwrap();
    let newest_first: Vec<_> = stored.iter().rev().cloned().collect();
    assert_eq!(all.items, newest_first);
    assert_eq!(all.next_cursor, None);

    let dev1 = store
        .list_reports("door-sensor", Some("dev-1"), &first(100))
        .await
        .unwrap();
    assert_eq!(
        dev1.items,
        vec![stored[4].clone(), stored[2].clone(), stored[0].clone()]
    );

    // Paging, with and without the device filter.
    let p1 = store
        .list_reports("door-sensor", None, &first(2))
        .await
        .unwrap();
    assert_eq!(
        p1.items,
        stored[3..].iter().rev().cloned().collect::<Vec<_>>()
    );
    let p2 = store
        .list_reports("door-sensor", None, &after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(
        p2.items,
        stored[1..3].iter().rev().cloned().collect::<Vec<_>>()
    );
    let p3 = store
        .list_reports("door-sensor", None, &after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(p3.items, vec![stored[0].clone()]);
    assert_eq!(p3.next_cursor, None);

    let d1 = store
        .list_reports("door-sensor", Some("dev-1"), &first(2))
        .await
        .unwrap();
    assert_eq!(d1.items, vec![stored[4].clone(), stored[2].clone()]);
    let d2 = store
        .list_reports("door-sensor", Some("dev-1"), &after(2, &d1.next_cursor))
        .await
        .unwrap();
    assert_eq!(d2.items, vec![stored[0].clone()]);
    assert_eq!(d2.next_cursor, None);

    let nobody = store
        .list_reports("door-sensor", Some("dev-9"), &first(100))
        .await
        .unwrap();
    assert!(nobody.items.is_empty());
    assert_eq!(nobody.next_cursor, None);
}

async fn reports_reject_invalid_cursors(store: &dyn Store) {
    store
        .insert_report(&report("dev-1", "1.0.0", ReportState::Installed, T0))
        .await
        .unwrap();
    for device in [None, Some("dev-1")] {
        for cursor in ["not-a-cursor", "", "1.5"] {
            let err = store
                .list_reports(
                    "door-sensor",
                    device,
                    &PageRequest {
                        limit: 10,
                        cursor: Some(cursor.to_owned()),
                    },
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidCursor),
                "device {device:?} cursor {cursor:?}: expected InvalidCursor, got {err:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upload sessions and tokens
// ---------------------------------------------------------------------------------------------

async fn upload_sessions_lifecycle(store: &dyn Store) {
    assert!(store.all_uploads().await.unwrap().is_empty());
    assert!(store.idle_uploads(i64::MAX).await.unwrap().is_empty());

    let (a, b, c) = (upload("aaa", 100), upload("bbb", 200), upload("ccc", 300));
    for s in [&a, &b, &c] {
        store.create_upload(s).await.unwrap();
    }
    assert_eq!(store.get_upload("bbb").await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_upload("zzz").await.unwrap(), None);
    assert_eq!(
        sorted(store.all_uploads().await.unwrap()),
        ["aaa", "bbb", "ccc"]
    );

    // "Before" is strict: a session touched exactly at the cutoff is not idle.
    assert_eq!(store.idle_uploads(100).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.idle_uploads(200).await.unwrap(), ["aaa"]);
    assert_eq!(
        sorted(store.idle_uploads(301).await.unwrap()),
        ["aaa", "bbb", "ccc"]
    );

    // Progress on the oldest session makes it recent again.
    store.set_upload_offset("aaa", 2048, 400).await.unwrap();
    assert_eq!(
        store.get_upload("aaa").await.unwrap(),
        Some(UploadSession {
            offset: 2048,
            updated_at: 400,
            ..a.clone()
        })
    );
    assert_eq!(
        sorted(store.idle_uploads(350).await.unwrap()),
        ["bbb", "ccc"]
    );

    store.delete_upload("bbb").await.unwrap();
    assert_eq!(store.get_upload("bbb").await.unwrap(), None);
    assert_eq!(sorted(store.all_uploads().await.unwrap()), ["aaa", "ccc"]);
    assert_eq!(store.idle_uploads(350).await.unwrap(), ["ccc"]);
    // The others are untouched.
    assert_eq!(store.get_upload("ccc").await.unwrap(), Some(c));
}

async fn tokens_are_idempotent(store: &dyn Store) {
    assert!(store.token_hashes().await.unwrap().is_empty());
    let (h1, h2) = ("11".repeat(32), "22".repeat(32));
    store.add_token(&h2, "ci", T0).await.unwrap();
    store.add_token(&h1, "laptop", T0 + 1).await.unwrap();
    // Adding one that exists, even under another label, is fine and adds nothing.
    store.add_token(&h2, "ci again", T0 + 2).await.unwrap();
    assert_eq!(sorted(store.token_hashes().await.unwrap()), [h1, h2]);
}

// ---------------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------------

async fn data_survives_reconnect(db: &mut TestDb) {
    let door = product("door-sensor", Scheme::Semver);
    let (release1, session, report1, hash) = {
        let store = db.store();
        store.create_product(&door).await.unwrap();
        let release1 = publish(store, "door-sensor", &["1.0.0"]).await.remove(0);
        store
            .record_seen(&[seen("door-sensor", "dev-1", Some("1.0.0"), "stable", T0)])
            .await
            .unwrap();
        let report1 = store
            .insert_report(&report("dev-1", "1.0.0", ReportState::Installed, T0))
            .await
            .unwrap();
        let session = upload("up-1", 100);
        store.create_upload(&session).await.unwrap();
        store.set_upload_offset("up-1", 10, 150).await.unwrap();
        let hash = "ab".repeat(32);
        store.add_token(&hash, "ci", T0).await.unwrap();
        store.bump_catalog("door-sensor").await.unwrap();
        store.bump_catalog("door-sensor").await.unwrap();
        (release1, session, report1, hash)
    };

    db.reconnect().await;
    let store = db.store();

    assert_eq!(store.all_products().await.unwrap(), vec![door]);
    assert_eq!(
        store.get_artifact(&release1.artifact.sha256).await.unwrap(),
        Some(release1.artifact.clone())
    );
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(release1.clone())
    );
    let devices = store
        .list_devices("door-sensor", &first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].current_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        store
            .list_reports("door-sensor", None, &first(10))
            .await
            .unwrap()
            .items,
        vec![report1.clone()]
    );
    assert_eq!(
        store.get_upload("up-1").await.unwrap(),
        Some(UploadSession {
            offset: 10,
            updated_at: 150,
            ..session
        })
    );
    assert_eq!(store.token_hashes().await.unwrap(), [hash]);
    assert_eq!(
        store.catalog_versions().await.unwrap(),
        [("door-sensor".to_owned(), 2)]
    );
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 3);

    // Counters carry on after a restart: new rows sort after the old ones.
    let a2 = store.put_artifact(&artifact(9, "b.bin")).await.unwrap();
    let release2 = store
        .create_release(&release("door-sensor", "1.1.0", &a2))
        .await
        .unwrap();
    assert!(release2.seq > release1.seq);
    let report2 = store
        .insert_report(&report("dev-1", "1.1.0", ReportState::Downloading, T0 + 1))
        .await
        .unwrap();
    assert!(report2.id > report1.id);
    // And a duplicate is still a conflict.
    assert!(matches!(
        store
            .create_product(&product("door-sensor", Scheme::Opaque))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------

/// `(version, description)` of a backend's migrations, as `pending_migrations` names them.
fn all_migrations(backend: Backend) -> Vec<(i64, String)> {
    let mut files: Vec<String> = std::fs::read_dir(migrations_dir(backend))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|name| {
            let (version, rest) = name.trim_end_matches(".sql").split_once('_').unwrap();
            (version.parse().unwrap(), rest.replace('_', " "))
        })
        .collect()
}

/// The same database URL with a password in it (the test cluster trusts loopback, so any
/// password works), to show that messages never repeat it.
fn with_password(url: &str) -> String {
    url.replacen("://postgres@", "://postgres:hunter2@", 1)
}

/// SQLite migrates itself on connect; PostgreSQL refuses an unmigrated database and says to run
/// `otter migrate`.
async fn connect_on_an_empty_database(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    match fresh.backend {
        Backend::Sqlite => {
            let store = SqlStore::connect(&fresh.url).await.unwrap();
            store
                .create_product(&product("door-sensor", Scheme::Semver))
                .await
                .unwrap();
            assert!(
                SqlStore::pending_migrations(&fresh.url)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        Backend::Postgres => {
            let url = with_password(&fresh.url);
            let err = match SqlStore::connect(&url).await {
                Err(err) => err,
                Ok(_) => panic!("connect accepted an unmigrated PostgreSQL database"),
            };
            assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
            let message = err.to_string();
            assert!(message.contains("run `otter migrate`"), "{message}");
            assert!(message.contains("postgres:***@127.0.0.1"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("0001 init"), "{message}");
            // Connecting wrote nothing: everything is still pending.
            assert_eq!(
                SqlStore::pending_migrations(&url).await.unwrap(),
                everything
            );
            assert_eq!(SqlStore::migrate(&url).await.unwrap(), everything.len());
            let store = SqlStore::connect(&url).await.unwrap();
            store
                .create_product(&product("door-sensor", Scheme::Semver))
                .await
                .unwrap();
        }
    }
}

async fn migrate_applies_each_migration_once(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    assert!(everything.len() >= 2, "{everything:?}");
    assert_eq!(
        SqlStore::pending_migrations(&fresh.url).await.unwrap(),
        everything
    );
    assert_eq!(
        SqlStore::migrate(&fresh.url).await.unwrap(),
        everything.len()
    );
    assert!(
        SqlStore::pending_migrations(&fresh.url)
            .await
            .unwrap()
            .is_empty()
    );
    // Again: nothing to do, and the data stays.
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    store.close().await;
    assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
    assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    assert_eq!(
        store.all_products().await.unwrap(),
        [product("door-sensor", Scheme::Semver)]
    );
}

/// A database an older otter migrated: `connect` (PostgreSQL) names what is missing, and
/// `migrate` applies just that.
async fn migrate_finishes_a_partly_migrated_database(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    let migrator = sqlx::migrate::Migrator::new(migrations_dir(fresh.backend))
        .await
        .unwrap();
    let pool = raw_pool(&fresh.url).await;
    migrator.run_to(1, &pool).await.unwrap();
    pool.close().await;
    assert_eq!(
        SqlStore::pending_migrations(&fresh.url).await.unwrap(),
        everything[1..]
    );

    match fresh.backend {
        Backend::Sqlite => {
            // Connecting migrates the rest.
            SqlStore::connect(&fresh.url).await.unwrap().close().await;
            assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
        }
        Backend::Postgres => {
            let message = match SqlStore::connect(&fresh.url).await {
                Err(StoreError::Schema(message)) => message,
                Err(other) => panic!("expected a schema error, got {other:?}"),
                Ok(_) => panic!("connect accepted a partly migrated database"),
            };
            let (version, description) = &everything[1];
            assert!(
                message.contains(&format!("{version:04} {description}")),
                "{message}"
            );
            let pending = format!(
                "{} of {} migrations pending",
                everything.len() - 1,
                everything.len()
            );
            assert!(message.contains(&pending), "{message}");
            assert!(message.contains("otter migrate"), "{message}");
            assert_eq!(
                SqlStore::migrate(&fresh.url).await.unwrap(),
                everything.len() - 1
            );
        }
    }
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 1);
}

/// Two `otter migrate`s at once (two operators, two deploy jobs): one applies everything, the
/// other waits its turn and finds nothing to do.
async fn concurrent_migrations_take_turns(fresh: Fresh) {
    if fresh.backend == Backend::Sqlite {
        // One machine, one file: SQLite has no cross-process migration lock to test.
        return;
    }
    let everything = all_migrations(fresh.backend);
    let (a, b, c) = tokio::join!(
        SqlStore::migrate(&fresh.url),
        SqlStore::migrate(&fresh.url),
        SqlStore::migrate(&fresh.url)
    );
    let mut counts = [a.unwrap(), b.unwrap(), c.unwrap()];
    counts.sort_unstable();
    assert_eq!(counts, [0, 0, everything.len()]);
    SqlStore::connect(&fresh.url).await.unwrap();
}

/// A schema this otter did not write: a migration it does not know (a newer otter migrated the
/// database) or one whose text differs (another build). `migrate` refuses both with an
/// explanation; `connect` refuses a changed migration, and refuses a newer schema on SQLite but
/// only warns on PostgreSQL, so not-yet-upgraded nodes can restart during a rolling upgrade.
async fn schema_from_another_otter_is_refused(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    assert_eq!(
        SqlStore::migrate(&fresh.url).await.unwrap(),
        everything.len()
    );
    let pool = raw_pool(&fresh.url).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(9999_i64)
    .bind("from the future")
    .bind(true)
    .bind(vec![0u8; 48])
    .bind(0_i64)
    .execute(&pool)
    .await
    .unwrap();

    let err = SqlStore::migrate(&fresh.url).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(
        message.contains("9999") && message.contains("newer otter"),
        "{message}"
    );
    match fresh.backend {
        Backend::Sqlite => {
            let err = SqlStore::connect(&fresh.url).await.err().expect("refused");
            assert!(err.to_string().contains("newer otter"), "{err}");
        }
        Backend::Postgres => {
            SqlStore::connect(&fresh.url).await.unwrap();
        }
    }

    // A changed migration instead.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
        .bind(vec![1u8; 48])
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) AS n FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, i64::try_from(everything.len()).unwrap());
    pool.close().await;
    for err in [
        SqlStore::migrate(&fresh.url).await.unwrap_err(),
        SqlStore::connect(&fresh.url).await.err().expect("refused"),
    ] {
        assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
        assert!(err.to_string().contains("migration 1 "), "{err}");
    }
}

async fn product_keys_round_trip(store: &dyn Store) {
    assert_eq!(store.product_key("fw").await.unwrap(), None);
    store
        .set_product_key("fw", &"a".repeat(64), T0)
        .await
        .unwrap();
    assert_eq!(store.product_key("fw").await.unwrap(), Some("a".repeat(64)));
    store
        .set_product_key("fw", &"b".repeat(64), T0)
        .await
        .unwrap();
    assert_eq!(
        store.product_key("fw").await.unwrap(),
        Some("b".repeat(64)),
        "a new key replaces the old one"
    );
    assert_eq!(store.product_key("other").await.unwrap(), None);
}

async fn device_access_rules_set_replace_and_delete(store: &dyn Store) {
    assert!(store.device_access("fw").await.unwrap().is_empty());
    store
        .set_device_access("fw", "dev-2", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("fw", "dev-1", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("other", "dev-1", Some(Access::Deny), T0)
        .await
        .unwrap();
    // Replacing a rule, and deleting one (twice: deleting nothing is fine).
    store
        .set_device_access("fw", "dev-1", Some(Access::Deny), T0 + 1)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", None, T0 + 1)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.device_access("fw").await.unwrap(),
        [
            ("dev-1".to_owned(), Access::Deny),
            ("dev-2".to_owned(), Access::Allow)
        ]
    );
    assert_eq!(
        store.device_access("other").await.unwrap(),
        [("dev-1".to_owned(), Access::Deny)]
    );
}

async fn devices_keep_attributes_and_auto_update(store: &dyn Store) {
    assert_eq!(store.get_device("door-sensor", "d1").await.unwrap(), None);
    assert!(matches!(
        store.set_auto_update("door-sensor", "d1", true).await,
        Err(StoreError::NotFound)
    ));
    let mut sighting = seen("door-sensor", "d1", Some("1.0.0"), "stable", T0);
    sighting.attributes = Some(json!({"mac": "5C:CF:7F:12:34:56", "alias": "hall"}));
    store.record_seen(&[sighting]).await.unwrap();
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.attributes["alias"], "hall");
    assert!(!device.auto_update, "auto-update is off until turned on");

    let on = store
        .set_auto_update("door-sensor", "d1", true)
        .await
        .unwrap();
    assert!(on.auto_update);
    // A sighting without attributes keeps them, and never touches auto-update; one with
    // attributes replaces them.
    store
        .record_seen(&[seen("door-sensor", "d1", Some("1.1.0"), "stable", T0 + 10)])
        .await
        .unwrap();
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.attributes["mac"], "5C:CF:7F:12:34:56");
    assert!(device.auto_update);
    assert_eq!(device.current_version.as_deref(), Some("1.1.0"));
    let mut renamed = seen("door-sensor", "d1", None, "stable", T0 + 20);
    renamed.attributes = Some(json!({"alias": "porch"}));
    store.record_seen(&[renamed]).await.unwrap();
    let listed = store.list_devices("door-sensor", &first(10)).await.unwrap();
    assert_eq!(listed.items[0].attributes, json!({"alias": "porch"}));
    assert!(listed.items[0].auto_update);
    assert!(
        !store
            .set_auto_update("door-sensor", "d1", false)
            .await
            .unwrap()
            .auto_update
    );
}

async fn api_keys_add_list_delete(store: &dyn Store) {
    let key = |label: &str, at: i64| ApiKey {
        id: String::new(),
        product: "door-sensor".into(),
        label: label.into(),
        created_at: at,
    };
    store
        .add_api_key(&key("factory", T0), &"a1".repeat(32))
        .await
        .unwrap();
    store
        .add_api_key(&key("field", T0 + 1), &"b2".repeat(32))
        .await
        .unwrap();
    let listed = store.api_keys("door-sensor").await.unwrap();
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|k| (k.id.as_str(), k.label.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("a1a1a1a1a1a1a1a1", "factory"),
            ("b2b2b2b2b2b2b2b2", "field")
        ]
    );
    assert_eq!(
        sorted(store.api_key_hashes("door-sensor").await.unwrap()),
        ["a1".repeat(32), "b2".repeat(32)]
    );
    assert!(store.api_keys("other").await.unwrap().is_empty());
    assert!(
        store
            .delete_api_key("door-sensor", "a1a1a1a1a1a1a1a1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_api_key("door-sensor", "a1a1a1a1a1a1a1a1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_api_key("other", "b2b2b2b2b2b2b2b2")
            .await
            .unwrap()
    );
    assert_eq!(
        store.api_key_hashes("door-sensor").await.unwrap(),
        ["b2".repeat(32)]
    );
}

async fn one_time_tokens_are_used_once_and_spent_once(store: &dyn Store) {
    let token = OneTimeToken::issue("c3".repeat(32), "door-sensor", "d1", &"ab".repeat(32), T0);
    store.create_ott(&token).await.unwrap();
    assert_eq!(
        store.get_ott(&token.token_sha256).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.get_ott(&"dd".repeat(32)).await.unwrap(), None);
    store
        .first_use_ott(&token.token_sha256, T0 + 60, T0 + 3660)
        .await
        .unwrap();
    // Only the first use counts.
    store
        .first_use_ott(&token.token_sha256, T0 + 120, T0 + 3720)
        .await
        .unwrap();
    let used = store.get_ott(&token.token_sha256).await.unwrap().unwrap();
    assert_eq!(
        (used.first_used_at, used.expires_at),
        (Some(T0 + 60), T0 + 3660)
    );
    assert!(store.spend_ott(&token.token_sha256, T0 + 90).await.unwrap());
    assert!(!store.spend_ott(&token.token_sha256, T0 + 95).await.unwrap());
    assert_eq!(
        store
            .get_ott(&token.token_sha256)
            .await
            .unwrap()
            .unwrap()
            .spent_at,
        Some(T0 + 90)
    );
    assert_eq!(store.purge_otts(T0 + 3660).await.unwrap(), 0);
    assert_eq!(store.purge_otts(T0 + 3661).await.unwrap(), 1);
    assert_eq!(store.get_ott(&token.token_sha256).await.unwrap(), None);
}

async fn signing_keys_are_set_per_kind(store: &dyn Store) {
    assert!(store.signing_keys("meter").await.unwrap().is_empty());
    store
        .set_signing_key("meter", "iotawatt-ed25519", &"ab".repeat(32), T0)
        .await
        .unwrap();
    store
        .set_signing_key("meter", "iotawatt-ed25519", &"cd".repeat(32), T0 + 1)
        .await
        .unwrap();
    store
        .set_signing_key("other", "iotawatt-ed25519", &"ef".repeat(32), T0)
        .await
        .unwrap();
    assert_eq!(
        store.signing_keys("meter").await.unwrap(),
        [("iotawatt-ed25519".to_owned(), "cd".repeat(32))],
        "a new key replaces the old one"
    );
}

async fn roots_and_release_signatures(store: &dyn Store) {
    store
        .add_root("door", 2, "{\"v\":2}", T0 + 20, T0)
        .await
        .unwrap();
    store
        .add_root("door", 1, "{\"v\":1}", T0 + 10, T0)
        .await
        .unwrap();
    assert!(matches!(
        store.add_root("door", 1, "{}", T0, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.roots("door").await.unwrap(),
        [(1, "{\"v\":1}".to_owned()), (2, "{\"v\":2}".to_owned())],
        "oldest first, verbatim"
    );
    assert!(store.roots("other").await.unwrap().is_empty());

    store
        .set_binary_signature("door", "1.0.0", "MEUC")
        .await
        .unwrap();
    store
        .set_release_manifest("door", "1.0.0", "env-1", 3, T0 + 100)
        .await
        .unwrap();
    store
        .set_release_manifest("door", "1.1.0", "env-2", 4, T0 + 200)
        .await
        .unwrap();
    // Re-signing replaces the manifest and keeps the binary signature.
    store
        .set_release_manifest("door", "1.0.0", "env-1b", 3, T0 + 300)
        .await
        .unwrap();
    let all = store.release_signatures("door").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].version, "1.0.0");
    assert_eq!(all[0].manifest.as_deref(), Some("env-1b"));
    assert_eq!(all[0].expires_at, Some(T0 + 300));
    assert_eq!(all[0].binary_signature.as_deref(), Some("MEUC"));
    assert_eq!(
        (all[1].security_counter, all[1].binary_signature.as_deref()),
        (Some(4), None)
    );
}

/// Every insert that can break a uniqueness rule reports the kind of thing that exists, in
/// words of otter's own: the database's message (table, constraint and key names, which differ
/// between backends) never reaches the error, whose text the server may send to a client.
async fn conflicts_name_what_exists_not_the_database(store: &dyn Store) {
    let door = product("door-sensor", Scheme::Semver);
    store.create_product(&door).await.unwrap();
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let v1 = release("door-sensor", "1.0.0", &a1);
    store.create_release(&v1).await.unwrap();
    let session = upload("aaa", T0);
    store.create_upload(&session).await.unwrap();
    let key = ApiKey {
        id: String::new(),
        product: "door-sensor".into(),
        label: "factory".into(),
        created_at: T0,
    };
    store.add_api_key(&key, &"a1".repeat(32)).await.unwrap();
    let token = OneTimeToken::issue("c3".repeat(32), "door-sensor", "d1", &a1.sha256, T0);
    store.create_ott(&token).await.unwrap();
    store
        .add_root("door-sensor", 1, "{}", T0, T0)
        .await
        .unwrap();

    let again = [
        ("product", store.create_product(&door).await.map(drop)),
        ("release", store.create_release(&v1).await.map(drop)),
        ("upload session", store.create_upload(&session).await),
        ("API key", store.add_api_key(&key, &"a1".repeat(32)).await),
        ("one-time token", store.create_ott(&token).await),
        ("root", store.add_root("door-sensor", 1, "{}", T0, T0).await),
    ];
    for (what, result) in again {
        let err = result.expect_err(what);
        assert!(
            matches!(err, StoreError::Conflict(named) if named == what),
            "{what} again: expected Conflict, got {err:?}"
        );
        assert_eq!(err.to_string(), format!("{what} already exists"));
    }
}
