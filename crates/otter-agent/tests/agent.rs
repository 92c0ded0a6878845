//! The `otter-agent` binary as a push-only LAN device: no `--server`, no `--product`. It binds
//! port 0 itself and the test reads the address it prints.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use otter_testkit::images::{firmware, sha256_hex};
use otter_testkit::process::Watched;
use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_otter-agent");
const PATIENCE: Duration = Duration::from_secs(20);

/// `otter-agent --listen 127.0.0.1:0` over the slots in `dir`, and the address it listens on.
fn push_only_agent(dir: &Path) -> (Watched, SocketAddr) {
    let slots = format!(
        "{},{}",
        dir.join("slot-a").display(),
        dir.join("slot-b").display()
    );
    let mut command = Command::new(AGENT);
    command
        .env_remove("OTTER_SERVER")
        .args(["--listen", "127.0.0.1:0", "--push-token", "s3cret"])
        .args(["--slots", &slots, "--state"])
        .arg(dir.join("state"));
    let agent = Watched::spawn(command);
    let addr = agent.wait_for_line("the push address", PATIENCE, |line| {
        line.strip_prefix("accepting pushes on ")?.parse().ok()
    });
    (agent, addr)
}

fn state(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("state/state.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_only_device_takes_an_image_without_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    std::fs::write(dir.join("slot-a"), firmware(1, 1_000)).unwrap();
    let (mut agent, addr) = push_only_agent(&dir);

    // ViperHTTP's documented flow, with its bearer token.
    let image = firmware(2, 30_000);
    let client = reqwest::Client::new();
    let post = |route: &str| {
        client
            .post(format!("http://{addr}/ota/{route}"))
            .bearer_auth("s3cret")
    };
    let begun = post("begin")
        .json(&json!({ "size": image.len() }))
        .send()
        .await
        .unwrap();
    assert_eq!(begun.status(), reqwest::StatusCode::OK);
    for chunk in image.chunks(8_192) {
        let written = post("write").body(chunk.to_vec()).send().await.unwrap();
        assert_eq!(written.status(), reqwest::StatusCode::OK);
    }
    let result: Value = post("finalize")
        .json(&json!({ "sha256": sha256_hex(&image), "reboot": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result["ok"], true, "{result}");

    // It "reboots" (exits) with the image in slot B, waiting for its first boot.
    let status = tokio::task::spawn_blocking(move || {
        let status = agent.wait(PATIENCE);
        (status, agent.output())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.1);
    assert_eq!(std::fs::read(dir.join("slot-b")).unwrap(), image);
    let pending = state(&dir)["pending"].clone();
    assert_eq!(pending["sha256"], sha256_hex(&image), "{pending}");
}

#[test]
fn without_listen_a_server_is_required() {
    let out = Command::new(AGENT)
        .env_remove("OTTER_SERVER")
        .args(["--slots", "a,b", "--state", "s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
