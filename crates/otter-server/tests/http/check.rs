//! The device API: update decisions over HTTP, manifests, device sightings and update reports.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    TestServer, eventually, expect_error, firmware_for, json_body, test_config, unix_time,
};

async fn check_error(srv: &TestServer, product: &str, query: &str, status: u16, code: &str) {
    let resp = srv
        .anon(
            Method::GET,
            &format!("/api/v1/products/{product}/check?{query}"),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, status, code).await;
}

#[tokio::test]
async fn semver_chain_hops_through_the_minimum_source_version() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let v100 = srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;
    srv.release("door", "2.0.0", json!({"minSourceVersion": "1.1.0"}))
        .await;

    let first = srv.check("door", "current=1.0.0").await;
    assert_eq!(first["hasUpdate"], true);
    assert_eq!(first["manifest"]["version"], "1.1.0");
    assert_eq!(first["manifest"]["steppingStone"], true, "{first}");
    let second = srv.check("door", "current=1.1.0").await;
    assert_eq!(second["manifest"]["version"], "2.0.0");
    assert_eq!(second["manifest"]["steppingStone"], false);
    assert_eq!(second["manifest"]["minSourceVersion"], "1.1.0");

    // Up to date: exactly {"hasUpdate":false}, not cached.
    let resp = srv
        .anon(Method::GET, "/api/v1/products/door/check?current=2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.text().await.unwrap(), r#"{"hasUpdate":false}"#);

    // Ahead of the server: never a downgrade.
    assert_eq!(srv.offered("door", "current=3.0.0").await, None);
    // An unpublished older version, and an unknown one, only get what needs no minimum.
    assert_eq!(
        srv.offered("door", "current=0.9.0").await.as_deref(),
        Some("1.1.0")
    );
    assert_eq!(srv.offered("door", "").await.as_deref(), Some("1.1.0"));
    assert_eq!(
        srv.offered("door", "current=").await.as_deref(),
        Some("1.1.0")
    );
    // Between 1.1.0 and 2.0.0 (never published): past the minimum, so straight to 2.0.0.
    assert_eq!(
        srv.offered("door", "current=1.5.0").await.as_deref(),
        Some("2.0.0")
    );

    // A device may name what it runs by any of the image's digests, in either case.
    let artifact = &v100["artifact"];
    for key in ["sha256", "sha1", "md5"] {
        let hash = artifact[key].as_str().unwrap();
        for h in [hash.to_owned(), hash.to_uppercase()] {
            assert_eq!(
                srv.offered("door", &format!("current={h}"))
                    .await
                    .as_deref(),
                Some("1.1.0"),
                "current = {key} {h}"
            );
        }
    }

    check_error(
        &srv,
        "door",
        "current=not-a-version",
        400,
        "invalid_version",
    )
    .await;
    check_error(&srv, "door", "current=1.0", 400, "invalid_version").await;
    check_error(
        &srv,
        "door",
        "current=1.0.0&channel=no%20way",
        400,
        "invalid_field",
    )
    .await;
    check_error(
        &srv,
        "door",
        "current=1.0.0&device=a%2Fb",
        400,
        "invalid_field",
    )
    .await;
    check_error(&srv, "ghost", "current=1.0.0", 404, "product_not_found").await;
}

#[tokio::test]
async fn manifests_carry_every_field_and_an_absolute_url() {
    let srv = TestServer::with_config(otter_server::Settings {
        public_url: Some("https://ota.example.com".into()),
        ..test_config()
    })
    .await;
    srv.create_product("valve", "semver").await;
    srv.release("valve", "1.0.0", json!({})).await;
    let rel = srv
        .release(
            "valve",
            "1.1.0",
            json!({
                "releaseDate": "2026-05-22T11:30:00Z",
                "mandatory": true,
                "title": "Quieter valve",
                "summary": "Less clicking",
                "releaseNotesUrl": "https://example.com/valve/1.1.0",
                "metadata": {"secret": "not for devices"}
            }),
        )
        .await;
    let a = &rel["artifact"];
    let answer = srv.check("valve", "current=1.0.0").await;
    assert_eq!(
        answer,
        json!({
            "hasUpdate": true,
            "manifest": {
                "version": "1.1.0",
                "releaseDate": "2026-05-22T11:30:00Z",
                "size": a["size"],
                "sha256": a["sha256"],
                "sha1": a["sha1"],
                "md5": a["md5"],
                "url": "https://ota.example.com/dl/valve/1.1.0/valve-1.1.0.bin",
                "mandatory": true,
                "deprecated": false,
                "title": "Quieter valve",
                "summary": "Less clicking",
                "releaseNotesUrl": "https://example.com/valve/1.1.0",
                "minSourceVersion": null,
                "steppingStone": false
            }
        })
    );
    // The same release flagged later: the manifest follows.
    srv.patch_release("valve", "1.1.0", json!({"mandatory": false}))
        .await;
    let answer = srv.check("valve", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["mandatory"], false);
}

