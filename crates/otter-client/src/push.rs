//! `otter push`: sends an image straight to a device that serves ViperHTTP's OTA push protocol:
//! ViperHTTP on an ESP32, or an otter agent on embedded Linux (`otter_agent::receiver`).
//!
//! - `--protocol viper` (the default) speaks what ViperHTTP's code does: `begin` with the
//!   image's size and SHA-256, chunks at explicit `?offset=`s, `finalize`. When a chunk's
//!   connection breaks, the push asks the device (`GET /ota/status`) how many bytes it kept and
//!   continues from there rather than starting over.
//! - `--protocol viper-doc` speaks what ViperHTTP's docs describe: `begin {"size"}`, appending
//!   `/ota/write`s, `finalize {"sha256"}`. Without offsets there is no resuming: a failed
//!   attempt starts over with a forced begin.
//!
//! Either way the push succeeds only when the device reports the SHA-256 of the local file. A
//! device asked to reboot may drop the connection instead of answering finalize (ViperHTTP
//! resets before it replies); that counts as success, as in ViperHTTP's own end-to-end test.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{HumanBytes, ProgressBar};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::root_cause;
use crate::files::{LocalFile, hash_file, progress_bar};

/// How often a failed request is retried (after a transport failure or a gateway error)
/// before the push gives up.
const MAX_RETRIES: u32 = 5;
/// The first retry waits this long, each further one twice as long: about 15 s in all, enough to
/// ride out a Wi-Fi reconnect.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Bounds one chunk's round trip: a device that stops answering is a broken connection.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Finalize verifies and installs the image before it answers, which may take a while.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(300);

/// Push an image to a device over ViperHTTP's OTA protocol.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  otter push http://192.168.1.100:8080 firmware.bin --token $OTA_TOKEN --reboot
  otter push http://gateway.local:8080 rootfs.img --chunk 65536 --no-set-boot
  otter push http://192.168.1.100:8080 firmware.bin --protocol viper-doc --token $OTA_TOKEN")]
pub struct PushArgs {
    /// The device's base URL; its OTA routes are under /ota.
    #[arg(value_name = "DEVICE_URL")]
    device: Url,
    /// The image to send.
    #[arg(value_name = "FIRMWARE")]
    firmware: PathBuf,
    /// The device's OTA token.
    #[arg(
        long,
        env = "OTTER_OTA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Which variant of the protocol the device speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Viper)]
    protocol: Protocol,
    /// Bytes per request (ViperHTTP's default request limit is 64 KiB).
    #[arg(long, default_value_t = 4096, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    chunk: u64,
    /// Restart the device into the new image once it is written.
    #[arg(long)]
    reboot: bool,
    /// Write and verify the image without making it the boot image.
    #[arg(long)]
    no_set_boot: bool,
    /// Replace a push already in progress on the device.
    #[arg(long)]
    force: bool,
    /// The image's signed release manifest (`otter release sign`), which a device with a root
    /// of trust requires; sent base64-encoded in the X-OTA-Manifest header of `begin`.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
}

/// The variants of ViperHTTP's OTA protocol.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// What ViperHTTP's code does: X-OTA-Token, /ota/chunk?offset=N, resumable.
    Viper,
    /// What ViperHTTP's docs describe: a bearer token, /ota/write, finalize with the SHA-256.
    ViperDoc,
}

