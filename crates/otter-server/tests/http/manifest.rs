//! The firmware manifest contract (seed 004): the device's "Firmware-side Flow" step by step,
//! every field and header, and the errors exactly as the contract writes them.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, header, json_body, sha256_hex, test_config};

const PRODUCT: &str = "data-walker";

/// A server whose root contract paths serve `data-walker`, a lexical product with two releases:
/// `v202605221130` may only be installed from `v202510020734` or later.
async fn data_walker(public_url: Option<&str>) -> TestServer {
    let srv = TestServer::with_config(otter_server::Settings {
        default_product: Some(PRODUCT.into()),
        public_url: public_url.map(str::to_owned),
        ..test_config()
    })
    .await;
    srv.create_product(PRODUCT, "lexical").await;
    srv.release(
        PRODUCT,
        "v202510020734",
        json!({"title": "NVS schema v2", "releaseDate": "2025-10-02T07:34:00-04:00"}),
    )
    .await;
    srv.release(
        PRODUCT,
        "v202605221130",
        json!({
            "releaseDate": "2026-05-22T11:30:00-04:00",
            "minSourceVersion": "v202510020734",
            "title": "Daily Calibration Feature",
            "summary": "Adds boot-time daily calibration walk with bidirectional 3 m measurement.",
            "releaseNotesUrl": "https://datawalker.example/releases/v202605221130",
        }),
    )
    .await;
    srv
}

async fn get(srv: &TestServer, path: &str) -> Response {
    srv.anon(Method::GET, path).send().await.unwrap()
}

/// A 200 JSON answer with the contract's headers.
async fn contract_json(resp: Response) -> Value {
    let headers = resp.headers().clone();
    let body = json_body(resp, StatusCode::OK).await;
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/json")
    );
    // `public` with --public-url, else `private` (tested in `inputs`).
    let cache_control = header(&headers, "cache-control").unwrap_or_default();
    assert!(
        matches!(
            cache_control.as_str(),
            "public, max-age=300" | "private, max-age=300"
        ),
        "{cache_control}"
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    body
}

/// An error body exactly as the contract writes it, with CORS so web pages can read it.
async fn contract_error(resp: Response, status: u16, expected: Value) {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(
        header(resp.headers(), "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, expected);
}

/// Downloads `binaryUrl` as the device does and verifies it against the manifest: the length
/// the server announces, and the SHA-256 the device MUST check before flashing.
async fn download_and_verify(srv: &TestServer, manifest: &Value) {
    let url = manifest["binaryUrl"].as_str().unwrap();
    let resp = srv.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    let headers = resp.headers().clone();
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(manifest["binarySize"].to_string())
    );
    assert!(header(&headers, "etag").is_some());
    assert!(header(&headers, "last-modified").is_some());
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, manifest["binarySize"].as_u64().unwrap());
    assert_eq!(
        sha256_hex(&bytes),
        manifest["binarySha256"],
        "SHA-256 matches"
    );
}

#[tokio::test]
async fn the_firmware_side_flow_from_boot_to_up_to_date() {
    let srv = data_walker(None).await;

    // On boot: an old device must first chain through minSourceVersion.
    let answer = contract_json(get(&srv, "/api/firmware/check?current=v202401010000").await).await;
    assert_eq!(answer["hasUpdate"], true);
    let manifest = &answer["manifest"];
    assert_eq!(manifest["version"], "v202510020734");
    assert_eq!(manifest["title"], "NVS schema v2");
    assert_eq!(manifest["mandatory"], false);
    download_and_verify(&srv, manifest).await;

    // After flashing and rebooting: the newest.
    let answer = contract_json(get(&srv, "/api/firmware/check?current=v202510020734").await).await;
    let manifest = &answer["manifest"];
    assert_eq!(manifest["version"], "v202605221130");
    assert_eq!(manifest["title"], "Daily Calibration Feature");
    assert_eq!(manifest["minSourceVersion"], "v202510020734");
    download_and_verify(&srv, manifest).await;

    // Up to date: exactly the contract's body.
    let resp = get(&srv, "/api/firmware/check?current=v202605221130").await;
    assert_eq!(contract_json(resp).await, json!({"hasUpdate": false}));
    // A device ahead of the server is never downgraded.
    let resp = get(&srv, "/api/firmware/check?current=v209901010000").await;
    assert_eq!(contract_json(resp).await, json!({"hasUpdate": false}));
}

#[tokio::test]
async fn manifests_carry_every_field_of_the_contract() {
    let srv = data_walker(Some("https://ota.example.test")).await;
    let latest = contract_json(get(&srv, "/api/firmware/latest").await).await;
    let bytes = crate::common::firmware_for(PRODUCT, "v202605221130");
    assert_eq!(
        latest,
        json!({
            "version": "v202605221130",
            "releaseDate": "2026-05-22T11:30:00-04:00",
            "binaryUrl": "https://ota.example.test/firmware/data-walker-v202605221130.bin",
            "binarySize": bytes.len(),
            "binarySha256": sha256_hex(&bytes),
            "minSourceVersion": "v202510020734",
            "mandatory": false,
            "title": "Daily Calibration Feature",
            "summary": "Adds boot-time daily calibration walk with bidirectional 3 m measurement.",
            "releaseNotesUrl": "https://datawalker.example/releases/v202605221130",
            "deprecated": false,
        })
    );
    // One version; unset optional strings are strings, never null.
    let old = contract_json(get(&srv, "/api/firmware/v202510020734").await).await;
    assert_eq!(old["version"], "v202510020734");
    assert_eq!(old["minSourceVersion"], Value::Null);
    assert_eq!(old["summary"], "");
    assert_eq!(old["releaseNotesUrl"], "");

    // The same product under /m/{product}, with its own binary URLs.
    let mounted = contract_json(get(&srv, "/m/data-walker/api/firmware/latest").await).await;
    assert_eq!(
        mounted["binaryUrl"],
        "https://ota.example.test/m/data-walker/firmware/data-walker-v202605221130.bin"
    );
    let resp = get(
        &srv,
        "/m/data-walker/firmware/data-walker-v202605221130.bin",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        sha256_hex(&resp.bytes().await.unwrap()),
        latest["binarySha256"]
    );
    let checked = contract_json(
        get(
            &srv,
            "/m/data-walker/api/firmware/check?current=v202510020734",
        )
        .await,
    )
    .await;
    assert_eq!(checked["manifest"], mounted);
}

