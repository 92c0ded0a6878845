//! The agent (`otter-agent`, or `otter agent`): the device end for embedded Linux with two image
//! slots (A/B).
//!
//! Every start is a boot. If the previous run installed an image into the inactive slot, this
//! start first runs `--health-cmd`: success commits the new slot (reported `installed`); failure
//! counts a failed boot, and after `--max-boot-failures` the agent rolls back to the slot that
//! worked (reported `rolled_back`). Then it polls the server's check endpoint (with jitter),
//! downloads an offered image into the inactive slot (resuming with `Range` after network
//! failures), verifies length and SHA-256 — and, for products with a root of trust, the root
//! chain, the nonce-bound signed response, the release manifest and its security counter — and
//! installs it: the boot state names the new slot as pending and `--install-cmd` tells the
//! bootloader (U-Boot env, GRUB). When the offer carries a `bsdiff` or `zstd` patch from the
//! release the active slot runs, the agent downloads the patch instead, applies it from the
//! active slot into the inactive one and verifies the result as the full image; on any failure
//! it downloads the full image (`docs/deltas.md`). Every step is reported to the server. With `--mqtt-url` a
//! release announced on the broker is checked at once rather than at the next poll. With
//! `--listen` it also takes images pushed over the LAN ([`crate::receiver`]); with `--listen` and
//! no `--server` it is a push-only device that neither checks nor reports.
//!
//! The state lives in `--state DIR/state.json` ([`crate::state`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use otter_core::signing::device::{ArtifactCheck, CheckRequest, TrustState};
use otter_core::signing::documents::{ReleaseManifest, Root};
use otter_core::signing::dsse::Envelope;
use otter_core::units::{parse_duration, parse_size};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::receiver::{
    InstallError, Installer, Received, Receiver, ReceiverConfig, Refused, router,
};
use crate::state::{Download, PUSHED, Pending, SLOT_NAMES, State};

/// Run the update agent on a device.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples (`otter agent` takes the same flags):
  otter-agent --server https://ota.example.com --product gateway --device-id gw-0042 \\
      --state /var/lib/otter-agent --slots /dev/mmcblk0p2,/dev/mmcblk0p3 \\
      --install-cmd /usr/libexec/otter-set-boot-slot --health-cmd /usr/libexec/selftest
  otter-agent --once …        # one check (cron), exit
  otter-agent --listen 0.0.0.0:8080 --push-token … --state … --slots …   # push-only, no server")]
pub struct AgentArgs {
    /// The otter server; without it (and with --listen) the device only takes pushes.
    #[arg(
        long,
        env = "OTTER_SERVER",
        value_name = "URL",
        required_unless_present = "listen",
        requires = "product",
        requires = "device_id"
    )]
    server: Option<String>,
    #[arg(long, requires = "server")]
    product: Option<String>,
    #[arg(long, value_name = "ID", requires = "server")]
    device_id: Option<String>,
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Directory for the agent's state (boot state, trust state, partial downloads).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The two slots, A and B: files or block devices.
    #[arg(long, value_name = "A,B", value_delimiter = ',', required = true)]
    slots: Vec<PathBuf>,
    /// Run after every boot into a new slot; exit 0 commits it.
    #[arg(long, value_name = "CMD")]
    health_cmd: Option<String>,
    /// Run after an image is written, to make the bootloader try the slot next boot (env:
    /// OTTER_SLOT=A|B, OTTER_SLOT_PATH, OTTER_VERSION, OTTER_ACTION=install|rollback).
    #[arg(long, value_name = "CMD")]
    install_cmd: Option<String>,
    /// Failed boots of a new slot before rolling back.
    #[arg(long, default_value_t = 3)]
    max_boot_failures: u32,
    /// Seconds between checks (a random ±10% jitter spreads a fleet). A server that answers
    /// `nextCheckSeconds` (a product's poll hint) sets the next wait instead.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    interval: Duration,
    /// Check once (after the boot checks) and exit: for cron, or tests.
    #[arg(long, requires = "server")]
    once: bool,
    /// The product's root of trust, version 1 (as shipped in the image): turns on signature
    /// checks of responses, manifests and counters.
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// This device's hardware id, matched against signed manifests.
    #[arg(long, default_value = "")]
    hw_id: String,
    /// Check at once when the server announces a release on this MQTT broker (see `otter
    /// serve --mqtt-url`): mqtt[s]://[user[:password]@]host[:port].
    #[arg(
        long,
        env = "OTTER_MQTT_URL",
        value_name = "URL",
        hide_env_values = true,
        requires = "server"
    )]
    mqtt_url: Option<String>,
    /// PEM CA certificates to trust for an mqtts:// broker.
    #[arg(long, value_name = "FILE")]
    mqtt_ca_file: Option<PathBuf>,
    /// Also accept images pushed over the LAN on this address (ViperHTTP's OTA protocol, both
    /// variants; `otter push` is a client). They go through the same slot, commit and rollback
    /// path as downloaded ones. Port 0 picks a free port; the agent prints the address it
    /// listens on (`accepting pushes on ADDR`). Needs --push-token. With --root, a push must
    /// come with its signed release manifest (`otter push --manifest`) and passes the same
    /// checks as a downloaded update.
    #[arg(long, value_name = "ADDR", requires = "push_token")]
    listen: Option<std::net::SocketAddr>,
    /// The token pushers must send (`X-OTA-Token`, `?token=` or `Authorization: Bearer`):
    /// anyone on the LAN could push without one.
    #[arg(
        long,
        env = "OTTER_PUSH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        requires = "listen"
    )]
    push_token: Option<String>,
    /// The largest image a slot takes (pushes larger than this are refused).
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    slot_size: u64,
    /// The version the image in slot A runs, for a device's very first start.
    #[arg(long, default_value = "0.0.0")]
    initial_version: String,
}

