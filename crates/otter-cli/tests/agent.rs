//! `otter agent` as real processes against a real `otter serve`: an update into the other slot,
//! a healthy boot that commits it, an unhealthy one that rolls back after the allowed failures
//! (and the server listing the rollback), a download cut by a proxy that resumes, an MQTT
//! wake-up, pushes over the LAN, a push-only device without a server, and delta updates (a patch
//! applied from the active slot, and the fall back to the full image).
//!
//! Every process binds port 0 itself and the test reads the address it prints, so no port is
//! ever picked by one process and bound by another.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use otter_core::signing::documents::RESPONSE_TYPE;
use otter_core::signing::dsse::Envelope;
use otter_core::signing::keys::PrivateKey;
use otter_testkit::process::Watched;
use otter_testkit::proxy::{CuttingProxy, Direction};
use otter_testkit::relay::{Asked, Move, Relay};
use otter_testkit::serve::{Serve, command};
use serde_json::Value;

const OTTER: &str = env!("CARGO_BIN_EXE_otter");
const TOKEN: &str = "agent-test-token-0123456789abcdef0123456789";
/// How long a process may take to start listening, or to finish what the test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// `otter serve` (the testkit's one harness) with a known admin token; killed when dropped.
fn serve(dir: &Path, extra: &[&str]) -> Serve {
    Serve::builder(OTTER)
        .data(dir.join("server"))
        .admin_token(TOKEN)
        .args(extra)
        .start()
}

/// The address `server` listens on.
fn addr(server: &Serve) -> SocketAddr {
    server
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// The address in the agent's line `accepting pushes on ADDR`.
fn pushes_addr(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("accepting pushes on ")?.parse().ok()
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + u32::from(seed)) as u8)
        .collect()
}

/// One agent run (a boot); returns (success, stdout + stderr).
fn agent(server: &str, dir: &Path, extra: &[&str]) -> (bool, String) {
    agent_running("0.9.0", server, dir, extra)
}

