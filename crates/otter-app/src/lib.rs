//! otter's application layer: the use cases that every adapter — the admin API, the native
//! device API, each device protocol, the MQTT notifier — calls. It knows nothing of HTTP: its
//! functions take and return domain values and fail with [`AppError`].
//!
//! - [`App`]: the opened installation (store, blobs, check index, queues), cheap to clone.
//! - Use cases: [`artifacts`] and [`uploads`] (ingest), [`releases`] (publish with its
//!   [`releases::PublishCheck`] hooks, flags), [`products`], [`devices`] (check-in, reports,
//!   access rules), [`tokens`] (admin tokens and their roles, device API keys, one-time tokens),
//!   [`accounts`] (users of the admin UI, their passwords and login sessions),
//!   [`audit`] (the audit log), [`trust`] (roots of trust, signed releases and answers),
//!   [`iotawatt`] (IotaWatt products), [`rollouts`] (staged rollouts and their gate on every
//!   check), [`ddi`] (hawkBit DDI controllers, their actions and feedback), [`deltas`] (delta
//!   policies and the background builder of patches).
//! - Read models: [`index`] (the in-memory check index), [`answers`] (pre-serialised device
//!   answers), [`overview`] (a product at a glance, for the dashboard); [`seen`]: batched device
//!   sightings.
//! - [`limits`]: rate limits per remote address and per device.
//! - [`Observer`]: how adapters that push (MQTT) hear of changes.

pub mod accounts;
pub mod answers;
pub mod artifacts;
pub mod audit;
pub mod ddi;
pub mod deltas;
pub mod devices;
pub mod error;
pub mod index;
pub mod iotawatt;
pub mod limits;
pub mod overview;
pub mod products;
pub mod registry;
pub mod releases;
pub mod rollouts;
pub mod schedules;
pub mod seen;
pub mod settings;
pub mod tokens;
pub mod trust;
pub mod uploads;

use std::collections::HashSet;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use otter_core::signing::keys::PrivateKey;
use otter_store::blob::{BlobLocation, Blobs, Staging};
use otter_store::private;
use otter_store::sql::SqlStore;
use otter_store::{Store, StoreError};
use tokio::task::JoinHandle;

pub use error::{AppError, AppResult, ErrorKind};
pub use settings::{DownloadMode, Settings};
pub use tokens::Bootstrap;

use crate::index::{CheckIndex, ProductIndex};
use crate::limits::Limiter;
use crate::seen::SeenQueue;
use crate::tokens::AdminTokens;
use crate::uploads::Busy;

/// Why otter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening storage")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(#[from] tokens::BootstrapError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another otter is already using the data directory {0}")]
    Locked(PathBuf),
    /// Settings that do not fit together (the message says what to change).
    #[error("{0}")]
    Config(String),
}

/// Hears of changes as they happen, for adapters that push to devices instead of waiting to be
/// asked (MQTT notifications). Called on the request's task: implementations hand real work
/// to a task of their own.
pub trait Observer: Send + Sync {
    /// A product's catalogue changed (a release published or flagged).
    fn product_changed(&self, app: &App, product: &str);
    /// A device said what it runs now (an `installed` report, a check-in that carries it).
    fn device_changed(
        &self,
        app: &App,
        index: &ProductIndex,
        device: &str,
        current: Option<&str>,
        channel: &str,
    );
}

/// The opened installation; cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub config: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: Blobs,
    pub staging: Staging,
    pub index: CheckIndex,
    pub seen: Arc<SeenQueue>,
    pub tokens: AdminTokens,
    /// Failed logins per account and address ([`accounts::login`] applies them).
    pub logins: accounts::LoginLimits,
    /// Upload sessions a request is writing to right now.
    busy_uploads: Busy,
    /// Signs check responses (see [`trust`]).
    pub online_key: PrivateKey,
    /// The database behind `store`, for its upkeep (WAL checkpoints).
    sql: SqlStore,
    /// Requests per remote address without an admin token (the server applies it).
    pub address_limit: Limiter,
    /// Checks per device of a product ([`devices::decide`] applies it).
    pub device_limit: Limiter,
    /// The queue of delta patches to build ([`deltas`]).
    pub deltas: deltas::Builder,
    observers: RwLock<Vec<Arc<dyn Observer>>>,
}

