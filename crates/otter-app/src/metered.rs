//! [`Metered`]: a store that times every call into `otter_store_duration_seconds{op}`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use otter_core::access::Access;
use otter_core::model::{
    ApiKey, Artifact, Device, DeviceSeen, Page, Product, Release, ReleasePatch, ReleaseSignatures,
    UpdateReport, UploadSession,
};
use otter_core::ott::OneTimeToken;
use otter_store::{
    AccessStore, DeviceStore, NewReport, OttStore, PageRequest, ProductStore, ReleaseStore, Result,
    Store, TokenStore, TrustStore, UploadStore,
};

/// Wraps any store; behaviour is unchanged.
pub struct Metered(pub Arc<dyn Store>);

/// Awaits a store call and records how long it took under its operation name.
macro_rules! timed {
    ($op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        metrics::histogram!("otter_store_duration_seconds", "op" => $op)
            .record(started.elapsed().as_secs_f64());
        result
    }};
}

#[async_trait]
impl ProductStore for Metered {
    async fn create_product(&self, product: &Product) -> Result<()> {
        timed!("create_product", self.0.create_product(product))
    }
    async fn get_product(&self, name: &str) -> Result<Option<Product>> {
        timed!("get_product", self.0.get_product(name))
    }
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>> {
        timed!("list_products", self.0.list_products(page))
    }
    async fn all_products(&self) -> Result<Vec<Product>> {
        timed!("all_products", self.0.all_products())
    }
    async fn put_artifact(&self, artifact: &Artifact) -> Result<Artifact> {
        timed!("put_artifact", self.0.put_artifact(artifact))
    }
    async fn get_artifact(&self, sha256: &str) -> Result<Option<Artifact>> {
        timed!("get_artifact", self.0.get_artifact(sha256))
    }
    async fn bump_catalog(&self, product: &str) -> Result<i64> {
        timed!("bump_catalog", self.0.bump_catalog(product))
    }
    async fn catalog_versions(&self) -> Result<Vec<(String, i64)>> {
        timed!("catalog_versions", self.0.catalog_versions())
    }
}

#[async_trait]
impl ReleaseStore for Metered {
    async fn create_release(&self, release: &Release) -> Result<Release> {
        timed!("create_release", self.0.create_release(release))
    }
    async fn get_release(&self, product: &str, version: &str) -> Result<Option<Release>> {
        timed!("get_release", self.0.get_release(product, version))
    }
    async fn list_releases(&self, product: &str, page: &PageRequest) -> Result<Page<Release>> {
        timed!("list_releases", self.0.list_releases(product, page))
    }
    async fn all_releases(&self, product: &str) -> Result<Vec<Release>> {
        timed!("all_releases", self.0.all_releases(product))
    }
    async fn patch_release(
        &self,
        product: &str,
        version: &str,
        patch: &ReleasePatch,
    ) -> Result<Release> {
        timed!(
            "patch_release",
            self.0.patch_release(product, version, patch)
        )
    }
}

#[async_trait]
impl DeviceStore for Metered {
    async fn record_seen(&self, seen: &[DeviceSeen]) -> Result<()> {
        timed!("record_seen", self.0.record_seen(seen))
    }
    async fn list_devices(&self, product: &str, page: &PageRequest) -> Result<Page<Device>> {
        timed!("list_devices", self.0.list_devices(product, page))
    }
    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        timed!("get_device", self.0.get_device(product, id))
    }
    async fn set_auto_update(&self, product: &str, id: &str, on: bool) -> Result<Device> {
        timed!("set_auto_update", self.0.set_auto_update(product, id, on))
    }
    async fn insert_report(&self, report: &NewReport) -> Result<UpdateReport> {
        timed!("insert_report", self.0.insert_report(report))
    }
    async fn list_reports(
        &self,
        product: &str,
        device: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UpdateReport>> {
        timed!("list_reports", self.0.list_reports(product, device, page))
    }
}

#[async_trait]
impl UploadStore for Metered {
    async fn create_upload(&self, session: &UploadSession) -> Result<()> {
        timed!("create_upload", self.0.create_upload(session))
    }
    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>> {
        timed!("get_upload", self.0.get_upload(id))
    }
    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()> {
        timed!(
            "set_upload_offset",
            self.0.set_upload_offset(id, offset, updated_at)
        )
    }
    async fn delete_upload(&self, id: &str) -> Result<()> {
        timed!("delete_upload", self.0.delete_upload(id))
    }
    async fn idle_uploads(&self, before: i64) -> Result<Vec<String>> {
        timed!("idle_uploads", self.0.idle_uploads(before))
    }
    async fn all_uploads(&self) -> Result<Vec<String>> {
        timed!("all_uploads", self.0.all_uploads())
    }
}