/// [`agent`] for a device whose first start runs `initial_version` in slot A.
fn agent_running(
    initial_version: &str,
    server: &str,
    dir: &Path,
    extra: &[&str],
) -> (bool, String) {
    let slots = format!(
        "{},{}",
        dir.join("slot-a").display(),
        dir.join("slot-b").display()
    );
    let out = Command::new(OTTER)
        .args([
            "agent",
            "--server",
            server,
            "--product",
            "gateway",
            "--device-id",
            "gw-1",
            "--once",
            "--initial-version",
            initial_version,
        ])
        .arg("--state")
        .arg(dir.join("agent-state"))
        .args([OsStr::new("--slots"), OsStr::new(&slots)])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A daemon agent that also takes pushes (token `s3cret`) on a port it picks; `server` `None`
/// makes it a push-only device; `extra` are more arguments. Returns it and the address it
/// listens on.
fn listening_agent(server: Option<&str>, dir: &Path, extra: &[&str]) -> (Watched, SocketAddr) {
    let slots = format!(
        "{},{}",
        dir.join("slot-a").display(),
        dir.join("slot-b").display()
    );
    let mut command = Command::new(OTTER);
    command.arg("agent").env_remove("OTTER_SERVER");
    if let Some(server) = server {
        command.args([
            "--server",
            server,
            "--product",
            "gateway",
            "--device-id",
            "gw-1",
        ]);
    }
    command
        .args([
            "--interval",
            "1h",
            "--slots",
            &slots,
            "--push-token",
            "s3cret",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .arg("--state")
        .arg(dir.join("agent-state"));
    let process = Watched::spawn(command);
    let addr = process.wait_for_line("the agent's push address", PATIENCE, pushes_addr);
    (process, addr)
}

/// A daemon agent (slot A holding an image, `extra` arguments) that would not check again for
/// an hour by its own schedule; returned once its start-up check reached `server`.
fn hourly_agent(server: &Serve, dir: &Path, extra: &[&str]) -> Watched {
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let slots = format!(
        "{},{}",
        dir.join("slot-a").display(),
        dir.join("slot-b").display()
    );
    let mut command = Command::new(OTTER);
    command
        .args([
            "agent",
            "--server",
            server.url(),
            "--product",
            "gateway",
            "--device-id",
            "gw-1",
            "--interval",
            "1h",
            "--slots",
            &slots,
        ])
        .args(extra)
        .arg("--state")
        .arg(dir.join("agent-state"));
    let agent = Watched::spawn(command);
    // Its start-up check is done when the server has seen the device.
    otter_testkit::wait::wait_until(PATIENCE, "the agent's start-up check", || {
        let devices = server.admin(&["device", "list", "gateway", "--json"]);
        if devices.contains("\"gw-1\"") {
            Ok(())
        } else {
            Err(format!("devices: {devices}; agent: {}", agent.output()))
        }
    });
    agent
}

fn state(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("agent-state/state.json")).unwrap()).unwrap()
}

fn publish(server: &Serve, dir: &Path, version: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(format!("gateway-{version}.bin"));
    std::fs::write(&path, bytes).unwrap();
    server.admin(&[
        "release",
        "publish",
        "gateway",
        path.to_str().unwrap(),
        "--version",
        version,
    ]);
    path
}

#[test]
fn update_commit_then_rollback_after_failed_health_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let v1 = image(1, 300_000);
    publish(&server, dir, "1.0.0", &v1);

    // Check: 1.0.0 goes into slot B, pending a reboot; the install hook sees the slot.
    let hook_log = dir.join("hook.log");
    let hook = format!(
        "echo \"$OTTER_ACTION $OTTER_SLOT $OTTER_VERSION\" >> {}",
        hook_log.display()
    );
    let (ok, out) = agent(server.url(), dir, &["--install-cmd", &hook]);
    assert!(ok, "{out}");
    assert!(out.contains("installed 1.0.0 into slot B"), "{out}");
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), v1);
    assert_eq!(state(dir)["pending"]["version"], "1.0.0");
    assert_eq!(
        std::fs::read_to_string(&hook_log).unwrap(),
        "install B 1.0.0\n"
    );

    // Reboot into B, healthy: committed.
    let (ok, out) = agent(server.url(), dir, &["--health-cmd", "true"]);
    assert!(ok, "{out}");
    let s = state(dir);
    assert_eq!(
        (s["active"].as_u64(), s["version"].as_str()),
        (Some(1), Some("1.0.0"))
    );
    assert!(s["pending"].is_null());

    // 1.1.0 goes into slot A; its boots fail the health check twice: back to B and 1.0.0.
    let v2 = image(2, 200_000);
    publish(&server, dir, "1.1.0", &v2);
    let (ok, out) = agent(server.url(), dir, &["--install-cmd", &hook]);
    assert!(ok && out.contains("installed 1.1.0 into slot A"), "{out}");
    let unhealthy = [
        "--health-cmd",
        "exit 3",
        "--max-boot-failures",
        "2",
        "--install-cmd",
        &hook,
    ];
    let (_, out) = agent(server.url(), dir, &unhealthy);
    assert!(
        out.contains("failed 1.1.0: health check failed (boot 1 of 2)"),
        "{out}"
    );
    assert_eq!(state(dir)["pending"]["failed_boots"], 1);
    let (_, out) = agent(server.url(), dir, &unhealthy);
    assert!(out.contains("rolled_back 1.1.0"), "{out}");
    let s = state(dir);
    assert_eq!(
        (s["active"].as_u64(), s["version"].as_str()),
        (Some(1), Some("1.0.0"))
    );
    assert!(
        std::fs::read_to_string(&hook_log)
            .unwrap()
            .ends_with("rollback B 1.0.0\n")
    );
    // The release that failed is not tried again.
    let (ok, out) = agent(server.url(), dir, &[]);
    assert!(ok && out.contains("holding back 1.1.0"), "{out}");
    assert!(state(dir)["pending"].is_null());

    // The server saw every step.
    let reports = server.admin(&["report", "list", "gateway", "--json"]);
    let reports: Vec<Value> = serde_json::from_str(&reports).unwrap();
    let states: Vec<(&str, &str)> = reports
        .iter()
        .rev()
        .map(|r| (r["version"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    for expected in [
        ("1.0.0", "downloading"),
        ("1.0.0", "downloaded"),
        ("1.0.0", "installing"),
        ("1.0.0", "installed"),
        ("1.1.0", "failed"),
        ("1.1.0", "rolled_back"),
    ] {
        assert!(states.contains(&expected), "{expected:?} not in {states:?}");
    }
    let rolled = reports
        .iter()
        .find(|r| r["state"] == "rolled_back")
        .unwrap();
    assert!(
        rolled["message"]
            .as_str()
            .unwrap()
            .contains("back on slot B"),
        "{rolled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_midway_resumes_with_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let server = serve(&dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let v1 = image(7, 3 * 1024 * 1024);
    publish(&server, &dir, "1.0.0", &v1);
    // Only the download carries that much towards the client.
    let proxy = CuttingProxy::start(addr(&server), Direction::Download, 700_000).await;
    let url = format!("http://{}", proxy.addr());
    let (ok, out) = tokio::task::spawn_blocking(move || agent(&url, &dir, &[]))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(proxy.has_cut(), "{out}");
    assert!(
        out.contains("download interrupted at"),
        "the proxy cut it: {out}"
    );
    assert!(out.contains("installed 1.0.0 into slot B"), "{out}");
    assert_eq!(std::fs::read(tmp.path().join("slot-b")).unwrap(), v1);
}

#[test]
fn an_mqtt_notice_makes_the_agent_check_at_once() {
    let Some(broker) = otter_testkit::mosquitto::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &["--mqtt-url", &broker.url()]);
    server.admin(&["product", "create", "gateway"]);
    let mut agent = hourly_agent(&server, dir, &["--mqtt-url", &broker.url()]);
    let v1 = image(9, 50_000);
    publish(&server, dir, "1.0.0", &v1);
    // It installs and exits to be rebooted, long before the hour is up…
    let status = agent.wait(PATIENCE);
    let out = agent.output();
    assert!(status.success(), "{out}");
    // …because of the notice: the download came after it.
    let notice = out.find("notice on otter/gateway/").expect(&out);
    let download = out.find("downloading 1.0.0").expect(&out);
    assert!(notice < download, "{out}");
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), v1);
}

