//! The in-memory check index: products' releases, pre-parsed and arranged for the update
//! decision, so `GET …/check` and downloads never touch the database.
//!
//! A product is built from the store on first use ([`CheckIndex::get`]) and answered from
//! memory after that; start-up reads only product names, so it costs the same with 50,000
//! products as with one, and a name that is no product never reaches the database. A built
//! product is rebuilt whenever its catalogue changes: at once on the node that made the change
//! ([`CheckIndex::changed`], or only the one release for [`CheckIndex::release_changed`]), and
//! on every other node sharing the database within one poll of the catalogue clock
//! ([`CheckIndex::sync`]). A poll reads only the products changed since the last one, so an
//! idle poll costs the same with 50,000 products as with one.
//!
//! Cost does not grow with a product's history: a decision looks at the head of the device's
//! channel ([`otter_core::Lineup`]), releases are found by version and digest through maps,
//! answers are serialised the first time a release is offered, and a rebuild reuses every
//! release that did not change.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};

use otter_core::access::Firewall;
use otter_core::deltas::{Delta, DeltaState};
use otter_core::model::{Artifact, DeviceSeen, Product, Release, ReleaseSignatures};
use otter_core::schedule::{MaintenanceWindow, PollHint};
use otter_core::signing::documents::Root;
use otter_core::{Current, Decision, DecisionError, FastMap, Lineup, ReleaseFacts, Version};
use otter_store::{Result, Store};

use crate::answers;
use crate::registry::DeviceDirectory;
use crate::rollouts::Rollouts;

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
        let fits = |c: char| c != '"' && c != '\\' && !c.is_control();
        if base.chars().all(fits) {
            out.push_str(base);
        } else {
            out.extend(base.chars().filter(|&c| fits(c)));
        }
        out.push_str(&self.tail);
        out
    }
}

/// One release as the check path needs it; cheap to clone (shared), so a catalogue change
/// builds only what changed and the rest of the product's releases are reused.
#[derive(Clone)]
pub struct IndexedRelease(Arc<ReleaseEntry>);

/// What an [`IndexedRelease`] holds.
pub struct ReleaseEntry {
    pub facts: ReleaseFacts,
    pub release: Release,
    /// Its signed manifest and binary signature, when it has them.
    pub signatures: Option<ReleaseSignatures>,
    /// The native check answer offering this release, serialised on first use (most releases
    /// of a long history are never offered again). Index 0: a direct offer; index 1: a
    /// stepping stone.
    offer: OnceLock<[UrlTemplate; 2]>,
    /// The release in the firmware manifest contract's shape, serialised on first use.
    manifest: OnceLock<UrlTemplate>,
}

impl std::ops::Deref for IndexedRelease {
    type Target = ReleaseEntry;

    fn deref(&self) -> &ReleaseEntry {
        &self.0
    }
}

impl AsRef<ReleaseFacts> for IndexedRelease {
    fn as_ref(&self) -> &ReleaseFacts {
        &self.0.facts
    }
}

impl IndexedRelease {
    /// Indexes `release` of `product`.
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
            offer_until: signatures.as_ref().and_then(|s| s.expires_at),
        };
        Ok(IndexedRelease(Arc::new(ReleaseEntry {
            facts,
            release,
            signatures,
            offer: OnceLock::new(),
            manifest: OnceLock::new(),
        })))
    }

    /// The JSON check answer offering this release, with download URLs under `base`
    /// (e.g. `https://ota.example.com`).
    pub fn offer_body(&self, base: &str, stepping_stone: bool) -> String {
        let offer = self.offer.get_or_init(|| {
            let release = &self.release;
            let path = download_path(
                &release.product,
                &release.version,
                &release.artifact.filename,
            );
            [false, true].map(|stepping_stone| {
                UrlTemplate::new(&answers::offer(release, &path, stepping_stone))
            })
        });
        offer[usize::from(stepping_stone)].render(base)
    }

    /// The release in the firmware manifest contract's shape ([`answers::contract_manifest`]),
    /// with `binaryUrl` under [`URL_BASE`] followed by `/firmware/{product}-{version}.bin`.
    pub fn manifest(&self) -> &UrlTemplate {
        self.manifest.get_or_init(|| {
            let binary_signature = self
                .signatures
                .as_ref()
                .and_then(|s| s.binary_signature.as_deref());
            UrlTemplate::new(&answers::contract_manifest(&self.release, binary_signature))
        })
    }
}

