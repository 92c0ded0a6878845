//! THiNX's device API as its client library uses it: check-in with an API key in
//! `Authentication`, `FIRMWARE_UPDATE` with a one-time token, the token download (once), and
//! `POST /device/firmware`; with THiNX's error strings and honest status codes.

use otter_core::digest::MultiHasher;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, firmware, header, json_body};

const MAC: &str = "5C:CF:7F:12:34:56";

/// `lamp` (semver) with 1.1.0 published, and a device API key for it.
async fn lamp(image: &[u8]) -> (TestServer, String) {
    let srv = TestServer::start().await;
    srv.create_product("lamp", "semver").await;
    let sha = srv.upload(image).await;
    srv.publish("lamp", "1.1.0", &sha, json!({})).await;
    let resp = srv
        .admin(Method::POST, "/api/v1/products/lamp/apikeys")
        .json(&json!({"label": "factory"}))
        .send()
        .await
        .unwrap();
    let created = json_body(resp, StatusCode::CREATED).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    (srv, key)
}

/// A check-in the way THiNXLib sends it.
async fn register(srv: &TestServer, key: &str, registration: Value) -> Response {
    srv.anon(Method::POST, "/device/register")
        .header("authentication", key)
        .header("origin", "device")
        .header("user-agent", "THiNX-Client")
        .json(&json!({ "registration": registration }))
        .send()
        .await
        .unwrap()
}

fn registration(udid: Option<&str>, version: &str) -> Value {
    let mut r = json!({
        "mac": MAC,
        "firmware": "lamp-1.0.0",
        "version": version,
        "commit": "0c4f1e2",
        "owner": "cedc16bb6bb06daaa3ff6d30666d91aacd6e3efbf9abbc151b4dcade59af7c12",
        "alias": "hall-lamp",
        "platform": "arduino:esp8266",
    });
    if let Some(u) = udid {
        r["udid"] = json!(u);
    }
    r
}

async fn set_auto_update(srv: &TestServer, udid: &str, on: bool) -> Value {
    let resp = srv
        .admin(
            Method::PATCH,
            &format!("/api/v1/products/lamp/devices/{udid}"),
        )
        .json(&json!({ "autoUpdate": on }))
        .send()
        .await
        .unwrap();
    json_body(resp, StatusCode::OK).await
}

