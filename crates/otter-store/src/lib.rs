//! otter's storage layer.
//!
//! - The store traits ([`ProductStore`], [`ReleaseStore`], [`DeviceStore`], [`UploadStore`],
//!   [`TokenStore`], [`AccessStore`], [`OttStore`], [`TrustStore`], [`AuditStore`],
//!   [`ScheduleStore`], [`RolloutStore`], [`UserStore`], [`DdiStore`], [`DeltaStore`], gathered
//!   in [`Store`]) are all the server knows about the database.
//! - [`sql::SqlStore`] implements them with portable SQL over sqlx's `Any` driver, so SQLite and
//!   PostgreSQL share one implementation and differ only in their migrations.
//! - [`blob::Blobs`] keeps artifact bytes content-addressed in an object store (a local directory
//!   by default, or an S3-compatible bucket through [`objects`]), and [`blob::Staging`] receives
//!   uploads before they become visible.
//! - [`private`] creates what otter stores on disk readable by its own user only.

use async_trait::async_trait;
use otter_core::access::Access;
use otter_core::deltas::{Delta, DeltaPolicy};
use otter_core::model::{
    Actor, ApiKey, ApiToken, Artifact, AuditEntry, Device, DeviceSeen, Page, Product, Release,
    ReleasePatch, ReleaseSignatures, ReportState, Role, UpdateReport, UploadSession, User,
};
use otter_core::ott::OneTimeToken;
use otter_core::rollout::{DeviceAttempt, DeviceState, Rollout, RolloutState, StageCounts};
use otter_core::schedule::{PollHint, WindowSpec};

pub mod blob;
pub mod hot;
pub mod objects;
pub mod private;
pub mod sql;

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken. The string names the kind of thing that already
    /// exists (`"product"`, `"release"`…), chosen by the store method: never the database's
    /// own message, which names tables and constraints and may reach an HTTP client.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A list cursor that this store never handed out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The database failed. (Not a `#[source]`: the message already carries sqlx's, which
    /// error chains such as anyhow's `{:#}` would otherwise print twice.)
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The blob store or the local file system failed.
    #[error("blob storage: {0}")]
    Blob(String),
    /// A row holds something otter cannot read back (hand-edited data, a bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database URL cannot be used (e.g. an unsupported scheme).
    #[error("{0}")]
    Config(String),
    /// The database's schema is not the one this otter was built for, e.g. a PostgreSQL
    /// database that `otter migrate` has not brought up to date. The message says what to do.
    #[error("{0}")]
    Schema(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Blob(e.to_string())
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            other => StoreError::Blob(other.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which page of a list to read. `cursor` is the opaque `nextCursor` of the previous page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

/// Which devices of a product an admin request means: those matching every field set (no field
/// set: every device).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Exactly this device.
    pub device: Option<String>,
    /// Devices carrying this tag.
    pub tag: Option<String>,
    /// Devices last known to run this version.
    pub version: Option<String>,
    /// Devices on this channel: the one an operator assigned, else the one they ask for.
    pub channel: Option<String>,
    /// Devices whose last check-in spoke this protocol.
    pub protocol: Option<String>,
    /// Devices whose attributes hold this key with this (string) value, e.g. what a hawkBit
    /// DDI controller sent as configData.
    pub attribute: Option<(String, String)>,
    /// Devices last seen before this time (Unix seconds).
    pub seen_before: Option<i64>,
    /// Devices last seen at or after this time (Unix seconds).
    pub seen_after: Option<i64>,
    /// Devices in this state in one of the product's rollouts that are not over, at the time
    /// given (Unix seconds; it decides who is in the penalty box).
    pub status: Option<(RolloutStatus, i64)>,
}

/// Where a device stands in a rollout, as the device list filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Offered the release, holding a slot.
    Offered,
    /// Downloading or installing it, holding a slot.
    Downloading,
    /// Installed it.
    Installed,
    /// Its attempt failed; not in the penalty box.
    Failed,
    /// In the penalty box.
    Penalty,
}

impl std::str::FromStr for RolloutStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "offered" => RolloutStatus::Offered,
            "downloading" => RolloutStatus::Downloading,
            "installed" => RolloutStatus::Installed,
            "failed" => RolloutStatus::Failed,
            "penalty" => RolloutStatus::Penalty,
            other => {
                return Err(format!(
                    "unknown status {other:?}: use offered, downloading, installed, failed or \
                     penalty"
                ));
            }
        })
    }
}

