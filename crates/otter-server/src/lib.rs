//! otter's HTTP server.
//!
//! - [`router`]: every route; [`admin`]: the admin API; [`native`]: otter's own device API;
//!   [`download`]: artifact downloads shared by every device protocol.
//! - [`index`]: the in-memory check index; [`seen`]: batched device sightings.
//! - [`Server`]: opens storage, bootstraps the admin token and serves until shut down.

pub mod admin;
pub mod auth;
pub mod download;
pub mod error;
pub mod index;
pub mod metered;
pub mod metrics;
pub mod native;
pub mod notify;
pub mod protocols;
pub mod router;
pub mod seen;
pub mod state;
pub mod trust;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use otter_store::blob::{BlobLocation, Blobs, Staging};
use otter_store::objects::S3Settings;
use otter_store::sql::SqlStore;
use otter_store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use auth::Bootstrap;
pub use download::DownloadMode;
pub use state::{AppState, ServerConfig};

use crate::auth::AdminTokens;
use crate::index::CheckIndex;
use crate::seen::SeenQueue;

/// Where otter keeps its state.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    /// Data directory: blobs, staging and (by default) the SQLite database.
    pub data_dir: PathBuf,
    /// Database URL; `None` means `sqlite://<data_dir>/otter.db`.
    pub database_url: Option<String>,
    /// Admin token to accept; `None` generates one on first start.
    pub admin_token: Option<String>,
    /// Where artifact bytes live: `file:///path` or `s3://bucket/prefix`; `None` means
    /// `<data_dir>/blobs`.
    pub blob_url: Option<String>,
    /// How to reach the S3-compatible service of an `s3://` blob URL (endpoint, settings beyond
    /// the AWS environment variables).
    pub s3: S3Settings,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening storage")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(#[from] auth::BootstrapError),
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

/// An opened otter: storage, state and background tasks, ready to serve.
pub struct Server {
    state: AppState,
    /// Held for the server's lifetime: a second otter on the same directory would sweep this
    /// one's uploads away as leftovers.
    _lock: std::fs::File,
    sql: SqlStore,
    seen_writer: JoinHandle<()>,
    janitor: JoinHandle<()>,
    follower: JoinHandle<()>,
    /// The MQTT connection, when notifications are on.
    mqtt: Option<JoinHandle<()>>,
    /// Where `/metrics` is served when not on the main listener.
    metrics_listener: Option<TcpListener>,
    /// What happened to the admin token at startup.
    pub bootstrap: Bootstrap,
}