#[async_trait]
impl TokenStore for Metered {
    async fn add_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        timed!(
            "add_token",
            self.0.add_token(token_sha256, label, created_at)
        )
    }
    async fn token_hashes(&self) -> Result<Vec<String>> {
        timed!("token_hashes", self.0.token_hashes())
    }
}

#[async_trait]
impl AccessStore for Metered {
    async fn set_product_key(
        &self,
        product: &str,
        key_sha256: &str,
        created_at: i64,
    ) -> Result<()> {
        timed!(
            "set_product_key",
            self.0.set_product_key(product, key_sha256, created_at)
        )
    }
    async fn product_key(&self, product: &str) -> Result<Option<String>> {
        timed!("product_key", self.0.product_key(product))
    }
    async fn set_device_access(
        &self,
        product: &str,
        device: &str,
        access: Option<Access>,
        updated_at: i64,
    ) -> Result<()> {
        timed!(
            "set_device_access",
            self.0
                .set_device_access(product, device, access, updated_at)
        )
    }
    async fn device_access(&self, product: &str) -> Result<Vec<(String, Access)>> {
        timed!("device_access", self.0.device_access(product))
    }
    async fn add_api_key(&self, key: &ApiKey, key_sha256: &str) -> Result<()> {
        timed!("add_api_key", self.0.add_api_key(key, key_sha256))
    }
    async fn api_keys(&self, product: &str) -> Result<Vec<ApiKey>> {
        timed!("api_keys", self.0.api_keys(product))
    }
    async fn api_key_hashes(&self, product: &str) -> Result<Vec<String>> {
        timed!("api_key_hashes", self.0.api_key_hashes(product))
    }
    async fn delete_api_key(&self, product: &str, id: &str) -> Result<bool> {
        timed!("delete_api_key", self.0.delete_api_key(product, id))
    }
    async fn set_signing_key(
        &self,
        product: &str,
        kind: &str,
        public_key: &str,
        created_at: i64,
    ) -> Result<()> {
        timed!(
            "set_signing_key",
            self.0
                .set_signing_key(product, kind, public_key, created_at)
        )
    }
    async fn signing_keys(&self, product: &str) -> Result<Vec<(String, String)>> {
        timed!("signing_keys", self.0.signing_keys(product))
    }
}

#[async_trait]
impl OttStore for Metered {
    async fn create_ott(&self, token: &OneTimeToken) -> Result<()> {
        timed!("create_ott", self.0.create_ott(token))
    }
    async fn get_ott(&self, token_sha256: &str) -> Result<Option<OneTimeToken>> {
        timed!("get_ott", self.0.get_ott(token_sha256))
    }
    async fn first_use_ott(&self, token_sha256: &str, at: i64, expires_at: i64) -> Result<()> {
        timed!(
            "first_use_ott",
            self.0.first_use_ott(token_sha256, at, expires_at)
        )
    }
    async fn spend_ott(&self, token_sha256: &str, at: i64) -> Result<bool> {
        timed!("spend_ott", self.0.spend_ott(token_sha256, at))
    }
    async fn purge_otts(&self, before: i64) -> Result<u64> {
        timed!("purge_otts", self.0.purge_otts(before))
    }
}

#[async_trait]
impl TrustStore for Metered {
    async fn add_root(
        &self,
        product: &str,
        version: u32,
        envelope: &str,
        expires_at: i64,
        created_at: i64,
    ) -> Result<()> {
        timed!(
            "add_root",
            self.0
                .add_root(product, version, envelope, expires_at, created_at)
        )
    }
    async fn roots(&self, product: &str) -> Result<Vec<(u32, String)>> {
        timed!("roots", self.0.roots(product))
    }
    async fn set_release_manifest(
        &self,
        product: &str,
        version: &str,
        envelope: &str,
        security_counter: u32,
        expires_at: i64,
    ) -> Result<()> {
        timed!(
            "set_release_manifest",
            self.0
                .set_release_manifest(product, version, envelope, security_counter, expires_at)
        )
    }
    async fn set_binary_signature(
        &self,
        product: &str,
        version: &str,
        signature: &str,
    ) -> Result<()> {
        timed!(
            "set_binary_signature",
            self.0.set_binary_signature(product, version, signature)
        )
    }
    async fn release_signatures(&self, product: &str) -> Result<Vec<ReleaseSignatures>> {
        timed!("release_signatures", self.0.release_signatures(product))
    }
}