/// What an operator changes about one device; a `None` field stays as it is (`Some(None)`
/// clears an assigned channel or a pin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChange {
    pub auto_update: Option<bool>,
    pub assigned_channel: Option<Option<String>>,
    pub pinned_version: Option<Option<String>>,
}

/// What an operator set on one device that the check path obeys (the check index holds one per
/// device that has any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceControls {
    pub device: String,
    /// Sorted.
    pub tags: Vec<String>,
    pub assigned_channel: Option<String>,
    pub pinned_version: Option<String>,
}

/// A report before the store gives it an id.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub product: String,
    pub device: String,
    pub version: String,
    pub state: ReportState,
    pub message: Option<String>,
    pub created_at: i64,
}

/// A product's fleet at a glance ([`DeviceStore::fleet_summary`]), for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetSummary {
    /// Every device the product has seen.
    pub devices: u64,
    /// Devices seen at or after each of the times asked about, in the same order.
    pub seen_since: Vec<u64>,
    /// How many devices run each version (`None`: a device that never said), most first, ties
    /// by version.
    pub versions: Vec<(Option<String>, u64)>,
}

/// What [`ProductStore::catalog_changes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogChanges {
    /// The clock's tick when read: pass it as `after` next time.
    pub tick: i64,
    /// `(product, catalogue version)` of each product changed since, in no order.
    pub changed: Vec<(String, i64)>,
}

/// A signature that expires soon (see [`TrustStore::expiring_signatures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringSignature {
    pub product: String,
    /// `None` for the product's newest root, else the release whose manifest it is.
    pub release: Option<String>,
    /// The root's version, or the release's.
    pub version: String,
    pub expires_at: i64,
}

/// Products and artifacts: the catalogue of what can be released.
#[async_trait]
pub trait ProductStore: Send + Sync {
    /// Creates a product; [`StoreError::Conflict`] if the name is taken.
    async fn create_product(&self, product: &Product) -> Result<()>;
    async fn get_product(&self, name: &str) -> Result<Option<Product>>;
    /// Products by name.
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>>;
    /// Every product, for building the in-memory check index.
    async fn all_products(&self) -> Result<Vec<Product>>;
    /// Records an artifact's metadata; if the same SHA-256 exists, returns the stored one.
    async fn put_artifact(&self, artifact: &Artifact) -> Result<Artifact>;
    async fn get_artifact(&self, sha256: &str) -> Result<Option<Artifact>>;
    /// Records that a product's catalogue (the product or its releases) changed; returns the
    /// product's new catalogue version.
    async fn bump_catalog(&self, product: &str) -> Result<i64>;
    /// The catalogue clock's tick now, and the catalogue version of every product changed
    /// after tick `after` (-1: every product, also those last bumped before the clock existed),
    /// for nodes to notice changes made elsewhere without reading every product.
    async fn catalog_changes(&self, after: i64) -> Result<CatalogChanges>;
    /// One product's catalogue version now (0 if it was never bumped), read before the
    /// product when the check index loads it.
    async fn catalog_version(&self, product: &str) -> Result<i64>;
}

/// Releases of products.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Publishes a release (its `seq` is assigned here and returned);
    /// [`StoreError::Conflict`] if the product already has that version.
    async fn create_release(&self, release: &Release) -> Result<Release>;
    async fn get_release(&self, product: &str, version: &str) -> Result<Option<Release>>;
    /// A product's releases, newest published first.
    async fn list_releases(&self, product: &str, page: &PageRequest) -> Result<Page<Release>>;
    /// Every release of a product, for the check index.
    async fn all_releases(&self, product: &str) -> Result<Vec<Release>>;
    /// Changes a release's flags; [`StoreError::NotFound`] if it does not exist.
    async fn patch_release(
        &self,
        product: &str,
        version: &str,
        patch: &ReleasePatch,
    ) -> Result<Release>;
}

/// New devices that a batch of sightings did not record because their product already had as
/// many devices as it may, by product.
pub type OverLimit = std::collections::BTreeMap<String, u64>;

