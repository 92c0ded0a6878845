//! The receiving end of ViperHTTP's OTA push protocol, for an embedded-Linux agent: [`router`]
//! serves `/ota/*` on the agent's `--listen` address, writes the pushed image into one staging
//! file (typically the inactive slot), and hands each verified image to an [`Installer`].
//! Request bodies and parameters are read in [`body`].
//!
//! It has its own small state ([`Receiver`]) and needs no store: it is the device side, `otter
//! push` (`otter_client::push`, or ViperHTTP's own tools) is the client.
//!
//! Both variants of the protocol are served on the same routes
//! (`docs/protocols/viperhttp-push.md`):
//! - what ViperHTTP's code does (`viperhttp_ota.py`): token in `X-OTA-Token` or `?token=`,
//!   `GET /ota/status`, `POST /ota/begin` (`expected_size`, `expected_sha256`, `force`),
//!   `POST /ota/chunk?offset=N`, `POST /ota/finalize` (`set_boot`, `reboot`, `strict_size`),
//!   `POST /ota/abort`, `POST /ota/upload` (the whole image at once), `POST /ota/mark-valid`.
//!   Parameters come from a JSON object, a form or the query string; booleans are
//!   `1/true/yes/on` or `0/false/no/off`; errors are `{"detail":"…"}`.
//! - what ViperHTTP's docs describe: `Authorization: Bearer <token>`, `POST /ota/begin
//!   {"size":N}` (answered with a `session_id`), `POST /ota/write` appending raw chunks, `POST
//!   /ota/finalize {"sha256":"…"}`. Following those docs' error table, `/ota/write` without a
//!   session is a 400 (the code's `/ota/chunk` answers 409).
//!
//! Where the code falls short of its own docs or of a safe agent, this receiver does better:
//! - one session at a time, and a session that receives no data for `idle_timeout` (60 s by
//!   default) is aborted, as the docs promise (the code has no timeout);
//! - a failed finalize (size or SHA-256 mismatch) ends the session and says why in
//!   `last_error` (the code leaves the session stuck until an abort or a forced begin);
//! - bytes stream to the staging file as they arrive, hashed on the way, and the file is
//!   fsynced before the installer sees it; a chunk whose connection breaks keeps the bytes that
//!   arrived, so the pusher resumes from `session.written_bytes`;
//! - if two chunk requests overlap, only the newer one writes: a stalled connection cannot
//!   interleave its bytes with the retry that replaced it;
//! - 5xx details name what failed, not the operating system's error text (that goes to the
//!   log), and `/ota/upload` streams too, so it is not limited to tiny images.
//!
//! ESP32 partitions become the staging file: `next_update_partition` and `session.partition`
//! describe it as an app slot (`type` 0, `subtype` 16 = ota_0) with `label` its file name,
//! `size` the configured capacity, `address` 0 and an extra `path`; `block_size` is 1 (a file is
//! byte-addressed) so `block_count` is the capacity. `running_partition` and `boot_partition`
//! are `null`: which slot runs and boots is the agent's business, not the receiver's.

mod body;

use std::io;

use base64::Engine;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use body::{ChunkBody, Params};

/// How long a session may go without receiving data before it is aborted, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The header that carries an image's signed release manifest (base64 of its DSSE envelope) on
/// `begin` or `upload`: otter's extension of both variants, for devices that install only
/// signed images.
pub const MANIFEST_HEADER: &str = "x-ota-manifest";

/// Begin and finalize parameters are a few short fields; anything larger is not one of them.
const PARAMS_LIMIT: usize = 64 * 1024;

/// How a [`Receiver`] is set up.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// The token every request must carry; `None` lets anyone push (ViperHTTP without
    /// `ota_token`).
    pub token: Option<String>,
    /// A session that receives no data for this long is aborted.
    pub idle_timeout: Duration,
    /// Where images are written: a regular file (emptied at each begin) or a block device such
    /// as the inactive slot (written from its start, never truncated).
    pub staging: PathBuf,
    /// The largest image accepted, in bytes (the slot's size).
    pub capacity: u64,
    /// Refuse a push that comes without its signed manifest ([`MANIFEST_HEADER`]).
    pub signed_only: bool,
}