impl Deref for App {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What [`App::open`] hands back besides the [`App`]: the pieces whose lifetime the caller
/// manages.
pub struct Opened {
    pub app: App,
    /// Held for the server's lifetime: a second otter on the same directory would sweep this
    /// one's uploads away as leftovers.
    pub lock: std::fs::File,
    /// The database, to close on shutdown.
    pub sql: SqlStore,
    /// Writes queued sightings; ends after [`SeenQueue::close`].
    pub seen_writer: JoinHandle<()>,
    /// What happened to the admin token at startup.
    pub bootstrap: Bootstrap,
}

impl App {
    /// Opens (creating if needed) the data directory and database, runs migrations, removes
    /// what interrupted uploads left behind, and loads the check index.
    pub async fn open(mut config: Settings) -> Result<Opened, StartError> {
        if let Some(token) = &config.admin_token {
            tokens::check_configured_token(token.expose())?;
        }
        let data = &config.data_dir.clone();
        let dir_error = |source| StartError::DataDir {
            path: data.clone(),
            source,
        };
        private::create_dir_all(data).map_err(dir_error)?;
        // An existing directory keeps its mode (an operator may have opened it on purpose);
        // what otter writes in it is the owner's only either way.
        if let Some(mode) = private::loose_mode(data).map_err(dir_error)? {
            tracing::warn!(
                dir = %data.display(),
                mode = format!("{mode:o}"),
                "the data directory is open to other users: `chmod 700` it"
            );
        }
        let lock = private::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(data.join(".lock"))
            .map_err(dir_error)?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StartError::Locked(data.clone()),
            std::fs::TryLockError::Error(source) => dir_error(source),
        })?;
        let blob_location = match &config.blob_url {
            Some(url) => BlobLocation::parse(url).map_err(StartError::Config)?,
            None => BlobLocation::Local(data.join("blobs")),
        };
        let blobs = Blobs::at(&blob_location, &config.s3())?.with_hot_cache(config.download_cache);
        blobs.probe().await?;
        let download_mode = settings::resolve_download_mode(config.download_mode, &blobs)?;
        config.download_mode = Some(download_mode);
        tracing::info!(blobs = ?blob_location, downloads = %download_mode, "blob storage");
        let url = config.database_url.as_ref().map_or_else(
            || format!("sqlite://{}", data.join("otter.db").display()),
            |url| url.expose().to_owned(),
        );
        let sql = SqlStore::connect(&url).await?;
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let bootstrap = tokens::ensure_admin_token(
            &*store,
            data,
            config.admin_token.as_ref().map(|t| t.expose()),
        )
        .await?;

        let staging = Staging::new(&data.join("staging"))?.with_sessions_in(&blobs);
        let live: HashSet<String> = store.all_uploads().await?.into_iter().collect();
        let swept = staging.sweep(&live).await?;
        if swept > 0 {
            tracing::info!(files = swept, "removed leftovers of interrupted uploads");
        }

        let index = CheckIndex::load(&*store).await?;
        let tokens = AdminTokens::load(&*store).await?;
        let (seen, seen_writer) = SeenQueue::start(
            store.clone(),
            config.seen_queue,
            (config.max_devices_per_product > 0).then_some(config.max_devices_per_product),
        );
        let online_key = trust::load_online_key(data, config.online_key_file.as_deref())?;
        let app = App(Arc::new(Inner {
            address_limit: Limiter::new(config.rate_limit_address),
            device_limit: Limiter::new(config.rate_limit_device),
            deltas: deltas::Builder::default(),
            config,
            store,
            blobs,
            staging,
            index,
            seen,
            tokens,
            logins: accounts::LoginLimits::default(),
            busy_uploads: Busy::default(),
            online_key,
            sql: sql.clone(),
            observers: RwLock::default(),
        }));
        Ok(Opened {
            app,
            lock,
            sql,
            seen_writer,
            bootstrap,
        })
    }

    /// Adds an [`Observer`].
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    fn observers(&self) -> Vec<Arc<dyn Observer>> {
        self.observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a change this node made to what `product`'s index holds (keys, roots, access
    /// rules): rebuilds it here at once, and on other nodes at their next catalogue poll.
    pub async fn reindex(&self, product: &str) -> AppResult<()> {
        Ok(self.index.changed(&*self.store, product).await?)
    }

    /// Records a change this node made to what `product`'s devices are offered without a release
    /// changing (a pin, a channel move, an admission rule): rebuilds the index like
    /// [`App::reindex`], then tells the observers, so pushed notices follow.
    pub async fn devices_changed(&self, product: &str) -> AppResult<()> {
        self.reindex(product).await?;
        for observer in self.observers() {
            observer.product_changed(self, product);
        }
        Ok(())
    }

    /// Records that this node published `release` or changed its flags, with the signatures it
    /// carries: puts it in the check index (here at once, on other nodes at their next catalogue
    /// poll), then tells the observers.
    pub async fn release_changed(
        &self,
        release: otter_core::model::Release,
        signatures: Option<otter_core::model::ReleaseSignatures>,
    ) -> AppResult<()> {
        let product = release.product.clone();
        self.index
            .release_changed(&*self.store, release, signatures)
            .await?;
        for observer in self.observers() {
            observer.product_changed(self, &product);
        }
        Ok(())
    }

    /// Tells the observers that `device` said what it runs.
    pub fn device_changed(
        &self,
        index: &ProductIndex,
        device: &str,
        current: Option<&str>,
        channel: &str,
    ) {
        for observer in self.observers() {
            observer.device_changed(self, index, device, current, channel);
        }
    }

    /// The product's index entry (built now if this is its first use), or `product_not_found`.
    pub async fn product(&self, name: &str) -> AppResult<Arc<ProductIndex>> {
        self.find_product(name)
            .await?
            .ok_or_else(|| AppError::product_not_found(name))
    }

    /// The product's index entry, if there is such a product.
    pub async fn find_product(&self, name: &str) -> AppResult<Option<Arc<ProductIndex>>> {
        Ok(self.index.get(&*self.store, name).await?)
    }

    /// The product a device API key opens, if any.
    pub async fn product_for_api_key(&self, key: &str) -> AppResult<Option<Arc<ProductIndex>>> {
        Ok(self.index.product_for_api_key(&*self.store, key).await?)
    }

    /// The artifact with this SHA-256 (released or only uploaded), if any.
    pub async fn artifact(&self, sha256: &str) -> AppResult<Option<otter_core::model::Artifact>> {
        Ok(self.index.artifact(&*self.store, sha256).await?)
    }

    /// Starts the background work: expiring idle uploads and one-time tokens, expiry warnings
    /// for signatures, following catalogue and token changes made through other nodes, writing
    /// when admin tokens were last used, keeping a SQLite WAL small, and moving rollouts along
    /// (scheduled starts, timeouts, automatic advance and pause), and building delta patches.
    pub fn start_background(&self) -> Background {
        Background {
            tasks: vec![
                tokio::spawn(janitor(self.clone())),
                tokio::spawn(follow_catalog(self.clone())),
                tokio::spawn(write_token_use(self.clone())),
                tokio::spawn(checkpoint_wal(self.sql.clone())),
                tokio::spawn(rollouts::run(self.clone(), self.config.rollout_tick)),
                tokio::spawn(deltas::run(self.clone())),
            ],
        }
    }
}