/// Devices and what they report.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Upserts a batch of sightings in one transaction; later sightings of a device win (as
    /// [`DeviceSeen::absorb`] folds them). With `max_devices`, a device its product has never
    /// seen is recorded only while the product has fewer devices than that; the others are
    /// counted in the answer, and devices already known are updated as always.
    async fn record_seen(&self, seen: &[DeviceSeen], max_devices: Option<u64>)
    -> Result<OverLimit>;
    /// A product's devices matching `filter`, by id.
    async fn list_devices(
        &self,
        product: &str,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<Device>>;
    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>>;
    /// Changes what an operator sets on a device (auto-update, assigned channel, pin);
    /// [`StoreError::NotFound`] if it was never seen.
    async fn update_device(&self, product: &str, id: &str, change: &DeviceChange)
    -> Result<Device>;
    /// Adds `tag` to every device matching `filter`, in one statement; how many devices did not
    /// have it.
    async fn tag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64>;
    /// Removes `tag` from every device matching `filter`, in one statement; how many had it.
    async fn untag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64>;
    /// Forgets a device: its row and its tags (its reports and access rule stay); whether it
    /// existed.
    async fn delete_device(&self, product: &str, id: &str) -> Result<bool>;
    /// Every device of a product with a tag, an assigned channel or a pin, for the check index.
    async fn device_controls(&self, product: &str) -> Result<Vec<DeviceControls>>;
    async fn insert_report(&self, report: &NewReport) -> Result<UpdateReport>;
    /// A product's reports, newest first, optionally for one device.
    async fn list_reports(
        &self,
        product: &str,
        device: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UpdateReport>>;
    /// How many devices a product has, run each version, and were seen at or after each time
    /// of `seen_since` (Unix seconds): one aggregate query, whatever the size of the fleet.
    async fn fleet_summary(&self, product: &str, seen_since: &[i64]) -> Result<FleetSummary>;
    /// A product's `failed` and `rolled_back` reports made at or after `since`, newest first,
    /// at most `limit`.
    async fn recent_failures(
        &self,
        product: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<UpdateReport>>;
}

/// Resumable upload sessions (their bytes live in [`blob::Staging`]).
#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn create_upload(&self, session: &UploadSession) -> Result<()>;
    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>>;
    /// Records how many bytes have arrived.
    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Ids of sessions last touched before `before` (Unix seconds).
    async fn idle_uploads(&self, before: i64) -> Result<Vec<String>>;
    /// Ids of every session, to tell live staging files from orphans.
    async fn all_uploads(&self) -> Result<Vec<String>>;
}

/// An admin API token as stored: its record and the SHA-256 hex of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub sha256: String,
    pub token: ApiToken,
}

/// Admin API tokens, kept as SHA-256 hex of the token. Every change but last use also bumps the
/// token clock ([`TokenStore::token_version`]) in the same transaction.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Adds a token; [`StoreError::Conflict`] (`"token"`) if its name or hash is taken.
    async fn add_token(&self, token_sha256: &str, token: &ApiToken) -> Result<()>;
    /// Makes this token the only one named `name`, an admin token that neither expires nor is
    /// revoked (a configured bootstrap token replaces the one configured before, and configuring
    /// a revoked one again restores it), atomically.
    async fn replace_token(&self, token_sha256: &str, name: &str, created_at: i64) -> Result<()>;
    /// Every token with its hash, for authenticating in memory.
    async fn all_tokens(&self) -> Result<Vec<StoredToken>>;
    /// Tokens by name, revoked ones too.
    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<ApiToken>>;
    /// Revokes the token named `name` at `at` (one revoked before keeps its time) and returns
    /// it; [`StoreError::NotFound`] if there is none.
    async fn revoke_token(&self, name: &str, at: i64) -> Result<ApiToken>;
    /// Records when tokens were last used, as `(name, at)`; a time never moves backwards. Does
    /// not bump the token clock: nothing a node authenticates with changed.
    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()>;
    /// The token clock: changes whenever a token is added, replaced or revoked.
    async fn token_version(&self) -> Result<i64>;
}

/// A user as stored: the account and its password's argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub user: User,
    pub password_hash: String,
}

/// A login session as stored. `id` is the SHA-256 hex of the cookie's secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub user_name: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
    /// The address the login came from.
    pub remote: Option<String>,
}

/// What an admin changes about a user; a `None` field stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new argon2id PHC string.
    pub password_hash: Option<String>,
}

impl UserChange {
    /// Whether the change ends the user's sessions: disabling them or a new password.
    pub fn ends_sessions(&self) -> bool {
        self.disabled == Some(true) || self.password_hash.is_some()
    }
}