#[tokio::test]
async fn without_a_public_url_the_manifest_url_uses_the_host_and_downloads() {
    let srv = TestServer::start().await;
    srv.create_product("valve", "semver").await;
    srv.release("valve", "1.0.0", json!({})).await;
    let answer = srv.check("valve", "current=0.1.0").await;
    let url = answer["manifest"]["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("{}/dl/valve/1.0.0/valve-1.0.0.bin", srv.base),
        "built from the Host the device used"
    );
    let dl = srv.client.get(url).send().await.unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    let bytes = dl.bytes().await.unwrap();
    assert_eq!(&bytes[..], &firmware_for("valve", "1.0.0")[..]);
    assert_eq!(
        bytes.len() as u64,
        answer["manifest"]["size"].as_u64().unwrap()
    );

    // Behind a proxy that passes its own Host.
    let resp = srv
        .anon(Method::GET, "/api/v1/products/valve/check?current=0.1.0")
        .header("host", "ota.internal:8443")
        .send()
        .await
        .unwrap();
    let answer = json_body(resp, StatusCode::OK).await;
    assert_eq!(
        answer["manifest"]["url"],
        "http://ota.internal:8443/dl/valve/1.0.0/valve-1.0.0.bin"
    );
}

#[tokio::test]
async fn yanked_releases_are_never_offered() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;
    let bad = srv.release("door", "1.2.0", json!({})).await;
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("1.2.0")
    );

    srv.patch_release("door", "1.2.0", json!({"yanked": true}))
        .await;
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("1.1.0")
    );
    assert_eq!(srv.offered("door", "").await.as_deref(), Some("1.1.0"));
    assert_eq!(srv.offered("door", "current=1.1.0").await, None);
    // Devices on the yanked version are moved to the newest good one, by version or hash.
    let bad_sha = bad["artifact"]["sha256"].as_str().unwrap();
    for current in ["1.2.0", bad_sha] {
        let answer = srv.check("door", &format!("current={current}")).await;
        assert_eq!(answer["manifest"]["version"], "1.1.0", "{current}");
    }

    // A device mid-download can still finish it.
    for path in [
        format!("/dl/{bad_sha}"),
        "/dl/door/1.2.0/door-1.2.0.bin".to_owned(),
    ] {
        let dl = srv.anon(Method::GET, &path).send().await.unwrap();
        assert_eq!(dl.status(), StatusCode::OK, "{path}");
        assert_eq!(
            &dl.bytes().await.unwrap()[..],
            &firmware_for("door", "1.2.0")[..]
        );
    }

    // Yank 1.1.0 as well: the device on 1.2.0 goes back to 1.0.0, the one on 1.0.0 stays.
    srv.patch_release("door", "1.1.0", json!({"yanked": true}))
        .await;
    assert_eq!(
        srv.offered("door", "current=1.2.0").await.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(srv.offered("door", "current=1.0.0").await, None);

    // Un-yanking makes it a target again.
    srv.patch_release("door", "1.2.0", json!({"yanked": false}))
        .await;
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("1.2.0")
    );
}

