//! The check index's cost grows neither with the number of products nor with a product's
//! history. With 50,000 products, start-up builds none of them, an idle poll reads no product
//! and names that are no product never reach the store; publishing into a product with
//! thousands of releases reads nothing of the others. Asserted on what the store is asked (a
//! counting wrapper around the real SQLite store), not on time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use otter_app::index::CheckIndex;
use otter_core::access::Access;
use otter_core::deltas::{Delta, DeltaPolicy};
use otter_core::model::{
    ApiKey, ApiToken, Artifact, AuditEntry, Device, DeviceSeen, Page, Product, Release,
    ReleasePatch, ReleaseSignatures, UpdateReport, UploadSession, User,
};
use otter_core::ott::OneTimeToken;
use otter_core::rollout::{DeviceAttempt, DeviceState, Rollout, RolloutState, StageCounts};
use otter_core::schedule::{PollHint, WindowSpec};
use otter_core::version::Scheme;
use otter_core::{Current, Decision};
use otter_store::sql::SqlStore;
use otter_store::{
    AccessStore, AuditFilter, AuditStore, CatalogChanges, DeltaStore, DeviceChange, DeviceControls,
    DeviceFilter, DeviceStore, ExpiringSignature, FleetSummary, NewAuditEntry, NewReport, OttStore,
    OverLimit, PageRequest, ProductStore, ReleaseStore, Result, ScheduleStore, StoredSession,
    StoredToken, StoredUser, TokenStore, TrustStore, UploadStore, UserChange, UserStore,
};
use otter_store::{
    ActionState, DdiAction, DdiHolder, DdiOptions, DdiStore, DeviceActions, Failure,
    RolloutMembers, RolloutStore, SlotAnswer,
};

const PRODUCTS: usize = 50_000;

/// A store that counts the calls made to it, and the catalogue rows it hands back.
struct Counting {
    inner: SqlStore,
    calls: Mutex<HashMap<&'static str, usize>>,
    catalog_rows: AtomicUsize,
}

impl Counting {
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }

    /// What was counted since the last call.
    fn take(&self) -> (HashMap<&'static str, usize>, usize) {
        (
            std::mem::take(&mut *self.calls.lock().unwrap()),
            self.catalog_rows.swap(0, Ordering::Relaxed),
        )
    }
}

async fn counting_store(dir: &tempfile::TempDir) -> Counting {
    let url = format!("sqlite://{}", dir.path().join("otter.db").display());
    Counting {
        inner: SqlStore::connect(&url).await.unwrap(),
        calls: Mutex::default(),
        catalog_rows: AtomicUsize::new(0),
    }
}

fn product(name: &str) -> Product {
    Product {
        name: name.to_owned(),
        scheme: Scheme::Semver,
        created_at: 0,
    }
}