/// The server a device checks with and reports to.
#[derive(Debug, Clone)]
struct Upstream {
    base: String,
    product: String,
    device_id: String,
}

impl Upstream {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/products/{}{path}",
            self.base.trim_end_matches('/'),
            self.product
        )
    }
}

struct Agent {
    args: AgentArgs,
    http: reqwest::Client,
    state: State,
    /// `None` on a push-only device (`--listen` without `--server`).
    upstream: Option<Upstream>,
    /// The wait the server asked for in its last check answer (`nextCheckSeconds`), which
    /// replaces `--interval` for the next wait.
    next_check: Option<Duration>,
}

impl AgentArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        if self.slots.len() != 2 {
            bail!("--slots takes two paths: A,B");
        }
        let upstream = match (&self.server, &self.product, &self.device_id) {
            (Some(base), Some(product), Some(device_id)) => Some(Upstream {
                base: base.clone(),
                product: product.clone(),
                device_id: device_id.clone(),
            }),
            (None, _, _) => None,
            _ => bail!("--server needs --product and --device-id"),
        };
        let state = State::load(&self.state, &self.initial_version)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("otter-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        let mut agent = Agent {
            args: self,
            http,
            state,
            upstream,
            next_check: None,
        };
        agent.boot().await?;
        let mut pushes = match agent.args.listen {
            Some(addr) => Some(agent.serve_pushes(addr).await?),
            None => None,
        };
        if agent.state.pending.is_some() && pushes.is_none() {
            // A new slot is still on trial: the next step is a reboot into it, not a check.
            println!(
                "slot {} is on trial: reboot to try it again",
                SLOT_NAMES[1 - agent.state.active]
            );
            return Ok(());
        }
        let mut notices = match (&agent.args.mqtt_url, &agent.upstream) {
            (Some(url), Some(upstream)) => {
                let settings =
                    otter_mqtt::MqttSettings::parse(url, agent.args.mqtt_ca_file.as_deref())
                        .map_err(anyhow::Error::msg)?;
                let product = &upstream.product;
                Some(otter_mqtt::subscribe(
                    settings,
                    vec![
                        format!("otter/{product}/{}/latest", agent.args.channel),
                        format!("otter/{product}/devices/{}/update", upstream.device_id),
                    ],
                ))
            }
            _ => None,
        };
        loop {
            // While a slot is on trial only pushes are taken: the next step is a reboot. A
            // push-only device has nothing to check.
            if agent.state.pending.is_none() && agent.upstream.is_some() {
                if let Err(e) = agent.check_once().await {
                    eprintln!("update check failed: {e:#}");
                    if agent.args.once {
                        return Err(e);
                    }
                }
                if agent.args.once || (agent.state.pending.is_some() && pushes.is_none()) {
                    return Ok(());
                }
            }
            let wait = agent
                .next_check
                .take()
                .unwrap_or_else(|| jittered(agent.args.interval));
            let wait = tokio::time::sleep(wait);
            tokio::select! {
                () = wait => {}
                // A notice (or the broker's retained state after a reconnection) checks now.
                Some((topic, _)) = next_notice(&mut notices) => eprintln!("notice on {topic}: checking"),
                Some(request) = next_push(&mut pushes) => {
                    if agent.handle_push(request).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn next_notice(
    notices: &mut Option<tokio::sync::mpsc::Receiver<(String, bytes::Bytes)>>,
) -> Option<(String, bytes::Bytes)> {
    match notices {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_push(
    pushes: &mut Option<tokio::sync::mpsc::Receiver<PushRequest>>,
) -> Option<PushRequest> {
    match pushes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the push receiver asks of the agent's main loop (which owns the state).
enum PushRequest {
    Install(
        Received,
        tokio::sync::oneshot::Sender<Result<(), InstallError>>,
    ),
    MarkValid(tokio::sync::oneshot::Sender<Result<(), InstallError>>),
}

/// Hands the receiver's calls to the main loop and waits for its answer.
struct PushInstaller(tokio::sync::mpsc::Sender<PushRequest>);

impl PushInstaller {
    async fn ask(
        &self,
        request: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), InstallError>>) -> PushRequest,
    ) -> Result<(), InstallError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(request(tx))
            .await
            .map_err(|_| "the agent is stopping")?;
        rx.await.map_err(|_| "the agent is stopping")?
    }
}

impl Installer for PushInstaller {
    fn install(&self, image: Received) -> BoxFuture<'_, Result<(), InstallError>> {
        Box::pin(self.ask(|tx| PushRequest::Install(image, tx)))
    }

    fn mark_valid(&self) -> BoxFuture<'_, Result<(), InstallError>> {
        Box::pin(self.ask(PushRequest::MarkValid))
    }
}

/// The wait a check answer asks for (`nextCheckSeconds`, already jittered by the server), at
/// most a week as the server's own bound. It is not signed: a man in the middle could stretch it
/// to that week, which is no more than dropping the check would do.
fn next_check(answer: &Value) -> Option<Duration> {
    let seconds = answer["nextCheckSeconds"].as_u64()?;
    let max = u64::from(otter_core::schedule::PollHint::MAX_INTERVAL);
    Some(Duration::from_secs(seconds.clamp(1, max)))
}

/// `interval` ± 10%, so a fleet started together does not check together.
fn jittered(interval: Duration) -> Duration {
    let [random] = random_bytes::<1>();
    interval.mul_f64(0.9 + f64::from(random) / 255.0 * 0.2)
}

/// `N` bytes from the OS's random number generator.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    bytes
}