#[tokio::test]
async fn deprecated_releases_are_skipped_unless_newest_or_required() {
    let srv = TestServer::start().await;
    // Skipped when something newer exists.
    srv.create_product("a", "semver").await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        srv.release("a", v, json!({})).await;
    }
    srv.patch_release("a", "1.1.0", json!({"deprecated": true}))
        .await;
    assert_eq!(
        srv.offered("a", "current=1.0.0").await.as_deref(),
        Some("1.2.0")
    );

    // Still offered while it is the newest, flagged as deprecated.
    srv.create_product("b", "semver").await;
    srv.release("b", "1.0.0", json!({})).await;
    srv.release("b", "1.1.0", json!({})).await;
    srv.patch_release("b", "1.1.0", json!({"deprecated": true}))
        .await;
    let answer = srv.check("b", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["version"], "1.1.0");
    assert_eq!(answer["manifest"]["deprecated"], true);

    // Still a stepping stone when the newer release requires it.
    srv.create_product("c", "semver").await;
    srv.release("c", "1.0.0", json!({})).await;
    srv.release("c", "1.1.0", json!({})).await;
    srv.release("c", "2.0.0", json!({"minSourceVersion": "1.1.0"}))
        .await;
    srv.patch_release("c", "1.1.0", json!({"deprecated": true}))
        .await;
    let answer = srv.check("c", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["version"], "1.1.0");
    assert_eq!(answer["manifest"]["steppingStone"], true);
    assert_eq!(answer["manifest"]["deprecated"], true);
    assert_eq!(
        srv.offered("c", "current=1.1.0").await.as_deref(),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn channels_are_separate() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "2.0.0-beta.1", json!({"channels": ["beta"]}))
        .await;

    assert_eq!(srv.offered("door", "current=1.0.0").await, None);
    assert_eq!(
        srv.offered("door", "current=1.0.0&channel=stable").await,
        None
    );
    assert_eq!(
        srv.offered("door", "current=1.0.0&channel=beta")
            .await
            .as_deref(),
        Some("2.0.0-beta.1")
    );
    assert_eq!(
        srv.offered("door", "current=1.0.0&channel=nightly").await,
        None
    );

    srv.release("door", "2.0.0", json!({"channels": ["stable", "beta"]}))
        .await;
    assert_eq!(
        srv.offered("door", "current=2.0.0-beta.1&channel=beta")
            .await
            .as_deref(),
        Some("2.0.0")
    );
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn lexical_versions_order_by_their_text() {
    let srv = TestServer::start().await;
    srv.create_product("cam", "lexical").await;
    // Published out of order: the text decides, not the publishing order.
    for v in ["v202601011200", "v202603011200", "v202602011200"] {
        srv.release("cam", v, json!({})).await;
    }
    for (current, offered) in [
        ("v202601011200", Some("v202603011200")),
        ("v202602011200", Some("v202603011200")),
        ("v202512010000", Some("v202603011200")),
        ("v202603011200", None),
        ("v209912312359", None),
    ] {
        assert_eq!(
            srv.offered("cam", &format!("current={current}"))
                .await
                .as_deref(),
            offered,
            "device on {current}"
        );
    }
}

#[tokio::test]
async fn opaque_versions_follow_publish_order_and_hashes() {
    let srv = TestServer::start().await;
    srv.create_product("blob", "opaque").await;
    let zeta = srv.release("blob", "zeta", json!({})).await;
    let alpha = srv.release("blob", "alpha", json!({})).await;

    let zeta_sha1 = zeta["artifact"]["sha1"].as_str().unwrap();
    let alpha_md5 = alpha["artifact"]["md5"].as_str().unwrap();
    for (current, offered) in [
        ("zeta", Some("alpha")),
        (zeta_sha1, Some("alpha")),
        ("alpha", None),
        (alpha_md5, None),
        ("some-unknown-build", Some("alpha")),
    ] {
        assert_eq!(
            srv.offered("blob", &format!("current={current}"))
                .await
                .as_deref(),
            offered,
            "device on {current}"
        );
    }

    // A minimum must be a published release; then it is enforced by publish order.
    let sha = srv.upload(&firmware_for("blob", "gamma")).await;
    let resp = srv
        .try_publish("blob", "gamma", &sha, json!({"minSourceVersion": "nope"}))
        .await;
    expect_error(resp, 400, "invalid_field").await;
    srv.publish("blob", "gamma", &sha, json!({"minSourceVersion": "alpha"}))
        .await;
    let answer = srv.check("blob", "current=zeta").await;
    assert_eq!(answer["manifest"]["version"], "alpha");
    assert_eq!(answer["manifest"]["steppingStone"], true);
    assert_eq!(
        srv.offered("blob", "current=alpha").await.as_deref(),
        Some("gamma")
    );
}