#[tokio::test]
async fn fifty_thousand_products_are_built_only_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting_store(&dir).await;
    // A product and its catalogue row each, as `/v1/create` makes them; a few at a time, as
    // separate requests would.
    let names: Vec<String> = (0..PRODUCTS).map(|i| format!("p{i:05}")).collect();
    for chunk in names.chunks(500) {
        futures_util::future::try_join_all(chunk.iter().map(|name| async {
            store.inner.create_product(&product(name)).await?;
            store.inner.bump_catalog(name).await
        }))
        .await
        .unwrap();
    }

    // Start-up reads the clock and the names, and builds no product.
    let index = CheckIndex::load(&store).await.unwrap();
    let (calls, _) = store.take();
    assert_eq!(
        calls,
        HashMap::from([("catalog_changes", 1), ("all_products", 1)])
    );
    assert!(index.built_products().is_empty());

    // An idle poll: one question, no product's row read, nothing rebuilt.
    assert_eq!(index.sync(&store).await.unwrap(), 0);
    let (calls, rows) = store.take();
    assert_eq!(calls, HashMap::from([("catalog_changes", 1)]));
    assert_eq!(rows, 0, "an idle poll read catalogue rows");

    // Names that are no product (a flood of made-up ones, or one asked for again and again)
    // are answered without the store.
    for i in 0..1000 {
        let made_up = format!("nope-{i}");
        assert!(index.get(&store, &made_up).await.unwrap().is_none());
        assert!(index.get(&store, "nope").await.unwrap().is_none());
    }
    assert_eq!(store.take().0, HashMap::new());

    // The first use builds the product, once; after that it is answered from memory.
    for _ in 0..3 {
        let built = index.get(&store, "p49999").await.unwrap().unwrap();
        assert_eq!(built.product.name, "p49999");
    }
    let (calls, _) = store.take();
    assert_eq!(calls.get("get_product"), Some(&1));
    assert_eq!(index.built_products().len(), 1);

    // A change made through another node to a product nobody asked for is left for its first
    // use; one to a built product is picked up, and only that product is read.
    store.inner.bump_catalog("p00042").await.unwrap();
    assert_eq!(index.sync(&store).await.unwrap(), 0);
    assert_eq!(store.take().0, HashMap::from([("catalog_changes", 1)]));
    store.inner.bump_catalog("p49999").await.unwrap();
    assert_eq!(index.sync(&store).await.unwrap(), 1);
    let (calls, rows) = store.take();
    assert_eq!(rows, 1);
    assert_eq!(calls.get("get_product"), Some(&1));
    assert_eq!(index.built_products().len(), 1);

    // A product created through another node is known from the next poll on.
    store
        .inner
        .create_product(&product("newcomer"))
        .await
        .unwrap();
    store.inner.bump_catalog("newcomer").await.unwrap();
    assert!(index.get(&store, "newcomer").await.unwrap().is_none());
    index.sync(&store).await.unwrap();
    assert!(index.get(&store, "newcomer").await.unwrap().is_some());
}

#[tokio::test]
async fn keys_and_artifacts_of_products_not_built_yet_are_found_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting_store(&dir).await;
    store.inner.create_product(&product("keyed")).await.unwrap();
    let key = "a-device-api-key";
    store
        .inner
        .add_api_key(
            &ApiKey {
                id: String::new(),
                product: "keyed".to_owned(),
                label: "factory".to_owned(),
                created_at: 0,
            },
            &otter_app::tokens::token_hash(key),
        )
        .await
        .unwrap();
    let artifact = store.inner.put_artifact(&tiny_artifact()).await.unwrap();
    store
        .inner
        .create_release(&release("keyed", "1.0.0".to_owned(), &artifact))
        .await
        .unwrap();
    let index = CheckIndex::load(&store).await.unwrap();
    store.take();

    // A key opens its product, built on the way; then memory answers.
    for _ in 0..2 {
        let opened = index.product_for_api_key(&store, key).await.unwrap();
        assert_eq!(opened.unwrap().product.name, "keyed");
    }
    let (calls, _) = store.take();
    assert_eq!(calls.get("api_key_product"), Some(&1));
    assert_eq!(calls.get("get_product"), Some(&1));

    // A wrong key asked again and again costs one store read.
    for _ in 0..5 {
        let none = index.product_for_api_key(&store, "wrong").await.unwrap();
        assert!(none.is_none());
    }
    assert_eq!(store.take().0, HashMap::from([("api_key_product", 1)]));

    // An artifact is found by SHA-256 before any product releasing it is built, once.
    let fresh = CheckIndex::load(&store).await.unwrap();
    store.take();
    for _ in 0..3 {
        let found = fresh.artifact(&store, &artifact.sha256).await.unwrap();
        assert_eq!(found, Some(artifact.clone()));
    }
    assert_eq!(store.take().0, HashMap::from([("get_artifact", 1)]));
}

/// Releases published one after another into one product.
const HISTORY: usize = 2_000;

fn tiny_artifact() -> Artifact {
    Artifact {
        sha256: "a".repeat(64),
        sha1: "b".repeat(40),
        md5: "c".repeat(32),
        size: 1,
        filename: "fw.bin".to_owned(),
        created_at: 0,
    }
}