/// The path devices download a release from.
pub fn download_path(product: &str, version: &str, filename: &str) -> String {
    format!("/dl/{product}/{version}/{filename}")
}

/// A product's ready delta patches in its policy's format, by target version, each as the JSON
/// object an offer's `delta` holds (serialised once, when the catalogue changes). Empty for a
/// product without a policy, so the check path of such a product does no more than before.
#[derive(Default)]
pub struct ReadyDeltas {
    by_target: HashMap<String, Vec<(String, UrlTemplate)>>,
}

impl ReadyDeltas {
    /// The ready patches of `product` under its current policy (none without one).
    async fn load(store: &dyn Store, product: &str) -> Result<Self> {
        let Some(policy) = store.delta_policy(product).await? else {
            return Ok(Self::default());
        };
        Ok(Self::new(
            store
                .deltas(product, None)
                .await?
                .into_iter()
                .filter(|d| d.format == policy.format),
        ))
    }

    fn new(deltas: impl IntoIterator<Item = Delta>) -> Self {
        let mut by_target: HashMap<String, Vec<(String, UrlTemplate)>> = HashMap::new();
        for delta in deltas {
            if delta.state != DeltaState::Ready {
                continue;
            }
            let Some(doc) = answers::delta(&delta) else {
                continue;
            };
            by_target
                .entry(delta.to)
                .or_default()
                .push((delta.from, UrlTemplate::new(&doc)));
        }
        ReadyDeltas { by_target }
    }

    /// Whether the patch from release `from` to release `to` is offered.
    pub fn has(&self, from: &str, to: &str) -> bool {
        self.by_target
            .get(to)
            .is_some_and(|bases| bases.iter().any(|(base, _)| base == from))
    }

    /// How many ready patches there are.
    pub fn len(&self) -> usize {
        self.by_target.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }
}

/// One product's releases, and what the registry says about its devices.
pub struct ProductIndex {
    pub product: Product,
    /// Every release, in publish order.
    pub releases: Vec<IndexedRelease>,
    /// `releases` arranged for the decision.
    lineup: Lineup,
    /// Devices with tags, an assigned channel or a pin, and who the product admits.
    pub devices: DeviceDirectory,
    /// Public keys the product's releases must be signed with, as `(kind, key)`.
    pub signing_keys: Vec<(String, String)>,
    /// The newest root of trust, verified along the whole chain; with one, releases must be
    /// signed.
    pub root: Option<Root>,
    /// Maintenance windows by channel ([`crate::schedules`]).
    pub windows: HashMap<String, MaintenanceWindow>,
    /// What the native check answers as `nextCheckSeconds`, if the product has a hint.
    pub poll_hint: Option<PollHint>,
    /// Rollouts that gate their release, with what this node remembers of their devices;
    /// shared when one release is swapped in, so the memory survives a publish.
    pub rollouts: Arc<Rollouts>,
    /// Ready delta patches ([`crate::deltas`]).
    pub deltas: Arc<ReadyDeltas>,
}

impl ProductIndex {
    /// The ready patch from the release a device's `current` names (version or image digest) to
    /// `releases[offered]`, as the JSON object an offer's `delta` holds, with its URL under `base`.
    /// `None` at once for a product without patches.
    pub fn delta(&self, current: Option<&str>, offered: usize, base: &str) -> Option<String> {
        if self.deltas.is_empty() {
            return None;
        }
        let from = &self.identify(current?)?.release.version;
        self.deltas
            .by_target
            .get(&self.releases.get(offered)?.release.version)?
            .iter()
            .find(|(base_version, _)| base_version == from)
            .map(|(_, doc)| {
                metrics::counter!("otter_delta_offers_total").increment(1);
                doc.render(base)
            })
    }

    pub fn release(&self, version: &str) -> Option<&IndexedRelease> {
        self.lineup.release(version).map(|i| &self.releases[i])
    }

    /// The index into [`ProductIndex::releases`] of the release of `version`.
    pub fn position(&self, version: &str) -> Option<usize> {
        self.lineup.release(version)
    }

    /// The release a device's `current` names (version or artifact digest), if any.
    pub fn identify(&self, current: &str) -> Option<&IndexedRelease> {
        self.lineup
            .identify(&self.releases, current)
            .map(|i| &self.releases[i])
    }