/// The product's devices, by id.
async fn devices(srv: &TestServer, product: &str) -> Vec<Value> {
    srv.get_json(&format!("/api/v1/products/{product}/devices"))
        .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn device(srv: &TestServer, product: &str, id: &str) -> Option<Value> {
    devices(srv, product)
        .await
        .into_iter()
        .find(|d| d["id"] == id)
}

/// Waits for the asynchronous sighting queue to record `id` with `field` = `want`.
async fn wait_for_device(
    srv: &TestServer,
    product: &str,
    id: &str,
    field: &str,
    want: &Value,
) -> Value {
    eventually(
        &format!("device {id} has {field} = {want}"),
        async || match device(srv, product, id).await {
            Some(d) if d[field] == *want => Ok(d),
            other => Err(format!("{other:?}")),
        },
    )
    .await
}

#[tokio::test]
async fn checks_record_devices() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    let v110 = srv.release("door", "1.1.0", json!({})).await;
    let sha110 = v110["artifact"]["sha256"].as_str().unwrap();

    srv.check("door", "current=1.0.0&device=d1").await;
    let d1 = wait_for_device(&srv, "door", "d1", "currentVersion", &json!("1.0.0")).await;
    assert_eq!(d1["product"], "door");
    assert_eq!(d1["channel"], "stable");
    assert_eq!(d1["currentHash"], Value::Null);
    assert!(unix_time(&d1["firstSeen"]) <= unix_time(&d1["lastSeen"]));

    // By hash: the version is looked up, the hash kept.
    srv.check(
        "door",
        &format!("current={}&device=d2&channel=beta", sha110.to_uppercase()),
    )
    .await;
    let d2 = wait_for_device(&srv, "door", "d2", "currentVersion", &json!("1.1.0")).await;
    assert_eq!(d2["currentHash"], sha110);
    assert_eq!(d2["channel"], "beta");

    // A check without `current` keeps what the device said before. Sightings are written in
    // order, so once d3 shows up, d1's second sighting was written too.
    srv.check("door", "device=d1").await;
    srv.check("door", "current=1.1.0&device=d3").await;
    wait_for_device(&srv, "door", "d3", "currentVersion", &json!("1.1.0")).await;
    let d1 = device(&srv, "door", "d1").await.unwrap();
    assert_eq!(d1["currentVersion"], "1.0.0");

    // Checks without `device` record nothing; devices are per product.
    srv.check("door", "current=1.0.0").await;
    srv.create_product("other", "semver").await;
    assert_eq!(devices(&srv, "other").await, Vec::<Value>::new());
    let ids: Vec<Value> = devices(&srv, "door")
        .await
        .into_iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [json!("d1"), json!("d2"), json!("d3")]);

    let resp = srv
        .admin(Method::GET, "/api/v1/products/ghost/devices")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "product_not_found").await;
}