fn release(product: &str, version: String, artifact: &Artifact) -> Release {
    Release {
        seq: 0,
        product: product.to_owned(),
        version,
        artifact: artifact.clone(),
        channels: vec!["stable".to_owned()],
        release_date: String::new(),
        min_source_version: None,
        mandatory: false,
        deprecated: false,
        yanked: false,
        title: None,
        summary: None,
        release_notes_url: None,
        metadata: serde_json::Value::Null,
        created_at: 0,
    }
}

#[tokio::test]
async fn publishing_into_a_long_history_reads_only_the_new_release() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting_store(&dir).await;
    store.inner.create_product(&product("long")).await.unwrap();
    let artifact = store.inner.put_artifact(&tiny_artifact()).await.unwrap();
    for i in 0..HISTORY {
        store
            .inner
            .create_release(&release("long", format!("1.{i}.0"), &artifact))
            .await
            .unwrap();
    }
    let index = CheckIndex::load(&store).await.unwrap();
    let offered = |index: &otter_app::index::ProductIndex| match index
        .decide("stable", Current::Reported("1.0.0"), 0, |_| false)
        .unwrap()
    {
        Decision::Offer { index: i, .. } => index.releases[i].release.version.clone(),
        other => panic!("{other:?}"),
    };
    let before = index.get(&store, "long").await.unwrap().unwrap();
    assert_eq!(offered(&before), format!("1.{}.0", HISTORY - 1));
    store.take();

    // Publish: the catalogue is bumped, and nothing else is read.
    let newest = store
        .inner
        .create_release(&release("long", format!("1.{HISTORY}.0"), &artifact))
        .await
        .unwrap();
    index
        .release_changed(&store, newest.clone(), None)
        .await
        .unwrap();
    assert_eq!(store.take().0, HashMap::from([("bump_catalog", 1)]));
    let after = index.get(&store, "long").await.unwrap().unwrap();
    assert_eq!(after.releases.len(), HISTORY + 1);
    assert_eq!(offered(&after), format!("1.{HISTORY}.0"));

    // Yank it: the same, and devices are offered the release before it again.
    let yanked = store
        .inner
        .patch_release(
            "long",
            &newest.version,
            &ReleasePatch {
                yanked: Some(true),
                ..ReleasePatch::default()
            },
        )
        .await
        .unwrap();
    index.release_changed(&store, yanked, None).await.unwrap();
    assert_eq!(store.take().0, HashMap::from([("bump_catalog", 1)]));
    let after = index.get(&store, "long").await.unwrap().unwrap();
    assert_eq!(offered(&after), format!("1.{}.0", HISTORY - 1));

    // A change made elsewhere in between is not missed: the product is read again whole.
    store.inner.bump_catalog("long").await.unwrap();
    let another = store
        .inner
        .create_release(&release("long", format!("1.{}.0", HISTORY + 1), &artifact))
        .await
        .unwrap();
    index.release_changed(&store, another, None).await.unwrap();
    let (calls, _) = store.take();
    assert_eq!(calls.get("all_releases"), Some(&1));
}

#[async_trait]
impl ProductStore for Counting {
    async fn create_product(&self, product: &Product) -> Result<()> {
        self.count("create_product");
        self.inner.create_product(product).await
    }
    async fn get_product(&self, name: &str) -> Result<Option<Product>> {
        self.count("get_product");
        self.inner.get_product(name).await
    }
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>> {
        self.count("list_products");
        self.inner.list_products(page).await
    }
    async fn all_products(&self) -> Result<Vec<Product>> {
        self.count("all_products");
        self.inner.all_products().await
    }
    async fn put_artifact(&self, artifact: &Artifact) -> Result<Artifact> {
        self.count("put_artifact");
        self.inner.put_artifact(artifact).await
    }
    async fn get_artifact(&self, sha256: &str) -> Result<Option<Artifact>> {
        self.count("get_artifact");
        self.inner.get_artifact(sha256).await
    }
    async fn bump_catalog(&self, product: &str) -> Result<i64> {
        self.count("bump_catalog");
        self.inner.bump_catalog(product).await
    }
    async fn catalog_changes(&self, after: i64) -> Result<CatalogChanges> {
        self.count("catalog_changes");
        let changes = self.inner.catalog_changes(after).await?;
        self.catalog_rows
            .fetch_add(changes.changed.len(), Ordering::Relaxed);
        Ok(changes)
    }
    async fn catalog_version(&self, product: &str) -> Result<i64> {
        self.count("catalog_version");
        self.inner.catalog_version(product).await
    }
}