/// Registers a new device, waits until it is in the device list, and turns auto-update on.
async fn known_device(srv: &TestServer, key: &str) -> String {
    let resp = register(srv, key, registration(None, "1.0.0")).await;
    let body = json_body(resp, StatusCode::OK).await;
    let udid = body["registration"]["udid"].as_str().unwrap().to_owned();
    eventually("the device is listed", async || {
        let devices = srv.get_json("/api/v1/products/lamp/devices").await;
        (devices["items"][0]["id"] == json!(udid))
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
    set_auto_update(srv, &udid, true).await;
    udid
}

fn md5_hex(bytes: &[u8]) -> String {
    let mut hasher = MultiHasher::new();
    hasher.update(bytes);
    hasher.finish().md5
}

/// `GET /device/firmware?ott=…` with an optional `Range`.
async fn fetch(srv: &TestServer, ott: &str, range: Option<&str>) -> Response {
    let mut req = srv.anon(Method::GET, &format!("/device/firmware?ott={ott}"));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

async fn expect_thinx_error(resp: Response, status: u16, response: &str) {
    let got = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body, json!({"success": false, "response": response}));
}

async fn expect_raw(resp: Response, status: u16, text: &str) {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.text().await.unwrap(), text);
}

/// The token is spent: refused with THiNX's string (the spend is recorded just after the last
/// byte left, so the very next request may still race it).
async fn expect_spent(srv: &TestServer, ott: &str) {
    eventually("the token is spent", async || {
        let resp = fetch(srv, ott, Some("bytes=0-9")).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        (status == 410 && text == "OTT_UPDATE_NOT_FOUND")
            .then_some(())
            .ok_or(format!("{status}"))
    })
    .await;
}

#[tokio::test]
async fn check_in_then_update_with_a_one_time_token() {
    let image = firmware(1, 150_000);
    let (srv, key) = lamp(&image).await;

    // First check-in: the device gets a UDID; auto-update is off, so no update yet.
    let resp = register(&srv, &key, registration(None, "1.0.0")).await;
    let body = json_body(resp, StatusCode::OK).await;
    let reg = &body["registration"];
    assert_eq!(reg["success"], true);
    assert_eq!(reg["status"], "OK");
    assert_eq!(reg["auto_update"], false);
    assert_eq!(reg["alias"], "hall-lamp");
    let udid = reg["udid"].as_str().unwrap().to_owned();
    assert_eq!(udid.len(), 36);
    // Without its UDID (lost settings), the same MAC gets the same UDID back.
    let again = json_body(
        register(&srv, &key, registration(None, "1.0.0")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["registration"]["udid"], json!(udid));

    eventually("the device is listed with its MAC", async || {
        let devices = srv.get_json("/api/v1/products/lamp/devices").await;
        let d = &devices["items"][0];
        (d["id"] == json!(udid) && d["attributes"]["mac"] == MAC && d["currentVersion"] == "1.0.0")
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
    assert_eq!(set_auto_update(&srv, &udid, true).await["autoUpdate"], true);

    // Now the check-in says FIRMWARE_UPDATE, with a token and a ready URL.
    let body = json_body(
        register(&srv, &key, registration(Some(&udid), "1.0.0")).await,
        StatusCode::OK,
    )
    .await;
    let reg = &body["registration"];
    assert_eq!(reg["status"], "FIRMWARE_UPDATE", "{body}");
    assert_eq!(reg["version"], "1.1.0");
    assert_eq!(reg["mac"], MAC);
    assert_eq!(reg["udid"], json!(udid));
    assert!(reg.get("success").is_none() && reg.get("owner").is_none());
    let ott = reg["ott"].as_str().unwrap().to_owned();
    assert_eq!(ott.len(), 64);
    assert!(ott.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        reg["url"],
        json!(format!("{}/device/firmware?ott={ott}", srv.base))
    );

    // The device downloads with the token alone: the raw image, as ESP8266httpUpdate wants it.
    let resp = fetch(&srv, &ott, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        header(&h, "content-disposition").as_deref(),
        Some("attachment; filename=firmware.bin")
    );
    assert_eq!(header(&h, "content-length"), Some(image.len().to_string()));
    assert_eq!(header(&h, "x-md5"), Some(md5_hex(&image)));
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);
    // Once.
    expect_spent(&srv, &ott).await;

    // Running 1.1.0: nothing more to do.
    let body = json_body(
        register(&srv, &key, registration(Some(&udid), "1.1.0")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["registration"]["status"], "OK");
}

#[tokio::test]
async fn a_cut_download_keeps_the_token_and_the_resume_spends_it() {
    let image = firmware(2, 100_000);
    let (srv, key) = lamp(&image).await;
    // A forced update works without auto-update.
    let mut forced = registration(None, "1.0.0");
    forced["forced"] = json!(true);
    let body = json_body(register(&srv, &key, forced).await, StatusCode::OK).await;
    assert_eq!(body["registration"]["status"], "FIRMWARE_UPDATE", "{body}");
    let ott = body["registration"]["ott"].as_str().unwrap().to_owned();

    // The first 40 kB, then the connection drops: the token is still good for the rest.
    let resp = fetch(&srv, &ott, Some("bytes=0-39999")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let mut received = resp.bytes().await.unwrap().to_vec();
    let resp = fetch(&srv, &ott, Some("bytes=40000-")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    received.extend_from_slice(&resp.bytes().await.unwrap());
    assert_eq!(received, image);
    // The last byte went out: spent.
    expect_spent(&srv, &ott).await;

    // A token issued before a yank does not fetch the withdrawn image.
    let mut forced = registration(None, "1.0.0");
    forced["forced"] = json!(true);
    let body = json_body(register(&srv, &key, forced).await, StatusCode::OK).await;
    let ott = body["registration"]["ott"].as_str().unwrap().to_owned();
    srv.patch_release("lamp", "1.1.0", json!({"yanked": true}))
        .await;
    expect_thinx_error(
        fetch(&srv, &ott, None).await,
        404,
        "OTT_UPDATE_NOT_AVAILABLE",
    )
    .await;
}

#[tokio::test]
async fn post_firmware_answers_the_image_or_a_token() {
    let image = firmware(3, 20_000);
    let (srv, key) = lamp(&image).await;
    let udid = known_device(&srv, &key).await;
    let post = |body: Value| {
        srv.anon(Method::POST, "/device/firmware")
            .header("authentication", &key)
            .json(&body)
            .send()
    };

    // Right away: the raw bytes (THiNX sends a JSON-wrapped buffer), connection closed.
    let resp = post(json!({"mac": MAC, "udid": udid, "owner": "o"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "connection").as_deref(),
        Some("close")
    );
    assert_eq!(header(resp.headers(), "x-md5"), Some(md5_hex(&image)));
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);

    // With "use":"ott" (here inside `registration`): a token and its URL.
    let resp = post(json!({"registration": {"mac": MAC, "udid": udid, "use": "ott"}}))
        .await
        .unwrap();
    let body = json_body(resp, StatusCode::OK).await;
    let url = body["url"].as_str().unwrap();
    assert!(url.ends_with(body["ott"].as_str().unwrap()));
    let resp = srv.client.get(url).send().await.unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);

    // Once the device runs 1.1.0 there is nothing to send, unless forced.
    register(&srv, &key, registration(Some(&udid), "1.1.0")).await;
    eventually("the device runs 1.1.0", async || {
        let resp = post(json!({"mac": MAC, "udid": udid}))
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        (body == json!({"success": false, "status": "OK"}))
            .then_some(())
            .ok_or(body.to_string())
    })
    .await;
    let resp = post(json!({"mac": MAC, "udid": udid, "forced": "true"}))
        .await
        .unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);
}

#[tokio::test]
async fn errors_keep_thinx_strings_with_honest_statuses() {
    let image = firmware(4, 5000);
    let (srv, key) = lamp(&image).await;

    // Check-in.
    let resp = srv
        .anon(Method::POST, "/device/register")
        .header("authentication", &key)
        .send()
        .await
        .unwrap();
    expect_thinx_error(resp, 400, "no_body").await;
    for body in [json!({}), json!({"registration": {}}), json!({"mac": MAC})] {
        let resp = srv
            .anon(Method::POST, "/device/register")
            .header("authentication", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_thinx_error(resp, 400, "request_invalid").await;
    }
    expect_thinx_error(
        register(&srv, "", registration(None, "1.0.0")).await,
        401,
        "authentication_error",
    )
    .await;
    expect_thinx_error(
        register(&srv, &"0".repeat(64), registration(None, "1.0.0")).await,
        401,
        "authentication_error",
    )
    .await;
    // `Authorization` is not THiNX's header.
    let resp = srv
        .anon(Method::POST, "/device/register")
        .header("authorization", &key)
        .json(&json!({"registration": registration(None, "1.0.0")}))
        .send()
        .await
        .unwrap();
    expect_thinx_error(resp, 401, "authentication_error").await;
    let resp = register(&srv, &key, registration(None, "banana")).await;
    expect_thinx_error(resp, 400, "invalid_version").await;

    // Token downloads.
    let resp = srv
        .anon(Method::GET, "/device/firmware")
        .send()
        .await
        .unwrap();
    expect_thinx_error(resp, 400, "OTT_MISSING").await;
    expect_raw(
        fetch(&srv, &"ab".repeat(32), None).await,
        404,
        "OTT_UPDATE_NOT_FOUND",
    )
    .await;

    // Immediate firmware.
    let post = |key: &str, body: Value| {
        srv.anon(Method::POST, "/device/firmware")
            .header("authentication", key)
            .json(&body)
            .send()
    };
    let resp = post(&key, json!({"udid": "x"})).await.unwrap();
    expect_thinx_error(resp, 400, "missing_mac").await;
    let resp = post("nope", json!({"mac": MAC})).await.unwrap();
    expect_thinx_error(resp, 401, "authentication").await;
    let resp = post(&key, json!({"mac": "00:11:22:33:44:55"}))
        .await
        .unwrap();
    expect_raw(resp, 404, "no_such_device").await;

    // A revoked key opens nothing.
    let keys = srv.get_json("/api/v1/products/lamp/apikeys").await;
    let id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(keys["items"][0]["label"], "factory");
    assert!(keys["items"][0].get("key").is_none(), "keys are shown once");
    let resp = srv
        .admin(
            Method::DELETE,
            &format!("/api/v1/products/lamp/apikeys/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_thinx_error(
        register(&srv, &key, registration(None, "1.0.0")).await,
        401,
        "authentication_error",
    )
    .await;

    // Admin side: unknown device, unknown key.
    let resp = srv
        .admin(Method::PATCH, "/api/v1/products/lamp/devices/nobody")
        .json(&json!({"autoUpdate": true}))
        .send()
        .await
        .unwrap();
    crate::common::expect_error(resp, 404, "device_not_found").await;
    let resp = srv
        .admin(
            Method::DELETE,
            &format!("/api/v1/products/lamp/apikeys/{id}"),
        )
        .send()
        .await
        .unwrap();
    crate::common::expect_error(resp, 404, "api_key_not_found").await;
}

#[tokio::test]
async fn a_download_dropped_midway_does_not_spend_the_token() {
    // Larger than what loopback socket buffers hold, so the server is still sending when the
    // device goes away.
    let image = firmware(5, 24 << 20);
    let (srv, key) = lamp(&image).await;
    let mut forced = registration(None, "1.0.0");
    forced["forced"] = json!(true);
    let body = json_body(register(&srv, &key, forced).await, StatusCode::OK).await;
    let ott = body["registration"]["ott"].as_str().unwrap().to_owned();

    let mut cut = fetch(&srv, &ott, None).await;
    assert_eq!(cut.status(), StatusCode::OK);
    let first = cut.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(cut);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let resp = fetch(&srv, &ott, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "the token survived the cut");
    assert_eq!(resp.bytes().await.unwrap().len(), image.len());
    expect_spent(&srv, &ott).await;
}

/// Fields a device sends that end up in the device list are capped: a 1 MB alias, 100 KB
/// owner or platform and a 5,000-character MAC are refused whole, in THiNX's format.
#[tokio::test]
async fn oversized_registration_fields_are_refused() {
    let (srv, key) = lamp(b"lamp image").await;
    for (field, len) in [
        ("alias", 1 << 20),
        ("owner", 100_000),
        ("platform", 100_000),
        ("mac", 5_000),
        ("alias", 257),
    ] {
        let mut reg = registration(None, "1.0.0");
        reg[field] = json!("a".repeat(len));
        let resp = register(&srv, &key, reg).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field} of {len}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"success": false, "response": "field_too_long"}),
            "{field} of {len}"
        );
    }
    // At the cap it is accepted.
    let mut reg = registration(None, "1.0.0");
    reg["alias"] = json!("a".repeat(256));
    assert_eq!(register(&srv, &key, reg).await.status(), StatusCode::OK);
}