/// The real agent under a rollout: left out until tagged into the canary stage, then installing
/// the release; its rollback is a failure that pauses the rollout by itself.
#[test]
fn a_rollback_on_a_canary_device_pauses_the_rollout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    publish(&server, dir, "1.0.0", &image(1, 100_000));
    let (ok, out) = agent(server.url(), dir, &[]);
    assert!(ok && out.contains("installed 1.0.0"), "{out}");
    let (ok, out) = agent(server.url(), dir, &["--health-cmd", "true"]);
    assert!(ok, "{out}");
    assert_eq!(state(dir)["version"], "1.0.0");

    let created = server.admin(&[
        "rollout",
        "create",
        "gateway",
        "1.1.0",
        "--stage",
        "tag=canary",
        "--stage",
        "100%",
        "--pause-failures",
        "1",
    ]);
    let id = created
        .split_whitespace()
        .find_map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("a rollout id in {created:?}"));
    publish(&server, dir, "1.1.0", &image(2, 100_000));
    // Not in the canary stage: nothing to install.
    let (ok, out) = agent(server.url(), dir, &[]);
    assert!(ok && !out.contains("installed 1.1.0"), "{out}");
    assert!(state(dir)["pending"].is_null());

    server.admin(&["device", "tag", "gateway", "canary", "gw-1"]);
    let (ok, out) = agent(server.url(), dir, &[]);
    assert!(ok && out.contains("installed 1.1.0 into slot A"), "{out}");
    let unhealthy = ["--health-cmd", "exit 3", "--max-boot-failures", "1"];
    let (_, out) = agent(server.url(), dir, &unhealthy);
    assert!(out.contains("rolled_back 1.1.0"), "{out}");
    assert_eq!(state(dir)["version"], "1.0.0");

    let shown = server.admin(&["rollout", "show", "gateway", &id.to_string()]);
    assert!(shown.contains("paused"), "{shown}");
    let device = server.admin(&["device", "show", "gateway", "gw-1"]);
    assert!(device.contains("\"failed\""), "{device}");
}

#[test]
fn the_agent_waits_as_long_as_the_server_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    let shown = server.admin(&[
        "product",
        "poll-hint",
        "gateway",
        "--every",
        "1s",
        "--jitter",
        "0",
    ]);
    assert!(shown.contains("after 1 s ± 0 %"), "{shown}");
    // A daemon whose own schedule would not check again for an hour.
    let mut agent = hourly_agent(&server, dir, &[]);
    let v1 = image(9, 50_000);
    publish(&server, dir, "1.0.0", &v1);
    // The server said to check again in a second: the agent finds the release and installs it
    // long before its own hour is up.
    let status = agent.wait(PATIENCE);
    assert!(status.success(), "{}", agent.output());
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_image_goes_through_the_same_slot_commit_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let server = serve(&dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let (mut agent_process, addr) = listening_agent(Some(server.url()), &dir, &[]);
    let base = format!("http://{addr}/ota");
    let client = reqwest::Client::new();
    // Wrong token: refused.
    let resp = client
        .get(format!("{base}/status"))
        .header("x-ota-token", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);

    // ViperHTTP's device flow: begin, chunks, finalize with a reboot.
    let firmware = image(5, 100_000);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&firmware));
    let resp = client
        .post(format!("{base}/begin"))
        .header("x-ota-token", "s3cret")
        .json(&serde_json::json!({"expected_size": firmware.len(), "expected_sha256": sha}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    for (i, chunk) in firmware.chunks(3840).enumerate() {
        let resp = client
            .post(format!("{base}/chunk?offset={}", i * 3840))
            .header("x-ota-token", "s3cret")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
    }
    let resp = client
        .post(format!("{base}/finalize"))
        .header("x-ota-token", "s3cret")
        .json(&serde_json::json!({"reboot": true}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["sha256"], sha.as_str(), "{body}");
    // The agent "reboots" (exits) and the image waits in slot B for its first boot.
    let status = tokio::task::spawn_blocking(move || agent_process.wait(PATIENCE))
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), firmware);
    let pending = state(&dir)["pending"].clone();
    assert_eq!(pending["sha256"], sha.as_str(), "{pending}");
    // First boot, healthy: committed, and the server hears of it.
    let dir2 = dir.clone();
    let url = server.url().to_owned();
    let (ok, out) =
        tokio::task::spawn_blocking(move || agent(&url, &dir2, &["--health-cmd", "true"]))
            .await
            .unwrap();
    assert!(ok, "{out}");
    assert_eq!(state(&dir)["active"], 1);
    // It names the pushed image by its hash, which the server accepts as a version.
    let reports = server.admin(&["report", "list", "gateway"]);
    assert!(
        reports.contains(&sha) && reports.contains("installed"),
        "{reports}"
    );
    let devices: Value =
        serde_json::from_str(&server.admin(&["device", "list", "gateway", "--json"])).unwrap();
    assert_eq!(devices[0]["currentHash"], sha.as_str(), "{devices}");
    assert_eq!(devices[0]["currentVersion"], Value::Null, "{devices}");
}