#[async_trait]
impl ReleaseStore for Counting {
    async fn create_release(&self, release: &Release) -> Result<Release> {
        self.count("create_release");
        self.inner.create_release(release).await
    }
    async fn get_release(&self, product: &str, version: &str) -> Result<Option<Release>> {
        self.count("get_release");
        self.inner.get_release(product, version).await
    }
    async fn list_releases(&self, product: &str, page: &PageRequest) -> Result<Page<Release>> {
        self.count("list_releases");
        self.inner.list_releases(product, page).await
    }
    async fn all_releases(&self, product: &str) -> Result<Vec<Release>> {
        self.count("all_releases");
        self.inner.all_releases(product).await
    }
    async fn patch_release(
        &self,
        product: &str,
        version: &str,
        patch: &ReleasePatch,
    ) -> Result<Release> {
        self.count("patch_release");
        self.inner.patch_release(product, version, patch).await
    }
}

#[async_trait]
impl DeviceStore for Counting {
    async fn record_seen(
        &self,
        seen: &[DeviceSeen],
        max_devices: Option<u64>,
    ) -> Result<OverLimit> {
        self.count("record_seen");
        self.inner.record_seen(seen, max_devices).await
    }
    async fn list_devices(
        &self,
        product: &str,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<Device>> {
        self.count("list_devices");
        self.inner.list_devices(product, filter, page).await
    }
    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        self.count("get_device");
        self.inner.get_device(product, id).await
    }
    async fn update_device(
        &self,
        product: &str,
        id: &str,
        change: &DeviceChange,
    ) -> Result<Device> {
        self.count("update_device");
        self.inner.update_device(product, id, change).await
    }
    async fn tag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64> {
        self.count("tag_devices");
        self.inner.tag_devices(product, filter, tag).await
    }
    async fn untag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64> {
        self.count("untag_devices");
        self.inner.untag_devices(product, filter, tag).await
    }
    async fn delete_device(&self, product: &str, id: &str) -> Result<bool> {
        self.count("delete_device");
        self.inner.delete_device(product, id).await
    }
    async fn device_controls(&self, product: &str) -> Result<Vec<DeviceControls>> {
        self.count("device_controls");
        self.inner.device_controls(product).await
    }
    async fn insert_report(&self, report: &NewReport) -> Result<UpdateReport> {
        self.count("insert_report");
        self.inner.insert_report(report).await
    }
    async fn list_reports(
        &self,
        product: &str,
        device: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UpdateReport>> {
        self.count("list_reports");
        self.inner.list_reports(product, device, page).await
    }
    async fn fleet_summary(&self, product: &str, seen_since: &[i64]) -> Result<FleetSummary> {
        self.count("fleet_summary");
        self.inner.fleet_summary(product, seen_since).await
    }
    async fn recent_failures(
        &self,
        product: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<UpdateReport>> {
        self.count("recent_failures");
        self.inner.recent_failures(product, since, limit).await
    }
}

#[async_trait]
impl UploadStore for Counting {
    async fn create_upload(&self, session: &UploadSession) -> Result<()> {
        self.count("create_upload");
        self.inner.create_upload(session).await
    }
    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>> {
        self.count("get_upload");
        self.inner.get_upload(id).await
    }
    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()> {
        self.count("set_upload_offset");
        self.inner.set_upload_offset(id, offset, updated_at).await
    }
    async fn delete_upload(&self, id: &str) -> Result<()> {
        self.count("delete_upload");
        self.inner.delete_upload(id).await
    }
    async fn idle_uploads(&self, before: i64) -> Result<Vec<String>> {
        self.count("idle_uploads");
        self.inner.idle_uploads(before).await
    }
    async fn all_uploads(&self) -> Result<Vec<String>> {
        self.count("all_uploads");
        self.inner.all_uploads().await
    }
}

#[async_trait]
impl TokenStore for Counting {
    async fn add_token(&self, token_sha256: &str, token: &ApiToken) -> Result<()> {
        self.count("add_token");
        self.inner.add_token(token_sha256, token).await
    }
    async fn replace_token(&self, token_sha256: &str, name: &str, created_at: i64) -> Result<()> {
        self.count("replace_token");
        self.inner
            .replace_token(token_sha256, name, created_at)
            .await
    }
    async fn all_tokens(&self) -> Result<Vec<StoredToken>> {
        self.count("all_tokens");
        self.inner.all_tokens().await
    }
    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<ApiToken>> {
        self.count("list_tokens");
        self.inner.list_tokens(page).await
    }
    async fn revoke_token(&self, name: &str, at: i64) -> Result<ApiToken> {
        self.count("revoke_token");
        self.inner.revoke_token(name, at).await
    }
    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()> {
        self.count("touch_tokens");
        self.inner.touch_tokens(used).await
    }
    async fn token_version(&self) -> Result<i64> {
        self.count("token_version");
        self.inner.token_version().await
    }
}

#[async_trait]
impl UserStore for Counting {
    async fn add_user(&self, user: &StoredUser) -> Result<()> {
        self.count("add_user");
        self.inner.add_user(user).await
    }
    async fn get_user(&self, name: &str) -> Result<Option<StoredUser>> {
        self.count("get_user");
        self.inner.get_user(name).await
    }
    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        self.count("list_users");
        self.inner.list_users(page).await
    }
    async fn all_users(&self) -> Result<Vec<StoredUser>> {
        self.count("all_users");
        self.inner.all_users().await
    }
    async fn update_user(&self, name: &str, change: &UserChange, at: i64) -> Result<User> {
        self.count("update_user");
        self.inner.update_user(name, change, at).await
    }
    async fn add_session(&self, session: &StoredSession) -> Result<()> {
        self.count("add_session");
        self.inner.add_session(session).await
    }
    async fn get_session(&self, id: &str) -> Result<Option<(StoredSession, StoredUser)>> {
        self.count("get_session");
        self.inner.get_session(id).await
    }
    async fn touch_session(&self, id: &str, at: i64) -> Result<()> {
        self.count("touch_session");
        self.inner.touch_session(id, at).await
    }
    async fn revoke_session(&self, id: &str, at: i64) -> Result<()> {
        self.count("revoke_session");
        self.inner.revoke_session(id, at).await
    }
    async fn revoke_sessions(&self, user: &str, at: i64) -> Result<u64> {
        self.count("revoke_sessions");
        self.inner.revoke_sessions(user, at).await
    }
}

#[async_trait]
impl AuditStore for Counting {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        self.count("append_audit");
        self.inner.append_audit(entry).await
    }
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.count("list_audit");
        self.inner.list_audit(filter, page).await
    }
}