    /// The newest release on `channel` that is neither yanked nor deprecated.
    pub fn latest(&self, channel: &str) -> Option<&IndexedRelease> {
        self.lineup
            .latest(&self.releases, channel)
            .map(|i| &self.releases[i])
    }

    /// The newest release on `channel` that is not yanked, deprecated or not.
    pub fn newest(&self, channel: &str) -> Option<&IndexedRelease> {
        self.lineup
            .newest(&self.releases, channel)
            .map(|i| &self.releases[i])
    }

    /// The newest release on `channel` that is not yanked and not held back by `withheld`.
    pub fn newest_withholding(
        &self,
        channel: &str,
        withheld: impl Fn(&IndexedRelease) -> bool,
    ) -> Option<&IndexedRelease> {
        self.lineup
            .newest_withholding(&self.releases, channel, |i| withheld(&self.releases[i]))
            .map(|i| &self.releases[i])
    }

    /// What a device running `current` on `channel` is offered at `now`, the releases
    /// `withheld` holds back being as if never published; an offer's index is into
    /// [`ProductIndex::releases`].
    pub fn decide(
        &self,
        channel: &str,
        current: Current<'_>,
        now: i64,
        withheld: impl Fn(&IndexedRelease) -> bool,
    ) -> Result<Decision, DecisionError> {
        self.lineup
            .decide_withholding(&self.releases, channel, current, now, |i| {
                withheld(&self.releases[i])
            })
    }