/// Seconds since the Unix epoch, the clock signed responses are checked against; 0 (no clock)
/// when the clock is plainly unset (before 2024, as on a board without an RTC that booted
/// without network time), so signed server times are trusted step by step instead.
fn unix_now() -> i64 {
    const UNSET_BEFORE: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now < UNSET_BEFORE { 0 } else { now }
}

/// The most a check answer or a root document may be: metadata, read into memory to be
/// checked, so an endless answer is cut here rather than exhausting the device.
pub(crate) const MAX_METADATA: usize = 1 << 20;

/// The body of `response`, refused past [`MAX_METADATA`] bytes before it is parsed.
async fn read_metadata(mut response: reqwest::Response, what: &str) -> anyhow::Result<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_METADATA as u64)
    {
        bail!("the {what} is larger than {MAX_METADATA} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_METADATA {
            bail!("the {what} is larger than {MAX_METADATA} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What the agent acts on from a check answer: for a signed product, only what was signed.
struct Offer {
    version: String,
    sha256: String,
    size: u64,
    url: String,
    /// The verified manifest, for a signed product.
    signed: Option<ReleaseManifest>,
    /// A patch from the running release, when the server offers one this agent applies.
    delta: Option<DeltaOffer>,
}

/// A patch the server offers beside the full image (`manifest.delta`). It is not signed and
/// need not be: what it makes is checked as the full image is (length, SHA-256, signature).
struct DeltaOffer {
    from: String,
    format: otter_delta::Format,
    size: u64,
    sha256: String,
    url: String,
}

impl DeltaOffer {
    /// The offer's `delta`, if it is one this agent can apply to the release it runs: a
    /// `bsdiff` or `zstd` patch from exactly that release.
    fn usable(manifest: &Value, running: &str) -> Option<DeltaOffer> {
        let delta = manifest.get("delta")?;
        let format = delta["format"].as_str()?.parse().ok()?;
        let offer = DeltaOffer {
            from: delta["from"].as_str()?.to_owned(),
            format,
            size: delta["size"].as_u64()?,
            sha256: delta["sha256"].as_str()?.to_ascii_lowercase(),
            url: delta["url"].as_str()?.to_owned(),
        };
        let applies = matches!(
            format,
            otter_delta::Format::Bsdiff | otter_delta::Format::Zstd
        );
        (applies && offer.from == running).then_some(offer)
    }
}

impl Agent {
    /// Tells the server where the device is (a push-only device just prints it); a report that
    /// cannot be sent is logged, never fatal (the state file is the truth, the next report
    /// catches up).
    async fn report(&self, version: &str, state: &str, message: Option<String>) {
        if let Some(upstream) = &self.upstream {
            let body = json!({
                "device": upstream.device_id,
                // A pushed image has no version the server's scheme would accept: its hash
                // names it, and the server records it as the release it is, if it knows it.
                "version": version.strip_prefix(PUSHED).unwrap_or(version),
                "state": state,
                "message": message,
                "channel": self.args.channel,
            });
            let sent = self
                .http
                .post(upstream.url("/reports"))
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!("report {state} refused: {}", r.status()),
                Err(e) => eprintln!("report {state} not sent: {e}"),
            }
        }
        println!(
            "{state} {version}{}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        );
    }

    /// The boot checks: commit or roll back a pending slot.
    async fn boot(&mut self) -> anyhow::Result<()> {
        let Some(mut pending) = self.state.pending.clone() else {
            return Ok(());
        };
        let healthy = match &self.args.health_cmd {
            None => Ok(()),
            Some(cmd) => {
                run_hook(
                    cmd,
                    &[
                        ("OTTER_SLOT", SLOT_NAMES[pending.slot]),
                        ("OTTER_VERSION", &pending.version),
                    ],
                )
                .await
            }
        };
        match healthy {
            Ok(()) => self.commit(pending).await?,
            Err(why) => {
                pending.failed_boots += 1;
                if pending.failed_boots >= self.args.max_boot_failures {
                    self.state.pending = None;
                    self.state.held_back = Some(pending.version.clone());
                    self.state.save(&self.args.state)?;
                    let previous = SLOT_NAMES[self.state.active];
                    if let Some(cmd) = &self.args.install_cmd {
                        let slot_path = self.args.slots[self.state.active].display().to_string();
                        run_hook(
                            cmd,
                            &[
                                ("OTTER_SLOT", previous),
                                ("OTTER_SLOT_PATH", &slot_path),
                                ("OTTER_VERSION", &self.state.version),
                                ("OTTER_ACTION", "rollback"),
                            ],
                        )
                        .await
                        .ok();
                    }
                    self.report(
                        &pending.version,
                        "rolled_back",
                        Some(format!("health check failed {} times ({why}); back on slot {previous} running {}", pending.failed_boots, self.state.version)),
                    )
                    .await;
                } else {
                    self.state.pending = Some(pending.clone());
                    self.state.save(&self.args.state)?;
                    self.report(
                        &pending.version,
                        "failed",
                        Some(format!(
                            "health check failed (boot {} of {}): {why}",
                            pending.failed_boots, self.args.max_boot_failures
                        )),
                    )
                    .await;
                }
            }
        }
        Ok(())
    }

    /// The pending slot works: it becomes the active one.
    async fn commit(&mut self, pending: Pending) -> anyhow::Result<()> {
        self.state.active = pending.slot;
        self.state.version = pending.version.clone();
        self.state.sha256 = Some(pending.sha256.clone());
        self.state.size = pending.size;
        self.state.security_counter = self.state.security_counter.max(pending.security_counter);
        self.state.pending = None;
        self.state.save(&self.args.state)?;
        self.report(
            &pending.version,
            "installed",
            Some(format!("slot {}", SLOT_NAMES[pending.slot])),
        )
        .await;
        Ok(())
    }

    /// One check; downloads, verifies and installs an offered update.
    async fn check_once(&mut self) -> anyhow::Result<()> {
        let Some(upstream) = self.upstream.clone() else {
            return Ok(());
        };
        let nonce = hex::encode(random_bytes::<16>());
        // A pushed image is known by its hash: the server may know it (a published image) or
        // not (then it offers its newest release, which is its policy for the device).
        let current = match &self.state.sha256 {
            Some(sha) if self.state.version.starts_with(PUSHED) => sha.clone(),
            _ => self.state.version.clone(),
        };
        let mut url = reqwest::Url::parse(&upstream.url("/check"))?;
        url.query_pairs_mut()
            .append_pair("current", &current)
            .append_pair("device", &upstream.device_id)
            .append_pair("channel", &self.args.channel)
            .append_pair("nonce", &nonce);
        let response = self.http.get(url).send().await?.error_for_status()?;
        let answer: Value = serde_json::from_slice(&read_metadata(response, "check answer").await?)
            .context("the check answer is not JSON")?;
        self.next_check = next_check(&answer);
        let channel = self.args.channel.clone();
        let request = CheckRequest {
            nonce: &nonce,
            device: &upstream.device_id,
            current: Some(&current),
            channel: &channel,
        };
        let Some(offer) = self.read_offer(&upstream, &answer, &request).await? else {
            return Ok(());
        };
        let Offer {
            version,
            sha256,
            size,
            url: download_url,
            signed,
            delta,
        } = offer;
        if self.state.held_back.as_deref() == Some(version.as_str()) {
            println!("holding back {version}: it rolled back on this device");
            return Ok(());
        }
        let target = 1 - self.state.active;
        let patch = delta.as_ref().map_or_else(String::new, |d| {
            format!(" from a {} delta of {} bytes", d.format, d.size)
        });
        self.report(
            &version,
            "downloading",
            Some(format!(
                "{size} bytes into slot {}{patch}",
                SLOT_NAMES[target]
            )),
        )
        .await;
        let job = Download {
            version: version.clone(),
            sha256,
            size,
        };
        // A patch first, when one is offered from what runs; on any failure, the full image.
        let mut fell_back = None;
        if let Some(delta) = &delta {
            match self.apply_delta(delta, target, &job, signed.as_ref()).await {
                Ok(()) => {
                    let how = format!(
                        "{} delta from {} ({} of {size} bytes downloaded)",
                        delta.format, delta.from, delta.size
                    );
                    return self.downloaded(target, job, signed, how).await;
                }
                Err(e) => {
                    eprintln!(
                        "the {} delta failed ({e:#}); downloading the full image",
                        delta.format
                    );
                    clear_slot(&self.args.slots[target]).await;
                    fell_back = Some(format!("{e:#}"));
                }
            }
        }
        let slot = self.args.slots[target].clone();
        if let Err(e) = self.download(&download_url, &slot, &job).await {
            self.report(&version, "failed", Some(format!("download: {e:#}")))
                .await;
            return Err(e);
        }
        if let Err(e) = verify_slot(&slot, &job, signed.as_ref()).await {
            self.report(&version, "failed", Some(format!("verification: {e:#}")))
                .await;
            self.state.download = None;
            self.state.save(&self.args.state)?;
            clear_slot(&slot).await;
            return Err(e);
        }
        let how = match (&delta, fell_back) {
            (Some(delta), Some(why)) => {
                format!(
                    "full image ({size} bytes); the {} delta failed: {why}",
                    delta.format
                )
            }
            _ => format!("full image ({size} bytes)"),
        };
        self.downloaded(target, job, signed, how).await
    }

    /// A verified image is in slot `target`: reports how it came (`how`) and installs it.
    async fn downloaded(
        &mut self,
        target: usize,
        job: Download,
        signed: Option<ReleaseManifest>,
        how: String,
    ) -> anyhow::Result<()> {
        self.report(&job.version, "downloaded", Some(how)).await;
        self.state.download = None;
        let counter = signed.map_or(0, |m| m.security_counter);
        self.install(target, &job.version, job.sha256, job.size, counter)
            .await
    }

    /// Downloads the patch `delta` (resuming like an image), applies it to the image in the
    /// active slot, writes the result into slot `target` and verifies it as the full image
    /// `job` (and, for a signed product, against its manifest). Memory holds the base, the patch
    /// and the result at once: three images' worth at most.
    async fn apply_delta(
        &mut self,
        delta: &DeltaOffer,
        target: usize,
        job: &Download,
        signed: Option<&ReleaseManifest>,
    ) -> anyhow::Result<()> {
        if delta.size >= job.size {
            bail!("the patch is not smaller than the image");
        }
        let patch_path = self.args.state.join("delta.patch");
        let patch_job = Download {
            version: format!("{}+delta-from-{}", job.version, delta.from),
            sha256: delta.sha256.clone(),
            size: delta.size,
        };
        self.download(&delta.url, &patch_path, &patch_job).await?;
        let patch = tokio::fs::read(&patch_path).await?;
        tokio::fs::remove_file(&patch_path).await.ok();
        if hex::encode(Sha256::digest(&patch)) != delta.sha256 {
            bail!("the patch's SHA-256 is not the one offered");
        }
        let base = self.active_image().await?;
        let (format, max_len) = (delta.format, job.size);
        let image =
            tokio::task::spawn_blocking(move || otter_delta::apply(format, &base, &patch, max_len))
                .await??;
        let slot = &self.args.slots[target];
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(slot)
            .await?;
        file.write_all(&image).await?;
        if file.metadata().await?.is_file() {
            file.set_len(image.len() as u64).await?;
        }
        file.sync_all().await?;
        verify_slot(slot, job, signed).await
    }

    /// The image the active slot runs, checked against its SHA-256 when the agent knows it (an
    /// image it installed): a patch applied to anything else makes garbage.
    async fn active_image(&self) -> anyhow::Result<Vec<u8>> {
        let mut image = tokio::fs::read(&self.args.slots[self.state.active]).await?;
        if let Some(size) = self.state.size {
            image.truncate(usize::try_from(size)?);
        }
        if let Some(sha256) = &self.state.sha256
            && hex::encode(Sha256::digest(&image)) != sha256.to_ascii_lowercase()
        {
            bail!("the active slot does not hold the image the agent installed");
        }
        Ok(image)
    }

    /// What a check answer offers, if anything. For a product with a root every answer is
    /// verified, "no update" too, and only its signed parts are used.
    async fn read_offer(
        &mut self,
        upstream: &Upstream,
        answer: &Value,
        request: &CheckRequest<'_>,
    ) -> anyhow::Result<Option<Offer>> {
        let Some((mut trust, document)) = self.trust_state()? else {
            if answer["hasUpdate"] != true {
                return Ok(None);
            }
            let manifest = &answer["manifest"];
            let text = |field: &str| {
                manifest[field]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("no {field} in the offer"))
            };
            return Ok(Some(Offer {
                version: text("version")?,
                sha256: text("sha256")?,
                size: manifest["size"].as_u64().context("no size in the offer")?,
                url: text("url")?,
                signed: None,
                delta: DeltaOffer::usable(manifest, &self.state.version),
            }));
        };
        let newest = self.walk_roots(upstream, &mut trust, document).await?;
        let response_env: Envelope = serde_json::from_value(answer["signedResponse"].clone())
            .context("the server did not sign its answer")?;
        let response = trust.check_response(&response_env, request, unix_now())?;
        // The answer is genuine: what it taught (the newest root, the time) is kept even when
        // there is nothing to install.
        self.state.root = Some(newest);
        self.state.root_pin = self.pinned_root()?.map(|(_, pin)| pin);
        self.state.trusted_time = trust.trusted_time;
        self.state.save(&self.args.state)?;
        if response.action != "install" {
            if answer["hasUpdate"] == true {
                bail!("the answer offers an update its signed response does not");
            }
            return Ok(None);
        }
        let manifest_env: Envelope = serde_json::from_value(answer["releaseManifest"].clone())
            .context("no signed manifest with the offer")?;
        let manifest = trust.check_manifest(&manifest_env, &response, &self.args.hw_id)?;
        Ok(Some(Offer {
            version: manifest.version.clone(),
            sha256: manifest.artifact.sha256.to_ascii_lowercase(),
            size: manifest.artifact.length,
            url: response
                .download_url
                .context("the signed response names no download")?,
            signed: Some(manifest),
            delta: DeltaOffer::usable(&answer["manifest"], &self.state.version),
        }))
    }

    /// Makes the image now in slot `target` the one to try at the next boot: the install hook,
    /// then the pending state.
    async fn install(
        &mut self,
        target: usize,
        version: &str,
        sha256: String,
        size: u64,
        security_counter: u32,
    ) -> anyhow::Result<()> {
        self.report(
            version,
            "installing",
            Some(format!("slot {}", SLOT_NAMES[target])),
        )
        .await;
        if let Some(cmd) = &self.args.install_cmd {
            let slot_path = self.args.slots[target].display().to_string();
            let env = [
                ("OTTER_SLOT", SLOT_NAMES[target]),
                ("OTTER_SLOT_PATH", slot_path.as_str()),
                ("OTTER_VERSION", version),
                ("OTTER_ACTION", "install"),
            ];
            if let Err(e) = run_hook(cmd, &env).await {
                self.report(version, "failed", Some(format!("install command: {e}")))
                    .await;
                bail!("install command failed: {e}");
            }
        }
        self.state.pending = Some(Pending {
            slot: target,
            version: version.to_owned(),
            sha256,
            size: Some(size),
            security_counter,
            failed_boots: 0,
        });
        self.state.save(&self.args.state)?;
        println!(
            "installed {version} into slot {}: reboot to boot it",
            SLOT_NAMES[target]
        );
        Ok(())
    }

    /// Serves the push protocol on `addr`, writing into the inactive slot.
    async fn serve_pushes(
        &self,
        addr: std::net::SocketAddr,
    ) -> anyhow::Result<tokio::sync::mpsc::Receiver<PushRequest>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut config = ReceiverConfig::new(
            self.args.slots[1 - self.state.active].clone(),
            self.args.slot_size,
        );
        config.token = self.args.push_token.clone();
        config.signed_only = self.args.root.is_some();
        let receiver = std::sync::Arc::new(Receiver::new(
            config,
            std::sync::Arc::new(PushInstaller(tx)),
        ));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        println!("accepting pushes on {}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router(receiver)).await {
                eprintln!("push receiver stopped: {e}");
            }
        });
        Ok(rx)
    }

    /// Answers one request of the push receiver; true when the agent should now exit (the
    /// pusher asked for a reboot into the new slot).
    async fn handle_push(&mut self, request: PushRequest) -> bool {
        match request {
            PushRequest::Install(image, reply) => {
                let reboot = image.reboot;
                let done = self.install_pushed(image).await;
                let ok = done.is_ok();
                let _ = reply.send(done);
                if ok && reboot {
                    // Let the pusher hear the answer before "rebooting".
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return true;
                }
                false
            }
            PushRequest::MarkValid(reply) => {
                let done = match self.state.pending.clone() {
                    Some(pending) => self
                        .commit(pending)
                        .await
                        .map_err(|e| format!("{e:#}").into()),
                    None => Ok(()),
                };
                let _ = reply.send(done);
                false
            }
        }
    }

    /// An image pushed over the LAN (`--listen`): installed like a downloaded one. Without a
    /// root its version is not known, so it is named by its hash; with one it must come with
    /// its signed manifest and pass the checks a downloaded image passes (else it is
    /// [`Refused`] and cleared from the slot).
    async fn install_pushed(&mut self, image: Received) -> Result<(), InstallError> {
        let target = 1 - self.state.active;
        let failed = |e: anyhow::Error| -> InstallError { format!("{e:#}").into() };
        let (version, counter) = match self.trust_state().map_err(failed)? {
            None => (
                format!("{PUSHED}{}", image.sha256),
                self.state.security_counter,
            ),
            Some((trust, _)) => match self.check_pushed(&trust, &image).await {
                Ok(manifest) => (manifest.version, manifest.security_counter),
                Err(e) => {
                    clear_slot(&image.path).await;
                    eprintln!("refused a pushed image: {e:#}");
                    return Err(Box::new(Refused(format!("{e:#}"))));
                }
            },
        };
        self.install(target, &version, image.sha256, image.size, counter)
            .await
            .map_err(failed)
    }

    /// The checks a pushed image passes on a device with a root: its manifest (root, release
    /// keys, product, channel, hardware, expiry, counter), then its length and SHA-256.
    async fn check_pushed(
        &self,
        trust: &TrustState,
        image: &Received,
    ) -> anyhow::Result<ReleaseManifest> {
        let text = image
            .manifest
            .as_deref()
            .context("the image came without its signed manifest")?;
        if text.len() > MAX_METADATA {
            bail!("the manifest is larger than {MAX_METADATA} bytes");
        }
        let manifest = trust.check_pushed_manifest(
            &Envelope::parse(text.as_bytes())?,
            &self.args.channel,
            &self.args.hw_id,
            unix_now(),
        )?;
        if manifest.artifact.length != image.size {
            bail!(
                "the image is {} bytes, its manifest says {}",
                image.size,
                manifest.artifact.length
            );
        }
        let job = Download {
            version: manifest.version.clone(),
            sha256: manifest.artifact.sha256.clone(),
            size: manifest.artifact.length,
        };
        verify_slot(&image.path, &job, Some(&manifest)).await?;
        Ok(manifest)
    }

    /// The device's trust: the newest root it verified (or the pinned `--root`), its counter and
    /// trusted time, with that root's document. `None` for a device without a root (unsigned
    /// products).
    fn trust_state(&self) -> anyhow::Result<Option<(TrustState, String)>> {
        let document = match (&self.state.root, self.pinned_root()?) {
            (Some(_), Some((pinned, pin))) if self.state.root_pin.as_ref() != Some(&pin) => pinned,
            (Some(stored), _) => stored.clone(),
            (None, Some((pinned, _))) => pinned,
            (None, None) => return Ok(None),
        };
        let envelope = Envelope::parse(document.as_bytes())?;
        let root = Root::open_first(&envelope).or_else(|_| -> anyhow::Result<Root> {
            // A stored newest root: its payload is trusted (it was verified when stored).
            Ok(serde_json::from_slice(&envelope.payload_bytes()?)?)
        })?;
        let trust = TrustState {
            root,
            security_counter: self.state.security_counter,
            trusted_time: self.state.trusted_time,
        };
        Ok(Some((trust, document)))
    }

    /// The pinned `--root` document and its SHA-256, if one is given.
    fn pinned_root(&self) -> anyhow::Result<Option<(String, String)>> {
        let Some(path) = &self.args.root else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let pin = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(Some((text, pin)))
    }

    /// Walks `trust` from the root in `document` to the newest root the server has; returns
    /// that root's document.
    async fn walk_roots(
        &self,
        upstream: &Upstream,
        trust: &mut TrustState,
        mut document: String,
    ) -> anyhow::Result<String> {
        loop {
            let next = trust.root.version + 1;
            let resp = self
                .http
                .get(upstream.url(&format!("/root/{next}.json")))
                .send()
                .await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(document);
            }
            let text = read_metadata(resp.error_for_status()?, "root document").await?;
            trust.update_root(&Envelope::parse(&text)?)?;
            document = String::from_utf8(text).context("the root document is not UTF-8")?;
        }
    }

    /// Downloads into `path` (a slot, or a patch file), resuming a partial download of the same
    /// bytes with `Range`.
    async fn download(&mut self, url: &str, path: &Path, job: &Download) -> anyhow::Result<()> {
        let path = path.to_owned();
        let mut written = match &self.state.download {
            Some(d) if d == job => std::fs::metadata(&path)
                .map(|m| m.len().min(job.size))
                .unwrap_or(0),
            _ => 0,
        };
        self.state.download = Some(job.clone());
        self.state.save(&self.args.state)?;
        let mut failures = 0;
        while written < job.size {
            match self.fetch(url, &path, written, job.size).await {
                Ok(n) => written = n,
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(e.context(format!("giving up after {failures} attempts")));
                    }
                    written = std::fs::metadata(&path)
                        .map(|m| m.len().min(job.size))
                        .unwrap_or(written);
                    eprintln!("download interrupted at {written} bytes ({e:#}); resuming");
                    tokio::time::sleep(Duration::from_millis(200 * failures)).await;
                }
            }
        }
        Ok(())
    }

    /// One request from `from`; returns the bytes written so far.
    async fn fetch(&self, url: &str, path: &Path, from: u64, size: u64) -> anyhow::Result<u64> {
        let mut request = self.http.get(url);
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let mut response = request.send().await?.error_for_status()?;
        let mut at = match response.status() {
            reqwest::StatusCode::PARTIAL_CONTENT => from,
            _ => 0,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .await?;
        file.seek(std::io::SeekFrom::Start(at)).await?;
        while let Some(chunk) = response.chunk().await? {
            // Endless data: never write past the offered size.
            if at + chunk.len() as u64 > size {
                bail!("the server sent more than the {size} bytes offered");
            }
            file.write_all(&chunk).await?;
            at += chunk.len() as u64;
        }
        file.sync_all().await?;
        if at < size {
            bail!("the download ended at {at} of {size} bytes");
        }
        // A slot that is a file ends with the image; a block device keeps its size.
        if file.metadata().await?.is_file() {
            file.set_len(size).await?;
        }
        Ok(at)
    }
}