#[async_trait]
impl AccessStore for Counting {
    async fn set_product_key(
        &self,
        product: &str,
        key_sha256: &str,
        created_at: i64,
    ) -> Result<()> {
        self.count("set_product_key");
        self.inner
            .set_product_key(product, key_sha256, created_at)
            .await
    }
    async fn product_key(&self, product: &str) -> Result<Option<String>> {
        self.count("product_key");
        self.inner.product_key(product).await
    }
    async fn set_device_access(
        &self,
        product: &str,
        device: &str,
        access: Option<Access>,
        updated_at: i64,
    ) -> Result<()> {
        self.count("set_device_access");
        self.inner
            .set_device_access(product, device, access, updated_at)
            .await
    }
    async fn device_access(&self, product: &str) -> Result<Vec<(String, Access)>> {
        self.count("device_access");
        self.inner.device_access(product).await
    }
    async fn add_api_key(&self, key: &ApiKey, key_sha256: &str) -> Result<()> {
        self.count("add_api_key");
        self.inner.add_api_key(key, key_sha256).await
    }
    async fn api_keys(&self, product: &str) -> Result<Vec<ApiKey>> {
        self.count("api_keys");
        self.inner.api_keys(product).await
    }
    async fn api_key_hashes(&self, product: &str) -> Result<Vec<String>> {
        self.count("api_key_hashes");
        self.inner.api_key_hashes(product).await
    }
    async fn api_key_product(&self, key_sha256: &str) -> Result<Option<String>> {
        self.count("api_key_product");
        self.inner.api_key_product(key_sha256).await
    }
    async fn delete_api_key(&self, product: &str, id: &str) -> Result<bool> {
        self.count("delete_api_key");
        self.inner.delete_api_key(product, id).await
    }
    async fn set_signing_key(
        &self,
        product: &str,
        kind: &str,
        public_key: &str,
        created_at: i64,
    ) -> Result<()> {
        self.count("set_signing_key");
        self.inner
            .set_signing_key(product, kind, public_key, created_at)
            .await
    }
    async fn signing_keys(&self, product: &str) -> Result<Vec<(String, String)>> {
        self.count("signing_keys");
        self.inner.signing_keys(product).await
    }
}

