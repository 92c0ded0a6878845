//! A restart keeps everything: catalogue, bytes, fleet, and the admin token.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, expect_error, firmware, firmware_for};

async fn device_versions(srv: &TestServer) -> Vec<(String, Value)> {
    srv.get_json("/api/v1/products/door/devices").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                d["currentVersion"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_restart_keeps_everything() {
    let mut srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.create_product("cam", "lexical").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release(
        "door",
        "1.1.0",
        json!({"title": "Good one", "channels": ["stable", "beta"]}),
    )
    .await;
    srv.release("door", "1.2.0", json!({})).await;
    srv.patch_release("door", "1.2.0", json!({"yanked": true}))
        .await;
    srv.release("cam", "v202601011200", json!({})).await;
    let loose = firmware(30, 5_000);
    let loose_sha = srv.upload(&loose).await;

    // d1 is waited for; d2 checks in right before the restart (its sighting may still be
    // queued when the server is told to stop).
    srv.check("door", "current=1.0.0&device=d1").await;
    let s = &srv;
    eventually("d1 is recorded", async || {
        let devices = device_versions(s).await;
        if devices.iter().any(|(id, _)| id == "d1") {
            Ok(())
        } else {
            Err(format!("{devices:?}"))
        }
    })
    .await;
    for body in [
        json!({"device": "d1", "version": "1.1.0", "state": "downloading"}),
        json!({"device": "d3", "version": "1.1.0", "state": "installed", "channel": "beta"}),
    ] {
        let resp = srv
            .anon(Method::POST, "/api/v1/products/door/reports")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    srv.check("door", "current=1.1.0&device=d2&channel=beta")
        .await;

    let products = srv.get_json("/api/v1/products").await;
    let releases = srv.get_json("/api/v1/products/door/releases").await;
    let reports = srv.get_json("/api/v1/products/door/reports").await;
    let artifact = srv
        .get_json(&format!("/api/v1/artifacts/{loose_sha}"))
        .await;

    // Restart relying on the stored token only.
    srv.start_token = None;
    srv.restart().await;
    assert_eq!(srv.bootstrap, "existing", "no new token was generated");
    assert!(!srv.data_dir().join("admin-token").exists());

    assert_eq!(srv.get_json("/api/v1/products").await, products);
    assert_eq!(
        srv.get_json("/api/v1/products/door/releases").await,
        releases
    );
    assert_eq!(srv.get_json("/api/v1/products/door/reports").await, reports);
    assert_eq!(
        srv.get_json(&format!("/api/v1/artifacts/{loose_sha}"))
            .await,
        artifact
    );
    let wrong = srv
        .anon(Method::GET, "/api/v1/products")
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    expect_error(wrong, 401, "unauthorized").await;

    assert_eq!(
        device_versions(&srv).await,
        [
            ("d1".to_owned(), json!("1.0.0")),
            ("d2".to_owned(), json!("1.1.0")),
            ("d3".to_owned(), json!("1.1.0")),
        ]
    );

    // Every image still downloads, by hash and by release.
    for (product, version) in [
        ("door", "1.0.0"),
        ("door", "1.1.0"),
        ("door", "1.2.0"),
        ("cam", "v202601011200"),
    ] {
        let path = format!("/dl/{product}/{version}/{product}-{version}.bin");
        let resp = srv.anon(Method::GET, &path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &firmware_for(product, version)[..]
        );
    }
    let resp = srv
        .anon(Method::GET, &format!("/dl/{loose_sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], &loose[..]);

    // Decisions are the same: 1.2.0 is still yanked; URLs follow the new address.
    let answer = srv.check("door", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["version"], "1.1.0");
    assert_eq!(answer["manifest"]["title"], "Good one");
    assert_eq!(
        answer["manifest"]["url"],
        format!("{}/dl/door/1.1.0/door-1.1.0.bin", srv.base)
    );
    assert_eq!(
        srv.offered("cam", "current=v202501010000").await.as_deref(),
        Some("v202601011200")
    );

    // Versions stay used; new releases follow the old ones.
    let sha = srv.upload(&firmware_for("door", "1.3.0")).await;
    let resp = srv.try_publish("door", "1.2.0", &sha, json!({})).await;
    expect_error(resp, 409, "version_exists").await;
    let resp = srv
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"name": "door"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 409, "product_exists").await;
    let new = srv.publish("door", "1.3.0", &sha, json!({})).await;
    assert!(new["seq"].as_i64().unwrap() > releases["items"][0]["seq"].as_i64().unwrap());
    let list = srv.get_json("/api/v1/products/door/releases").await;
    assert_eq!(list["items"][0]["version"], "1.3.0");
}

#[tokio::test]
async fn check_ins_right_before_a_shutdown_are_not_lost() {
    use futures_util::StreamExt;

    let mut srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;

    // A burst of check-ins, then an immediate shutdown: sightings still queued at that point
    // must be written before the server stops.
    const DEVICES: usize = 300;
    let s = &srv;
    futures_util::stream::iter(0..DEVICES)
        .map(|i| async move {
            s.check("door", &format!("current=1.0.0&device=dev-{i:04}"))
                .await;
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    srv.restart().await;

    let devices = srv.all_pages("/api/v1/products/door/devices", 500).await;
    assert_eq!(
        devices.len(),
        DEVICES,
        "every device that checked in is known"
    );
    assert!(devices.iter().all(|d| d["currentVersion"] == "1.0.0"));
}

#[tokio::test]
async fn an_in_flight_download_finishes_after_the_shutdown_signal() {
    let mut srv = TestServer::start().await;
    // Larger than the download cache takes, and than loopback buffers hold: the server is still
    // streaming from disk when the signal arrives.
    let image = firmware(7, 48 << 20);
    let sha = srv.upload(&image).await;
    let mut resp = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = resp.chunk().await.unwrap().expect("first bytes").to_vec();
    let stopped = srv.signal_shutdown();
    while let Some(chunk) = resp.chunk().await.expect("the download is not cut off") {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), image.len());
    assert_eq!(crate::common::sha256_hex(&received), sha);
    tokio::time::timeout(std::time::Duration::from_secs(15), stopped)
        .await
        .expect("stops once the download is done")
        .unwrap()
        .unwrap();
    assert!(
        srv.client.get(srv.url("/healthz")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_stalled_download_does_not_hold_shutdown_past_the_grace_period() {
    let mut config = crate::common::test_config();
    config.shutdown_grace = std::time::Duration::from_secs(1);
    let mut srv = TestServer::with_config(config).await;
    let image = firmware(8, 48 << 20);
    let sha = srv.upload(&image).await;
    let mut resp = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    resp.chunk().await.unwrap();
    // The client stops reading; the server must still stop, about a second later.
    let started = std::time::Instant::now();
    let stopped = srv.signal_shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
        .await
        .expect("the grace period bounds shutdown")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    drop(resp);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let srv = TestServer::start().await;
    let settings = otter_server::Settings {
        data_dir: srv.data_dir().to_path_buf(),
        ..crate::common::test_config()
    };
    match otter_server::Server::open(settings).await {
        Err(otter_server::StartError::Locked(dir)) => assert_eq!(dir, srv.data_dir()),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second server opened the same data directory"),
    }
    // The first server is unaffected.
    assert_eq!(srv.get_json("/api/v1/products").await["items"], json!([]));
}

/// Rotating the configured admin token revokes the old one: start with `a`, restart with `b`,
/// and `a` no longer opens the admin API.
#[tokio::test]
async fn a_configured_admin_token_replaces_the_one_configured_before() {
    let mut srv = TestServer::start().await;
    let old = srv.token.clone();
    let rotated = "rotated-admin-token-0123456789abcdef".to_owned();
    srv.start_token = Some(rotated.clone());
    srv.restart().await;
    assert_eq!(srv.bootstrap, "configured");
    let with_old = srv
        .anon(Method::GET, "/api/v1/products")
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    expect_error(with_old, 401, "unauthorized").await;
    srv.token = rotated;
    srv.get_json("/api/v1/products").await;
}
