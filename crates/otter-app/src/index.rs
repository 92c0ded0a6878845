//! The in-memory check index: every product's releases, pre-parsed and with their check answers
//! pre-serialised, so `GET …/check` and downloads never touch the database.
//!
//! The index is rebuilt per product from the store whenever that product's catalogue changes:
//! at once on the node that made the change ([`CheckIndex::changed`]), and on every other node
//! sharing the database within one poll of the catalogue clock ([`CheckIndex::sync`]), so the
//! check path never asks the database. A poll reads only the products changed since the last
//! one, so an idle poll costs the same with 50,000 products as with one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use otter_core::access::Firewall;
use otter_core::model::{Artifact, DeviceSeen, Product, Release, ReleaseSignatures};
use otter_core::signing::documents::Root;
use otter_core::{ReleaseFacts, Version};
use otter_store::{Result, Store};

use crate::answers;

/// A JSON answer serialised once, split around the one string that depends on the request: the
/// scheme and host of download URLs, unknown until a request arrives when no public URL is
/// configured.
pub struct UrlTemplate {
    head: String,
    tail: String,
}

/// Stands for the URL base inside a document given to [`UrlTemplate::new`]; the NULs keep it
/// from ever being real content.
pub const URL_BASE: &str = "\u{0}otter-url\u{0}";

impl UrlTemplate {
    /// Serialises `doc`, which holds [`URL_BASE`] at the start of one string value.
    pub fn new(doc: &serde_json::Value) -> Self {
        let body = doc.to_string();
        let mark = serde_json::to_string(URL_BASE).unwrap_or_default();
        let mark = mark.trim_matches('"');
        let (head, tail) = body.split_once(mark).unwrap_or((&body, ""));
        UrlTemplate {
            head: head.to_owned(),
            tail: tail.to_owned(),
        }
    }

    /// The document with `base` (e.g. `https://ota.example.com`) in place of [`URL_BASE`].
    pub fn render(&self, base: &str) -> String {
        let mut out = String::with_capacity(self.head.len() + base.len() + self.tail.len());
        out.push_str(&self.head);
        // The base comes from configuration or a Host header; keep it inside the JSON string.
        for c in base.chars() {
            if c != '"' && c != '\\' && !c.is_control() {
                out.push(c);
            }
        }
        out.push_str(&self.tail);
        out
    }
}

/// One release as the check path needs it.
pub struct IndexedRelease {
    pub facts: ReleaseFacts,
    pub release: Release,
    /// Its signed manifest and binary signature, when it has them.
    pub signatures: Option<ReleaseSignatures>,
    /// The native check answer offering this release. Index 0: a direct offer; index 1: a
    /// stepping stone.
    offer: [UrlTemplate; 2],
    /// The release in the firmware manifest contract's shape ([`answers::contract_manifest`]),
    /// with `binaryUrl` under [`URL_BASE`] followed by `/firmware/{product}-{version}.bin`.
    pub manifest: UrlTemplate,
}

impl AsRef<ReleaseFacts> for IndexedRelease {
    fn as_ref(&self) -> &ReleaseFacts {
        &self.facts
    }
}

impl IndexedRelease {
    fn new(
        product: &Product,
        release: Release,
        signatures: Option<ReleaseSignatures>,
    ) -> Result<Self, otter_core::VersionError> {
        let facts = ReleaseFacts {
            version: Version::parse(product.scheme, &release.version)?,
            seq: release.seq,
            sha256: release.artifact.sha256.clone(),
            sha1: release.artifact.sha1.clone(),
            md5: release.artifact.md5.clone(),
            channels: release.channels.clone(),
            min_source: release
                .min_source_version
                .as_deref()
                .map(|m| Version::parse(product.scheme, m))
                .transpose()?,
            deprecated: release.deprecated,
            yanked: release.yanked,
        };
        let path = download_path(
            &release.product,
            &release.version,
            &release.artifact.filename,
        );
        let offer = [false, true].map(|stepping_stone| {
            UrlTemplate::new(&answers::offer(&release, &path, stepping_stone))
        });
        let binary_signature = signatures
            .as_ref()
            .and_then(|s| s.binary_signature.as_deref());
        let manifest = UrlTemplate::new(&answers::contract_manifest(&release, binary_signature));
        Ok(IndexedRelease {
            facts,
            release,
            signatures,
            offer,
            manifest,
        })
    }