/// `otter push` (both protocol variants) to `otter agent --listen`, as separate processes.
#[test]
fn otter_push_updates_an_agent_on_the_lan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    server.admin(&["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let (mut agent_process, addr) = listening_agent(Some(server.url()), dir, &[]);
    let push = |file: &Path, extra: &[&str]| otter_push(addr, file, extra);
    let first = dir.join("first.bin");
    std::fs::write(&first, image(3, 50_000)).unwrap();
    let wrong = push(&first, &["--token", "guess"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("invalid ota token"));
    // The documented variant, no reboot: installed, the agent keeps listening.
    let out = push(
        &first,
        &[
            "--token",
            "s3cret",
            "--protocol",
            "viper-doc",
            "--chunk",
            "8192",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), image(3, 50_000));
    assert!(agent_process.try_wait().is_none());
    // The device variant with a reboot replaces it; the agent "reboots".
    let second = dir.join("second.bin");
    std::fs::write(&second, image(4, 70_000)).unwrap();
    let out = push(&second, &["--token", "s3cret", "--reboot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = agent_process.wait(PATIENCE);
    assert!(status.success(), "{}", agent_process.output());
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), image(4, 70_000));
}

/// `otter push <device> <file> <extra…>` to the agent at `addr`.
fn otter_push(addr: SocketAddr, file: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(OTTER)
        .args(["push", &format!("http://{addr}")])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

/// `otter agent --listen` without `--server` or `--product`: a LAN device with no server takes a
/// push into its other slot, "reboots", and commits the slot at its next healthy boot.
#[test]
fn a_push_only_agent_needs_no_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let (mut agent_process, addr) = listening_agent(None, dir, &[]);
    let file = dir.join("lan.bin");
    std::fs::write(&file, image(6, 40_000)).unwrap();
    let out = otter_push(addr, &file, &["--token", "s3cret", "--reboot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = agent_process.wait(PATIENCE);
    assert!(status.success(), "{}", agent_process.output());
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), image(6, 40_000));
    assert_eq!(state(dir)["pending"]["slot"], 1);

    // The next boot, healthy: slot B is committed with no server to report to, and the device
    // goes on taking pushes.
    let (_agent_process, _) = listening_agent(None, dir, &[]);
    otter_testkit::wait::wait_until(PATIENCE, "slot B is committed", || {
        let s = state(dir);
        (s["active"] == 1 && s["pending"].is_null())
            .then_some(())
            .ok_or_else(|| s.to_string())
    });
}

/// A signed product `gateway` in `dir`: keys `root` and `rel`, root 1 (root key `root`, release
/// key `rel`, the server's online key) live on a real server, and helpers to sign and publish
/// releases offline as a user would.
struct SignedGateway {
    server: Serve,
    dir: PathBuf,
}

impl SignedGateway {
    fn start(dir: &Path) -> SignedGateway {
        let gateway = SignedGateway {
            server: serve(dir, &[]),
            dir: dir.to_owned(),
        };
        gateway.server.admin(&["product", "create", "gateway"]);
        for key in ["root", "rel"] {
            gateway.offline(&["keys", "generate", "--out", &gateway.path(key)]);
        }
        std::fs::write(
            gateway.path("online.pub"),
            gateway.server.admin(&["online-key"]),
        )
        .unwrap();
        gateway.make_root("root-1.json", "root", "rel");
        gateway
            .server
            .admin(&["root", "upload", "gateway", &gateway.path("root-1.json")]);
        std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
        gateway
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// An offline `otter` command (no server), which must succeed.
    fn offline(&self, args: &[&str]) {
        let out = Command::new(OTTER).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "otter {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Root 1 of `gateway` in `name`, with `root_key` (which signs it) and `release_key`.
    fn make_root(&self, name: &str, root_key: &str, release_key: &str) {
        self.offline(&[
            "root",
            "init",
            "gateway",
            "--root-key",
            &self.path(&format!("{root_key}.pub")),
            "--release-key",
            &self.path(&format!("{release_key}.pub")),
            "--online-key",
            &self.path("online.pub"),
            "-o",
            &self.path(name),
        ]);
        let key = self.path(&format!("{root_key}.key"));
        self.offline(&["envelope", "sign", &self.path(name), "--key", &key]);
    }

    /// Signs (counter 2, hardware `gw-rev-b`) and publishes `version` on `channel`, with
    /// `extra` publish arguments; returns the image.
    fn release(&self, version: &str, seed: u8, channel: &str, extra: &[&str]) -> Vec<u8> {
        let bytes = image(seed, 60_000);
        let fw = self.path(&format!("fw-{version}.bin"));
        std::fs::write(&fw, &bytes).unwrap();
        let manifest = self.path(&format!("m-{version}.json"));
        let (rel, channel) = (self.path("rel.key"), channel.to_owned());
        self.offline(&[
            "release",
            "sign",
            "gateway",
            &fw,
            "--version",
            version,
            "--counter",
            "2",
            "--hw-id",
            "gw-rev-b",
            "--channel",
            &channel,
            "--key",
            &rel,
            "-o",
            &manifest,
        ]);
        let mut args = vec![
            "release",
            "publish",
            "gateway",
            &fw,
            "--version",
            version,
            "--channel",
            &channel,
            "--signature",
            &manifest,
        ];
        args.extend_from_slice(extra);
        self.server.admin(&args);
        bytes
    }

    /// One agent run pinned to root 1, for hardware `gw-rev-b`, through `server` (the real one
    /// or a relay in front of it).
    fn agent(&self, server: &str) -> (bool, String) {
        agent(
            server,
            &self.dir,
            &["--root", &self.path("root-1.json"), "--hw-id", "gw-rev-b"],
        )
    }

    /// The same run, from an async test.
    async fn agent_async(&self, server: String) -> (bool, String) {
        let (dir, root) = (self.dir.clone(), self.path("root-1.json"));
        tokio::task::spawn_blocking(move || {
            agent(&server, &dir, &["--root", &root, "--hw-id", "gw-rev-b"])
        })
        .await
        .unwrap()
    }
}

/// A signed product: the agent pinned to root 1 verifies the chain, its signed response, the
/// manifest and the bytes; pinned to a foreign root it refuses and reports why.
#[test]
fn the_agent_verifies_signed_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = SignedGateway::start(dir);
    // The foreign root trusts another release key: the genuine release is not its.
    gateway.offline(&["keys", "generate", "--out", &gateway.path("stranger")]);
    gateway.make_root("foreign-1.json", "stranger", "stranger");
    gateway.release("1.0.0", 8, "stable", &[]);
    let url = gateway.server.url();

    // Pinned to a root the product never had: nothing is installed.
    let (ok, out) = agent(
        url,
        dir,
        &[
            "--root",
            &gateway.path("foreign-1.json"),
            "--hw-id",
            "gw-rev-b",
        ],
    );
    assert!(!ok, "{out}");
    assert!(state_file_missing_or_unpending(dir), "{out}");
    // Wrong hardware: refused.
    let (ok, out) = agent(
        url,
        dir,
        &[
            "--root",
            &gateway.path("root-1.json"),
            "--hw-id",
            "gw-rev-a",
        ],
    );
    assert!(!ok && out.contains("hardware"), "{out}");
    // The right root and hardware: installed, and the counter is remembered once committed.
    let (ok, out) = gateway.agent(url);
    assert!(ok && out.contains("installed 1.0.0 into slot B"), "{out}");
    let (ok, out) = gateway.agent(url);
    assert!(ok, "{out}");
    assert_eq!(state(dir)["security_counter"], 2);
}

/// Hole: the signed answer bound only the nonce. A relay without any key passes the device's
/// nonce on with another `current`, `channel` or `device`, and the genuine server signs an
/// answer to that question: an older release (a stepping stone for the `current` it invented),
/// a beta, someone else's answer. Every one is refused, and nothing lands in the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_changes_the_question_gets_answers_the_agent_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    gateway.release("0.5.0", 1, "stable", &[]);
    gateway.release("1.0.0", 2, "stable", &["--min-source-version", "0.5.0"]);
    gateway.release("2.0.0-beta.1", 3, "beta", &[]);
    for (name, value) in [
        ("current", "0.1.0"),
        ("channel", "beta"),
        ("device", "someone-else"),
    ] {
        let relay = Relay::start(
            gateway.server.url(),
            move |asked: Asked| {
                Move::Forward(if asked.target.contains("/check?") {
                    asked.with_query(name, value)
                } else {
                    asked
                })
            },
            |_: &Asked, body| body,
        )
        .await;
        let (ok, out) = gateway.agent_async(relay.url()).await;
        assert!(
            !ok && out.contains("answers another request"),
            "{name}: {out}"
        );
        assert!(state_file_missing_or_unpending(tmp.path()), "{name}: {out}");
    }
    // Without the relay, the device on 0.9.0 takes 1.0.0.
    let (ok, out) = gateway.agent(gateway.server.url());
    assert!(ok && out.contains("installed 1.0.0 into slot B"), "{out}");
}

/// Hole: the version recorded came from the unsigned part of the answer. A relay that says
/// 99.0.0 there changes nothing: the device installs, records and reports the signed 1.0.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_fields_decide_what_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    let v1 = gateway.release("1.0.0", 2, "stable", &[]);
    let relay = Relay::start(
        gateway.server.url(),
        Move::Forward,
        |asked: &Asked, body| {
            if !asked.target.contains("/check?") {
                return body;
            }
            let mut answer: Value = serde_json::from_slice(&body).unwrap();
            answer["manifest"]["version"] = "99.0.0".into();
            serde_json::to_vec(&answer).unwrap()
        },
    )
    .await;
    let (ok, out) = gateway.agent_async(relay.url()).await;
    assert!(ok && out.contains("installed 1.0.0 into slot B"), "{out}");
    assert_eq!(state(tmp.path())["pending"]["version"], "1.0.0");
    assert_eq!(std::fs::read(tmp.path().join("slot-b")).unwrap(), v1);
    let reports = gateway.server.admin(&["report", "list", "gateway"]);
    assert!(!reports.contains("99.0.0"), "{reports}");
}

/// Hole: roots were walked (and saved) only on the way to an install. A device told "no
/// update" under root 2 keeps root 2; one from whom root 2 is hidden refuses an answer signed
/// under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_walks_and_keeps_the_newest_root() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    let next = gateway.path("root-2.json");
    gateway.offline(&["root", "next", &gateway.path("root-1.json"), "-o", &next]);
    gateway.offline(&[
        "envelope",
        "sign",
        &next,
        "--key",
        &gateway.path("root.key"),
    ]);
    gateway.server.admin(&["root", "upload", "gateway", &next]);

    // Root 2 hidden: the answer is under a root the device could not reach.
    let relay = Relay::start(
        gateway.server.url(),
        |asked: Asked| match asked.target.ends_with("/root/2.json") {
            true => Move::Status(404),
            false => Move::Forward(asked),
        },
        |_: &Asked, body| body,
    )
    .await;
    let (ok, out) = gateway.agent_async(relay.url()).await;
    assert!(!ok && out.contains("root version 2"), "{out}");

    // Nothing to install, but the answer is genuine: root 2 is walked to and kept.
    let (ok, out) = gateway.agent_async(gateway.server.url().to_owned()).await;
    assert!(ok, "{out}");
    let stored = Envelope::parse(state(tmp.path())["root"].as_str().unwrap().as_bytes()).unwrap();
    let root: Value = serde_json::from_slice(&stored.payload_bytes().unwrap()).unwrap();
    assert_eq!(root["version"], 2, "{out}");
}

