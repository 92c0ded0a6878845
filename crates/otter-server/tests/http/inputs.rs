//! Inputs that would leave wrong state or wrong answers behind: hostile `Host` headers, releases
//! no device could get, and the HTTP details
//! (authentication challenges, range units, preconditions) clients rely on.

use otter_server::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    TestServer, expect_error, firmware, header, json_body, multipart, test_config,
};

const EVIL_HOST: &str = "evil.example/x?y=";

#[tokio::test]
async fn a_host_that_is_not_host_and_port_is_refused() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    for path in [
        "/m/door/api/firmware/latest",
        "/api/v1/products/door/check?current=0.9.0",
        "/healthz",
    ] {
        let resp = srv
            .anon(Method::GET, path)
            .header("host", EVIL_HOST)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_host").await;
    }
    // A THiNX device's answer would carry the host in its `url`: the same refusal.
    let resp = srv
        .anon(Method::POST, "/device/firmware")
        .header("host", EVIL_HOST)
        .json(&json!({"registration": {}}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_host").await;

    // host[:port] is fine, and its URLs are not for shared caches.
    let resp = srv
        .anon(Method::GET, "/m/door/api/firmware/latest")
        .header("host", "otter.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(resp.headers(), "cache-control").as_deref(),
        Some("private, max-age=300")
    );
    let manifest = json_body(resp, StatusCode::OK).await;
    assert!(
        manifest["binaryUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://otter.example:8080/m/door/"),
        "{manifest}"
    );

    // Two `Host` lines, a valid one first: which one a URL would be built from is no guess.
    for path in ["/healthz", "/api/v1/products/door/check?current=0.9.0"] {
        let answer = srv
            .raw_until_close(&format!("GET {path} HTTP/1.1\r\nHost: otter.example"))
            .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains(r#""error":"invalid_host""#), "{answer}");
    }
}

#[tokio::test]
async fn with_a_public_url_manifests_are_shared_cacheable() {
    let srv = TestServer::with_config(Settings {
        public_url: Some("https://ota.example".into()),
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    let resp = srv
        .anon(Method::GET, "/m/door/api/firmware/latest")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(resp.headers(), "cache-control").as_deref(),
        Some("public, max-age=300")
    );
}

#[tokio::test]
async fn releases_no_device_could_get_are_refused() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let sha = srv.upload(&firmware(1, 4096)).await;
    let refusals = [
        (json!({"channels": []}), 400, "invalid_json"),
        (json!({"channels": ["beta", "beta"]}), 400, "invalid_field"),
        (
            json!({"channels": (0..33).map(|i| format!("c{i}")).collect::<Vec<_>>()}),
            400,
            "invalid_field",
        ),
        (json!({"minSourceVersion": "7.0.0"}), 400, "invalid_field"),
        (json!({"minSourceVersion": "6.0.0"}), 400, "invalid_field"),
    ];
    for (extra, status, code) in refusals {
        let resp = srv.try_publish("door", "6.0.0", &sha, extra.clone()).await;
        let body = expect_error(resp, status, code).await;
        println!("{extra} → {body}");
    }
    srv.publish("door", "6.0.0+build.1", &sha, json!({})).await;
    let resp = srv
        .try_publish("door", "6.0.0+build.2", &sha, json!({}))
        .await;
    expect_error(resp, 409, "version_exists").await;
    let releases = srv.get_json("/api/v1/products/door/releases").await;
    assert_eq!(releases["items"].as_array().unwrap().len(), 1, "{releases}");

    // An empty image is never firmware.
    let empty = srv.upload(&[]).await;
    let resp = srv.try_publish("door", "7.0.0", &empty, json!({})).await;
    expect_error(resp, 400, "empty_artifact").await;
}

#[tokio::test]
async fn admin_refusals_challenge_for_a_bearer_token() {
    let srv = TestServer::start().await;
    let none = srv
        .anon(Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    let wrong = srv
        .anon(Method::GET, "/api/v1/products")
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    for resp in [none, wrong] {
        let challenge = header(resp.headers(), "www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        expect_error(resp, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn ranges_ignore_unit_case_and_preconditions_are_412() {
    let srv = TestServer::start().await;
    let image = firmware(2, 1000);
    let sha = srv.upload(&image).await;
    let path = format!("/dl/{sha}");
    let get =
        |name: &'static str, value: String| srv.anon(Method::GET, &path).header(name, value).send();

    let resp = get("range", "Bytes=0-1".into()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap()[..], image[..2]);
    for range in ["bytes=99999999999999999999-", "bytes=1000-"] {
        let resp = get("range", range.into()).await.unwrap();
        assert_eq!(
            header(resp.headers(), "content-range").as_deref(),
            Some("bytes */1000"),
            "{range}"
        );
        expect_error(resp, 416, "range_not_satisfiable").await;
    }

    let etag = format!("\"{sha}\"");
    let long_ago = "Sun, 06 Nov 1994 08:49:37 GMT".to_owned();
    let later = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    for (name, value, status) in [
        ("if-match", "\"0000\"".to_owned(), 412),
        ("if-match", format!("W/{etag}"), 412),
        ("if-unmodified-since", long_ago, 412),
        ("if-match", etag.clone(), 200),
        ("if-match", "*".to_owned(), 200),
        ("if-unmodified-since", later, 200),
    ] {
        let resp = get(name, value.clone()).await.unwrap();
        if status == 412 {
            expect_error(resp, 412, "precondition_failed").await;
        } else {
            assert_eq!(resp.status().as_u16(), status, "{name}: {value}");
        }
    }
}

/// An empty `/v1/upload` is not published as the newest firmware.
#[tokio::test]
async fn an_empty_ota_backend_upload_is_not_published() {
    let srv = TestServer::start().await;
    let created: Value = json_body(
        srv.admin(Method::POST, "/v1/create").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let boundary = "----empty-upload";
    let resp = srv
        .anon(Method::POST, "/v1/upload")
        .header("x-ota-firmware-id", created["id"].as_str().unwrap())
        .header("x-ota-firmware-key", created["key"].as_str().unwrap())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart(boundary, &[("firmware", Some("app.bin"), &[])]))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "EMPTY_ARTIFACT", "{body}");
    let releases = srv
        .get_json(&format!(
            "/api/v1/products/{}/releases",
            created["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(releases["items"], json!([]), "{releases}");
}

/// A THiNX body over axum's limit (2 MiB) is refused in THiNX's format, not axum's plain text.
/// It is only a little over, so what the server does not read fits in the socket buffers.
#[tokio::test]
async fn an_oversized_thinx_body_is_413_in_thinx_format() {
    let srv = TestServer::start().await;
    let body = vec![b' '; (2 << 20) + 1024];
    for path in ["/device/register", "/device/firmware"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
            body.len()
        );
        let resp = srv.raw(&head, &body).await;
        assert_eq!(resp.status, 413, "{path}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(
            body,
            json!({"success": false, "response": "payload_too_large"}),
            "{path}"
        );
    }
}