/// Background tasks of an [`App`]; they stop when this is dropped.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Keeps the check index and the admin tokens in step with changes made through other nodes
/// sharing the database (a revoked token is refused everywhere within one poll).
async fn follow_catalog(app: App) {
    let mut tick = tokio::time::interval(app.config.catalog_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.index.sync(&*app.store).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(products = n, "check index caught up with other nodes"),
            Err(e) => tracing::warn!(error = %e, "could not poll catalogue versions"),
        }
        match app.tokens.sync(&*app.store).await {
            Ok(false) => {}
            Ok(true) => tracing::debug!("admin tokens caught up with other nodes"),
            Err(e) => tracing::warn!(error = %e, "could not poll the token clock"),
        }
    }
}

/// Writes when admin tokens were last used, every [`tokens::LAST_USE_EVERY`].
async fn write_token_use(app: App) {
    let mut tick = tokio::time::interval(tokens::LAST_USE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = app.tokens.write_last_use(&*app.store).await {
            tracing::warn!(error = %e, "could not record when admin tokens were last used");
        }
    }
}

/// When [`checkpoint_wal`] empties the WAL: as soon as it holds [`WAL_CHECKPOINT_AT`], looked
/// at every [`WAL_LOOK_EVERY`], else once a second when it holds anything. A fixed interval
/// alone let a report flood on two cores (40-70 MiB of WAL a second: every report commits a few
/// 4 KiB pages) grow it by whatever one interval wrote; looking costs one `stat`.
const WAL_LOOK_EVERY: Duration = Duration::from_millis(50);
const WAL_CHECKPOINT_AT: u64 = 4 << 20;
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Keeps a SQLite WAL from growing without bound (see [`SqlStore::checkpoint`]).
async fn checkpoint_wal(sql: SqlStore) {
    if !sql.has_wal() {
        return;
    }
    let mut tick = tokio::time::interval(WAL_LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let size = sql.wal_size();
        if size < WAL_CHECKPOINT_AT && (size == 0 || last.elapsed() < WAL_CHECKPOINT_EVERY) {
            continue;
        }
        last = tokio::time::Instant::now();
        match sql.checkpoint().await {
            Ok(true) => {}
            Ok(false) => tracing::debug!("WAL checkpoint still waiting for readers"),
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the WAL"),
        }
    }
}

/// Periodic housekeeping: expires idle upload sessions and old one-time tokens, and warns of
/// signatures about to expire.
async fn janitor(app: App) {
    let every = (app.config.upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = uploads::expire_idle(&app).await {
            tracing::warn!(error = %e, "could not expire idle uploads");
        }
        if let Err(e) = tokens::purge_expired_otts(&app).await {
            tracing::warn!(error = %e, "could not purge expired one-time tokens");
        }
        trust::warn_expiring(&app).await;
    }
}
