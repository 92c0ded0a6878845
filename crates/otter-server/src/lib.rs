//! otter's HTTP server: adapters only. Each module turns requests into calls of the
//! application layer (`otter-app`) and its answers into the wire format of one API.
//!
//! - [`router`]: every route otter serves, in one table.
//! - [`admin`]: the admin API; [`native`]: otter's own device API; [`protocols`]: one module per
//!   device protocol; [`notify`]: MQTT update notifications (over `otter-mqtt`). None of them imports another.
//! - Shared HTTP pieces: [`error`] (the house error format), [`auth`] (admin authentication,
//!   roles, the admin extractor), [`audit`] (audit entries of admin changes),
//!   [`download`] (artifact bytes with ranges and validators), [`body`] (upload bodies),
//!   [`metrics`], [`request_log`] (request ids, the access log), [`limits`] (the per-address
//!   rate limit), [`peer`] (the client's address, for the device registry).
//! - [`openapi`]: the OpenAPI document of the admin and device APIs, and Swagger UI.
//! - `connections`: the accept loop (connection cap, header, idle and minimum-rate deadlines);
//!   [`http1`]: otter's own loop for bodiless `GET`/`HEAD` requests, hyper serving the rest.
//! - [`Server`]: opens the application and serves it until shut down.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod body;
mod connections;
pub mod download;
pub mod error;
pub mod http1;
pub mod limits;
pub mod metrics;
pub mod native;
pub mod notify;
pub mod openapi;
pub mod peer;
pub mod protocols;
pub mod request_log;
pub mod router;
pub mod ui;
mod unparsed;
mod workers;

use std::future::Future;
use std::sync::Arc;

use otter_app::{App, Background, Opened};
use otter_store::sql::SqlStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::workers::Workers;

pub use otter_app::settings::{DownloadMode, OtaCreate, Secret, Settings};
pub use otter_app::{Bootstrap, StartError};

/// An opened otter: storage, state and background tasks, ready to serve.
pub struct Server {
    app: App,
    _lock: std::fs::File,
    sql: SqlStore,
    seen_writer: JoinHandle<()>,
    background: Background,
    /// The MQTT connection, when notifications are on.
    mqtt: Option<JoinHandle<()>>,
    /// Where `/metrics` is served when not on the main listener.
    metrics_listener: Option<TcpListener>,
    /// Folds latency samples into their histograms ([`metrics::upkeep`]).
    metrics_upkeep: JoinHandle<()>,
    /// What happened to the admin token at startup.
    pub bootstrap: Bootstrap,
}

impl Server {
    /// Opens (creating if needed) the data directory and database, runs migrations, removes
    /// what interrupted uploads left behind, loads the check index and connects to the MQTT
    /// broker when notifications are on.
    pub async fn open(settings: Settings) -> Result<Self, StartError> {
        // Install the metrics recorder before anything records.
        metrics::handle();
        let Opened {
            app,
            lock,
            sql,
            seen_writer,
            bootstrap,
        } = App::open(settings).await?;
        if app.config.ota_secret.is_none() && app.config.ota_create == OtaCreate::Open {
            tracing::warn!(
                "POST /v1/create is open to anyone (--ota-create open without OTA_SECRET): \
                 anyone who can reach otter can create products"
            );
        }
        let mqtt = match &app.config.mqtt_url {
            Some(url) => {
                let settings = otter_mqtt::MqttSettings::parse(
                    url.expose(),
                    app.config.mqtt_ca_file.as_deref(),
                )
                .map_err(StartError::Config)?;
                let (publisher, task) = otter_mqtt::Publisher::start(settings);
                let notifier = Arc::new(notify::Notifier::new(publisher));
                app.observe(notifier.clone());
                let app = app.clone();
                tokio::spawn(async move { notifier.publish_all(&app).await });
                Some(task)
            }
            None => None,
        };
        let background = app.start_background();
        Ok(Server {
            app,
            _lock: lock,
            sql,
            seen_writer,
            background,
            mqtt,
            metrics_listener: None,
            metrics_upkeep: metrics::upkeep(),
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
        router::router(self.app.clone(), self.metrics_listener.is_none())
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
    /// up to the configured grace period, flushes queued sightings and closes the database.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.app.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let (metrics_stop, mut metrics_stopped) = tokio::sync::watch::channel(false);
        let app = self.router();
        let limits = connections::Limits::new(&self.app.config);
        // Kept until the end: a connection's handler may have left work on its thread's runtime
        // (a database connection opened there, a notification being sent), which the shutdown
        // below still needs.
        let workers = Workers::start(self.app.config.connection_threads());
        if let Some(listener) = self.metrics_listener.take() {
            let metrics = router::metrics_router(self.app.clone());
            tokio::spawn(async move {
                // A scraper's few connections: served on the shared runtime.
                let here = Workers::start(0);
                let stopped = async move {
                    metrics_stopped.wait_for(|stop| *stop).await.ok();
                };
                connections::serve(listener, metrics, None, &here, limits, stopped).await;
            });
        }
        let lane = router::Lane::new(self.app.clone());
        let server = connections::serve(listener, app, Some(lane), &workers, limits, async move {
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
        tokio::select! {
            () = server => {},
            () = bounded => {},
        }
        drop(self.background);
        if let Err(e) = self.app.tokens.write_last_use(&*self.app.store).await {
            tracing::warn!(error = %e, "could not record when admin tokens were last used");
        }
        self.metrics_upkeep.abort();
        if let Some(mqtt) = &self.mqtt {
            mqtt.abort();
        }
        self.app.seen.close();
        if let Err(e) = self.seen_writer.await {
            tracing::warn!(error = %e, "sighting writer ended abnormally");
        }
        self.sql.close().await;
        drop(workers);
        Ok(())
    }
}