    /// The JSON check answer offering this release, with download URLs under `base`
    /// (e.g. `https://ota.example.com`).
    pub fn offer_body(&self, base: &str, stepping_stone: bool) -> String {
        self.offer[usize::from(stepping_stone)].render(base)
    }
}

/// The path devices download a release from.
pub fn download_path(product: &str, version: &str, filename: &str) -> String {
    format!("/dl/{product}/{version}/{filename}")
}

/// One product's releases, and which devices may use it through keyed protocols.
pub struct ProductIndex {
    pub product: Product,
    pub releases: Vec<IndexedRelease>,
    pub firewall: Firewall,
    /// Public keys the product's releases must be signed with, as `(kind, key)`.
    pub signing_keys: Vec<(String, String)>,
    /// The newest root of trust, verified along the whole chain; with one, releases must be
    /// signed.
    pub root: Option<Root>,
}

impl ProductIndex {
    pub fn release(&self, version: &str) -> Option<&IndexedRelease> {
        self.releases.iter().find(|r| r.release.version == version)
    }

    /// The release a device's `current` names (version or artifact digest), if any.
    pub fn identify(&self, current: &str) -> Option<&IndexedRelease> {
        otter_core::identify(self.product.scheme, &self.releases, current)
            .map(|i| &self.releases[i])
    }

    /// The newest release on `channel` that is neither yanked nor deprecated.
    pub fn latest(&self, channel: &str) -> Option<&IndexedRelease> {
        otter_core::decision::latest(self.product.scheme, &self.releases, channel)
            .map(|i| &self.releases[i])
    }

    /// A check-in of `device` reporting `current` (a version or a hex digest of its image), as
    /// the device list records it.
    pub fn sighting(&self, device: String, current: Option<&str>, channel: &str) -> DeviceSeen {
        let (current_version, current_hash) = match current {
            Some(c) if is_digest(c) => (
                self.identify(c).map(|r| r.release.version.clone()),
                Some(c.to_ascii_lowercase()),
            ),
            Some(c) => (Some(c.to_owned()), None),
            None => (None, None),
        };
        DeviceSeen {
            current_version,
            current_hash,
            ..DeviceSeen::new(
                self.product.name.clone(),
                device,
                channel.to_owned(),
                otter_store::now(),
            )
        }
    }
}

pub use otter_core::decision::is_digest;

/// Every product's index, swapped whole per product.
#[derive(Default)]
pub struct CheckIndex {
    products: RwLock<HashMap<String, Arc<ProductIndex>>>,
    /// Released artifacts by SHA-256, for `/dl/{sha256}`.
    artifacts: RwLock<HashMap<String, Artifact>>,
    /// Device API keys (SHA-256 hex) and the product each opens, for THiNX check-ins.
    api_keys: RwLock<HashMap<String, String>>,
    /// Serialises rebuilds so an older read of the store never overwrites a newer one.
    rebuild: tokio::sync::Mutex<()>,
    /// The catalogue version each product's index was built from.
    versions: std::sync::Mutex<HashMap<String, i64>>,
    /// The catalogue clock's tick this index has caught up with.
    tick: std::sync::atomic::AtomicI64,
}

impl CheckIndex {
    /// Loads every product.
    pub async fn load(store: &dyn Store) -> Result<Self> {
        let index = CheckIndex::default();
        // The clock is read before the products, so whatever changes while they load is
        // caught by the first poll.
        let tick = store.catalog_changes(i64::MAX).await?.tick;
        for product in store.all_products().await? {
            index.reload(store, &product.name).await?;
        }
        index.tick.store(tick, Ordering::Relaxed);
        Ok(index)
    }