#[async_trait]
impl OttStore for Counting {
    async fn create_ott(&self, token: &OneTimeToken) -> Result<()> {
        self.count("create_ott");
        self.inner.create_ott(token).await
    }
    async fn get_ott(&self, token_sha256: &str) -> Result<Option<OneTimeToken>> {
        self.count("get_ott");
        self.inner.get_ott(token_sha256).await
    }
    async fn first_use_ott(&self, token_sha256: &str, at: i64, expires_at: i64) -> Result<()> {
        self.count("first_use_ott");
        self.inner.first_use_ott(token_sha256, at, expires_at).await
    }
    async fn spend_ott(&self, token_sha256: &str, at: i64) -> Result<bool> {
        self.count("spend_ott");
        self.inner.spend_ott(token_sha256, at).await
    }
    async fn purge_otts(&self, before: i64) -> Result<u64> {
        self.count("purge_otts");
        self.inner.purge_otts(before).await
    }
}

#[async_trait]
impl TrustStore for Counting {
    async fn add_root(
        &self,
        product: &str,
        version: u32,
        envelope: &str,
        expires_at: i64,
        created_at: i64,
    ) -> Result<()> {
        self.count("add_root");
        self.inner
            .add_root(product, version, envelope, expires_at, created_at)
            .await
    }
    async fn roots(&self, product: &str) -> Result<Vec<(u32, String)>> {
        self.count("roots");
        self.inner.roots(product).await
    }
    async fn set_release_manifest(
        &self,
        product: &str,
        version: &str,
        envelope: &str,
        security_counter: u32,
        expires_at: i64,
    ) -> Result<()> {
        self.count("set_release_manifest");
        self.inner
            .set_release_manifest(product, version, envelope, security_counter, expires_at)
            .await
    }
    async fn set_binary_signature(
        &self,
        product: &str,
        version: &str,
        signature: &str,
    ) -> Result<()> {
        self.count("set_binary_signature");
        self.inner
            .set_binary_signature(product, version, signature)
            .await
    }
    async fn release_signatures(&self, product: &str) -> Result<Vec<ReleaseSignatures>> {
        self.count("release_signatures");
        self.inner.release_signatures(product).await
    }
    async fn expiring_signatures(&self, before: i64) -> Result<Vec<ExpiringSignature>> {
        self.count("expiring_signatures");
        self.inner.expiring_signatures(before).await
    }
}