/// Keeps the token out of logs.
impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("idle_timeout", &self.idle_timeout)
            .field("staging", &self.staging)
            .field("capacity", &self.capacity)
            .field("signed_only", &self.signed_only)
            .finish()
    }
}

impl ReceiverConfig {
    /// No token, the default idle timeout.
    pub fn new(staging: impl Into<PathBuf>, capacity: u64) -> Self {
        ReceiverConfig {
            token: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            staging: staging.into(),
            capacity,
            signed_only: false,
        }
    }
}

/// An image that was pushed, verified and synced to disk, handed to the [`Installer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The staging file that holds the image (its first `size` bytes, for a block device).
    pub path: PathBuf,
    pub size: u64,
    /// Lower-case hex SHA-256 of the image.
    pub sha256: String,
    /// The pusher wants the image to become the boot image.
    pub set_boot: bool,
    /// The pusher wants the device to restart into it afterwards.
    pub reboot: bool,
    /// The signed release manifest (DSSE envelope JSON) that came with it, if any.
    pub manifest: Option<String>,
}

/// An installer's refusal of the image itself (its signature, its counter…), as opposed to a
/// failure to install it: the pusher hears why, with a 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What an installer reports when it fails; it is logged, and the pusher hears a generic 500.
pub type InstallError = Box<dyn std::error::Error + Send + Sync>;

/// What the agent does with what the receiver gets: its slot and commit logic.
///
/// The methods return boxed futures so the trait can be a `dyn` object without a macro:
/// implement them as `Box::pin(async move { … })`.
pub trait Installer: Send + Sync {
    /// Called once per successful finalize, before the pusher is answered; while it runs,
    /// no new session can start, so the staging file stays as it is. An error becomes a 500 and
    /// `last_error`. A reboot should be scheduled to happen after this returns (a second or so
    /// later), so the pusher hears the result; pushers treat a dropped connection after asking
    /// for a reboot as success all the same.
    fn install(&self, image: Received) -> BoxFuture<'_, Result<(), InstallError>>;

    /// `POST /ota/mark-valid`: the running image works, cancel the rollback.
    fn mark_valid(&self) -> BoxFuture<'_, Result<(), InstallError>>;
}

/// The receiver's state; share it with [`router`].
pub struct Receiver {
    config: ReceiverConfig,
    installer: Arc<dyn Installer>,
    state: Mutex<PushState>,
}

struct PushState {
    /// The id of the last session begun (ids count from 1, as ViperHTTP's do).
    sessions: u64,
    /// Chunk requests started so far; only the newest one of a session may write.
    writers: u64,
    session: Option<Session>,
    /// A finalize is handing the image to the installer.
    installing: bool,
    last_result: Option<Value>,
    last_error: Option<String>,
}

struct Session {
    id: u64,
    started: Instant,
    /// When data last arrived (or the session began): the idle timeout counts from here.
    last_data: Instant,
    expected_size: Option<u64>,
    expected_sha256: Option<String>,
    manifest: Option<String>,
    written: u64,
    file: File,
    hasher: Sha256,
    /// The chunk request allowed to write.
    writer: u64,
}

/// Why a request failed; answered as `{"detail":"<text>"}` with the status of [`PushError::status`].
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid ota token")]
    Unauthorized,
    #[error(
        "this device installs only signed images: send the release manifest in the \
         X-OTA-Manifest header (otter push --manifest)"
    )]
    Unsigned,
    /// A malformed parameter or body, or a chunk that does not fit.
    #[error("{0}")]
    Invalid(String),
    #[error("ota session already active")]
    AlreadyActive,
    #[error("ota install in progress")]
    Installing,
    #[error("ota session is not active")]
    NotActive,
    #[error("offset mismatch; only sequential writes are supported")]
    OffsetMismatch,
    #[error("superseded by a newer chunk request")]
    Superseded,
    #[error("written size does not match expected_size")]
    SizeMismatch,
    #[error("no firmware bytes written")]
    NothingWritten,
    #[error("sha256 mismatch")]
    Sha256Mismatch,
    /// The request body broke off (the bytes that arrived are kept).
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    #[error("{what} failed (see the device log)")]
    Storage {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("installing the image failed (see the device log)")]
    Install,
    #[error("mark_app_valid failed (see the device log)")]
    MarkValid,
    #[error("Not Found")]
    NoRoute,
    #[error("Method Not Allowed")]
    WrongMethod,
}