/// Holes: "no update" was never verified, so a relay could freeze a device unnoticed; an
/// endless answer was read whole; a refused image stayed in the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_endless_or_wrong_answers_are_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    let unsigned = Relay::start(
        gateway.server.url(),
        |asked: Asked| match asked.target.contains("/check?") {
            true => Move::Status(200),
            false => Move::Forward(asked),
        },
        |_: &Asked, body| body,
    )
    .await;
    let (ok, out) = gateway.agent_async(unsigned.url()).await;
    assert!(!ok, "an empty answer is an error: {out}");
    let stripped = Relay::start(
        gateway.server.url(),
        Move::Forward,
        |asked: &Asked, body| match asked.target.contains("/check?") {
            true => br#"{"hasUpdate":false}"#.to_vec(),
            false => body,
        },
    )
    .await;
    let (ok, out) = gateway.agent_async(stripped.url()).await;
    assert!(!ok && out.contains("did not sign its answer"), "{out}");

    let endless = Relay::start(
        gateway.server.url(),
        |asked: Asked| match asked.target.contains("/check?") {
            true => Move::Endless,
            false => Move::Forward(asked),
        },
        |_: &Asked, body| body,
    )
    .await;
    let (ok, out) = gateway.agent_async(endless.url()).await;
    assert!(!ok && out.contains("larger than 1048576 bytes"), "{out}");

    // Bytes that are not the signed image: refused, and the slot is emptied.
    gateway.release("1.0.0", 2, "stable", &[]);
    let flipped = Relay::start(
        gateway.server.url(),
        Move::Forward,
        |asked: &Asked, body| match asked.target.starts_with("/dl/") {
            true => body.iter().map(|b| b ^ 1).collect(),
            false => body,
        },
    )
    .await;
    let (ok, out) = gateway.agent_async(flipped.url()).await;
    assert!(!ok && out.contains("verification"), "{out}");
    assert_eq!(
        std::fs::metadata(tmp.path().join("slot-b")).unwrap().len(),
        0
    );
}