/// User accounts of the admin UI and their login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; [`StoreError::Conflict`] (`"user"`) if the name is taken.
    async fn add_user(&self, user: &StoredUser) -> Result<()>;
    async fn get_user(&self, name: &str) -> Result<Option<StoredUser>>;
    /// Users by name, disabled ones too.
    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>>;
    /// Every user with their password hash (`migrate-data` copies them).
    async fn all_users(&self) -> Result<Vec<StoredUser>>;
    /// Applies `change` at `at` and returns the user; a change that
    /// [ends sessions](UserChange::ends_sessions) revokes every live one of theirs in the same
    /// transaction. [`StoreError::NotFound`] if there is no such user.
    async fn update_user(&self, name: &str, change: &UserChange, at: i64) -> Result<User>;
    /// Records a login: the new session, and the user's last login at its creation time.
    async fn add_session(&self, session: &StoredSession) -> Result<()>;
    /// The session with this id and its user, whatever its state.
    async fn get_session(&self, id: &str) -> Result<Option<(StoredSession, StoredUser)>>;
    /// Notes that the session was used at `at` (a time never moves backwards).
    async fn touch_session(&self, id: &str, at: i64) -> Result<()>;
    /// Revokes one session (one revoked before keeps its time).
    async fn revoke_session(&self, id: &str, at: i64) -> Result<()>;
    /// Revokes every live session of `user`; returns how many.
    async fn revoke_sessions(&self, user: &str, at: i64) -> Result<u64>;
}

/// An audit entry before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: i64,
    pub actor: Actor,
    pub remote: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: Option<String>,
}

/// Which audit entries to list; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The actor's name.
    pub actor: Option<String>,
    /// The action, exactly (`release.publish`).
    pub action: Option<String>,
    /// The target, or anything under it: `door-sensor` matches `door-sensor/1.1.0`.
    pub target: Option<String>,
    /// Entries at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Entries before this time.
    pub until: Option<i64>,
}

/// The audit log: append-only, so there is no method to change or delete an entry.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// Entries matching `filter`, newest first.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>>;
}

/// Keys of products that devices reach through a keyed protocol (ota-backend's firmware id and
/// key) and which devices may use them.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Sets the SHA-256 of a product's key (replacing an earlier one).
    async fn set_product_key(&self, product: &str, key_sha256: &str, created_at: i64)
    -> Result<()>;
    async fn product_key(&self, product: &str) -> Result<Option<String>>;
    /// Sets (`Some`) or deletes (`None`) the rule for one device of a product.
    async fn set_device_access(
        &self,
        product: &str,
        device: &str,
        access: Option<Access>,
        updated_at: i64,
    ) -> Result<()>;
    /// Every device rule of a product.
    async fn device_access(&self, product: &str) -> Result<Vec<(String, Access)>>;
    /// Adds a device API key (its SHA-256; `key.id` is derived from it).
    async fn add_api_key(&self, key: &ApiKey, key_sha256: &str) -> Result<()>;
    /// A product's API keys, oldest first.
    async fn api_keys(&self, product: &str) -> Result<Vec<ApiKey>>;
    /// The SHA-256 of every API key of a product, for the check index.
    async fn api_key_hashes(&self, product: &str) -> Result<Vec<String>>;
    /// The product the device API key with this SHA-256 opens, if any.
    async fn api_key_product(&self, key_sha256: &str) -> Result<Option<String>>;
    /// Deletes the key with this id; whether there was one.
    async fn delete_api_key(&self, product: &str, id: &str) -> Result<bool>;
    /// Sets the public key (hex) a product's releases of `kind` must be signed with.
    async fn set_signing_key(
        &self,
        product: &str,
        kind: &str,
        public_key: &str,
        created_at: i64,
    ) -> Result<()>;
    /// A product's signing keys as `(kind, public key)`.
    async fn signing_keys(&self, product: &str) -> Result<Vec<(String, String)>>;
}

/// One-time download tokens.
#[async_trait]
pub trait OttStore: Send + Sync {
    async fn create_ott(&self, token: &OneTimeToken) -> Result<()>;
    async fn get_ott(&self, token_sha256: &str) -> Result<Option<OneTimeToken>>;
    /// Records the first use at `at` with the shortened expiry; later uses change nothing.
    async fn first_use_ott(&self, token_sha256: &str, at: i64, expires_at: i64) -> Result<()>;
    /// Spends a token; false if it was already spent (or does not exist).
    async fn spend_ott(&self, token_sha256: &str, at: i64) -> Result<bool>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn purge_otts(&self, before: i64) -> Result<u64>;
}