    /// Records a change this node made to a product's catalogue and rebuilds its index, so the
    /// change is live here at once and on other nodes at their next [`CheckIndex::sync`].
    pub async fn changed(&self, store: &dyn Store, product: &str) -> Result<()> {
        let version = store.bump_catalog(product).await?;
        self.reload(store, product).await?;
        self.remember(product, version);
        Ok(())
    }

    /// Rebuilds every product whose catalogue version moved since this node last built it (a
    /// change made through another node). Returns how many products were rebuilt.
    pub async fn sync(&self, store: &dyn Store) -> Result<usize> {
        let mut rebuilt = 0;
        let changes = store
            .catalog_changes(self.tick.load(Ordering::Relaxed))
            .await?;
        for (product, version) in changes.changed {
            let known = self.lock_versions().get(&product).copied();
            if known.is_none_or(|k| k < version) {
                // The rebuild reads the store after `version` was observed, so it includes at
                // least that change.
                self.reload(store, &product).await?;
                self.remember(&product, version);
                rebuilt += 1;
            }
        }
        self.tick.fetch_max(changes.tick, Ordering::Relaxed);
        Ok(rebuilt)
    }

    fn remember(&self, product: &str, version: i64) {
        let mut versions = self.lock_versions();
        let known = versions.entry(product.to_owned()).or_insert(version);
        *known = (*known).max(version);
    }

    fn lock_versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn product(&self, name: &str) -> Option<Arc<ProductIndex>> {
        self.products
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The product a device API key belongs to.
    pub fn product_for_api_key(&self, key: &str) -> Option<Arc<ProductIndex>> {
        let hash = crate::tokens::token_hash(key);
        let name = self
            .api_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned()?;
        self.product(&name)
    }

    /// Every product's index.
    pub fn all(&self) -> Vec<Arc<ProductIndex>> {
        self.products
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn artifact(&self, sha256: &str) -> Option<Artifact> {
        self.artifacts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
            .cloned()
    }

    /// Rebuilds one product from the store. Releases whose versions no longer parse (hand-edited
    /// rows) are skipped with a warning rather than taking the product offline.
    pub async fn reload(&self, store: &dyn Store, name: &str) -> Result<()> {
        let _guard = self.rebuild.lock().await;
        let Some(product) = store.get_product(name).await? else {
            return Ok(());
        };
        let mut signatures: HashMap<String, ReleaseSignatures> = store
            .release_signatures(name)
            .await?
            .into_iter()
            .map(|s| (s.version.clone(), s))
            .collect();
        let mut releases = Vec::new();
        for release in store.all_releases(name).await? {
            let signed = signatures.remove(&release.version);
            match IndexedRelease::new(&product, release, signed) {
                Ok(r) => releases.push(r),
                Err(e) => tracing::warn!(product = name, error = %e, "skipping unreadable release"),
            }
        }
        {
            let mut artifacts = self.artifacts.write().unwrap_or_else(|e| e.into_inner());
            for r in &releases {
                artifacts.insert(
                    r.release.artifact.sha256.clone(),
                    r.release.artifact.clone(),
                );
            }
        }
        let firewall = Firewall::new(store.device_access(name).await?);
        let key_hashes = store.api_key_hashes(name).await?;
        {
            let mut keys = self.api_keys.write().unwrap_or_else(|e| e.into_inner());
            keys.retain(|_, product| product != name);
            keys.extend(key_hashes.into_iter().map(|h| (h, name.to_owned())));
        }
        let signing_keys = store.signing_keys(name).await?;
        let root = crate::trust::verified_root(name, &store.roots(name).await?);
        let entry = Arc::new(ProductIndex {
            product,
            releases,
            firewall,
            signing_keys,
            root,
        });
        self.products
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), entry);
        Ok(())
    }
}