impl PushError {
    /// The HTTP status ViperHTTP answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::Unauthorized => StatusCode::UNAUTHORIZED,
            PushError::Unsigned => StatusCode::FORBIDDEN,
            PushError::Invalid(_) | PushError::Interrupted(_) => StatusCode::BAD_REQUEST,
            PushError::AlreadyActive
            | PushError::Installing
            | PushError::NotActive
            | PushError::OffsetMismatch
            | PushError::Superseded
            | PushError::SizeMismatch
            | PushError::NothingWritten
            | PushError::Sha256Mismatch => StatusCode::CONFLICT,
            PushError::Storage { .. } | PushError::Install | PushError::MarkValid => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            PushError::NoRoute => StatusCode::NOT_FOUND,
            PushError::WrongMethod => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn invalid(text: impl Into<String>) -> Self {
        PushError::Invalid(text.into())
    }

    fn storage(what: &'static str) -> impl FnOnce(io::Error) -> PushError {
        move |source| PushError::Storage { what, source }
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        if let PushError::Storage { what, source } = &self {
            tracing::error!(error = %source, "ota push: {what} failed");
        }
        (self.status(), Json(json!({ "detail": self.to_string() }))).into_response()
    }
}

type PushResult<T> = Result<T, PushError>;

/// The `/ota/*` routes, guarded by the configured token.
pub fn router(receiver: Arc<Receiver>) -> Router {
    // Chunks and one-shot uploads stream to the staging file and are bounded by the capacity,
    // not by axum's 2 MB default.
    let streamed = DefaultBodyLimit::disable();
    Router::new()
        .route("/ota/status", get(status))
        .route("/ota/begin", post(begin))
        .route("/ota/chunk", post(chunk).layer(streamed))
        .route("/ota/write", post(write).layer(streamed))
        .route("/ota/finalize", post(finalize))
        .route("/ota/abort", post(abort))
        .route("/ota/upload", post(upload).layer(streamed))
        .route("/ota/mark-valid", post(mark_valid))
        .route_layer(middleware::from_fn_with_state(receiver.clone(), authorize))
        .fallback(|| async { PushError::NoRoute })
        .method_not_allowed_fallback(|| async { PushError::WrongMethod })
        .with_state(receiver)
}

/// With a token configured, every OTA route needs it: in `X-OTA-Token`, as a bearer token, or
/// in `?token=` (looked for in that order).
async fn authorize(
    State(receiver): State<Arc<Receiver>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &receiver.config.token else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = || {
        let (scheme, token) = header(AUTHORIZATION.as_str())?.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    };
    let presented = header("x-ota-token")
        .map(str::to_owned)
        .or_else(bearer)
        .or_else(|| query_value(request.uri(), "token"));
    match presented {
        Some(p) if bool::from(p.as_bytes().ct_eq(token.as_bytes())) => next.run(request).await,
        _ => PushError::Unauthorized.into_response(),
    }
}

