//! `otter agent` as real processes against a real `otter serve`: an update into the other slot,
//! a healthy boot that commits it, an unhealthy one that rolls back after the allowed failures
//! (and the server listing the rollback), a download cut by a proxy that resumes, an MQTT
//! wake-up, pushes over the LAN, and a push-only device without a server.
//!
//! Every process binds port 0 itself and the test reads the address it prints, so no port is
//! ever picked by one process and bound by another.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use otter_testkit::process::Watched;
use otter_testkit::proxy::{CuttingProxy, Direction};
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

/// `otter <args>` as `server`'s admin; returns what it printed.
fn admin(server: &Serve, args: &[&str]) -> String {
    let out = command(OTTER)
        .args(args)
        .envs(server.admin_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "otter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
            "0.9.0",
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
/// makes it a push-only device. Returns it and the address it listens on.
fn listening_agent(server: Option<&str>, dir: &Path) -> (Watched, SocketAddr) {
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
        .arg("--state")
        .arg(dir.join("agent-state"));
    let process = Watched::spawn(command);
    let addr = process.wait_for_line("the agent's push address", PATIENCE, pushes_addr);
    (process, addr)
}

fn state(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("agent-state/state.json")).unwrap()).unwrap()
}

fn publish(server: &Serve, dir: &Path, version: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(format!("gateway-{version}.bin"));
    std::fs::write(&path, bytes).unwrap();
    admin(
        server,
        &[
            "release",
            "publish",
            "gateway",
            path.to_str().unwrap(),
            "--version",
            version,
        ],
    );
    path
}

#[test]
fn update_commit_then_rollback_after_failed_health_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    admin(&server, &["product", "create", "gateway"]);
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
    let reports = admin(&server, &["report", "list", "gateway", "--json"]);
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
    admin(&server, &["product", "create", "gateway"]);
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
    admin(&server, &["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let slots = format!(
        "{},{}",
        dir.join("slot-a").display(),
        dir.join("slot-b").display()
    );
    // A daemon that would otherwise not check again for an hour.
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
        ])
        .args([
            "--interval",
            "1h",
            "--mqtt-url",
            &broker.url(),
            "--slots",
            &slots,
            "--state",
        ])
        .arg(dir.join("agent-state"));
    let mut agent = Watched::spawn(command);
    // Its start-up check is done, and found nothing (there is no release yet): the server has
    // seen the device.
    otter_testkit::wait::wait_until(PATIENCE, "the agent's start-up check", || {
        let devices = admin(&server, &["device", "list", "gateway", "--json"]);
        if devices.contains("\"gw-1\"") {
            Ok(())
        } else {
            Err(format!("devices: {devices}; agent: {}", agent.output()))
        }
    });
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_image_goes_through_the_same_slot_commit_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let server = serve(&dir, &[]);
    admin(&server, &["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let (mut agent_process, addr) = listening_agent(Some(server.url()), &dir);
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
    let reports = admin(&server, &["report", "list", "gateway"]);
    assert!(
        reports.contains(&sha) && reports.contains("installed"),
        "{reports}"
    );
    let devices: Value =
        serde_json::from_str(&admin(&server, &["device", "list", "gateway", "--json"])).unwrap();
    assert_eq!(devices[0]["currentHash"], sha.as_str(), "{devices}");
    assert_eq!(devices[0]["currentVersion"], Value::Null, "{devices}");
}

/// `otter push` (both protocol variants) to `otter agent --listen`, as separate processes.
#[test]
fn otter_push_updates_an_agent_on_the_lan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    admin(&server, &["product", "create", "gateway"]);
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();
    let (mut agent_process, addr) = listening_agent(Some(server.url()), dir);
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
    let (mut agent_process, addr) = listening_agent(None, dir);
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
    let (_agent_process, _) = listening_agent(None, dir);
    otter_testkit::wait::wait_until(PATIENCE, "slot B is committed", || {
        let s = state(dir);
        (s["active"] == 1 && s["pending"].is_null())
            .then_some(())
            .ok_or_else(|| s.to_string())
    });
}

/// A signed product: the agent pinned to root 1 verifies the chain, its signed response, the
/// manifest and the bytes; pinned to a foreign root it refuses and reports why.
#[test]
fn the_agent_verifies_signed_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(dir, &[]);
    admin(&server, &["product", "create", "gateway"]);
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let offline = |args: &[&str]| {
        let out = Command::new(OTTER).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "otter {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for key in ["root", "rel", "stranger"] {
        offline(&["keys", "generate", "--out", &p(key)]);
    }
    std::fs::write(p("online.pub"), admin(&server, &["online-key"])).unwrap();
    // The foreign root trusts another release key: the genuine release is not its.
    for (name, root_key, release_key) in [
        ("root-1.json", "root", "rel"),
        ("foreign-1.json", "stranger", "stranger"),
    ] {
        offline(&[
            "root",
            "init",
            "gateway",
            "--root-key",
            &p(&format!("{root_key}.pub")),
            "--release-key",
            &p(&format!("{release_key}.pub")),
            "--online-key",
            &p("online.pub"),
            "-o",
            &p(name),
        ]);
        offline(&[
            "envelope",
            "sign",
            &p(name),
            "--key",
            &p(&format!("{root_key}.key")),
        ]);
    }
    admin(&server, &["root", "upload", "gateway", &p("root-1.json")]);
    let v1 = image(8, 60_000);
    let fw = dir.join("fw.bin");
    std::fs::write(&fw, &v1).unwrap();
    offline(&[
        "release",
        "sign",
        "gateway",
        fw.to_str().unwrap(),
        "--version",
        "1.0.0",
        "--counter",
        "2",
        "--hw-id",
        "gw-rev-b",
        "--key",
        &p("rel.key"),
        "-o",
        &p("m.json"),
    ]);
    admin(
        &server,
        &[
            "release",
            "publish",
            "gateway",
            fw.to_str().unwrap(),
            "--version",
            "1.0.0",
            "--signature",
            &p("m.json"),
        ],
    );
    std::fs::write(dir.join("slot-a"), image(0, 1000)).unwrap();

    // Pinned to a root the product never had: nothing is installed.
    let (ok, out) = agent(
        server.url(),
        dir,
        &["--root", &p("foreign-1.json"), "--hw-id", "gw-rev-b"],
    );
    assert!(!ok, "{out}");
    assert!(state_file_missing_or_unpending(dir), "{out}");
    // Wrong hardware: refused.
    let (ok, out) = agent(
        server.url(),
        dir,
        &["--root", &p("root-1.json"), "--hw-id", "gw-rev-a"],
    );
    assert!(!ok && out.contains("hardware"), "{out}");
    // The right root and hardware: installed, and the counter is remembered once committed.
    let (ok, out) = agent(
        server.url(),
        dir,
        &["--root", &p("root-1.json"), "--hw-id", "gw-rev-b"],
    );
    assert!(ok && out.contains("installed 1.0.0 into slot B"), "{out}");
    let (ok, out) = agent(
        server.url(),
        dir,
        &["--root", &p("root-1.json"), "--hw-id", "gw-rev-b"],
    );
    assert!(ok, "{out}");
    assert_eq!(state(dir)["security_counter"], 2);
}

fn state_file_missing_or_unpending(dir: &Path) -> bool {
    !dir.join("agent-state/state.json").exists() || state(dir)["pending"].is_null()
}
