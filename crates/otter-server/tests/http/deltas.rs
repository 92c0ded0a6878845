//! Delta updates: the policy API, patches built in the background after a publish, their status,
//! the `delta` an offer carries for a device on a base (native check and manifest contract), and
//! a patch rebuilt at start when its blob is gone.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use otter_core::signing::device::{ArtifactCheck, CheckRequest};
use otter_core::signing::dsse::Envelope;

use crate::common::{TestServer, eventually, expect_error, firmware, json_body, sha256_hex};
use crate::signing::{device_shipped_with_root_1, publish_release_signed, signed_product};

/// An image of `version`: the same 64 KiB for every version but for the version string in it, as
/// two builds of one program differ.
pub(crate) fn image(version: &str) -> Vec<u8> {
    let mut image = firmware(7, 65_536);
    let marker = format!("version={version};");
    image[1000..1000 + marker.len()].copy_from_slice(marker.as_bytes());
    image
}

/// Uploads [`image`] of `version` and publishes it on `stable`.
async fn release(srv: &TestServer, product: &str, version: &str) -> String {
    let sha = srv.upload(&image(version)).await;
    srv.publish(product, version, &sha, json!({})).await;
    sha
}

pub(crate) async fn set_policy(srv: &TestServer, product: &str, policy: Value) -> Value {
    let resp = srv
        .admin(
            Method::PUT,
            &format!("/api/v1/products/{product}/delta-policy"),
        )
        .json(&policy)
        .send()
        .await
        .unwrap();
    json_body(resp, StatusCode::OK).await
}

