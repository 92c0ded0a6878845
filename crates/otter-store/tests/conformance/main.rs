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
//!
//! The behaviours live in one module per store trait, as `src/sql/` does (`products`,
//! `releases`, `devices`, `uploads`, `tokens`, `access`, `trust`, `audit`, `schedules`,
//! `rollouts`, `users`, `ddi`, `deltas`), plus `registry` (what operators set on devices), `whole`
//! (the store as
//! a whole) and `schema` (migrations). They take the harness and fixtures below with
//! `use super::*`.

use std::path::Path;

use otter_core::access::Access;
use otter_core::model::{
    Actor, ActorKind, ApiKey, ApiToken, Artifact, Device, DeviceSeen, Page, Product, Release,
    ReleasePatch, ReportState, Role, UploadSession, User,
};
use otter_core::ott::OneTimeToken;
use otter_core::version::Scheme;
use otter_store::sql::SqlStore;
use otter_store::{
    AuditFilter, CatalogChanges, DeviceChange, DeviceControls, DeviceFilter, FleetSummary,
    NewAuditEntry, NewReport, OverLimit, PageRequest, ProductStore as _, Store, StoreError,
    StoredSession, StoredUser, UserChange,
};
use serde_json::json;
use sqlx::Row as _;
use tempfile::TempDir;

mod access;
mod audit;
mod ddi;
mod deltas;
mod devices;
mod products;
mod registry;
mod releases;
mod rollouts;
mod schedules;
mod schema;
mod tokens;
mod trust;
mod uploads;
mod users;
mod whole;

use access::*;
use audit::*;
use ddi::*;
use deltas::*;
use devices::*;
use products::*;
use registry::*;
use releases::*;
use rollouts::*;
use schedules::*;
use schema::*;
use tokens::*;
use trust::*;
use uploads::*;
use users::*;
use whole::*;

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
        windows_and_poll_hints_are_set_replaced_and_removed,
        ddi_tokens_open_their_holder_and_a_new_one_replaces_the_old,
        one_ddi_action_is_open_per_device,
        devices_filter_by_attribute,
        delta_policies_are_set_replaced_and_removed,
        deltas_are_recorded_per_pair_and_format_and_replaced,
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
        catalog_changes_follow_the_clock,
        record_seen_upserts,
        a_sighting_naming_what_runs_replaces_version_and_hash,
        older_sightings_never_win,
        new_devices_beyond_the_cap_are_not_recorded,
        devices_paginate_by_id,
        reports_list_newest_first_and_filter_by_device,
        reports_reject_invalid_cursors,
        fleet_summary_counts_versions_and_recent_sightings,
        recent_failures_are_failed_or_rolled_back_reports_since,
        upload_sessions_lifecycle,
        tokens_have_unique_names_and_hashes,
        a_replaced_token_is_the_only_one_under_its_name,
        revoked_tokens_stay_listed_and_last_use_only_moves_on,
        audit_entries_round_trip_newest_first,
        audit_filters_combine_and_paginate,
        product_keys_round_trip,
        device_access_rules_set_replace_and_delete,
        devices_keep_attributes_and_auto_update,
        devices_filter_by_tag_version_channel_protocol_and_last_seen,
        tagging_by_filter_is_counted_and_idempotent,
        assigned_channel_and_pin_are_set_and_cleared,
        deleting_a_device_forgets_its_row_and_tags,
        device_controls_hold_only_devices_with_something_set,
        sightings_record_protocol_and_address,
        api_keys_add_list_delete,
        one_time_tokens_are_used_once_and_spent_once,
        signing_keys_are_set_per_kind,
        roots_and_release_signatures,
        expiring_signatures_across_products,
        conflicts_name_what_exists_not_the_database,
        rollouts_one_active_per_channel_and_list_newest_first,
        rollouts_advance_once_per_stage,
        the_concurrency_cap_holds_and_slots_come_back,
        concurrent_admissions_never_pass_the_cap,
        failures_fill_the_penalty_box_and_retry_lets_the_rest_in,
        users_are_unique_listed_by_name_and_changed,
        sessions_are_recorded_touched_and_revoked,
    ],
    db: [data_survives_reconnect],
    fresh: [
        connect_on_an_empty_database,
        migrate_applies_each_migration_once,
        migrate_finishes_a_partly_migrated_database,
        concurrent_migrations_take_turns,
        schema_from_another_otter_is_refused,
        existing_tokens_become_admin_tokens,
        migration_0009_keeps_closed_firmwares_closed,
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
        first_at: at,
        attributes: None,
        protocol: None,
        remote_addr: None,
    }
}

/// A change turning auto-update on or off, and nothing else.
fn auto_update(on: bool) -> DeviceChange {
    DeviceChange {
        auto_update: Some(on),
        ..DeviceChange::default()
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
