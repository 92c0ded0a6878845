//! The device registry over HTTP: filters and pagination, tagging by filter, channel moves,
//! pins, delete, and admission (deny beats allow on every protocol that names devices).

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, expect_error, json_body};

const MAC: &str = "5C:CF:7F:12:34:56";

/// Waits until `product`'s device list (filtered by `query`) holds exactly `ids`.
async fn listed(srv: &TestServer, product: &str, query: &str, ids: &[&str]) {
    eventually("the devices are listed", async || {
        let items = srv
            .all_pages(&format!("/api/v1/products/{product}/devices?{query}"), 2)
            .await;
        let got: Vec<&str> = items.iter().map(|d| d["id"].as_str().unwrap()).collect();
        (got == ids).then_some(()).ok_or(format!("{got:?}"))
    })
    .await;
}

async fn send(srv: &TestServer, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut req = srv.admin(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn patch_device(srv: &TestServer, device: &str, patch: Value) -> Value {
    let path = format!("/api/v1/products/door/devices/{device}");
    json_body(
        send(srv, Method::PATCH, &path, Some(patch)).await,
        StatusCode::OK,
    )
    .await
}

/// `POST` (tag) or `DELETE` (untag) `/tags/{tag}?{filter}` → how many devices changed.
async fn tagging(srv: &TestServer, method: Method, tag: &str, filter: &str) -> u64 {
    let path = format!("/api/v1/products/door/tags/{tag}?{filter}");
    let body = json_body(send(srv, method, &path, None).await, StatusCode::OK).await;
    assert_eq!(body["tag"], tag);
    body["changed"].as_u64().unwrap()
}

/// `door` with 1.0.0 and 1.1.0 on stable and 2.0.0 on beta.
async fn door() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;
    srv.release("door", "2.0.0", json!({"channels": ["beta"]}))
        .await;
    srv
}

#[tokio::test]
async fn devices_filter_paginate_and_tag_by_filter() {
    let srv = door().await;
    for (device, query) in [
        ("d1", "current=1.0.0"),
        ("d2", "current=1.0.0"),
        ("d3", "current=1.1.0"),
        ("d4", "current=2.0.0&channel=beta"),
    ] {
        srv.check("door", &format!("device={device}&{query}")).await;
    }
    let resp = srv
        .anon(Method::GET, "/arduino/door/update")
        .header("x-ESP8266-STA-MAC", MAC)
        .header("x-ESP8266-version", "1.1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_MODIFIED,
        "it runs the newest"
    );
    listed(&srv, "door", "", &[MAC, "d1", "d2", "d3", "d4"]).await;

    // What the last check-in said: protocol and address.
    let d1 = srv.get_json("/api/v1/products/door/devices/d1").await;
    assert_eq!(d1["protocol"], "native");
    assert_eq!(d1["remoteAddress"], "127.0.0.1");
    assert_eq!(d1["tags"], json!([]));
    listed(&srv, "door", "protocol=arduino", &[MAC]).await;
    listed(&srv, "door", "version=1.0.0", &["d1", "d2"]).await;
    listed(&srv, "door", "channel=beta", &["d4"]).await;
    listed(&srv, "door", "seenBefore=2000-01-01T00:00:00Z", &[]).await;
    listed(
        &srv,
        "door",
        "seenAfter=2000-01-01T00:00:00Z&version=1.1.0",
        &[MAC, "d3"],
    )
    .await;

    // Tag everyone on 1.x of stable in one request; again changes nobody.
    assert_eq!(
        tagging(&srv, Method::POST, "canary", "channel=stable").await,
        4
    );
    assert_eq!(
        tagging(&srv, Method::POST, "canary", "channel=stable").await,
        0
    );
    listed(&srv, "door", "tag=canary", &[MAC, "d1", "d2", "d3"]).await;
    // Untag one device, then all matching a filter.
    assert_eq!(
        tagging(&srv, Method::DELETE, "canary", "device=d1").await,
        1
    );
    assert_eq!(
        tagging(&srv, Method::DELETE, "canary", "version=1.1.0").await,
        2
    );
    listed(&srv, "door", "tag=canary", &["d2"]).await;
    assert_eq!(
        srv.get_json("/api/v1/products/door/devices/d2").await["tags"],
        json!(["canary"])
    );

    // Mistakes are 400s in the house format, not 500s.
    for (method, path, code) in [
        (
            Method::GET,
            "/api/v1/products/door/devices?seenBefore=yesterday",
            "invalid_field",
        ),
        (
            Method::GET,
            "/api/v1/products/door/devices?status=broken",
            "invalid_query",
        ),
        (
            Method::POST,
            "/api/v1/products/door/tags/bad%20tag",
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/products/door/tags/x?limit=2",
            "invalid_query",
        ),
    ] {
        expect_error(send(&srv, method, path, None).await, 400, code).await;
    }
    expect_error(
        send(&srv, Method::POST, "/api/v1/products/nope/tags/x", None).await,
        404,
        "product_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_channel_move_changes_what_the_device_is_offered() {
    let srv = door().await;
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    listed(&srv, "door", "", &["d1"]).await;
    let moved = patch_device(&srv, "d1", json!({"assignedChannel": "beta"})).await;
    assert_eq!(
        (moved["assignedChannel"].as_str(), moved["channel"].as_str()),
        (Some("beta"), Some("stable"))
    );
    // It asks for stable, and gets beta's release.
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("2.0.0")
    );
    assert_eq!(
        srv.offered("door", "device=d2&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    listed(&srv, "door", "channel=beta", &["d1"]).await;
    patch_device(&srv, "d1", json!({"assignedChannel": null})).await;
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    let resp = send(
        &srv,
        Method::PATCH,
        "/api/v1/products/door/devices/d1",
        Some(json!({"assignedChannel": "no such/channel"})),
    )
    .await;
    expect_error(resp, 400, "invalid_field").await;
}

#[tokio::test]
async fn a_pin_offers_an_older_release_and_ignores_newer_ones() {
    let srv = door().await;
    srv.check("door", "device=d1&current=1.1.0").await;
    listed(&srv, "door", "", &["d1"]).await;

    // Never seen, or a version the product does not have: 404s.
    let resp = send(
        &srv,
        Method::PATCH,
        "/api/v1/products/door/devices/d9",
        Some(json!({"pinnedVersion": "1.0.0"})),
    )
    .await;
    expect_error(resp, 404, "device_not_found").await;
    let resp = send(
        &srv,
        Method::PATCH,
        "/api/v1/products/door/devices/d1",
        Some(json!({"pinnedVersion": "9.9.9"})),
    )
    .await;
    expect_error(resp, 404, "release_not_found").await;

    let pinned = patch_device(&srv, "d1", json!({"pinnedVersion": "1.0.0"})).await;
    assert_eq!(pinned["pinnedVersion"], "1.0.0");
    // Back to the older release (only a pin does that), then nothing newer, new channel or not.
    assert_eq!(
        srv.offered("door", "device=d1&current=1.1.0")
            .await
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(srv.offered("door", "device=d1&current=1.0.0").await, None);
    srv.release("door", "1.2.0", json!({"mandatory": true}))
        .await;
    assert_eq!(srv.offered("door", "device=d1&current=1.0.0").await, None);
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0&channel=beta")
            .await,
        None
    );
    // Other devices are not affected; unpinned, d1 follows the rules again.
    assert_eq!(
        srv.offered("door", "device=d2&current=1.0.0")
            .await
            .as_deref(),
        Some("1.2.0")
    );
    patch_device(&srv, "d1", json!({"pinnedVersion": null})).await;
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("1.2.0")
    );
    assert_eq!(srv.offered("door", "device=d1&current=1.2.0").await, None);
}

#[tokio::test]
async fn deleting_a_device_forgets_it() {
    let srv = door().await;
    srv.check("door", "device=d1&current=1.0.0").await;
    srv.check("door", "device=d2&current=1.0.0").await;
    listed(&srv, "door", "", &["d1", "d2"]).await;
    tagging(&srv, Method::POST, "canary", "").await;
    patch_device(&srv, "d1", json!({"pinnedVersion": "1.0.0"})).await;
    let resp = send(
        &srv,
        Method::DELETE,
        "/api/v1/products/door/devices/d1",
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    listed(&srv, "door", "", &["d2"]).await;
    let resp = send(&srv, Method::GET, "/api/v1/products/door/devices/d1", None).await;
    expect_error(resp, 404, "device_not_found").await;
    let resp = send(
        &srv,
        Method::DELETE,
        "/api/v1/products/door/devices/d1",
        None,
    )
    .await;
    expect_error(resp, 404, "device_not_found").await;
    // Its pin went with it: it is offered what any device is, and comes back untagged.
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    listed(&srv, "door", "", &["d1", "d2"]).await;
    listed(&srv, "door", "tag=canary", &["d2"]).await;
}

/// `door`'s device API key for THiNX.
async fn api_key(srv: &TestServer) -> String {
    let resp = send(
        srv,
        Method::POST,
        "/api/v1/products/door/apikeys",
        Some(json!({"label": "t"})),
    )
    .await;
    json_body(resp, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The status of one check of device [`MAC`] over each protocol that names devices: native
/// check, native report, Arduino, THiNX.
async fn every_protocol(srv: &TestServer, key: &str) -> [(&'static str, u16, Value); 4] {
    let body = async |resp: Response| {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let native = body(
        srv.anon(
            Method::GET,
            &format!("/api/v1/products/door/check?device={MAC}&current=1.0.0"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let report = body(
        srv.anon(Method::POST, "/api/v1/products/door/reports")
            .json(&json!({"device": MAC, "version": "1.0.0", "state": "downloading"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let arduino = body(
        srv.anon(Method::GET, "/arduino/door/update")
            .header("x-ESP8266-STA-MAC", MAC)
            .header("x-ESP8266-version", "1.1.0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let thinx = body(
        srv.anon(Method::POST, "/device/register")
            .header("authentication", key)
            .json(&json!({"registration": {"mac": MAC, "udid": MAC, "version": "1.0.0"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    [
        ("native check", native.0, native.1),
        ("native report", report.0, report.1),
        ("arduino", arduino.0, arduino.1),
        ("thinx", thinx.0, thinx.1),
    ]
}

async fn set_access(srv: &TestServer, product: &str, device: &str, access: &str) -> Value {
    let path = format!("/api/v1/products/{product}/admission/{device}");
    let resp = send(srv, Method::PUT, &path, Some(json!({ "access": access }))).await;
    json_body(resp, StatusCode::OK).await
}

async fn set_mode(srv: &TestServer, product: &str, mode: &str) -> Value {
    let path = format!("/api/v1/products/{product}/admission");
    let resp = send(srv, Method::PUT, &path, Some(json!({ "mode": mode }))).await;
    json_body(resp, StatusCode::OK).await
}

fn assert_all(results: &[(&str, u16, Value)], admitted: bool) {
    for (protocol, status, body) in results {
        if admitted {
            assert!(*status < 400, "{protocol}: {status} {body}");
        } else {
            assert_eq!(*status, 403, "{protocol}: {body}");
            let code = body.get("error").or(body.get("response"));
            assert_eq!(code, Some(&json!("device_denied")), "{protocol}: {body}");
        }
    }
}

#[tokio::test]
async fn deny_beats_allow_on_every_protocol() {
    let srv = door().await;
    let key = api_key(&srv).await;
    assert_all(&every_protocol(&srv, &key).await, true);

    // Allowed by name, then denied: out everywhere, in the open mode and the allowlist alike.
    set_access(&srv, "door", MAC, "allow").await;
    assert_all(&every_protocol(&srv, &key).await, true);
    let rules = set_access(&srv, "door", MAC, "deny").await;
    assert_eq!(
        rules,
        json!({"mode": "open", "allowed": [], "denied": [MAC]})
    );
    assert_all(&every_protocol(&srv, &key).await, false);
    set_mode(&srv, "door", "allowlist").await;
    assert_all(&every_protocol(&srv, &key).await, false);
    // Another device is let in where the mode says so.
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("1.1.0"),
        "no identity"
    );
    set_mode(&srv, "door", "open").await;
    assert_eq!(
        srv.offered("door", "device=other&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    // The manifest contract names no device: nothing to deny (its answer is the release rules').
    let manifest = srv
        .get_json("/m/door/api/firmware/check?current=1.0.0")
        .await;
    assert_eq!(manifest["manifest"]["version"], "1.1.0");

    // ota-backend: its firewall is the same rules; a device denied by name stays out even with
    // `all` allowed, with ota-backend's own 401.
    let created = json_body(
        send(&srv, Method::POST, "/v1/create", None).await,
        StatusCode::OK,
    )
    .await;
    let (id, fw_key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let rules = srv
        .get_json(&format!("/api/v1/products/{id}/admission"))
        .await;
    assert_eq!(
        rules["mode"], "allowlist",
        "a new firmware is closed, as in ota-backend"
    );
    let resp = srv
        .anon(Method::POST, "/v1/firewall/allow")
        .header("x-ota-firmware-id", id)
        .header("x-ota-firmware-key", fw_key)
        .json(&json!({"device_id": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rules = srv
        .get_json(&format!("/api/v1/products/{id}/admission"))
        .await;
    assert_eq!(rules["mode"], "open", "allowing all is the open mode");
    let ota_check = async |device: &str| {
        srv.anon(Method::GET, "/v1/check")
            .header("x-ota-firmware-id", id)
            .header("x-ota-device-id", device)
            .send()
            .await
            .unwrap()
    };
    assert_ne!(ota_check(MAC).await.status(), StatusCode::UNAUTHORIZED);
    set_access(&srv, id, MAC, "allow").await;
    set_access(&srv, id, MAC, "deny").await;
    let resp = ota_check(MAC).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], "INVALID_AUTH");
    assert_ne!(ota_check("dev-2").await.status(), StatusCode::UNAUTHORIZED);

    // `all` is the mode, not a device; a mode or access otter does not know is a 400.
    let resp = send(
        &srv,
        Method::PUT,
        "/api/v1/products/door/admission/all",
        Some(json!({"access": "allow"})),
    )
    .await;
    expect_error(resp, 400, "reserved_device_id").await;
    let resp = send(
        &srv,
        Method::PUT,
        "/api/v1/products/door/admission",
        Some(json!({"mode": "closed"})),
    )
    .await;
    expect_error(resp, 400, "invalid_admission").await;
    let resp = send(
        &srv,
        Method::PUT,
        &format!("/api/v1/products/door/admission/{MAC}"),
        Some(json!({"access": "maybe"})),
    )
    .await;
    expect_error(resp, 400, "invalid_access").await;
}

#[tokio::test]
async fn the_allowlist_keeps_unknown_devices_out_and_lets_allowed_ones_in() {
    let srv = door().await;
    let rules = set_mode(&srv, "door", "allowlist").await;
    assert_eq!(
        rules,
        json!({"mode": "allowlist", "allowed": [], "denied": []})
    );
    let resp = srv
        .anon(
            Method::GET,
            "/api/v1/products/door/check?device=d1&current=1.0.0",
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "device_denied").await;
    set_access(&srv, "door", "d1", "allow").await;
    assert_eq!(
        srv.offered("door", "device=d1&current=1.0.0")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    // Its rule removed, the mode decides again.
    let resp = send(
        &srv,
        Method::DELETE,
        "/api/v1/products/door/admission/d1",
        None,
    )
    .await;
    assert_eq!(json_body(resp, StatusCode::OK).await["allowed"], json!([]));
    let resp = srv
        .anon(
            Method::GET,
            "/api/v1/products/door/check?device=d1&current=1.0.0",
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "device_denied").await;
    // Not a device: the admission of a product that does not exist.
    let resp = send(&srv, Method::GET, "/api/v1/products/nope/admission", None).await;
    expect_error(resp, 404, "product_not_found").await;
}
