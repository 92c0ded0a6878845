//! ota-backend's `/v1` API, driven the way its scripts and devices drive it: create a firmware,
//! open the firewall, upload, then check and download as a device (headers only, SHA-1 hashes,
//! 200/204/404), with the real server's error bodies and without its bugs.

use otter_core::digest::MultiHasher;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, firmware, header, json_body, multipart, test_config};

fn sha1_hex(bytes: &[u8]) -> String {
    let mut hasher = MultiHasher::new();
    hasher.update(bytes);
    hasher.finish().sha1
}

/// A firmware's credentials, as `POST /v1/create` hands them out.
struct Firmware {
    id: String,
    key: String,
}

async fn create(srv: &TestServer) -> Firmware {
    let resp = srv.admin(Method::POST, "/v1/create").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\n  \"id\": "), "pretty-printed: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    Firmware {
        id: body["id"].as_str().unwrap().to_owned(),
        key: body["key"].as_str().unwrap().to_owned(),
    }
}

/// A request with the firmware's admin headers.
fn owner(srv: &TestServer, fw: &Firmware, method: Method, path: &str) -> RequestBuilder {
    srv.anon(method, path)
        .header("x-ota-firmware-id", &fw.id)
        .header("x-ota-firmware-key", &fw.key)
}

/// A request as device `device` of the firmware sends it.
fn device(
    srv: &TestServer,
    fw: &Firmware,
    device: &str,
    method: Method,
    path: &str,
) -> RequestBuilder {
    srv.anon(method, path)
        .header("x-ota-firmware-id", &fw.id)
        .header("x-ota-device-id", device)
}

async fn firewall(srv: &TestServer, fw: &Firmware, rule: &str, device: &str) {
    let resp = owner(srv, fw, Method::POST, &format!("/v1/firewall/{rule}"))
        .json(&json!({ "device_id": device }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "null");
}

fn upload_request(srv: &TestServer, fw: &Firmware, image: &[u8]) -> RequestBuilder {
    let boundary = "----ota-backend-test-7d1f";
    owner(srv, fw, Method::POST, "/v1/upload")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart(boundary, &[("firmware", Some("app.bin"), image)]))
}