/// The release's delta status once the builder is done with every patch.
pub(crate) async fn built(srv: &TestServer, product: &str, version: &str) -> Value {
    let path = format!("/api/v1/products/{product}/releases/{version}/deltas");
    eventually("the delta builds to finish", async || {
        let status = srv.get_json(&path).await;
        if status["total"].as_u64() > Some(0) && status["done"] == status["total"] {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await
}

#[tokio::test]
async fn the_delta_policy_is_off_by_default_checked_set_and_removed() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    release(&srv, "door", "1.0.0").await;
    let path = "/api/v1/products/door/delta-policy";
    assert_eq!(srv.get_json(path).await, Value::Null, "off by default");

    for (policy, status, code) in [
        (json!({"format": "xdelta"}), 400, "invalid_delta_policy"),
        (
            json!({"format": "bsdiff", "fromLast": 2, "fromVersion": "1.0.0"}),
            400,
            "invalid_delta_policy",
        ),
        (
            json!({"format": "bsdiff", "fromLast": 0}),
            400,
            "invalid_delta_policy",
        ),
        (
            json!({"format": "zstd", "maxSharePercent": 100}),
            400,
            "invalid_delta_policy",
        ),
        (
            json!({"format": "zstd", "fromVersion": "0.9.0"}),
            404,
            "release_not_found",
        ),
        // Its images are no ESP app images.
        (json!({"format": "esp-delta-ota"}), 400, "not_esp_image"),
    ] {
        let resp = srv
            .admin(Method::PUT, path)
            .json(&policy)
            .send()
            .await
            .unwrap();
        expect_error(resp, status, code).await;
    }

    assert_eq!(
        set_policy(&srv, "door", json!({"format": "bsdiff"})).await,
        json!({"format": "bsdiff", "fromLast": 3, "maxSharePercent": 50}),
        "defaults filled in"
    );
    assert_eq!(srv.get_json(path).await["format"], "bsdiff");
    let resp = srv.admin(Method::DELETE, path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.get_json(path).await, Value::Null);

    let resp = srv
        .admin(Method::PUT, "/api/v1/products/nope/delta-policy")
        .json(&json!({"format": "bsdiff"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "product_not_found").await;
}

#[tokio::test]
async fn devices_on_a_base_are_offered_the_patch_beside_the_full_image() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    release(&srv, "door", "1.0.0").await;
    let sha_11 = release(&srv, "door", "1.1.0").await;
    // One base per release: the newest release gets a patch from the one before at once.
    set_policy(&srv, "door", json!({"format": "bsdiff", "fromLast": 1})).await;
    let status = built(&srv, "door", "1.1.0").await;
    assert_eq!(status["deltas"][0]["from"], "1.0.0", "{status}");
    assert_eq!(status["deltas"][0]["state"], "ready", "{status}");

    // A publish builds the patches to the new release in the background.
    release(&srv, "door", "1.2.0").await;
    let status = built(&srv, "door", "1.2.0").await;
    assert_eq!(status["total"], 1, "fromLast 1: one base");
    let delta = &status["deltas"][0];
    assert_eq!(delta["from"], "1.1.0");
    assert_eq!(delta["state"], "ready", "{status}");
    let size = delta["size"].as_u64().unwrap();
    assert!(size < 65_536 / 2, "under half the image: {status}");
    let shown = srv.get_json("/api/v1/products/door/releases/1.2.0").await;
    assert_eq!(
        shown["deltas"], status["deltas"],
        "the release's admin JSON"
    );

    // On the base (by version or by image hash): the manifest names the patch.
    for current in ["1.1.0", sha_11.as_str()] {
        let answer = srv.check("door", &format!("current={current}")).await;
        let manifest = &answer["manifest"];
        assert_eq!(manifest["version"], "1.2.0");
        assert_eq!(
            manifest["sha256"],
            sha256_hex(&image("1.2.0")),
            "full image"
        );
        let offered = &manifest["delta"];
        assert_eq!(offered["from"], "1.1.0", "{answer}");
        assert_eq!(offered["format"], "bsdiff");
        assert_eq!(offered["size"], size);
        assert_eq!(offered["sha256"], delta["sha256"]);
        assert_eq!(
            offered["url"],
            format!("{}/dl/{}", srv.base, delta["sha256"].as_str().unwrap())
        );
    }
    // Not on a base, an unknown current, none at all: the full image only.
    for query in ["current=1.0.0", "current=0.9.0", ""] {
        let answer = srv.check("door", query).await;
        assert_eq!(answer["manifest"]["version"], "1.2.0", "{query}");
        assert!(
            answer["manifest"].get("delta").is_none(),
            "{query}: {answer}"
        );
    }

    // Scraped: the build and the offers are counted.
    let metrics = srv.anon_text("/metrics").await;
    for counted in [
        r#"otter_delta_builds_total{format="bsdiff",state="ready"}"#,
        "otter_delta_offers_total",
    ] {
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(counted)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{counted} in {metrics}"));
        assert!(value >= 2.0, "{counted} {value}");
    }

    // The patch downloads like any artifact: whole, by range, with its digest.
    let url = status["deltas"][0]["sha256"].as_str().unwrap();
    let resp = srv
        .anon(Method::GET, &format!("/dl/{url}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let patch = resp.bytes().await.unwrap();
    assert_eq!(patch.len() as u64, size);
    assert_eq!(sha256_hex(&patch), url);
    let resp = srv
        .anon(Method::GET, &format!("/dl/{url}"))
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.bytes().await.unwrap()[..], &patch[10..]);
    assert_eq!(
        otter_delta::apply(otter_delta::Format::Bsdiff, &image("1.1.0"), &patch, 65_536).unwrap(),
        image("1.2.0"),
        "the patch makes the new image from the base"
    );

    // The manifest contract carries the same field.
    let answer = srv
        .anon(Method::GET, "/m/door/api/firmware/check?current=1.1.0")
        .send()
        .await
        .unwrap();
    let answer = json_body(answer, StatusCode::OK).await;
    assert_eq!(answer["manifest"]["delta"]["sha256"], delta["sha256"]);
    assert_eq!(
        answer["manifest"]["binarySha256"],
        sha256_hex(&image("1.2.0"))
    );
    let answer = srv
        .anon(Method::GET, "/m/door/api/firmware/check?current=1.0.0")
        .send()
        .await
        .unwrap();
    let answer = json_body(answer, StatusCode::OK).await;
    assert!(answer["manifest"].get("delta").is_none(), "{answer}");

    // Without a policy nothing is offered, though the patches stay.
    let resp = srv
        .admin(Method::DELETE, "/api/v1/products/door/delta-policy")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let answer = srv.check("door", "current=1.1.0").await;
    assert!(answer["manifest"].get("delta").is_none(), "{answer}");
}

/// The bases of each patch, as the release's status lists them.
async fn bases(srv: &TestServer, product: &str, version: &str) -> Vec<String> {
    built(srv, product, version).await["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["from"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn patches_start_from_the_newest_earlier_releases_of_the_channel_or_the_one_named() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    set_policy(&srv, "door", json!({"format": "zstd", "fromLast": 2})).await;
    for (version, channels) in [
        ("1.0.0", json!(["stable"])),
        ("1.1.0", json!(["stable"])),
        ("1.2.0", json!(["beta"])),
        ("1.3.0", json!(["stable"])),
    ] {
        let sha = srv.upload(&image(version)).await;
        srv.publish("door", version, &sha, json!({ "channels": channels }))
            .await;
    }
    srv.patch_release("door", "1.3.0", json!({"yanked": true}))
        .await;
    release(&srv, "door", "1.4.0").await;
    assert_eq!(
        bases(&srv, "door", "1.4.0").await,
        ["1.0.0", "1.1.0"],
        "the two newest on stable, neither yanked nor on another channel"
    );

    // One named base: applied at once to the newest release of each channel.
    set_policy(
        &srv,
        "door",
        json!({"format": "zstd", "fromVersion": "1.0.0"}),
    )
    .await;
    assert_eq!(bases(&srv, "door", "1.2.0").await, ["1.0.0"]);
    assert_eq!(
        bases(&srv, "door", "1.4.0").await,
        ["1.0.0", "1.1.0"],
        "nothing built twice"
    );
}

#[tokio::test]
async fn a_patch_not_under_the_share_is_skipped_and_never_offered() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    set_policy(&srv, "door", json!({"format": "bsdiff"})).await;
    // Unrelated images: a patch is as large as the image.
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "2.0.0", json!({})).await;
    let status = built(&srv, "door", "2.0.0").await;
    let delta = &status["deltas"][0];
    assert_eq!(delta["state"], "skipped", "{status}");
    assert!(
        delta["message"]
            .as_str()
            .unwrap()
            .contains("not under 50 %"),
        "{status}"
    );
    let answer = srv.check("door", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["version"], "2.0.0");
    assert!(answer["manifest"].get("delta").is_none(), "{answer}");
}

#[tokio::test]
async fn a_patch_whose_blob_is_gone_is_rebuilt_at_start() {
    let mut srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    set_policy(&srv, "door", json!({"format": "zstd"})).await;
    release(&srv, "door", "1.0.0").await;
    release(&srv, "door", "1.1.0").await;
    let status = built(&srv, "door", "1.1.0").await;
    let sha = status["deltas"][0]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(status["deltas"][0]["state"], "ready", "{status}");

    let blob = srv
        .data_dir()
        .join("blobs/sha256")
        .join(&sha[..2])
        .join(&sha);
    std::fs::remove_file(&blob).unwrap();
    srv.restart().await;

    let patch = eventually("the patch to be rebuilt", async || {
        let resp = srv
            .anon(Method::GET, &format!("/dl/{sha}"))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            Ok(resp.bytes().await.unwrap())
        } else {
            Err(resp.status().to_string())
        }
    })
    .await;
    assert_eq!(sha256_hex(&patch), sha, "the same patch again");
    let answer = srv.check("door", "current=1.0.0").await;
    assert_eq!(answer["manifest"]["delta"]["sha256"], sha, "{answer}");
}

#[tokio::test]
async fn a_signed_answer_with_a_delta_verifies_and_the_patched_image_passes_the_manifest() {
    const DAY: i64 = 86_400;
    let (srv, owner, _) = signed_product().await;
    publish_release_signed(&srv, &owner, "1.0.0", 1, &image("1.0.0"), 90 * DAY).await;
    publish_release_signed(&srv, &owner, "1.1.0", 2, &image("1.1.0"), 90 * DAY).await;
    set_policy(&srv, "door", json!({"format": "bsdiff"})).await;
    let status = built(&srv, "door", "1.1.0").await;
    assert_eq!(status["deltas"][0]["state"], "ready", "{status}");

    let mut device = device_shipped_with_root_1(&srv, 1).await;
    let nonce = "00112233445566778899aabbccddeeff";
    let answer = srv
        .check("door", &format!("current=1.0.0&device=d1&nonce={nonce}"))
        .await;
    let delta = &answer["manifest"]["delta"];
    assert_eq!(delta["from"], "1.0.0", "{answer}");
    let response_env: Envelope = serde_json::from_value(answer["signedResponse"].clone()).unwrap();
    let asked = CheckRequest {
        nonce,
        device: "d1",
        current: Some("1.0.0"),
        channel: "stable",
    };
    let response = device.check_response(&response_env, &asked, 0).unwrap();
    let manifest_env: Envelope = serde_json::from_value(answer["releaseManifest"].clone()).unwrap();
    let verified = device
        .check_manifest(&manifest_env, &response, "esp32-c3")
        .unwrap();

    // The device applies the patch to what it runs and checks the result as the full image.
    let patch = srv
        .client
        .get(delta["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let rebuilt = otter_delta::apply(
        otter_delta::Format::Bsdiff,
        &image("1.0.0"),
        &patch,
        verified.artifact.length,
    )
    .unwrap();
    let mut stream = ArtifactCheck::new(&verified);
    stream.update(&rebuilt).unwrap();
    stream.finish().unwrap();
}

#[tokio::test]
async fn with_blobs_in_s3_a_patch_is_stored_in_the_bucket_and_downloads_from_it() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let srv = TestServer::with_s3(&s3, "ota", crate::common::test_config()).await;
    srv.create_product("door", "semver").await;
    set_policy(&srv, "door", json!({"format": "bsdiff"})).await;
    release(&srv, "door", "1.0.0").await;
    release(&srv, "door", "1.1.0").await;
    let status = built(&srv, "door", "1.1.0").await;
    let sha = status["deltas"][0]["sha256"].as_str().unwrap().to_owned();
    let stored = s3
        .get(&format!("ota/sha256/{}/{sha}", &sha[..2]))
        .expect("the patch is in the bucket");
    assert_eq!(sha256_hex(&stored), sha);

    // The offered URL redirects to the bucket (the default with S3); following it gives the patch.
    let answer = srv.check("door", "current=1.0.0").await;
    let url = answer["manifest"]["delta"]["url"].as_str().unwrap();
    let resp = srv.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_ne!(resp.url().as_str(), url, "served by the bucket");
    assert_eq!(resp.bytes().await.unwrap(), stored);
}

#[tokio::test]
async fn esp_app_images_get_esp_delta_ota_patches_naming_their_base() {
    use otter_testkit::images::esp32_app;
    let srv = TestServer::start().await;
    srv.create_product("c3", "semver").await;
    let base = esp32_app(&image("1.0.0"));
    let target = esp32_app(&image("1.1.0"));
    let sha = srv.upload(&base).await;
    srv.publish("c3", "1.0.0", &sha, json!({})).await;
    set_policy(&srv, "c3", json!({"format": "esp-delta-ota"})).await;
    let sha = srv.upload(&target).await;
    srv.publish("c3", "1.1.0", &sha, json!({})).await;
    let status = built(&srv, "c3", "1.1.0").await;
    assert_eq!(status["deltas"][0]["state"], "ready", "{status}");

    let answer = srv.check("c3", "current=1.0.0").await;
    let delta = &answer["manifest"]["delta"];
    assert_eq!(delta["format"], "esp-delta-ota", "{answer}");
    let patch = srv
        .client
        .get(delta["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        patch[4..36],
        otter_delta::esp_validation_hash(&base).unwrap(),
        "the header names the base as the device knows it"
    );
    assert_eq!(
        otter_delta::apply(
            otter_delta::Format::EspDeltaOta,
            &base,
            &patch,
            target.len() as u64
        )
        .unwrap(),
        target
    );
}

#[tokio::test]
async fn a_patch_built_on_one_node_is_offered_by_another() {
    let a = TestServer::start().await;
    let b = TestServer::sharing_database_with(&a).await;
    a.create_product("door", "semver").await;
    set_policy(&a, "door", json!({"format": "bsdiff"})).await;
    release(&a, "door", "1.0.0").await;
    release(&a, "door", "1.1.0").await;
    let sha = built(&a, "door", "1.1.0").await["deltas"][0]["sha256"].clone();

    // Node B learns of the ready patch from the catalogue clock, as of a release.
    eventually("node B offers the patch", async || {
        let resp = b
            .anon(Method::GET, "/api/v1/products/door/check?current=1.0.0")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
        if answer["manifest"]["delta"]["sha256"] == sha {
            Ok(())
        } else {
            Err(answer.to_string())
        }
    })
    .await;
}

#[tokio::test]
async fn patches_never_planned_are_built_at_start() {
    let mut srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    release(&srv, "door", "1.0.0").await;
    release(&srv, "door", "1.1.0").await;
    // A policy that reached the database without its planning (as after a stop between a
    // publish and the patches it asks for being recorded).
    let url = format!("sqlite://{}", srv.data_dir().join("otter.db").display());
    let store = otter_store::sql::SqlStore::connect(&url).await.unwrap();
    let policy = otter_core::deltas::DeltaPolicy {
        format: "bsdiff".to_owned(),
        from_last: Some(1),
        from_version: None,
        max_share_percent: 50,
    };
    otter_store::DeltaStore::set_delta_policy(&store, "door", Some(&policy), 0)
        .await
        .unwrap();
    store.close().await;
    let status = srv
        .get_json("/api/v1/products/door/releases/1.1.0/deltas")
        .await;
    assert_eq!(status["total"], 0, "{status}");

    srv.restart().await;
    let status = built(&srv, "door", "1.1.0").await;
    assert_eq!(status["deltas"][0]["from"], "1.0.0");
    assert_eq!(status["deltas"][0]["state"], "ready", "{status}");
}