/// Roots of trust and release signatures (signed releases).
#[async_trait]
pub trait TrustStore: Send + Sync {
    /// Stores root `version` of a product; [`StoreError::Conflict`] if it exists.
    async fn add_root(
        &self,
        product: &str,
        version: u32,
        envelope: &str,
        expires_at: i64,
        created_at: i64,
    ) -> Result<()>;
    /// A product's roots as `(version, envelope)`, oldest first.
    async fn roots(&self, product: &str) -> Result<Vec<(u32, String)>>;
    /// Sets (replaces) a release's signed manifest.
    async fn set_release_manifest(
        &self,
        product: &str,
        version: &str,
        envelope: &str,
        security_counter: u32,
        expires_at: i64,
    ) -> Result<()>;
    /// Sets a release's binary signature.
    async fn set_binary_signature(
        &self,
        product: &str,
        version: &str,
        signature: &str,
    ) -> Result<()>;
    /// The signatures of every release of a product that has any.
    async fn release_signatures(&self, product: &str) -> Result<Vec<ReleaseSignatures>>;
    /// Across every product, the newest root and the manifests of releases not yanked that
    /// expire before `before`, by product (roots first) and version.
    async fn expiring_signatures(&self, before: i64) -> Result<Vec<ExpiringSignature>>;
}

/// When devices update and when they ask: maintenance windows per channel and poll hints per
/// product, kept as [`otter_core::schedule`] checked them.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Sets (`Some`, replacing) or removes (`None`) a channel's maintenance window.
    async fn set_window(
        &self,
        product: &str,
        channel: &str,
        window: Option<&WindowSpec>,
        updated_at: i64,
    ) -> Result<()>;
    /// A product's windows as `(channel, window)`, by channel.
    async fn windows(&self, product: &str) -> Result<Vec<(String, WindowSpec)>>;
    /// Sets (`Some`, replacing) or removes (`None`) a product's poll hint.
    async fn set_poll_hint(
        &self,
        product: &str,
        hint: Option<&PollHint>,
        updated_at: i64,
    ) -> Result<()>;
    async fn poll_hint(&self, product: &str) -> Result<Option<PollHint>>;
}

/// What [`RolloutStore::admit_device`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotAnswer {
    /// The device took a slot now (a new attempt, or one `retry-failed` let in again).
    Admitted,
    /// The device already holds a slot (let in earlier, perhaps through another node).
    Holding,
    /// The device installed the release already.
    Installed,
    /// The device's last attempt failed; it waits for `retry-failed` (or its penalty to end).
    Failed,
    /// No slot is free, or the rollout no longer takes devices in (paused, over).
    Refused,
}

/// What [`RolloutStore::fail_device`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The stage that took the device in.
    pub stage: u32,
    /// Its failures in this rollout so far.
    pub failures: u32,
    /// Whether this failure put it in the penalty box.
    pub boxed: bool,
}

/// Devices of a rollout the check index keeps in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutMembers {
    /// Devices offered the release, holding a slot.
    pub offered: Vec<String>,
    /// Devices downloading or installing it, holding a slot.
    pub downloading: Vec<String>,
    /// Devices whose attempt failed, not in the penalty box.
    pub failed: Vec<String>,
    /// Devices in the penalty box, with the time it ends.
    pub penalty: Vec<(String, i64)>,
}