fn query_value(uri: &Uri, key: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `GET /ota/status` → the status snapshot.
async fn status(State(receiver): State<Arc<Receiver>>) -> Json<Value> {
    Json(receiver.snapshot(&*receiver.state.lock().await))
}

/// `POST /ota/begin` → the status snapshot, plus the new `session_id` (the docs' "session
/// identifier").
async fn begin(State(receiver): State<Arc<Receiver>>, request: Request) -> PushResult<Json<Value>> {
    let manifest = manifest_header(&request)?;
    let (params, _) = Params::read(request, PARAMS_LIMIT).await?;
    // `size` is the documented variant's name for `expected_size`.
    let expected_size = match params.count("expected_size")? {
        Some(size) => Some(size),
        None => params.count("size")?,
    };
    let id = receiver
        .begin(
            expected_size,
            params.sha256("expected_sha256")?,
            params.flag("force", false),
            manifest,
        )
        .await?;
    let mut body = receiver.snapshot(&*receiver.state.lock().await);
    body["session_id"] = json!(id);
    Ok(Json(body))
}

/// `POST /ota/chunk[?offset=N]` → the status snapshot.
async fn chunk(State(receiver): State<Arc<Receiver>>, request: Request) -> PushResult<Json<Value>> {
    receiver.chunk(request).await?;
    Ok(Json(receiver.snapshot(&*receiver.state.lock().await)))
}

/// `POST /ota/write` (the documented variant's chunk) → the status snapshot.
async fn write(State(receiver): State<Arc<Receiver>>, request: Request) -> PushResult<Json<Value>> {
    match receiver.chunk(request).await {
        // The docs list "invalid session state" under 400.
        Err(PushError::NotActive) => Err(PushError::invalid(PushError::NotActive.to_string())),
        other => other,
    }?;
    Ok(Json(receiver.snapshot(&*receiver.state.lock().await)))
}

/// `POST /ota/finalize` → the finalize result.
async fn finalize(
    State(receiver): State<Arc<Receiver>>,
    request: Request,
) -> PushResult<Json<Value>> {
    let (params, _) = Params::read(request, PARAMS_LIMIT).await?;
    let options = Finalize {
        set_boot: params.flag("set_boot", true),
        reboot: params.flag("reboot", false),
        strict_size: params.flag("strict_size", true),
        // The documented variant names the expected hash here rather than at begin.
        sha256: params.sha256("sha256")?,
        session: None,
    };
    receiver.finalize(options).await.map(Json)
}

/// `POST /ota/abort`: ends the session, if there is one.
async fn abort(State(receiver): State<Arc<Receiver>>) -> Json<Value> {
    let mut state = receiver.state.lock().await;
    Json(match state.session.take() {
        Some(session) => {
            state.last_error = Some("aborted".to_owned());
            tracing::info!(session = session.id, "ota push aborted");
            json!({ "ok": true, "aborted": true, "session_id": session.id, "active": false })
        }
        None => json!({ "ok": true, "aborted": false, "active": false }),
    })
}

/// `POST /ota/upload[?expected_sha256=…&set_boot=…&reboot=…]` with the whole image: a forced
/// begin, one chunk and a strict finalize → the finalize result.
async fn upload(
    State(receiver): State<Arc<Receiver>>,
    request: Request,
) -> PushResult<Json<Value>> {
    let uri = request.uri().clone();
    let query = Params::query(&uri);
    let manifest = manifest_header(&request)?;
    let body = ChunkBody::read(&receiver, request).await?;
    let params = body.params().unwrap_or(&query);
    let expected_sha256 = params.sha256("expected_sha256")?;
    let (set_boot, reboot) = (params.flag("set_boot", true), params.flag("reboot", false));
    if body.len() == Some(0) {
        return Err(PushError::invalid("empty upload body"));
    }
    let id = receiver
        .begin(body.len(), expected_sha256, true, manifest)
        .await?;
    let written = match receiver.write_chunk(id, None, body).await {
        Ok(0) => Err(PushError::invalid("empty upload body")),
        other => other,
    };
    if let Err(e) = written {
        let mut state = receiver.state.lock().await;
        if state.session.as_ref().is_some_and(|s| s.id == id) {
            state.session = None;
            state.last_error = Some(e.to_string());
        }
        return Err(e);
    }
    let options = Finalize {
        set_boot,
        reboot,
        strict_size: true,
        sha256: None,
        session: Some(id),
    };
    receiver.finalize(options).await.map(Json)
}

/// `POST /ota/mark-valid` → `{"ok":true}` once the installer has confirmed the running image.
async fn mark_valid(State(receiver): State<Arc<Receiver>>) -> PushResult<Json<Value>> {
    if let Err(e) = receiver.installer.mark_valid().await {
        tracing::error!(error = %e, "ota push: marking the running image valid failed");
        return Err(PushError::MarkValid);
    }
    Ok(Json(json!({ "ok": true })))
}

/// The signed manifest of [`MANIFEST_HEADER`], decoded, if the request has one.
fn manifest_header(request: &Request) -> PushResult<Option<String>> {
    let Some(value) = request.headers().get(MANIFEST_HEADER) else {
        return Ok(None);
    };
    let invalid = || PushError::invalid("X-OTA-Manifest is not the base64 of a manifest");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map(Some).map_err(|_| invalid())
}

struct Finalize {
    set_boot: bool,
    reboot: bool,
    strict_size: bool,
    sha256: Option<String>,
    /// Finalize only this session (a one-shot upload's own).
    session: Option<u64>,
}

impl Receiver {
    /// A receiver with no session yet; serve it with [`router`].
    pub fn new(config: ReceiverConfig, installer: Arc<dyn Installer>) -> Self {
        Receiver {
            config,
            installer,
            state: Mutex::new(PushState {
                sessions: 0,
                writers: 0,
                session: None,
                installing: false,
                last_result: None,
                last_error: None,
            }),
        }
    }

    /// Starts a session (replacing the active one when `force`) and returns its id.
    async fn begin(
        self: &Arc<Self>,
        expected_size: Option<u64>,
        expected_sha256: Option<String>,
        force: bool,
        manifest: Option<String>,
    ) -> PushResult<u64> {
        if self.config.signed_only && manifest.is_none() {
            return Err(PushError::Unsigned);
        }
        let mut state = self.state.lock().await;
        if state.installing {
            return Err(PushError::Installing);
        }
        if state.session.is_some() && !force {
            return Err(PushError::AlreadyActive);
        }
        if expected_size.is_some_and(|size| size > self.config.capacity) {
            return Err(PushError::invalid(
                "expected_size exceeds update partition capacity",
            ));
        }
        if let Some(replaced) = state.session.take() {
            tracing::info!(session = replaced.id, "ota push replaced by a forced begin");
        }
        let file = match self.open_staging().await {
            Ok(file) => file,
            Err(e) => {
                state.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        state.sessions += 1;
        let id = state.sessions;
        let now = Instant::now();
        state.session = Some(Session {
            id,
            started: now,
            last_data: now,
            expected_size,
            expected_sha256,
            manifest,
            written: 0,
            file,
            hasher: Sha256::new(),
            writer: 0,
        });
        state.last_error = None;
        tracing::info!(session = id, ?expected_size, "ota push begun");
        self.watch(id);
        Ok(id)
    }

    /// The staging file, opened for writing from its start; a regular file is emptied (a block
    /// device has a fixed size and is simply overwritten).
    async fn open_staging(&self) -> PushResult<File> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.config.staging)
            .await
            .map_err(PushError::storage("opening the staging file"))?;
        let metadata = file
            .metadata()
            .await
            .map_err(PushError::storage("opening the staging file"))?;
        if metadata.is_file() {
            file.set_len(0)
                .await
                .map_err(PushError::storage("emptying the staging file"))?;
        }
        Ok(file)
    }

    /// Aborts session `id` once it has received nothing for the idle timeout.
    fn watch(self: &Arc<Self>, id: u64) {
        let receiver: Weak<Receiver> = Arc::downgrade(self);
        let timeout = self.config.idle_timeout;
        tokio::spawn(async move {
            loop {
                let deadline = {
                    let Some(receiver) = receiver.upgrade() else {
                        return;
                    };
                    let state = receiver.state.lock().await;
                    match &state.session {
                        Some(s) if s.id == id => s.last_data + timeout,
                        _ => return,
                    }
                };
                tokio::time::sleep_until(deadline).await;
                let Some(receiver) = receiver.upgrade() else {
                    return;
                };
                let mut state = receiver.state.lock().await;
                match &state.session {
                    Some(s) if s.id == id && s.last_data + timeout <= Instant::now() => {
                        state.session = None;
                        state.last_error = Some(format!(
                            "ota session timed out: no data for {} ms",
                            timeout.as_millis()
                        ));
                        tracing::info!(session = id, ?timeout, "idle ota push aborted");
                        return;
                    }
                    Some(s) if s.id == id => {}
                    _ => return,
                }
            }
        });
    }

    /// One chunk request: its offset from the query (or its JSON/form body), its bytes from the
    /// body, written to the active session.
    async fn chunk(self: &Arc<Self>, request: Request) -> PushResult<()> {
        let uri = request.uri().clone();
        let query = Params::query(&uri);
        let body = ChunkBody::read(self, request).await?;
        let offset = body.params().unwrap_or(&query).count("offset")?;
        if body.len() == Some(0) {
            return Err(PushError::invalid("empty chunk"));
        }
        let id = match &self.state.lock().await.session {
            Some(session) => session.id,
            None => return Err(PushError::NotActive),
        };
        match self.write_chunk(id, offset, body).await? {
            0 => Err(PushError::invalid("empty chunk")),
            _ => Ok(()),
        }
    }

    /// Writes `body` to session `id` at `offset` (or wherever it stands); returns how many bytes
    /// it had.
    async fn write_chunk(&self, id: u64, offset: Option<u64>, body: ChunkBody) -> PushResult<u64> {
        let ticket = self.claim(id, offset, body.len()).await?;
        match body {
            ChunkBody::Decoded { data, .. } => {
                self.append(id, ticket, &data).await?;
                Ok(data.len() as u64)
            }
            ChunkBody::Raw { body, .. } => {
                let mut stream = body.into_data_stream();
                let mut total = 0;
                while let Some(piece) = stream.next().await {
                    let piece = piece.map_err(|e| PushError::Interrupted(e.to_string()))?;
                    self.append(id, ticket, &piece).await?;
                    total += piece.len() as u64;
                }
                Ok(total)
            }
        }
    }

    /// Checks that a chunk of `len` bytes (when announced) at `offset` fits session `id`, and
    /// makes this request the one allowed to write.
    async fn claim(&self, id: u64, offset: Option<u64>, len: Option<u64>) -> PushResult<u64> {
        let mut state = self.state.lock().await;
        state.writers += 1;
        let ticket = state.writers;
        let session = match state.session.as_mut() {
            Some(session) if session.id == id => session,
            _ => return Err(PushError::NotActive),
        };
        if offset.is_some_and(|offset| offset != session.written) {
            return Err(PushError::OffsetMismatch);
        }
        if let Some(len) = len {
            self.check_fits(session, len)?;
        }
        session.writer = ticket;
        Ok(ticket)
    }

    fn check_fits(&self, session: &Session, len: u64) -> PushResult<()> {
        let total = session.written.saturating_add(len);
        if session
            .expected_size
            .is_some_and(|expected| total > expected)
        {
            return Err(PushError::invalid("chunk exceeds expected_size"));
        }
        if total > self.config.capacity {
            return Err(PushError::invalid(
                "chunk exceeds update partition capacity",
            ));
        }
        Ok(())
    }

    /// Appends `bytes` to session `id` if request `ticket` is still its writer. The lock is held
    /// while writing, so a forced begin or an abort can never interleave with a write.
    async fn append(&self, id: u64, ticket: u64, bytes: &[u8]) -> PushResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        let session = match state.session.as_mut() {
            Some(session) if session.id == id => session,
            _ => return Err(PushError::NotActive),
        };
        if session.writer != ticket {
            return Err(PushError::Superseded);
        }
        self.check_fits(session, bytes.len() as u64)?;
        // Flushed before the lock is released: a write still pending when the session is
        // dropped could land in the file of the next one.
        let stored = match session.file.write_all(bytes).await {
            Ok(()) => session.file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(source) = stored {
            // Part of the piece may be on disk: the file no longer matches the count.
            let error = PushError::Storage {
                what: "writing the staging file",
                source,
            };
            state.session = None;
            state.last_error = Some(error.to_string());
            return Err(error);
        }
        session.hasher.update(bytes);
        session.written += bytes.len() as u64;
        session.last_data = Instant::now();
        Ok(())
    }

    /// Verifies the session's image, syncs it and hands it to the installer. Whatever the
    /// outcome, the session is over.
    async fn finalize(self: &Arc<Self>, options: Finalize) -> PushResult<Value> {
        let mut state = self.state.lock().await;
        if options
            .session
            .is_some_and(|id| state.session.as_ref().is_none_or(|s| s.id != id))
        {
            return Err(PushError::NotActive);
        }
        let session = state.session.take().ok_or(PushError::NotActive)?;
        let sha256 = hex::encode(session.hasher.clone().finalize());
        let verdict = if options.strict_size
            && session
                .expected_size
                .is_some_and(|expected| expected != session.written)
        {
            Err(PushError::SizeMismatch)
        } else if session.written == 0 {
            Err(PushError::NothingWritten)
        } else if [&session.expected_sha256, &options.sha256]
            .into_iter()
            .flatten()
            .any(|expected| *expected != sha256)
        {
            Err(PushError::Sha256Mismatch)
        } else {
            Ok(())
        };
        if let Err(e) = verdict {
            tracing::warn!(session = session.id, error = %e, "ota push refused at finalize");
            state.last_error = Some(e.to_string());
            return Err(e);
        }
        state.installing = true;
        drop(state);
        // Installing goes on (and the state is updated) even if the pusher hangs up meanwhile.
        let receiver = self.clone();
        let task = tokio::spawn(async move {
            // A panicking installer must not leave the receiver installing forever.
            let outcome = AssertUnwindSafe(receiver.install(session, sha256, &options))
                .catch_unwind()
                .await
                .unwrap_or(Err(PushError::Install));
            let mut state = receiver.state.lock().await;
            state.installing = false;
            match &outcome {
                Ok(result) => {
                    state.last_result = Some(result.clone());
                    state.last_error = None;
                }
                Err(e) => state.last_error = Some(e.to_string()),
            }
            outcome
        });
        task.await.unwrap_or(Err(PushError::Install))
    }

    async fn install(
        &self,
        session: Session,
        sha256: String,
        options: &Finalize,
    ) -> PushResult<Value> {
        let Session {
            id,
            file,
            written,
            expected_size,
            manifest,
            ..
        } = session;
        file.sync_all()
            .await
            .map_err(PushError::storage("syncing the staging file"))?;
        drop(file);
        let received = Received {
            path: self.config.staging.clone(),
            size: written,
            sha256: sha256.clone(),
            set_boot: options.set_boot,
            reboot: options.reboot,
            manifest,
        };
        if let Err(e) = self.installer.install(received).await {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                tracing::warn!(session = id, error = %refused, "ota push: image refused");
                return Err(PushError::invalid(format!(
                    "the image is refused: {refused}"
                )));
            }
            tracing::error!(session = id, error = %e, "ota push: installing the image failed");
            return Err(PushError::Install);
        }
        tracing::info!(session = id, size = written, %sha256, "ota push installed");
        Ok(json!({
            "ok": true,
            "session_id": id,
            "written_bytes": written,
            "expected_size": expected_size,
            "sha256": sha256,
            "set_boot": options.set_boot,
            "reboot": options.reboot,
            "partition": self.slot(),
        }))
    }

    /// ViperHTTP's status snapshot.
    fn snapshot(&self, state: &PushState) -> Value {
        let session = state.session.as_ref().map(|s| {
            let remaining = s.expected_size.map(|e| e.saturating_sub(s.written));
            let progress = s
                .expected_size
                .filter(|&e| e > 0)
                .map(|e| s.written as f64 * 100.0 / e as f64);
            json!({
                "id": s.id,
                "active": true,
                "partition": self.slot(),
                "capacity_bytes": self.config.capacity,
                "block_size": 1,
                "block_count": self.config.capacity,
                "written_bytes": s.written,
                "expected_size": s.expected_size,
                "remaining_bytes": remaining,
                "progress_pct": progress,
                "expected_sha256": s.expected_sha256,
                "elapsed_ms": s.started.elapsed().as_millis() as u64,
            })
        });
        json!({
            "supported": true,
            "active": state.session.is_some(),
            "running_partition": null,
            "boot_partition": null,
            "next_update_partition": self.slot(),
            "last_result": state.last_result,
            "last_error": state.last_error,
            "session": session,
        })
    }

    /// The staging file, described as ESP32 partition info (see the module doc).
    fn slot(&self) -> Value {
        let path = &self.config.staging;
        let label = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let size = self.config.capacity;
        json!({
            "raw": [0, 16, 0, size, label, false],
            "type": 0,
            "subtype": 16,
            "address": 0,
            "size": size,
            "label": label,
            "encrypted": false,
            "path": path.display().to_string(),
        })
    }
}