#[tokio::test]
async fn errors_are_exactly_as_written() {
    let srv = data_walker(None).await;
    let invalid = json!({"error": "invalid_version", "message": "Expected format vYYYYMMDDHHMM"});
    for query in [
        "current=garbage",
        "current=v2026",
        "current=",
        "",
        "current=v20260522113a",
    ] {
        let resp = get(&srv, &format!("/api/firmware/check?{query}")).await;
        contract_error(resp, 400, invalid.clone()).await;
    }
    let resp = get(&srv, "/api/firmware/v202401010000").await;
    contract_error(
        resp,
        404,
        json!({"error": "not_found", "message": "No firmware manifest for version v202401010000"}),
    )
    .await;

    // A semver product names its own format; a product with nothing released has no latest.
    srv.create_product("lamp", "semver").await;
    let resp = get(&srv, "/m/lamp/api/firmware/check?current=v202401010000").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_version");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("MAJOR.MINOR.PATCH"),
        "{body}"
    );
    let resp = get(&srv, "/m/lamp/api/firmware/latest").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    let resp = get(&srv, "/m/lamp/api/firmware/check?current=1.0.0").await;
    assert_eq!(contract_json(resp).await, json!({"hasUpdate": false}));

    // Unknown products and files.
    for path in [
        "/m/nope/api/firmware/latest",
        "/firmware/data-walker-v202401010000.bin",
        "/firmware/other-v202605221130.bin",
        "/firmware/data-walker-v202605221130.zip",
    ] {
        let resp = get(&srv, path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    }
    // Without --default-product the root paths say how to get one.
    let plain = TestServer::start().await;
    let resp = get(&plain, "/api/firmware/latest").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--default-product"),
        "{body}"
    );
}

#[tokio::test]
async fn deprecated_mandatory_and_yanked_releases() {
    let srv = data_walker(None).await;
    srv.release(PRODUCT, "v202607010000", json!({"mandatory": true}))
        .await;
    let latest = contract_json(get(&srv, "/api/firmware/latest").await).await;
    assert_eq!(latest["version"], "v202607010000");
    assert_eq!(latest["mandatory"], true);

    // Deprecated: /latest skips it; devices on it see the flag and are not downgraded.
    srv.patch_release(PRODUCT, "v202607010000", json!({"deprecated": true}))
        .await;
    let latest = contract_json(get(&srv, "/api/firmware/latest").await).await;
    assert_eq!(latest["version"], "v202605221130");
    let own = contract_json(get(&srv, "/api/firmware/v202607010000").await).await;
    assert_eq!(own["deprecated"], true);
    let resp = get(&srv, "/api/firmware/check?current=v202607010000").await;
    assert_eq!(contract_json(resp).await, json!({"hasUpdate": false}));

    // Yanked: gone from every endpoint, and its devices are moved to the newest good release.
    srv.patch_release(PRODUCT, "v202607010000", json!({"yanked": true}))
        .await;
    assert_eq!(
        get(&srv, "/api/firmware/v202607010000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&srv, "/firmware/data-walker-v202607010000.bin")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let answer = contract_json(get(&srv, "/api/firmware/check?current=v202607010000").await).await;
    assert_eq!(answer["manifest"]["version"], "v202605221130");
}

#[tokio::test]
async fn cors_preflight_and_resumable_binaries() {
    let srv = data_walker(None).await;
    let resp = srv
        .anon(Method::OPTIONS, "/api/firmware/check")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let headers = resp.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(
        header(headers, "access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    assert_eq!(
        header(headers, "access-control-allow-headers").as_deref(),
        Some("x-requested-with")
    );

    let bytes = crate::common::firmware_for(PRODUCT, "v202605221130");
    let resp = srv
        .anon(Method::GET, "/firmware/data-walker-v202605221130.bin")
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.bytes().await.unwrap()[..], &bytes[100..]);
    let resp = srv
        .anon(Method::HEAD, "/firmware/data-walker-v202605221130.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-length"),
        Some(bytes.len().to_string())
    );
}

#[tokio::test]
async fn publishing_enforces_the_contract_limits() {
    let srv = data_walker(None).await;
    let sha = srv.upload(b"\xe9 another image").await;
    for (extra, code) in [
        (json!({"title": "t".repeat(61)}), "field_too_long"),
        (json!({"summary": "s".repeat(201)}), "field_too_long"),
    ] {
        let resp = srv.try_publish(PRODUCT, "v202701010000", &sha, extra).await;
        crate::common::expect_error(resp, 400, code).await;
    }
    // Never reuse a version string, even for a hotfix.
    let resp = srv
        .try_publish(PRODUCT, "v202605221130", &sha, json!({}))
        .await;
    crate::common::expect_error(resp, 409, "version_exists").await;
}