#[async_trait]
impl ScheduleStore for Counting {
    async fn set_window(
        &self,
        product: &str,
        channel: &str,
        window: Option<&WindowSpec>,
        updated_at: i64,
    ) -> Result<()> {
        self.count("set_window");
        self.inner
            .set_window(product, channel, window, updated_at)
            .await
    }
    async fn windows(&self, product: &str) -> Result<Vec<(String, WindowSpec)>> {
        self.count("windows");
        self.inner.windows(product).await
    }
    async fn set_poll_hint(
        &self,
        product: &str,
        hint: Option<&PollHint>,
        updated_at: i64,
    ) -> Result<()> {
        self.count("set_poll_hint");
        self.inner.set_poll_hint(product, hint, updated_at).await
    }
    async fn poll_hint(&self, product: &str) -> Result<Option<PollHint>> {
        self.count("poll_hint");
        self.inner.poll_hint(product).await
    }
}

#[async_trait]
impl DeltaStore for Counting {
    async fn set_delta_policy(
        &self,
        product: &str,
        policy: Option<&DeltaPolicy>,
        updated_at: i64,
    ) -> Result<()> {
        self.count("set_delta_policy");
        self.inner
            .set_delta_policy(product, policy, updated_at)
            .await
    }
    async fn delta_policy(&self, product: &str) -> Result<Option<DeltaPolicy>> {
        self.count("delta_policy");
        self.inner.delta_policy(product).await
    }
    async fn all_delta_policies(&self) -> Result<Vec<(String, DeltaPolicy)>> {
        self.count("all_delta_policies");
        self.inner.all_delta_policies().await
    }
    async fn put_delta(&self, delta: &Delta) -> Result<()> {
        self.count("put_delta");
        self.inner.put_delta(delta).await
    }
    async fn deltas(&self, product: &str, to: Option<&str>) -> Result<Vec<Delta>> {
        self.count("deltas");
        self.inner.deltas(product, to).await
    }
}