/// `--max-devices-per-product`: once a product has that many devices, a new device's check is
/// answered as usual but the device is not recorded (counted in `otter_devices_over_limit_total`),
/// while the devices it knows go on updating.
#[tokio::test]
async fn a_product_at_its_device_cap_records_no_new_device() {
    let srv = TestServer::with_config(otter_server::Settings {
        max_devices_per_product: 3,
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.1.0", json!({})).await;
    for id in ["d1", "d2", "d3"] {
        srv.check("door", &format!("current=1.0.0&device={id}"))
            .await;
        wait_for_device(&srv, "door", id, "currentVersion", &json!("1.0.0")).await;
    }

    let answer = srv.check("door", "current=1.0.0&device=d4").await;
    assert_eq!(answer["manifest"]["version"], "1.1.0", "{answer}");
    eventually("one device over the cap", async || {
        let status = srv.get_json("/api/v1/status").await;
        match status["devicesOverLimit"].as_u64() {
            Some(1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let metrics = srv.anon(Method::GET, "/metrics").send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("otter_devices_over_limit_total 1"),
        "{metrics}"
    );

    for id in ["d1", "d2", "d3"] {
        srv.check("door", &format!("current=1.1.0&device={id}"))
            .await;
        wait_for_device(&srv, "door", id, "currentVersion", &json!("1.1.0")).await;
    }
    let ids: Vec<Value> = devices(&srv, "door")
        .await
        .into_iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [json!("d1"), json!("d2"), json!("d3")]);
}

async fn report(srv: &TestServer, product: &str, body: Value) -> reqwest::Response {
    srv.anon(Method::POST, &format!("/api/v1/products/{product}/reports"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stale_check_in_never_overwrites_an_installed_report() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;
    // The check-in is queued; the report that follows must win, even within the same second.
    srv.check("door", "current=1.0.0&device=d1").await;
    let r = report(
        &srv,
        "door",
        json!({"device": "d1", "version": "1.1.0", "state": "installed"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Sightings are written in order: once d2 shows up, everything before it was written.
    srv.check("door", "current=1.0.0&device=d2").await;
    wait_for_device(&srv, "door", "d2", "currentVersion", &json!("1.0.0")).await;
    let d1 = device(&srv, "door", "d1").await.expect("d1 is known");
    assert_eq!(d1["currentVersion"], "1.1.0");
}

#[tokio::test]
async fn an_installed_report_names_a_version_of_the_scheme_or_an_image_hash() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let release = srv.release("door", "1.0.0", json!({})).await;
    let sha = release["artifact"]["sha256"].as_str().unwrap().to_owned();
    // What a check refuses as `current` cannot become a device's current version either.
    for version in ["pushed-0123456789ab", "1.0", "latest"] {
        let resp = report(
            &srv,
            "door",
            json!({"device": "d1", "version": version, "state": "installed"}),
        )
        .await;
        expect_error(resp, 400, "invalid_version").await;
    }
    // An image's hash is how a device names what it runs when it has no version (a LAN push):
    // a published image is recorded as its release, an unknown one by its hash alone.
    for (device, hash, version) in [
        ("d1", sha.clone(), json!("1.0.0")),
        ("d2", "ab".repeat(32), Value::Null),
    ] {
        let resp = report(
            &srv,
            "door",
            json!({"device": device, "version": hash, "state": "installed"}),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let seen = wait_for_device(&srv, "door", device, "currentHash", &json!(hash)).await;
        assert_eq!(seen["currentVersion"], version, "{seen}");
    }
}

#[tokio::test]
async fn reports_are_listed_newest_first_and_installed_sets_the_version() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;

    let sent = [
        json!({"device": "d1", "version": "1.1.0", "state": "downloading"}),
        json!({"device": "d2", "version": "1.1.0", "state": "failed", "message": "flash write error"}),
        json!({"device": "d1", "version": "1.1.0", "state": "installed"}),
        json!({"device": "d2", "version": "1.1.0", "state": "rolled_back"}),
    ];
    let mut created = Vec::new();
    for body in &sent {
        let r = json_body(
            report(&srv, "door", body.clone()).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(r["product"], "door");
        assert_eq!(r["device"], body["device"]);
        assert_eq!(r["version"], "1.1.0");
        assert_eq!(r["state"], body["state"]);
        assert_eq!(
            r["message"],
            body.get("message").cloned().unwrap_or(Value::Null)
        );
        assert!(r["id"].is_i64());
        assert!(unix_time(&r["createdAt"]) > 1_700_000_000, "{r}");
        created.push(r);
    }

    let all = srv.get_json("/api/v1/products/door/reports").await;
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();
    assert_eq!(all["items"], json!(newest_first));
    let d1 = srv
        .get_json("/api/v1/products/door/reports?device=d1")
        .await;
    assert_eq!(d1["items"], json!([created[2], created[0]]));
    let none = srv
        .get_json("/api/v1/products/door/reports?device=d9")
        .await;
    assert_eq!(none["items"], json!([]));

    // `installed` records the device (through the ordered sighting queue).
    wait_for_device(&srv, "door", "d1", "currentVersion", &json!("1.1.0")).await;
    assert_eq!(
        device(&srv, "door", "d2").await,
        None,
        "only `installed` records a device"
    );

    for (body, status, code) in [
        (
            json!({"device": "d1", "version": "1.1.0", "state": "exploded"}),
            400,
            "invalid_json",
        ),
        (
            json!({"version": "1.1.0", "state": "failed"}),
            400,
            "invalid_json",
        ),
        (
            json!({"device": "d1", "version": "1.1.0", "state": "failed", "extra": 1}),
            400,
            "invalid_json",
        ),
        (
            json!({"device": "bad id", "version": "1.1.0", "state": "failed"}),
            400,
            "invalid_field",
        ),
        (
            json!({"device": "d1", "version": "", "state": "failed"}),
            400,
            "invalid_version",
        ),
        (
            json!({"device": "d1", "version": "1.1.0", "state": "failed", "message": "m".repeat(2001)}),
            400,
            "field_too_long",
        ),
    ] {
        expect_error(report(&srv, "door", body).await, status, code).await;
    }
    let resp = report(
        &srv,
        "ghost",
        json!({"device": "d1", "version": "1.1.0", "state": "failed"}),
    )
    .await;
    expect_error(resp, 404, "product_not_found").await;
    let after = srv.get_json("/api/v1/products/door/reports").await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        4,
        "refused reports are not kept"
    );

    let resp = srv
        .admin(Method::GET, "/api/v1/products/ghost/reports")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "product_not_found").await;
}
