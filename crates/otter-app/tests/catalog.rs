//! The catalogue follow-up's cost does not grow with the number of products: with 50,000
//! products in the catalogue, an idle poll asks the store for nothing product by product and
//! reads no product's row. Asserted on what the store is asked (a counting wrapper around the
//! real SQLite store), not on time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use otter_app::index::CheckIndex;
use otter_core::access::Access;
use otter_core::model::{
    ApiKey, Artifact, Device, DeviceSeen, Page, Product, Release, ReleasePatch, ReleaseSignatures,
    UpdateReport, UploadSession,
};
use otter_core::ott::OneTimeToken;
use otter_core::version::Scheme;
use otter_store::sql::SqlStore;
use otter_store::{
    AccessStore, CatalogChanges, DeviceStore, NewReport, OttStore, OverLimit, PageRequest,
    ProductStore, ReleaseStore, Result, TokenStore, TrustStore, UploadStore,
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

#[tokio::test]
async fn an_idle_poll_reads_no_product_among_50000() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otter.db").display());
    let store = Counting {
        inner: SqlStore::connect(&url).await.unwrap(),
        calls: Mutex::default(),
        catalog_rows: AtomicUsize::new(0),
    };
    // A product and its catalogue row each, as `/v1/create` makes them; a few at a time, as
    // separate requests would.
    let names: Vec<String> = (0..PRODUCTS).map(|i| format!("p{i:05}")).collect();
    for chunk in names.chunks(500) {
        futures_util::future::try_join_all(chunk.iter().map(|name| async {
            store
                .inner
                .create_product(&Product {
                    name: name.clone(),
                    scheme: Scheme::Semver,
                    created_at: 0,
                })
                .await?;
            store.inner.bump_catalog(name).await
        }))
        .await
        .unwrap();
    }

    let index = CheckIndex::load(&store).await.unwrap();
    assert!(index.product("p49999").is_some());
    store.take();

    // An idle poll: one question, no product's row read, nothing rebuilt.
    assert_eq!(index.sync(&store).await.unwrap(), 0);
    let (calls, rows) = store.take();
    assert_eq!(calls, HashMap::from([("catalog_changes", 1)]));
    assert_eq!(rows, 0, "an idle poll read catalogue rows");

    // A change made through another node is still picked up, and only that product is read.
    store.inner.bump_catalog("p00042").await.unwrap();
    assert_eq!(index.sync(&store).await.unwrap(), 1);
    let (calls, rows) = store.take();
    assert_eq!(rows, 1);
    assert_eq!(calls.get("get_product"), Some(&1));
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
    async fn list_devices(&self, product: &str, page: &PageRequest) -> Result<Page<Device>> {
        self.count("list_devices");
        self.inner.list_devices(product, page).await
    }
    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        self.count("get_device");
        self.inner.get_device(product, id).await
    }
    async fn set_auto_update(&self, product: &str, id: &str, on: bool) -> Result<Device> {
        self.count("set_auto_update");
        self.inner.set_auto_update(product, id, on).await
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
    async fn add_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        self.count("add_token");
        self.inner.add_token(token_sha256, label, created_at).await
    }
    async fn replace_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        self.count("replace_token");
        self.inner
            .replace_token(token_sha256, label, created_at)
            .await
    }
    async fn token_hashes(&self) -> Result<Vec<String>> {
        self.count("token_hashes");
        self.inner.token_hashes().await
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
}