/// Hole: a stolen online key moved trusted time half a year ahead, after which the genuine
/// server's answers were refused as expired. The agent has a clock: trusted time never goes
/// past it by more than the allowed skew, and genuine answers keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_key_cannot_move_trusted_time_ahead_of_the_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    let stolen = std::fs::read_to_string(tmp.path().join("server/online-key.pem")).unwrap();
    let stolen = PrivateKey::from_pem(&stolen).unwrap();
    let relay = Relay::start(
        gateway.server.url(),
        Move::Forward,
        move |asked: &Asked, body| {
            if !asked.target.contains("/check?") {
                return body;
            }
            let mut answer: Value = serde_json::from_slice(&body).unwrap();
            let signed: Envelope =
                serde_json::from_value(answer["signedResponse"].clone()).unwrap();
            let mut payload: Value =
                serde_json::from_slice(&signed.payload_bytes().unwrap()).unwrap();
            let ahead = otter_store::now() + 179 * 86_400;
            payload["server_time"] = otter_core::model::format_rfc3339(ahead).into();
            payload["expires"] = otter_core::model::format_rfc3339(ahead + 86_400).into();
            let mut forged = Envelope::new(RESPONSE_TYPE, &serde_json::to_vec(&payload).unwrap());
            forged.sign(&stolen).unwrap();
            answer["signedResponse"] = serde_json::to_value(&forged).unwrap();
            serde_json::to_vec(&answer).unwrap()
        },
    )
    .await;
    let (ok, out) = gateway.agent_async(relay.url()).await;
    assert!(ok, "{out}");
    let trusted = state(tmp.path())["trusted_time"].as_i64().unwrap();
    assert!(
        trusted <= otter_store::now() + 300,
        "trusted time moved to {trusted}"
    );
    let (ok, out) = gateway.agent_async(gateway.server.url().to_owned()).await;
    assert!(ok, "the genuine server is still believed: {out}");
}