#[async_trait]
impl RolloutStore for Counting {
    async fn create_rollout(&self, rollout: &Rollout) -> Result<Rollout> {
        self.count("create_rollout");
        self.inner.create_rollout(rollout).await
    }
    async fn get_rollout(&self, product: &str, id: i64) -> Result<Option<Rollout>> {
        self.count("get_rollout");
        self.inner.get_rollout(product, id).await
    }
    async fn list_rollouts(&self, product: &str, page: &PageRequest) -> Result<Page<Rollout>> {
        self.count("list_rollouts");
        self.inner.list_rollouts(product, page).await
    }
    async fn gating_rollouts(&self, product: &str) -> Result<Vec<Rollout>> {
        self.count("gating_rollouts");
        self.inner.gating_rollouts(product).await
    }
    async fn active_rollouts(&self) -> Result<Vec<Rollout>> {
        self.count("active_rollouts");
        self.inner.active_rollouts().await
    }
    async fn set_rollout_state(
        &self,
        id: i64,
        from: &[RolloutState],
        to: RolloutState,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        self.count("set_rollout_state");
        self.inner
            .set_rollout_state(id, from, to, reason, now)
            .await
    }
    async fn advance_rollout(
        &self,
        id: i64,
        from: &[RolloutState],
        stage: u32,
        completed: bool,
        now: i64,
    ) -> Result<bool> {
        self.count("advance_rollout");
        self.inner
            .advance_rollout(id, from, stage, completed, now)
            .await
    }
    async fn abort_release_rollouts(
        &self,
        product: &str,
        version: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64> {
        self.count("abort_release_rollouts");
        self.inner
            .abort_release_rollouts(product, version, reason, now)
            .await
    }
    async fn admit_device(
        &self,
        id: i64,
        device: &str,
        stage: u32,
        max_concurrent: u32,
        now: i64,
    ) -> Result<SlotAnswer> {
        self.count("admit_device");
        self.inner
            .admit_device(id, device, stage, max_concurrent, now)
            .await
    }
    async fn device_downloading(&self, id: i64, device: &str, now: i64) -> Result<bool> {
        self.count("device_downloading");
        self.inner.device_downloading(id, device, now).await
    }
    async fn device_installed(&self, id: i64, device: &str, now: i64) -> Result<bool> {
        self.count("device_installed");
        self.inner.device_installed(id, device, now).await
    }
    async fn fail_device(
        &self,
        id: i64,
        device: &str,
        from: &[DeviceState],
        penalty_failures: u32,
        penalty_until: i64,
        now: i64,
    ) -> Result<Option<Failure>> {
        self.count("fail_device");
        self.inner
            .fail_device(id, device, from, penalty_failures, penalty_until, now)
            .await
    }
    async fn stale_devices(&self, id: i64, state: DeviceState, before: i64) -> Result<Vec<String>> {
        self.count("stale_devices");
        self.inner.stale_devices(id, state, before).await
    }
    async fn drop_offer(&self, id: i64, device: &str, before: i64) -> Result<bool> {
        self.count("drop_offer");
        self.inner.drop_offer(id, device, before).await
    }
    async fn retry_failed(&self, id: i64, now: i64) -> Result<u64> {
        self.count("retry_failed");
        self.inner.retry_failed(id, now).await
    }
    async fn rollout_counts(
        &self,
        id: i64,
        stages: u32,
        now: i64,
        since: i64,
    ) -> Result<Vec<StageCounts>> {
        self.count("rollout_counts");
        self.inner.rollout_counts(id, stages, now, since).await
    }
    async fn device_attempts(
        &self,
        product: &str,
        device: &str,
        limit: u32,
    ) -> Result<Vec<DeviceAttempt>> {
        self.count("device_attempts");
        self.inner.device_attempts(product, device, limit).await
    }
    async fn rollout_members(&self, id: i64, now: i64) -> Result<RolloutMembers> {
        self.count("rollout_members");
        self.inner.rollout_members(id, now).await
    }
}

#[async_trait]
impl DdiStore for Counting {
    async fn set_ddi_token(&self, token_sha256: &str, holder: &DdiHolder, at: i64) -> Result<()> {
        self.count("set_ddi_token");
        self.inner.set_ddi_token(token_sha256, holder, at).await
    }
    async fn ddi_token(&self, token_sha256: &str) -> Result<Option<DdiHolder>> {
        self.count("ddi_token");
        self.inner.ddi_token(token_sha256).await
    }
    async fn ddi_tokens(&self, product: &str) -> Result<Vec<(String, DdiHolder)>> {
        self.count("ddi_tokens");
        self.inner.ddi_tokens(product).await
    }
    async fn set_ddi_options(&self, product: &str, options: &DdiOptions, at: i64) -> Result<()> {
        self.count("set_ddi_options");
        self.inner.set_ddi_options(product, options, at).await
    }
    async fn ddi_options(&self, product: &str) -> Result<DdiOptions> {
        self.count("ddi_options");
        self.inner.ddi_options(product).await
    }
    async fn open_ddi_action(
        &self,
        product: &str,
        device: &str,
        version: &str,
        at: i64,
    ) -> Result<DdiAction> {
        self.count("open_ddi_action");
        self.inner
            .open_ddi_action(product, device, version, at)
            .await
    }
    async fn device_actions(&self, product: &str, device: &str) -> Result<DeviceActions> {
        self.count("device_actions");
        self.inner.device_actions(product, device).await
    }
    async fn get_ddi_action(
        &self,
        product: &str,
        device: &str,
        id: i64,
    ) -> Result<Option<DdiAction>> {
        self.count("get_ddi_action");
        self.inner.get_ddi_action(product, device, id).await
    }
    async fn update_ddi_action(
        &self,
        id: i64,
        state: ActionState,
        execution: &str,
        at: i64,
    ) -> Result<bool> {
        self.count("update_ddi_action");
        self.inner.update_ddi_action(id, state, execution, at).await
    }
}
