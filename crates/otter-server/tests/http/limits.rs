//! Rate limits over real HTTP: per remote address (`--rate-limit-address`, other addresses and
//! admins unaffected) and per device (`--rate-limit-device`, in each protocol's format), with
//! 429, `Retry-After` and `otter_rate_limited_total{scope}`; every 429 held back
//! `--rate-limit-hold`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, expect_error, header, test_config};

/// The counter of refusals in `scope`, from a scrape of `/metrics`.
async fn rate_limited(srv: &TestServer, scope: &str) -> f64 {
    let text = srv.anon_text("/metrics").await;
    let prefix = format!("otter_rate_limited_total{{scope=\"{scope}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// A client whose connections come from `127.0.0.<last>` (the whole of 127/8 is loopback).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_burst_from_one_address_gets_429_and_other_clients_are_unaffected() {
    let srv = TestServer::with_config(otter_server::Settings {
        rate_limit_address: "1/h:5".parse().unwrap(),
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    let before = rate_limited(&srv, "address").await;
    let check = srv.url("/api/v1/products/door/check");

    let flooder = client_from(7);
    for i in 0..5 {
        let resp = flooder.get(&check).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "request {i} of the burst");
    }
    let refused = flooder.get(&check).send().await.unwrap();
    let retry_after: u64 = header(refused.headers(), "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    // A token an hour: the next one is about an hour away.
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let body = expect_error(refused, 429, "rate_limited").await;
    assert_eq!(body["retryAfter"], json!(retry_after));
    // Any path, not only checks: the address is out of tokens.
    let resp = flooder.get(srv.url("/dl/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another device's address, health probes and admins go on as before.
    let other = client_from(8);
    let resp = other.get(&check).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = flooder.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = flooder
        .get(srv.url("/api/v1/products/door"))
        .bearer_auth(&srv.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A wrong token is no way around it.
    let resp = flooder
        .get(srv.url("/api/v1/products/door"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    assert!(rate_limited(&srv, "address").await >= before + 3.0);
}

#[tokio::test]
async fn a_device_checking_too_often_gets_429_and_other_devices_do_not() {
    let srv = TestServer::with_config(otter_server::Settings {
        rate_limit_device: "1/h:2".parse().unwrap(),
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    let before = rate_limited(&srv, "device").await;
    let check = |query: &str| {
        srv.anon(Method::GET, &format!("/api/v1/products/door/check?{query}"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(check("device=d1").await.unwrap().status(), StatusCode::OK);
    }
    let refused = check("device=d1").await.unwrap();
    assert!(header(refused.headers(), "retry-after").is_some());
    expect_error(refused, 429, "rate_limited").await;
    assert_eq!(check("device=d2").await.unwrap().status(), StatusCode::OK);
    // Reports share the device's bucket: d2 has one request left, d1 none.
    let report = |device: &str| {
        srv.anon(Method::POST, "/api/v1/products/door/reports")
            .json(&json!({"device": device, "version": "1.0.0", "state": "failed"}))
            .send()
    };
    assert_eq!(report("d2").await.unwrap().status(), StatusCode::CREATED);
    expect_error(report("d2").await.unwrap(), 429, "rate_limited").await;
    expect_error(report("d1").await.unwrap(), 429, "rate_limited").await;

    // ota-backend's devices get the refusal in ota-backend's format.
    let created = srv
        .admin(Method::POST, "/v1/create")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let allowed = srv
        .anon(Method::POST, "/v1/firewall/allow")
        .header("x-ota-firmware-id", id)
        .header("x-ota-firmware-key", created["key"].as_str().unwrap())
        .json(&json!({ "device_id": "esp-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let ota_check = || {
        srv.anon(Method::GET, "/v1/check")
            .header("x-ota-firmware-id", id)
            .header("x-ota-device-id", "esp-1")
            .send()
    };
    for _ in 0..2 {
        // No firmware uploaded yet: ota-backend's 404, after the limit let it in.
        assert_eq!(ota_check().await.unwrap().status(), StatusCode::NOT_FOUND);
    }
    let refused = ota_check().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(refused.headers(), "retry-after").is_some());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], 429);
    assert_eq!(body["code"], "RATE_LIMITED");

    assert!(rate_limited(&srv, "device").await >= before + 2.0);
}

/// A refused device waits `--rate-limit-hold` for its 429 (so a client flooding from keep-alive
/// connections gets one answer per connection per hold), while other devices are answered
/// meanwhile.
#[tokio::test]
async fn a_refusal_is_held_back_while_other_devices_are_answered() {
    let hold = Duration::from_secs(5);
    let srv = TestServer::with_config(otter_server::Settings {
        rate_limit_device: "1/h:1".parse().unwrap(),
        rate_limit_hold: hold,
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    let check = |device: &str| {
        srv.anon(
            Method::GET,
            &format!("/api/v1/products/door/check?device={device}"),
        )
        .send()
    };
    assert_eq!(check("d1").await.unwrap().status(), StatusCode::OK);
    let started = Instant::now();
    let refused = tokio::spawn(check("d1"));
    assert_eq!(check("d2").await.unwrap().status(), StatusCode::OK);
    assert!(
        !refused.is_finished(),
        "the refusal went out before the hold"
    );
    expect_error(refused.await.unwrap().unwrap(), 429, "rate_limited").await;
    assert!(started.elapsed() >= hold, "{:?}", started.elapsed());
}