/// Staged rollouts and the devices they took in. Every change of state is a conditional
/// statement that says whether it applied, so nodes sharing the database never apply one twice.
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Stores a new rollout (its `id` is assigned here and returned);
    /// [`StoreError::Conflict`] if the channel has a rollout that is not over.
    async fn create_rollout(&self, rollout: &Rollout) -> Result<Rollout>;
    async fn get_rollout(&self, product: &str, id: i64) -> Result<Option<Rollout>>;
    /// A product's rollouts, newest first.
    async fn list_rollouts(&self, product: &str, page: &PageRequest) -> Result<Page<Rollout>>;
    /// A product's rollouts that still gate their release (every state but `completed`), for
    /// the check index.
    async fn gating_rollouts(&self, product: &str) -> Result<Vec<Rollout>>;
    /// Every rollout, of every product, that is scheduled, running or paused.
    async fn active_rollouts(&self) -> Result<Vec<Rollout>>;
    /// Moves a rollout in one of the states `from` to `to` with `reason`; whether it did. A move
    /// to running starts counting failures afresh (`counted_from`).
    async fn set_rollout_state(
        &self,
        id: i64,
        from: &[RolloutState],
        to: RolloutState,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool>;
    /// Moves a rollout in one of the states `from` from stage `stage` to the next (`to`
    /// [`RolloutState::Completed`] past the last); whether it did.
    async fn advance_rollout(
        &self,
        id: i64,
        from: &[RolloutState],
        stage: u32,
        completed: bool,
        now: i64,
    ) -> Result<bool>;
    /// Aborts the scheduled, running or paused rollouts of a release; how many.
    async fn abort_release_rollouts(
        &self,
        product: &str,
        version: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64>;
    /// Lets `device` into running rollout `id` at `stage`, taking a slot when
    /// `max_concurrent` (0: no cap) leaves one, in one transaction with the device's row.
    async fn admit_device(
        &self,
        id: i64,
        device: &str,
        stage: u32,
        max_concurrent: u32,
        now: i64,
    ) -> Result<SlotAnswer>;
    /// A device holding a slot said it is downloading or installing; whether it held one.
    async fn device_downloading(&self, id: i64, device: &str, now: i64) -> Result<bool>;
    /// A device runs the release now: its attempt is over (its slot given back); whether its
    /// state changed.
    async fn device_installed(&self, id: i64, device: &str, now: i64) -> Result<bool>;
    /// A device in one of the states `from` failed: counts the failure, gives its slot back,
    /// and at `penalty_failures` failures puts it in the penalty box until `penalty_until`.
    /// `None` if it was in none of those states.
    async fn fail_device(
        &self,
        id: i64,
        device: &str,
        from: &[DeviceState],
        penalty_failures: u32,
        penalty_until: i64,
        now: i64,
    ) -> Result<Option<Failure>>;
    /// Devices of a rollout in state `state` since before `before`.
    async fn stale_devices(&self, id: i64, state: DeviceState, before: i64) -> Result<Vec<String>>;
    /// Lets go of a device offered the release before `before` that never said more: its row
    /// goes and its slot is given back, without a failure; whether it did.
    async fn drop_offer(&self, id: i64, device: &str, before: i64) -> Result<bool>;
    /// Lets failed devices out of the penalty box at `now` try again: they take a slot at their
    /// next check; how many.
    async fn retry_failed(&self, id: i64, now: i64) -> Result<u64>;
    /// Per-stage counts of a rollout's devices (index = stage) at `now`, of the devices whose
    /// state last changed at `since` or later (0: all).
    async fn rollout_counts(
        &self,
        id: i64,
        stages: u32,
        now: i64,
        since: i64,
    ) -> Result<Vec<StageCounts>>;
    /// The devices the check index keeps in memory for a rollout at `now`.
    async fn rollout_members(&self, id: i64, now: i64) -> Result<RolloutMembers>;
    /// `device`'s attempts in `product`'s rollouts, newest rollout first (at most `limit`).
    async fn device_attempts(
        &self,
        product: &str,
        device: &str,
        limit: u32,
    ) -> Result<Vec<DeviceAttempt>>;
}

/// Where a hawkBit DDI action stands ([`DdiAction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionState {
    /// Offered; the device has not finished it.
    Open,
    /// The device installed the release (closed with success).
    Installed,
    /// The device failed to install it (closed with failure).
    Failed,
    /// otter took it back (cancelAction) or the device canceled it.
    Canceled,
    /// The device refused it.
    Rejected,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Open => "open",
            ActionState::Installed => "installed",
            ActionState::Failed => "failed",
            ActionState::Canceled => "canceled",
            ActionState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ActionState::Open,
            ActionState::Installed,
            ActionState::Failed,
            ActionState::Canceled,
            ActionState::Rejected,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// A hawkBit DDI action: otter's offer of one release to one device, with the id the device
/// reports against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdiAction {
    pub id: i64,
    pub product: String,
    pub device: String,
    pub version: String,
    pub state: ActionState,
    /// The last `execution` the device reported (`proceeding`, `download`…).
    pub execution: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a DDI token opens ([`DdiStore::ddi_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdiHolder {
    /// A TargetToken: one device of a product.
    Target { product: String, device: String },
    /// A GatewayToken: any controller of a product.
    Gateway { product: String },
}

/// A product's DDI options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DdiOptions {
    /// Polls without a token are answered (the `{tenant}` names the product).
    pub anonymous: bool,
    /// Artifacts are downloaded with the DDI token, under the controller's path, instead of
    /// otter's unauthenticated download URL.
    pub token_downloads: bool,
}

/// A device as a DDI poll needs it ([`DdiStore::device_actions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceActions {
    /// Its open action, if any.
    pub open: Option<DdiAction>,
    /// Its newest installed action: the release it runs, as far as DDI knows.
    pub installed: Option<DdiAction>,
    /// The version its device row says it runs (`None` also for a device never seen).
    pub current_version: Option<String>,
    /// When its device row was last written (Unix seconds).
    pub last_seen: Option<i64>,
    /// Whether its device row holds any attributes.
    pub has_attributes: bool,
}

/// hawkBit DDI: tokens (kept as SHA-256 hex), per-product options and actions.
#[async_trait]
pub trait DdiStore: Send + Sync {
    /// Stores a token for `holder`, replacing the one it had.
    async fn set_ddi_token(&self, token_sha256: &str, holder: &DdiHolder, at: i64) -> Result<()>;
    /// What the token with this SHA-256 opens, if anything.
    async fn ddi_token(&self, token_sha256: &str) -> Result<Option<DdiHolder>>;
    /// Every token of a product as `(SHA-256, holder)`, by hash (`migrate-data` copies them).
    async fn ddi_tokens(&self, product: &str) -> Result<Vec<(String, DdiHolder)>>;
    async fn set_ddi_options(&self, product: &str, options: &DdiOptions, at: i64) -> Result<()>;
    /// A product's options (the defaults when never set).
    async fn ddi_options(&self, product: &str) -> Result<DdiOptions>;
    /// Opens an action offering `version` to `device`, or returns the device's open action if it
    /// has one (opened meanwhile through another request or node).
    async fn open_ddi_action(
        &self,
        product: &str,
        device: &str,
        version: &str,
        at: i64,
    ) -> Result<DdiAction>;
    /// The device's open action, newest installed one and what its device row says, in one
    /// query (the poll's only read besides its token).
    async fn device_actions(&self, product: &str, device: &str) -> Result<DeviceActions>;
    async fn get_ddi_action(
        &self,
        product: &str,
        device: &str,
        id: i64,
    ) -> Result<Option<DdiAction>>;
    /// Records the device's latest `execution` on an open action and, with `state` other than
    /// open, closes it; whether the action was open.
    async fn update_ddi_action(
        &self,
        id: i64,
        state: ActionState,
        execution: &str,
        at: i64,
    ) -> Result<bool>;
}

/// Delta updates: each product's policy and the patches built between its releases (their bytes
/// are artifacts, in the blob store).
#[async_trait]
pub trait DeltaStore: Send + Sync {
    /// Sets (`Some`, replacing) or removes (`None`) a product's delta policy.
    async fn set_delta_policy(
        &self,
        product: &str,
        policy: Option<&DeltaPolicy>,
        updated_at: i64,
    ) -> Result<()>;
    async fn delta_policy(&self, product: &str) -> Result<Option<DeltaPolicy>>;
    /// Every product with a delta policy, by name.
    async fn all_delta_policies(&self) -> Result<Vec<(String, DeltaPolicy)>>;
    /// Records a patch (product, from, to and format name it), replacing what was recorded of
    /// the same patch before.
    async fn put_delta(&self, delta: &Delta) -> Result<()>;
    /// A product's patches (only those to release `to`, when given), by target, base and
    /// format.
    async fn deltas(&self, product: &str, to: Option<&str>) -> Result<Vec<Delta>>;
}

/// Everything the server needs from a database.
pub trait Store:
    ProductStore
    + ReleaseStore
    + DeviceStore
    + UploadStore
    + TokenStore
    + AccessStore
    + OttStore
    + TrustStore
    + AuditStore
    + ScheduleStore
    + RolloutStore
    + UserStore
    + DdiStore
    + DeltaStore
{
}

impl<T> Store for T where
    T: ProductStore
        + ReleaseStore
        + DeviceStore
        + UploadStore
        + TokenStore
        + AccessStore
        + OttStore
        + TrustStore
        + AuditStore
        + ScheduleStore
        + RolloutStore
        + UserStore
        + DdiStore
        + DeltaStore
{
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random 128-bit identifier as hex (upload sessions, temp files).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    hex::encode(bytes)
}