/// Empties a slot that holds an image the agent refused, so nothing it refused stays on the
/// device to be booted by mistake. A slot that is a block device is left as it is (it is
/// never made the boot slot without a verified image).
async fn clear_slot(path: &Path) {
    if let Ok(file) = tokio::fs::OpenOptions::new().write(true).open(path).await
        && file.metadata().await.is_ok_and(|m| m.is_file())
        && let Err(e) = file.set_len(0).await
    {
        eprintln!("could not clear {}: {e}", path.display());
    }
}

/// Checks the first `job.size` bytes of the slot: SHA-256, and the signed manifest's checks.
async fn verify_slot(
    path: &Path,
    job: &Download,
    signed: Option<&ReleaseManifest>,
) -> anyhow::Result<()> {
    let path = path.to_owned();
    let job = job.clone();
    let signed = signed.cloned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?.take(job.size);
        let mut hasher = Sha256::new();
        let mut check = signed.as_ref().map(ArtifactCheck::new);
        let mut buf = vec![0; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Some(check) = &mut check {
                check.update(&buf[..n])?;
            }
            total += n as u64;
        }
        if total != job.size {
            bail!("the slot holds {total} of {} bytes", job.size);
        }
        if hex::encode(hasher.finalize()) != job.sha256.to_ascii_lowercase() {
            bail!("SHA-256 mismatch");
        }
        if let Some(check) = check {
            check.finish()?;
        }
        Ok(())
    })
    .await?
}

/// Runs a hook through `sh -c` with extra environment; Err carries its exit status.
async fn run_hook(cmd: &str, env: &[(&str, &str)]) -> Result<(), String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().copied())
        .status()
        .await
        .map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} exited with {status}"))
    }
}
