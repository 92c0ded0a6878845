//! What otter keeps on disk: every directory and file it creates is its own user's only, and
//! the SQLite WAL stays bounded under a flood of writes and empties when idle.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otter_testkit::wait_until_async;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, test_config};

/// Every directory and file under `dir`, with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        found.push((path.clone(), mode(&path)));
        if path.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_and_everything_in_it_are_the_owners_only() {
    // A data directory otter creates itself, two levels deep.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("var/otter");
    let server = otter_server::Server::open(otter_server::Settings {
        data_dir: data.clone(),
        ..test_config()
    })
    .await
    .unwrap();
    assert_eq!(mode(&tmp.path().join("var")), 0o700);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(
        mode(&data.join("admin-token")),
        0o600,
        "the generated token"
    );
    drop(server);
    let mut srv = TestServer::start().await;

    // A server that has stored a blob, staged an upload, written its WAL and its secrets, in
    // a data directory that existed before (whose own mode otter leaves alone).
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.begin_upload(100, &"0".repeat(64), "part.bin").await;
    let found = modes(srv.data_dir());
    let names: Vec<String> = found
        .iter()
        .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "otter.db",
        "otter.db-wal",
        "otter.db-shm",
        "online-key.pem",
        "blobs",
        "staging",
        ".lock",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.starts_with("upload-")),
        "a staged upload in {names:?}"
    );
    for (path, mode) in &found {
        let owners_only = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, owners_only, "{} is {mode:o}", path.display());
    }
    srv.shutdown().await;
}

/// Size of the WAL file in `data` (0 when there is none).
fn wal_size(data: &Path) -> u64 {
    std::fs::metadata(data.join("otter.db-wal")).map_or(0, |m| m.len())
}

/// The most the WAL may hold during the flood below: `journal_size_limit` (64 MiB) is what a
/// checkpoint leaves at most; otter checkpoints at 4 MiB, and the flood reaches 8-17 MiB alone
/// (a checkpoint once a second let it reach 72 MiB), so this leaves room for a loaded machine.
const WAL_BOUND: u64 = 64 << 20;

#[tokio::test]
async fn the_wal_stays_bounded_under_a_write_flood_and_empties_when_idle() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let flooding = flooding.clone();
        let data = srv.data_dir().to_owned();
        tokio::spawn(async move {
            let mut largest = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                largest = largest.max(wal_size(&data));
            }
            largest
        })
    };
    // Report floods are what grew the WAL to 2 GB: many small write transactions while
    // devices read.
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let client = srv.client.clone();
            let url = srv.url("/api/v1/products/door/reports");
            tokio::spawn(async move {
                for i in 0..600 {
                    let resp = client
                        .post(&url)
                        .json(&json!({
                            "device": format!("dev-{w}-{i}"),
                            "version": "1.0.0",
                            "state": "installed",
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let largest = sampler.await.unwrap();
    eprintln!("largest WAL during the flood: {largest} bytes");
    assert!(largest < WAL_BOUND, "the WAL grew to {largest} bytes");
    // Idle, the next checkpoint truncates it.
    wait_until_async(
        Duration::from_secs(10),
        "an empty WAL",
        async || match wal_size(srv.data_dir()) {
            0 => Ok(()),
            n => Err(format!("the WAL holds {n} bytes")),
        },
    )
    .await;
}