fn state_file_missing_or_unpending(dir: &Path) -> bool {
    !dir.join("agent-state/state.json").exists() || state(dir)["pending"].is_null()
}

/// Hole: pushes skipped every signature check, so anyone on the LAN (or with the token) could
/// push any image to a device that otherwise installs only signed releases. With a root, a push
/// needs its signed manifest, and the bytes must be the ones it signs.
#[test]
fn a_device_with_a_root_takes_only_signed_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = SignedGateway::start(dir);
    let genuine = gateway.release("1.0.0", 5, "stable", &[]);
    let fw = gateway.path("fw-1.0.0.bin");
    let manifest = gateway.path("m-1.0.0.json");
    let root = gateway.path("root-1.json");
    let (mut device, addr) = listening_agent(None, dir, &["--root", &root, "--hw-id", "gw-rev-b"]);
    let evil = dir.join("evil.bin");
    std::fs::write(&evil, image(66, genuine.len())).unwrap();
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // A plain ViperHTTP push (either variant): refused before a byte is written.
    for protocol in ["viper", "viper-doc"] {
        let out = otter_push(addr, &evil, &["--token", "s3cret", "--protocol", protocol]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("installs only signed images"),
            "{}",
            stderr(&out)
        );
    }
    // Other bytes under a genuine manifest: refused, and nothing of them is left in the slot.
    let out = otter_push(addr, &evil, &["--token", "s3cret", "--manifest", &manifest]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the image is refused"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(dir.join("slot-b")).unwrap().len(), 0);
    // The signed image with its manifest: installed as the release it is.
    let out = otter_push(
        addr,
        Path::new(&fw),
        &["--token", "s3cret", "--manifest", &manifest, "--reboot"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(device.wait(PATIENCE).success(), "{}", device.output());
    assert_eq!(state(dir)["pending"]["version"], "1.0.0");
    assert_eq!(state(dir)["pending"]["security_counter"], 2);
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), genuine);
}

/// A push receiver without a token would take images from anyone on the LAN.
#[test]
fn listening_for_pushes_needs_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let slots = format!("{0}/a,{0}/b", tmp.path().display());
    let out = Command::new(OTTER)
        .args(["agent", "--listen", "127.0.0.1:0", "--slots", &slots])
        .arg("--state")
        .arg(tmp.path())
        .env_remove("OTTER_PUSH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--push-token"), "{stderr}");
}