/// Uploads `image` and returns the hash the server answered.
async fn upload(srv: &TestServer, fw: &Firmware, image: &[u8]) -> String {
    let resp = upload_request(srv, fw, image).send().await.unwrap();
    let body = json_body(resp, StatusCode::OK).await;
    let hash = body["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash, sha1_hex(image), "the hash is the upload's SHA-1");
    hash
}

/// `GET /v1/check[/hash]` as device `dev`: the status and the body.
async fn check(srv: &TestServer, fw: &Firmware, dev: &str, hash: Option<&str>) -> (u16, String) {
    let path = match hash {
        Some(h) => format!("/v1/check/{h}"),
        None => "/v1/check".to_owned(),
    };
    let resp = device(srv, fw, dev, Method::GET, &path)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn download(srv: &TestServer, fw: &Firmware, hash: &str) -> Response {
    device(
        srv,
        fw,
        "dev-1",
        Method::GET,
        &format!("/v1/download/{hash}"),
    )
    .send()
    .await
    .unwrap()
}

async fn download_range(srv: &TestServer, fw: &Firmware, hash: &str, range: &str) -> Response {
    device(
        srv,
        fw,
        "dev-1",
        Method::GET,
        &format!("/v1/download/{hash}"),
    )
    .header("range", range)
    .send()
    .await
    .unwrap()
}

/// Asserts tiny-error-http's body: `{"error": status, "code": CODE, "message": ""}`.
async fn expect_ota_error(resp: Response, status: u16, code: &str) {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, json!({"error": status, "code": code, "message": ""}));
}

/// A missing header or field: 400 naming it, as the real server's validation does.
async fn expect_required(resp: Response, field: &str) {
    let got = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(got, 400, "{body}");
    assert_eq!(body["error"], 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(field),
        "names {field}: {body}"
    );
}

#[tokio::test]
async fn create_allow_upload_check_download_and_upload_again() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    assert_eq!(fw.id.len(), 26, "z-base-32 of 16 bytes");
    assert_eq!(fw.key.len(), 52, "z-base-32 of 32 bytes");

    // Until the firewall lets the device in, it is not authorised; then there is nothing yet.
    let (status, _) = check(&srv, &fw, "dev-1", None).await;
    assert_eq!(status, 401);
    firewall(&srv, &fw, "allow", "dev-1").await;
    let resp = device(&srv, &fw, "dev-1", Method::GET, "/v1/check")
        .send()
        .await
        .unwrap();
    expect_ota_error(resp, 404, "FIRMWARE_NOT_UPLOADED").await;

    let first = firmware(1, 300_000);
    let h1 = upload(&srv, &fw, &first).await;

    // A device that does not say what it runs, or runs something else, gets the hash: the bare
    // string, as the real server sends it (README says JSON; JSON is there on request).
    let resp = device(&srv, &fw, "dev-1", Method::GET, "/v1/check")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.text().await.unwrap(), h1);
    let resp = device(&srv, &fw, "dev-1", Method::GET, "/v1/check/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), h1);
    let resp = device(
        &srv,
        &fw,
        "dev-1",
        Method::POST,
        &format!("/v1/check/{}", "0".repeat(40)),
    )
    .header("accept", "application/json")
    .send()
    .await
    .unwrap();
    assert_eq!(json_body(resp, StatusCode::OK).await, json!({ "hash": h1 }));
    // Running the latest: 204, no body, on GET and on POST (the README's method).
    assert_eq!(
        check(&srv, &fw, "dev-1", Some(&h1)).await,
        (204, String::new())
    );
    let resp = device(&srv, &fw, "dev-1", Method::POST, &format!("/v1/check/{h1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Download with GET, POST and HEAD.
    let resp = download(&srv, &fw, &h1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(header(&headers, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(first.len().to_string())
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], &first[..]);
    let resp = device(
        &srv,
        &fw,
        "dev-1",
        Method::POST,
        &format!("/v1/download/{h1}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], &first[..]);
    let resp = device(
        &srv,
        &fw,
        "dev-1",
        Method::HEAD,
        &format!("/v1/download/{h1}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-length"),
        Some(first.len().to_string())
    );

    // A second image: devices on the first are offered it, and the first stays downloadable
    // (the real server deleted it).
    let second = firmware(2, 200_000);
    let h2 = upload(&srv, &fw, &second).await;
    assert_eq!(
        check(&srv, &fw, "dev-1", Some(&h1)).await,
        (200, h2.clone())
    );
    assert_eq!(check(&srv, &fw, "dev-1", Some(&h2)).await.0, 204);
    assert_eq!(
        &download(&srv, &fw, &h1).await.bytes().await.unwrap()[..],
        &first[..]
    );

    // The same bytes again: harmless (the real server deleted the file check advertised).
    assert_eq!(upload(&srv, &fw, &second).await, h2);
    assert_eq!(check(&srv, &fw, "dev-1", Some(&h2)).await.0, 204);
    assert_eq!(
        &download(&srv, &fw, &h2).await.bytes().await.unwrap()[..],
        &second[..]
    );

    // An older image uploaded again becomes the latest, as an upload does on the real server.
    assert_eq!(upload(&srv, &fw, &first).await, h1);
    assert_eq!(
        check(&srv, &fw, "dev-1", Some(&h2)).await,
        (200, h1.clone())
    );
    assert_eq!(check(&srv, &fw, "dev-1", Some(&h1)).await.0, 204);

    // Every upload is an otter release of the firmware, and the device is in the device list.
    let releases = srv
        .get_json(&format!("/api/v1/products/{}/releases", fw.id))
        .await;
    let versions: Vec<&str> = releases["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [format!("{h1}-2"), h2.clone(), h1.clone()]);
    let devices_path = format!("/api/v1/products/{}/devices", fw.id);
    eventually("the device is listed with its hash", async || {
        let devices = srv.get_json(&devices_path).await;
        let hash = &devices["items"][0]["currentHash"];
        (devices["items"][0]["id"] == "dev-1" && *hash == json!(h1))
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
}

#[tokio::test]
async fn ranges_resume_and_an_unsatisfiable_range_is_416() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    firewall(&srv, &fw, "allow", "dev-1").await;
    let image = firmware(3, 100_000);
    let hash = upload(&srv, &fw, &image).await;
    let resp = download_range(&srv, &fw, &hash, "bytes=60000-").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(resp.headers(), "content-range").as_deref(),
        Some("bytes 60000-99999/100000")
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[60_000..]);
    // The real server answered 206 with no bytes.
    let resp = download_range(&srv, &fw, &hash, "bytes=100000-").await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(resp.headers(), "content-range").as_deref(),
        Some("bytes */100000")
    );
    expect_ota_error(resp, 416, "RANGE_NOT_SATISFIABLE").await;
    expect_ota_error(
        download(&srv, &fw, &"ab".repeat(20)).await,
        404,
        "FIRMWARE_NOT_AVAILABLE",
    )
    .await;
}

#[tokio::test]
async fn the_firewall_allows_all_denies_by_name_and_closes_again() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    let other = create(&srv).await;
    upload(&srv, &fw, &firmware(4, 1000)).await;

    firewall(&srv, &fw, "allow", "all").await;
    assert_eq!(check(&srv, &fw, "dev-1", None).await.0, 200);
    assert_eq!(check(&srv, &fw, "dev-2", None).await.0, 200);
    // Rules belong to one firmware.
    assert_eq!(check(&srv, &other, "dev-1", None).await.0, 401);

    // Denied by name: out, even though `all` is allowed (the real server let it in).
    firewall(&srv, &fw, "deny", "dev-2").await;
    assert_eq!(check(&srv, &fw, "dev-2", None).await.0, 401);
    assert_eq!(check(&srv, &fw, "dev-1", None).await.0, 200);
    let resp = download(&srv, &fw, &sha1_hex(&firmware(4, 1000))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = device(&srv, &fw, "dev-2", Method::GET, "/v1/download/x")
        .send()
        .await
        .unwrap();
    expect_ota_error(resp, 401, "INVALID_AUTH").await;

    // Denying `all` removes the wildcard; named allowances stay. The body may be a form.
    let resp = owner(&srv, &fw, Method::POST, "/v1/firewall/allow")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("device_id=5C%3ACF%3A7F%3A01%3A02%3A03")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    firewall(&srv, &fw, "deny", "all").await;
    assert_eq!(check(&srv, &fw, "dev-1", None).await.0, 401);
    assert_eq!(check(&srv, &fw, "5C:CF:7F:01:02:03", None).await.0, 200);
    firewall(&srv, &fw, "allow", "dev-2").await;
    assert_eq!(check(&srv, &fw, "dev-2", None).await.0, 200);

    // No device_id, or one otter cannot store.
    for body in [
        json!({}),
        json!({"device_id": ""}),
        json!({"device": "dev-1"}),
    ] {
        let resp = owner(&srv, &fw, Method::POST, "/v1/firewall/allow")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_required(resp, "device_id").await;
    }
    let resp = owner(&srv, &fw, Method::POST, "/v1/firewall/deny")
        .json(&json!({"device_id": "a/b"}))
        .send()
        .await
        .unwrap();
    expect_required(resp, "device_id").await;
}

#[tokio::test]
async fn missing_headers_are_400_and_bad_credentials_401() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    firewall(&srv, &fw, "allow", "all").await;

    // Owner endpoints: both headers required; a wrong key or unknown id is INVALID_AUTH.
    for path in ["/v1/firewall/allow", "/v1/firewall/deny", "/v1/upload"] {
        let resp = srv
            .anon(Method::POST, path)
            .header("x-ota-firmware-id", &fw.id)
            .send()
            .await
            .unwrap();
        expect_required(resp, "x-ota-firmware-key").await;
        let resp = srv
            .anon(Method::POST, path)
            .header("x-ota-firmware-key", &fw.key)
            .send()
            .await
            .unwrap();
        expect_required(resp, "x-ota-firmware-id").await;
        let wrong_key = Firmware {
            id: fw.id.clone(),
            key: "x".repeat(52),
        };
        let resp = owner(&srv, &wrong_key, Method::POST, path)
            .json(&json!({"device_id": "dev-1"}))
            .send()
            .await
            .unwrap();
        expect_ota_error(resp, 401, "INVALID_AUTH").await;
        let unknown = Firmware {
            id: "nosuchfirmware".into(),
            key: fw.key.clone(),
        };
        let resp = owner(&srv, &unknown, Method::POST, path)
            .json(&json!({"device_id": "dev-1"}))
            .send()
            .await
            .unwrap();
        expect_ota_error(resp, 401, "INVALID_AUTH").await;
    }
    // Another firmware's key does not open this one.
    let other = create(&srv).await;
    let crossed = Firmware {
        id: fw.id.clone(),
        key: other.key.clone(),
    };
    let resp = upload_request(&srv, &crossed, b"image")
        .send()
        .await
        .unwrap();
    expect_ota_error(resp, 401, "INVALID_AUTH").await;

    // Device endpoints: firmware id and device id required; the key is not needed.
    for path in ["/v1/check", "/v1/download/abc"] {
        let resp = srv
            .anon(Method::GET, path)
            .header("x-ota-firmware-id", &fw.id)
            .send()
            .await
            .unwrap();
        expect_required(resp, "x-ota-device-id").await;
        let resp = srv
            .anon(Method::GET, path)
            .header("x-ota-device-id", "dev-1")
            .send()
            .await
            .unwrap();
        expect_required(resp, "x-ota-firmware-id").await;
        let resp = srv
            .anon(Method::GET, path)
            .header("x-ota-firmware-id", "nosuchfirmware")
            .header("x-ota-device-id", "dev-1")
            .send()
            .await
            .unwrap();
        expect_ota_error(resp, 401, "INVALID_AUTH").await;
    }

    // An upload that is not a form, or a form without a file, is the client's mistake.
    let resp = owner(&srv, &fw, Method::POST, "/v1/upload")
        .body("just bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "INVALID_MULTIPART", "{body}");
}

#[tokio::test]
async fn ota_secret_guards_every_endpoint() {
    let srv = TestServer::with_config(otter_server::Settings {
        ota_secret: Some("s3cret".into()),
        ..test_config()
    })
    .await;
    let resp = srv.anon(Method::POST, "/v1/create").send().await.unwrap();
    expect_required(resp, "x-ota-secret").await;
    let resp = srv
        .anon(Method::POST, "/v1/create")
        .header("x-ota-secret", "guess")
        .send()
        .await
        .unwrap();
    expect_ota_error(resp, 401, "INVALID_AUTH").await;
    // An admin token may create firmwares too.
    let resp = srv.admin(Method::POST, "/v1/create").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = srv
        .anon(Method::POST, "/v1/create")
        .header("x-ota-secret", "s3cret")
        .send()
        .await
        .unwrap();
    let body = json_body(resp, StatusCode::OK).await;
    let fw = Firmware {
        id: body["id"].as_str().unwrap().to_owned(),
        key: body["key"].as_str().unwrap().to_owned(),
    };
    let resp = owner(&srv, &fw, Method::POST, "/v1/firewall/allow")
        .json(&json!({"device_id": "all"}))
        .send()
        .await
        .unwrap();
    expect_required(resp, "x-ota-secret").await;
    let resp = owner(&srv, &fw, Method::POST, "/v1/firewall/allow")
        .header("x-ota-secret", "s3cret")
        .json(&json!({"device_id": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for secret in [None, Some("guess")] {
        let mut req = device(&srv, &fw, "dev-1", Method::GET, "/v1/check");
        if let Some(s) = secret {
            req = req.header("x-ota-secret", s);
        }
        let resp = req.send().await.unwrap();
        match secret {
            None => expect_required(resp, "x-ota-secret").await,
            Some(_) => expect_ota_error(resp, 401, "INVALID_AUTH").await,
        }
    }
    let resp = device(&srv, &fw, "dev-1", Method::GET, "/v1/check")
        .header("x-ota-secret", "s3cret")
        .send()
        .await
        .unwrap();
    expect_ota_error(resp, 404, "FIRMWARE_NOT_UPLOADED").await;
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_not_truncated() {
    let srv = TestServer::with_config(otter_server::Settings {
        max_upload: 64 * 1024,
        ..test_config()
    })
    .await;
    let fw = create(&srv).await;
    firewall(&srv, &fw, "allow", "all").await;
    let resp = upload_request(&srv, &fw, &firmware(5, 100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], 413);
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    // Nothing became visible.
    let (status, _) = check(&srv, &fw, "dev-1", None).await;
    assert_eq!(status, 404);
    // Under the limit is fine.
    upload(&srv, &fw, &firmware(5, 60_000)).await;
}

#[tokio::test]
async fn yanking_a_release_moves_ota_backend_devices_off_it() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    firewall(&srv, &fw, "allow", "all").await;
    let h1 = upload(&srv, &fw, &firmware(6, 5000)).await;
    let h2 = upload(&srv, &fw, &firmware(7, 5000)).await;
    srv.patch_release(&fw.id, &h2, json!({"yanked": true}))
        .await;
    assert_eq!(
        check(&srv, &fw, "dev-1", Some(&h2)).await,
        (200, h1.clone())
    );
    assert_eq!(check(&srv, &fw, "dev-1", Some(&h1)).await.0, 204);
    expect_ota_error(
        download(&srv, &fw, &h2).await,
        404,
        "FIRMWARE_NOT_AVAILABLE",
    )
    .await;
}

#[tokio::test]
async fn firewall_changes_reach_every_node() {
    let a = TestServer::start().await;
    let b = TestServer::sharing_database_with(&a).await;
    let fw = create(&a).await;
    firewall(&a, &fw, "allow", "dev-1").await;
    // Node B lets the device in (nothing uploaded yet) once it has caught up.
    eventually("node B applies the allowance", async || {
        match check(&b, &fw, "dev-1", None).await {
            (404, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The key works on node B, and B's upload is offered by A.
    let hash = upload(&b, &fw, &firmware(8, 2000)).await;
    eventually("node A offers B's upload", async || {
        match check(&a, &fw, "dev-1", None).await {
            (200, body) if body == hash => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    firewall(&a, &fw, "deny", "dev-1").await;
    eventually("node B applies the denial", async || {
        match check(&b, &fw, "dev-1", None).await {
            (401, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Without OTA_SECRET, creating a firmware (a product) takes an admin token unless
/// `--ota-create open` restores ota-backend's open door.
#[tokio::test]
async fn create_is_closed_to_strangers_by_default() {
    let srv = TestServer::start().await;
    let resp = srv.anon(Method::POST, "/v1/create").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "CREATE_CLOSED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--ota-create open")
    );
    assert_eq!(
        srv.get_json("/api/v1/products").await["items"],
        json!([]),
        "nothing was created"
    );

    let open = TestServer::with_config(otter_server::Settings {
        ota_create: otter_server::OtaCreate::Open,
        ..test_config()
    })
    .await;
    let resp = open.anon(Method::POST, "/v1/create").send().await.unwrap();
    json_body(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn an_upload_under_a_rollout_reaches_only_its_stage() {
    let srv = TestServer::start().await;
    let fw = create(&srv).await;
    firewall(&srv, &fw, "allow", "all").await;
    let (first, second) = (firmware(1, 5000), firmware(2, 5000));
    let first_hash = upload(&srv, &fw, &first).await;
    for dev in ["dev-canary", "dev-other"] {
        assert_eq!(check(&srv, &fw, dev, Some(&first_hash)).await.0, 204);
    }
    // The rollout first, for the version the upload will have (its SHA-1), then the upload.
    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/{}/rollouts", fw.id),
        )
        .json(&json!({"version": sha1_hex(&second), "stages": [{"tags": ["canary"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );
    let second_hash = upload(&srv, &fw, &second).await;
    eventually("both devices are recorded", async || {
        let devices = srv
            .get_json(&format!("/api/v1/products/{}/devices", fw.id))
            .await;
        (devices["items"].as_array().map(Vec::len) == Some(2))
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/{}/tags/canary?device=dev-canary", fw.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        check(&srv, &fw, "dev-canary", Some(&first_hash)).await,
        (200, second_hash),
        "the tagged device is in the stage"
    );
    assert_eq!(
        check(&srv, &fw, "dev-other", Some(&first_hash)).await.0,
        204,
        "the other keeps what it runs"
    );
}