impl PushArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        if !matches!(self.device.scheme(), "http" | "https") || self.device.cannot_be_a_base() {
            anyhow::bail!(
                "invalid device URL {}: expected http:// or https://",
                self.device
            );
        }
        let progress = progress_bar();
        let image = hash_file(&self.firmware, &progress).await?;
        if image.size == 0 {
            anyhow::bail!("{} is empty", image.path.display());
        }
        let manifest = match &self.manifest {
            Some(path) => Some(read_manifest(path)?),
            None => None,
        };
        let device = Device {
            manifest,
            http: reqwest::Client::builder()
                .user_agent(concat!("otter/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            base: self.device.clone(),
            token: self.token.clone(),
            protocol: self.protocol,
        };
        let push = Push {
            device: &device,
            image: &image,
            chunk: self.chunk,
            set_boot: !self.no_set_boot,
            reboot: self.reboot,
            force: self.force,
            progress: &progress,
        };
        let result = match self.protocol {
            Protocol::Viper => push.viper().await,
            Protocol::ViperDoc => push.viper_doc().await,
        };
        progress.finish_and_clear();
        let Some(result) = result? else {
            println!(
                "pushed {} to {}: {} ({} bytes), sha256 {}; the device dropped the connection \
                 to reboot before confirming",
                image.path.display(),
                self.device,
                HumanBytes(image.size),
                image.size,
                image.sha256
            );
            return Ok(());
        };
        let reported = result.get("sha256").and_then(Value::as_str);
        let matches = reported.is_some_and(|r| r.eq_ignore_ascii_case(&image.sha256));
        if result.get("ok") != Some(&Value::Bool(true)) || !matches {
            anyhow::bail!(
                "the device finalized an image with sha256 {}, but {} has sha256 {}",
                reported.unwrap_or("(none)"),
                image.path.display(),
                image.sha256
            );
        }
        println!(
            "pushed {} to {}: {} ({} bytes), sha256 {}{}{}",
            image.path.display(),
            self.device,
            HumanBytes(image.size),
            image.size,
            image.sha256,
            if self.no_set_boot {
                ""
            } else {
                "; set to boot"
            },
            if self.reboot { "; rebooting" } else { "" }
        );
        Ok(())
    }
}