impl Server {
    /// Opens (creating if needed) the data directory and database, runs migrations, removes
    /// what interrupted uploads left behind, and loads the check index.
    pub async fn open(storage: Storage, mut config: ServerConfig) -> Result<Self, StartError> {
        let data = &storage.data_dir;
        // Install the metrics recorder before anything records.
        metrics::handle();
        let dir_error = |source| StartError::DataDir {
            path: data.clone(),
            source,
        };
        std::fs::create_dir_all(data).map_err(dir_error)?;
        let lock = std::fs::File::create(data.join(".lock")).map_err(dir_error)?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StartError::Locked(data.clone()),
            std::fs::TryLockError::Error(source) => dir_error(source),
        })?;
        let blob_location = match &storage.blob_url {
            Some(url) => BlobLocation::parse(url).map_err(StartError::Config)?,
            None => BlobLocation::Local(data.join("blobs")),
        };
        let blobs = Blobs::at(&blob_location, &storage.s3)?.with_hot_cache(config.download_cache);
        blobs.probe().await?;
        let download_mode = download::resolve_mode(config.download_mode, &blobs)?;
        config.download_mode = Some(download_mode);
        tracing::info!(blobs = ?blob_location, downloads = %download_mode, "blob storage");
        let url = storage
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data.join("otter.db").display()));
        let sql = SqlStore::connect(&url).await?;
        let store: Arc<dyn Store> = Arc::new(metered::Metered(Arc::new(sql.clone())));
        let bootstrap =
            auth::ensure_admin_token(&*store, data, storage.admin_token.as_deref()).await?;

        let staging = Staging::new(&data.join("staging"))?.with_sessions_in(&blobs);
        let live: HashSet<String> = store.all_uploads().await?.into_iter().collect();
        let swept = staging.sweep(&live).await?;
        if swept > 0 {
            tracing::info!(files = swept, "removed leftovers of interrupted uploads");
        }

        let index = CheckIndex::load(&*store).await?;
        let tokens = AdminTokens::load(&*store).await?;
        let (seen, seen_writer) = SeenQueue::start(store.clone(), config.seen_queue);
        let (notifier, mqtt) = match &config.mqtt_url {
            Some(url) => {
                let settings = otter_mqtt::MqttSettings::parse(url, config.mqtt_ca_file.as_deref())
                    .map_err(StartError::Config)?;
                let (publisher, task) = otter_mqtt::Publisher::start(settings);
                (Some(Arc::new(notify::Notifier::new(publisher))), Some(task))
            }
            None => (None, None),
        };
        let online_key = trust::load_online_key(data, config.online_key_file.as_deref())?;
        let state = AppState::new(state::Inner {
            config,
            store,
            blobs,
            staging,
            index,
            seen,
            tokens,
            busy_uploads: Default::default(),
            notifier,
            online_key,
        });
        if state.notifier.is_some() {
            let state = state.clone();
            tokio::spawn(async move { notify::publish_all(&state).await });
        }
        let janitor = tokio::spawn(janitor(state.clone()));
        let follower = tokio::spawn(follow_catalog(state.clone()));
        Ok(Server {
            state,
            _lock: lock,
            sql,
            seen_writer,
            janitor,
            follower,
            mqtt,
            metrics_listener: None,
            bootstrap,
        })
    }

    /// Serves `/metrics` on `listener` instead of the main listener (`--metrics-listen`), so
    /// it can stay on a private interface.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// The application, for in-process tests.
    pub fn router(&self) -> axum::Router {
        router::router(self.state.clone(), self.metrics_listener.is_none())
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
    /// up to the configured grace period, flushes queued sightings and closes the database.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let (metrics_stop, mut metrics_stopped) = tokio::sync::watch::channel(false);
        let app = self.router();
        if let Some(listener) = self.metrics_listener.take() {
            let metrics = router::metrics_router(self.state.clone());
            tokio::spawn(async move {
                let stop = async move {
                    metrics_stopped.wait_for(|stop| *stop).await.ok();
                };
                if let Err(e) = axum::serve(listener, metrics)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::warn!(error = %e, "metrics listener failed");
                }
            });
        }
        // Responses go out whole as soon as they are written: Nagle's algorithm would hold the
        // tail of a download (or a check answer behind it) until the device acknowledges.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopping_tx.send(()).ok();
            metrics_stop.send(true).ok();
        });
        let bounded = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
                tracing::warn!(?grace, "grace period over: dropping remaining connections");
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = server => r,
            () = bounded => Ok(()),
        };
        self.janitor.abort();
        self.follower.abort();
        if let Some(mqtt) = &self.mqtt {
            mqtt.abort();
        }
        self.state.seen.close();
        if let Err(e) = self.seen_writer.await {
            tracing::warn!(error = %e, "sighting writer ended abnormally");
        }
        self.sql.close().await;
        result
    }
}

/// Keeps the check index in step with changes made through other nodes sharing the database.
async fn follow_catalog(state: AppState) {
    let mut tick = tokio::time::interval(state.config.catalog_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.index.sync(&*state.store).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(products = n, "check index caught up with other nodes"),
            Err(e) => tracing::warn!(error = %e, "could not poll catalogue versions"),
        }
    }
}

/// Periodic housekeeping: expires idle upload sessions.
async fn janitor(state: AppState) {
    let every =
        (state.config.upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = admin::uploads::expire_idle(&state).await {
            tracing::warn!(error = %e, "could not expire idle uploads");
        }
        // Expired one-time tokens are kept a day, so a late device hears "expired", not
        // "unknown".
        let before = otter_store::now() - 24 * 3600;
        if let Err(e) = state.store.purge_otts(before).await {
            tracing::warn!(error = %e, "could not purge expired one-time tokens");
        }
        trust::warn_expiring(&state);
    }
}