/// Hole: the publish-time counter floor looked only at the manifest's channel. A release on
/// `stable` and `lowc`, signed with counter 0 while stable stands at 2, would be refused forever
/// by every stable device; now it is refused at publish, as is a manifest that does not name
/// every channel the release goes to.
#[test]
fn the_counter_floor_covers_every_channel_of_a_release() {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = SignedGateway::start(tmp.path());
    gateway.release("1.0.0", 1, "stable", &[]);
    let fw = gateway.path("fw-1.1.0.bin");
    std::fs::write(&fw, image(2, 60_000)).unwrap();
    let publish = |manifest: &str| {
        command(OTTER)
            .args(["release", "publish", "gateway", &fw, "--version", "1.1.0"])
            .args([
                "--channel",
                "stable",
                "--channel",
                "lowc",
                "--signature",
                manifest,
            ])
            .envs(gateway.server.admin_env())
            .output()
            .unwrap()
    };
    for (name, channels, refusal) in [
        ("lowc-only.json", &["lowc"][..], "signature_mismatch"),
        ("both.json", &["lowc", "stable"][..], "rollback"),
    ] {
        let manifest = gateway.path(name);
        let mut args = vec!["release", "sign", "gateway", &fw, "--version", "1.1.0"];
        args.extend(["--counter", "0", "--key"]);
        let key = gateway.path("rel.key");
        args.push(&key);
        for channel in channels {
            args.extend(["--channel", channel]);
        }
        args.extend(["-o", &manifest]);
        gateway.offline(&args);
        let out = publish(&manifest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(refusal),
            "{name}: {stderr}"
        );
    }
}

/// Delta updates end to end: otter builds a bsdiff patch from 1.0.0 to 1.1.0; a device running
/// 1.0.0 downloads the patch instead of the image and applies it from its active slot into the
/// other; a device whose slot does not hold 1.0.0, and then any device while the stored patch is
/// corrupt, falls back to the full image. Each says in its report which it used.
#[test]
fn the_agent_applies_a_delta_and_falls_back_to_the_full_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // No download cache: the corrupted blob below must be what is served.
    let server = serve(dir, &["--download-cache", "0"]);
    server.admin(&["product", "create", "gateway"]);
    server.admin(&["product", "set-delta", "gateway", "--format", "bsdiff"]);
    let v1 = image(1, 300_000);
    let mut v2 = v1.clone();
    v2[150_000..150_016].copy_from_slice(b"version 1.1.0 ok");
    publish(&server, dir, "1.0.0", &v1);
    publish(&server, dir, "1.1.0", &v2);
    let shown = server.admin(&["release", "deltas", "gateway", "1.1.0", "--wait", "--json"]);
    let status: Value = serde_json::from_str(&shown).unwrap();
    let delta = &status["deltas"][0];
    assert_eq!(delta["state"], "ready", "{status}");
    let patch_sha = delta["sha256"].as_str().unwrap().to_owned();

    let device = |name: &str, slot_a: &[u8]| {
        let device = dir.join(name);
        std::fs::create_dir_all(&device).unwrap();
        std::fs::write(device.join("slot-a"), slot_a).unwrap();
        let (ok, out) = agent_running("1.0.0", server.url(), &device, &[]);
        assert!(ok && out.contains("installed 1.1.0 into slot B"), "{out}");
        assert_eq!(std::fs::read(device.join("slot-b")).unwrap(), v2, "{out}");
        out
    };
    let out = device("patched", &v1);
    assert!(
        out.contains("downloaded 1.1.0: bsdiff delta from 1.0.0"),
        "{out}"
    );

    // Slot A does not hold what 1.0.0 is: the patch makes garbage, the full image is used.
    let mut wrong = v1.clone();
    wrong[10] ^= 0xff;
    let out = device("wrong-base", &wrong);
    assert!(
        out.contains("downloaded 1.1.0: full image (300000 bytes); the bsdiff delta failed"),
        "{out}"
    );

    // The stored patch is corrupt: its digest does not match, the full image is used.
    let blob = dir
        .join("server/blobs/sha256")
        .join(&patch_sha[..2])
        .join(&patch_sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let out = device("corrupt-patch", &v1);
    assert!(
        out.contains("the bsdiff delta failed: the patch's SHA-256 is not the one offered"),
        "{out}"
    );

    // The server heard which each device used.
    let reports: Vec<Value> =
        serde_json::from_str(&server.admin(&["report", "list", "gateway", "--json"])).unwrap();
    let downloaded: Vec<&str> = reports
        .iter()
        .filter(|r| r["state"] == "downloaded")
        .filter_map(|r| r["message"].as_str())
        .collect();
    assert_eq!(downloaded.len(), 3, "{downloaded:?}");
    assert_eq!(
        downloaded
            .iter()
            .filter(|m| m.starts_with("bsdiff delta from 1.0.0"))
            .count(),
        1,
        "{downloaded:?}"
    );
}