    /// This product with `release` added, or put in place of the release of its version. The
    /// other releases are shared, not rebuilt.
    fn with_release(&self, release: IndexedRelease) -> ProductIndex {
        let mut releases = self.releases.clone();
        match self.lineup.release(&release.release.version) {
            Some(i) => releases[i] = release,
            None => releases.push(release),
        }
        ProductIndex {
            product: self.product.clone(),
            lineup: Lineup::new(self.product.scheme, &releases),
            releases,
            devices: self.devices.clone(),
            signing_keys: self.signing_keys.clone(),
            root: self.root.clone(),
            windows: self.windows.clone(),
            poll_hint: self.poll_hint,
            rollouts: self.rollouts.clone(),
            deltas: self.deltas.clone(),
        }
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

/// How many device API keys that open no product are remembered, so a device repeating a wrong
/// key costs one store read, not one per request; past this the memory starts over.
const UNKNOWN_KEYS: usize = 10_000;

/// The products' indexes, each built on first use and swapped whole when it changes.
#[derive(Default)]
pub struct CheckIndex {
    /// Products built so far.
    products: RwLock<FastMap<String, Arc<ProductIndex>>>,
    /// The name of every product, so a name that is none is answered from memory: requests for
    /// made-up products never reach the database.
    names: RwLock<HashSet<String>>,
    /// Artifacts by SHA-256 for `/dl/{sha256}`: those released by built products, and those the
    /// store was asked for.
    artifacts: RwLock<HashMap<String, Artifact>>,
    /// Device API keys (SHA-256 hex) and the product each opens, for THiNX check-ins: those of
    /// built products, and those the store was asked for.
    api_keys: RwLock<HashMap<String, String>>,
    /// API key hashes the store knows no product for (at most [`UNKNOWN_KEYS`]).
    unknown_keys: std::sync::Mutex<HashSet<String>>,
    /// Serialises builds so an older read of the store never overwrites a newer one.
    rebuild: tokio::sync::Mutex<()>,
    /// The catalogue version each built product was built from.
    versions: std::sync::Mutex<HashMap<String, i64>>,
    /// The catalogue clock's tick this index has caught up with.
    tick: std::sync::atomic::AtomicI64,
}

impl CheckIndex {
    /// Reads the catalogue clock and every product's name; products are built on first use
    /// ([`CheckIndex::get`]), so start-up costs the same with 50,000 products as with one, give
    /// or take the names.
    pub async fn load(store: &dyn Store) -> Result<Self> {
        let index = CheckIndex::default();
        // The clock is read before the names, so a product created meanwhile is caught by the
        // first poll.
        let tick = store.catalog_changes(i64::MAX).await?.tick;
        *index.names.write().unwrap_or_else(|e| e.into_inner()) = store
            .all_products()
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        index.tick.store(tick, Ordering::Relaxed);
        Ok(index)
    }

    /// A product's index: from memory once built, else built from the store now. `None` for a
    /// name that is no product, answered without the database.
    pub async fn get(&self, store: &dyn Store, name: &str) -> Result<Option<Arc<ProductIndex>>> {
        if let Some(index) = self.built(name) {
            return Ok(Some(index));
        }
        // Boxed: loading's state is large and rarely needed; every check would carry it.
        Box::pin(self.build(store, name)).await
    }

    /// [`CheckIndex::get`] of a product not built yet.
    async fn build(&self, store: &dyn Store, name: &str) -> Result<Option<Arc<ProductIndex>>> {
        if !self.read_names().contains(name) {
            return Ok(None);
        }
        let _guard = self.rebuild.lock().await;
        // Built by another request while this one waited.
        if let Some(index) = self.built(name) {
            return Ok(Some(index));
        }
        self.reload(store, name).await?;
        Ok(self.built(name))
    }

    /// Records a change this node made to a product's catalogue and rebuilds its index, so the
    /// change is live here at once and on other nodes at their next [`CheckIndex::sync`].
    pub async fn changed(&self, store: &dyn Store, product: &str) -> Result<()> {
        store.bump_catalog(product).await?;
        let _guard = self.rebuild.lock().await;
        self.forget_unknown_keys();
        self.reload(store, product).await
    }

    /// Records that this node published `release` or changed its flags or signatures, and puts
    /// it in the index. When nothing else changed the product since this node built it, only
    /// that release is indexed (publishing into a long history costs what publishing the first
    /// release does); otherwise the product is rebuilt from the store.
    pub async fn release_changed(
        &self,
        store: &dyn Store,
        release: Release,
        signatures: Option<ReleaseSignatures>,
    ) -> Result<()> {
        let name = release.product.clone();
        let version = store.bump_catalog(&name).await?;
        let _guard = self.rebuild.lock().await;
        let known = self.lock_versions().get(&name).copied();
        match (known, self.built(&name)) {
            // Already built from a later read of the store.
            (Some(known), Some(_)) if known >= version => {}
            (Some(known), Some(current)) if known + 1 == version => {
                match IndexedRelease::new(&current.product, release, signatures) {
                    Ok(r) => {
                        self.remember_artifacts(std::iter::once(&r));
                        self.insert(&name, current.with_release(r));
                    }
                    Err(e) => {
                        tracing::warn!(product = %name, error = %e, "skipping unreadable release");
                    }
                }
                self.remember(&name, version);
            }
            _ => self.reload(store, &name).await?,
        }
        Ok(())
    }

    /// Follows changes made through other nodes: rebuilds every built product whose catalogue
    /// version moved since this node built it, and learns the names of new products (they are
    /// built on first use, like the rest). Returns how many products were rebuilt.
    pub async fn sync(&self, store: &dyn Store) -> Result<usize> {
        let mut rebuilt = 0;
        let changes = store
            .catalog_changes(self.tick.load(Ordering::Relaxed))
            .await?;
        // Under the build lock: a product being built now either is built before this looks
        // (and is rebuilt below) or reads the store after these changes.
        let _guard = self.rebuild.lock().await;
        if !changes.changed.is_empty() {
            self.forget_unknown_keys();
        }
        for (product, version) in changes.changed {
            if self.built(&product).is_none() {
                self.names
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(product);
                continue;
            }
            let known = self.lock_versions().get(&product).copied();
            if known.is_none_or(|k| k < version) {
                // The rebuild reads the store after `version` was observed, so it includes at
                // least that change.
                self.reload(store, &product).await?;
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

    fn read_names(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_unknown_keys(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unknown_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A key added since it was looked up must open its product.
    fn forget_unknown_keys(&self) {
        self.lock_unknown_keys().clear();
    }

    /// A product's index if it is built already.
    fn built(&self, name: &str) -> Option<Arc<ProductIndex>> {
        self.products
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The product a device API key opens.
    pub async fn product_for_api_key(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<Arc<ProductIndex>>> {
        let hash = crate::tokens::token_hash(key);
        let known = self
            .api_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned();
        let name = match known {
            Some(name) => name,
            None if self.lock_unknown_keys().contains(&hash) => return Ok(None),
            None => match store.api_key_product(&hash).await? {
                // Building the product remembers its keys.
                Some(name) => name,
                None => {
                    let mut unknown = self.lock_unknown_keys();
                    if unknown.len() >= UNKNOWN_KEYS {
                        unknown.clear();
                    }
                    unknown.insert(hash);
                    return Ok(None);
                }
            },
        };
        self.get(store, &name).await
    }

    /// The products built so far (those devices or admins have asked for since start).
    pub fn built_products(&self) -> Vec<Arc<ProductIndex>> {
        self.products
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The artifact with this SHA-256: released or only uploaded, from memory once known.
    pub async fn artifact(&self, store: &dyn Store, sha256: &str) -> Result<Option<Artifact>> {
        let known = self
            .artifacts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
            .cloned();
        if known.is_some() {
            return Ok(known);
        }
        // Released by a product not built yet, or uploaded but not (yet) released. Artifacts
        // never change, so what the store says is kept.
        let stored = store.get_artifact(sha256).await?;
        if let Some(artifact) = &stored {
            self.artifacts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(artifact.sha256.clone(), artifact.clone());
        }
        Ok(stored)
    }

    /// Rebuilds one product from the store (the caller holds `rebuild`, so an older read of
    /// the store never overwrites a newer one). Releases that did not change since the last
    /// build are reused as they are, answers already serialised included. Releases whose
    /// versions no longer parse (hand-edited rows) are skipped with a warning rather than taking
    /// the product offline.
    async fn reload(&self, store: &dyn Store, name: &str) -> Result<()> {
        // The version first: what is read after it holds at least that version's changes.
        let version = store.catalog_version(name).await?;
        let Some(product) = store.get_product(name).await? else {
            self.names
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            return Ok(());
        };
        let before = self.built(name);
        let mut signatures: HashMap<String, ReleaseSignatures> = store
            .release_signatures(name)
            .await?
            .into_iter()
            .map(|s| (s.version.clone(), s))
            .collect();
        let mut releases = Vec::new();
        for release in store.all_releases(name).await? {
            let signed = signatures.remove(&release.version);
            let unchanged = before
                .as_ref()
                .filter(|b| b.product.scheme == product.scheme)
                .and_then(|b| b.release(&release.version))
                .filter(|r| r.release == release && r.signatures == signed);
            match unchanged {
                Some(r) => releases.push(r.clone()),
                None => match IndexedRelease::new(&product, release, signed) {
                    Ok(r) => releases.push(r),
                    Err(e) => {
                        tracing::warn!(product = name, error = %e, "skipping unreadable release");
                    }
                },
            }
        }
        self.remember_artifacts(&releases);
        let devices = DeviceDirectory::new(
            store.device_controls(name).await?,
            Firewall::new(store.device_access(name).await?),
        );
        let key_hashes = store.api_key_hashes(name).await?;
        {
            let mut keys = self.api_keys.write().unwrap_or_else(|e| e.into_inner());
            keys.retain(|_, product| product != name);
            keys.extend(key_hashes.into_iter().map(|h| (h, name.to_owned())));
        }
        let signing_keys = store.signing_keys(name).await?;
        let root = crate::trust::verified_root(name, &store.roots(name).await?);
        let windows = crate::schedules::load_windows(name, store.windows(name).await?);
        let poll_hint = store.poll_hint(name).await?;
        let rollouts = Arc::new(crate::rollouts::load(store, name).await?);
        let deltas = Arc::new(ReadyDeltas::load(store, name).await?);
        self.insert(
            name,
            ProductIndex {
                lineup: Lineup::new(product.scheme, &releases),
                product,
                releases,
                devices,
                signing_keys,
                root,
                windows,
                poll_hint,
                rollouts,
                deltas,
            },
        );
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned());
        self.remember(name, version);
        Ok(())
    }

    /// Makes the released artifacts of `releases` downloadable by SHA-256.
    fn remember_artifacts<'a>(&self, releases: impl IntoIterator<Item = &'a IndexedRelease>) {
        let mut artifacts = self.artifacts.write().unwrap_or_else(|e| e.into_inner());
        for r in releases {
            let artifact = &r.release.artifact;
            if !artifacts.contains_key(&artifact.sha256) {
                artifacts.insert(artifact.sha256.clone(), artifact.clone());
            }
        }
    }

    fn insert(&self, name: &str, index: ProductIndex) {
        self.products
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), Arc::new(index));
    }
}