/// A signed manifest file, base64-encoded for the X-OTA-Manifest header. Manifests are small;
/// a file over 1 MiB is not one.
fn read_manifest(path: &std::path::Path) -> anyhow::Result<String> {
    use base64::Engine;
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if text.len() > 1 << 20 {
        anyhow::bail!("{} is too large to be a release manifest", path.display());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

/// Why a request to the device failed.
#[derive(Debug, thiserror::Error)]
enum DeviceError {
    /// The device answered with an error: its `detail`, or the status when it sent none.
    #[error("the device refused: {detail} (HTTP {})", status.as_u16())]
    Refused { status: StatusCode, detail: String },
    /// The connection failed or broke, or the device did not answer in time.
    #[error("{0}")]
    Transport(String),
    #[error("unexpected answer from the device: {0}")]
    BadResponse(String),
}

impl DeviceError {
    /// Whether the same request may work a little later. A device's 500 is a write failure,
    /// not a hiccup; gateway errors come from something in between.
    fn is_transient(&self) -> bool {
        match self {
            DeviceError::Transport(_) => true,
            DeviceError::Refused { status, .. } => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            DeviceError::BadResponse(_) => false,
        }
    }

    fn is_offset_mismatch(&self) -> bool {
        matches!(self, DeviceError::Refused { status: StatusCode::CONFLICT, detail }
            if detail.starts_with("offset mismatch"))
    }
}

/// A device's OTA endpoint.
struct Device {
    /// The signed manifest to send with `begin`, base64-encoded.
    manifest: Option<String>,
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    protocol: Protocol,
}

impl Device {
    fn url(&self, route: &str) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("run accepts only URLs that can be a base")
            .pop_if_empty()
            .extend(["ota", route]);
        url
    }

    fn request(&self, method: reqwest::Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match (&self.token, self.protocol) {
            (None, _) => request,
            (Some(token), Protocol::Viper) => request.header("X-OTA-Token", token),
            (Some(token), Protocol::ViperDoc) => request.bearer_auth(token),
        }
    }

    fn post(&self, route: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, self.url(route))
    }

    /// `POST /ota/begin`, with the signed manifest when there is one.
    fn begin(&self) -> RequestBuilder {
        let request = self.post("begin");
        match &self.manifest {
            Some(manifest) => request.header("X-OTA-Manifest", manifest),
            None => request,
        }
    }

    async fn status(&self) -> Result<Value, DeviceError> {
        let request = self.request(reqwest::Method::GET, self.url("status"));
        self.send(request.timeout(CHUNK_TIMEOUT)).await
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, DeviceError> {
        let transport = |e: reqwest::Error| DeviceError::Transport(root_cause(&e));
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        let body = serde_json::from_slice::<Value>(&bytes);
        if status.is_success() {
            return body.map_err(|e| DeviceError::BadResponse(e.to_string()));
        }
        let detail = body
            .ok()
            .and_then(|b| b.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(DeviceError::Refused { status, detail })
    }
}

/// One push of one image.
struct Push<'a> {
    device: &'a Device,
    image: &'a LocalFile,
    chunk: u64,
    set_boot: bool,
    reboot: bool,
    force: bool,
    progress: &'a ProgressBar,
}

impl Push<'_> {
    /// The code's variant. Returns the finalize result, or `None` when the device dropped the
    /// connection to reboot.
    async fn viper(&self) -> anyhow::Result<Option<Value>> {
        let begin = json!({
            "expected_size": self.image.size,
            "expected_sha256": self.image.sha256,
            "force": self.force,
        });
        let begun = self
            .device
            .send(self.device.begin().json(&begin))
            .await
            .map_err(|e| self.begin_failed(e))?;
        let id = begun
            .pointer("/session/id")
            .and_then(Value::as_u64)
            .context("the device's answer to begin names no session")?;

        self.start_progress();
        let mut file = self.open().await?;
        let mut offset = 0;
        let mut failures = 0;
        while offset < self.image.size {
            self.progress.set_position(offset);
            let data = self.read_chunk(&mut file, offset).await?;
            let mut url = self.device.url("chunk");
            url.query_pairs_mut()
                .append_pair("offset", &offset.to_string());
            let request = self
                .device
                .request(reqwest::Method::POST, url)
                .header("content-type", "application/octet-stream")
                .timeout(CHUNK_TIMEOUT)
                .body(data);
            let err = match self.device.send(request).await {
                Ok(status) => {
                    offset = written_bytes(&status, id)?;
                    failures = 0;
                    continue;
                }
                Err(e) if e.is_transient() || e.is_offset_mismatch() => e,
                Err(e) => return Err(e.into()),
            };
            failures += 1;
            if failures > MAX_RETRIES {
                return Err(anyhow::Error::new(err).context(format!(
                    "push stopped at byte {offset} of {} after {MAX_RETRIES} retries",
                    self.image.size
                )));
            }
            let what = format!("chunk at byte {offset}: {err}");
            self.backoff(&what, failures).await;
            // A broken chunk keeps the bytes that arrived: ask how many rather than resend them.
            // If even that fails, the next chunk's offset mismatch leads back here.
            match self.device.status().await {
                Ok(status) => offset = written_bytes(&status, id)?,
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.progress.set_position(self.image.size);
        self.progress.set_message("finishing");

        let options = json!({
            "set_boot": self.set_boot,
            "reboot": self.reboot,
            "strict_size": true,
        });
        let mut failures = 0;
        loop {
            let request = self
                .device
                .post("finalize")
                .json(&options)
                .timeout(FINALIZE_TIMEOUT);
            let err = match self.device.send(request).await {
                Ok(result) => return Ok(Some(result)),
                Err(DeviceError::Transport(_)) if self.reboot => return Ok(None),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e.into()),
            };
            failures += 1;
            if failures > MAX_RETRIES {
                return Err(anyhow::Error::new(err).context("finalize failed"));
            }
            self.backoff(&format!("finalize: {err}"), failures).await;
            // The answer may be what got lost: the device keeps the last result.
            let Ok(status) = self.device.status().await else {
                continue;
            };
            if status
                .pointer("/last_result/session_id")
                .and_then(Value::as_u64)
                == Some(id)
            {
                return Ok(status.get("last_result").cloned());
            }
            written_bytes(&status, id)?;
        }
    }

    /// The documented variant: no offsets, so a failed attempt starts over.
    async fn viper_doc(&self) -> anyhow::Result<Option<Value>> {
        let mut failures = 0;
        loop {
            // Our own broken attempt may still hold the device's one session.
            let force = self.force || failures > 0;
            let err = match self.doc_attempt(force).await {
                Ok(result) => return Ok(result),
                Err(e)
                    if e.downcast_ref::<DeviceError>()
                        .is_some_and(DeviceError::is_transient) =>
                {
                    e
                }
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures > MAX_RETRIES {
                return Err(err.context(format!("push failed after {MAX_RETRIES} retries")));
            }
            // Without offsets, the device cannot say where to continue.
            self.backoff(&format!("{err:#}; starting over"), failures)
                .await;
        }
    }

    /// One attempt; a [`DeviceError`] it returns is the device's (or the network's) doing.
    async fn doc_attempt(&self, force: bool) -> anyhow::Result<Option<Value>> {
        let mut begin = json!({ "size": self.image.size });
        if force {
            begin["force"] = json!(true);
        }
        let begun = self.device.send(self.device.begin().json(&begin));
        begun.await.map_err(|e| self.begin_failed(e))?;
        self.start_progress();
        let mut file = self.open().await?;
        let mut offset = 0;
        while offset < self.image.size {
            self.progress.set_position(offset);
            let data = self.read_chunk(&mut file, offset).await?;
            let len = data.len() as u64;
            let request = self
                .device
                .post("write")
                .header("content-type", "application/octet-stream")
                .timeout(CHUNK_TIMEOUT)
                .body(data);
            self.device.send(request).await?;
            offset += len;
        }
        self.progress.set_position(self.image.size);
        self.progress.set_message("finishing");
        let finalize = json!({
            "sha256": self.image.sha256,
            "set_boot": self.set_boot,
            "reboot": self.reboot,
        });
        let request = self
            .device
            .post("finalize")
            .json(&finalize)
            .timeout(FINALIZE_TIMEOUT);
        match self.device.send(request).await {
            Ok(result) => Ok(Some(result)),
            Err(DeviceError::Transport(_)) if self.reboot => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn begin_failed(&self, e: DeviceError) -> anyhow::Error {
        let busy = matches!(&e, DeviceError::Refused { status: StatusCode::CONFLICT, detail }
            if detail == "ota session already active");
        let e = anyhow::Error::new(e);
        if busy && !self.force {
            e.context("another push is in progress on the device; --force replaces it")
        } else {
            e
        }
    }

    fn start_progress(&self) {
        self.progress.reset();
        self.progress.set_length(self.image.size);
        self.progress.set_message("pushing");
    }

    async fn backoff(&self, what: &str, failures: u32) {
        let delay = FIRST_BACKOFF * 2u32.pow(failures - 1);
        self.progress.suspend(|| {
            eprintln!(
                "warning: {what}; retrying in {:.1}s ({failures}/{MAX_RETRIES})",
                delay.as_secs_f64()
            )
        });
        tokio::time::sleep(delay).await;
    }

    async fn open(&self) -> anyhow::Result<tokio::fs::File> {
        let path = &self.image.path;
        tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))
    }

    async fn read_chunk(&self, file: &mut tokio::fs::File, offset: u64) -> anyhow::Result<Vec<u8>> {
        let len = self.chunk.min(self.image.size - offset);
        let mut data = vec![0; usize::try_from(len)?];
        let path = &self.image.path;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        file.read_exact(&mut data)
            .await
            .with_context(|| format!("cannot read {} (did it change?)", path.display()))?;
        Ok(data)
    }
}

/// How many bytes session `id` holds, from a status snapshot; an error when the device no longer
/// has that session (aborted, timed out, replaced), with the device's reason.
fn written_bytes(status: &Value, id: u64) -> anyhow::Result<u64> {
    let session = status.get("session").filter(|s| !s.is_null());
    match session {
        Some(s) if s.get("id").and_then(Value::as_u64) == Some(id) => s
            .get("written_bytes")
            .and_then(Value::as_u64)
            .context("the device's status names no written_bytes"),
        _ => {
            let why = status
                .get("last_error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            anyhow::bail!("the device ended the push session ({why})")
        }
    }
}
