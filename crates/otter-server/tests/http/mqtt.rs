//! MQTT update notifications against a real Mosquitto, read with a real client
//! (`mosquitto_sub`): retained channel and device messages, THiNX's message with a working
//! one-time token, and a broker restart in the middle that loses nothing.

use std::time::Duration;

use otter_server::Secret;
use otter_testkit::mosquitto::Reader;
use otter_testkit::wait_until_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, json_body, test_config};

/// The retained message of `topic`, parsed.
async fn retained(reader: &Reader, topic: &str) -> Option<Value> {
    let (reader, topic) = (reader.clone(), topic.to_owned());
    let text = tokio::task::spawn_blocking(move || reader.retained(&topic))
        .await
        .unwrap()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// A server that publishes its notifications on `broker`.
async fn notifying(broker: &otter_testkit::mosquitto::Broker) -> TestServer {
    TestServer::with_config(otter_server::Settings {
        mqtt_url: Some(Secret::url(&broker.url())),
        ..test_config()
    })
    .await
}

/// Waits until `product`'s first device has `field` = `value` in the device list.
async fn until_device(srv: &TestServer, product: &str, field: &str, value: Value) {
    let path = format!("/api/v1/products/{product}/devices");
    eventually(&format!("the device's {field} is {value}"), async || {
        let devices = srv.get_json(&path).await;
        (devices["items"][0][field] == value)
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
}

/// Waits until `topic` carries a message whose `field` is `value`; returns the message.
async fn until(
    reader: &Reader,
    topic: &str,
    field: &str,
    value: Value,
    patience: Duration,
) -> Value {
    wait_until_async(
        patience,
        &format!("{topic} says {field} = {value}"),
        async || match retained(reader, topic).await {
            Some(m) if m[field] == value => Ok(m),
            other => Err(format!("{other:?}")),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_announced_and_survive_a_broker_restart() {
    let Some(mut broker) = otter_testkit::mosquitto::start() else {
        return;
    };
    let reader = broker.reader();
    let srv = TestServer::with_config(otter_server::Settings {
        mqtt_url: Some(Secret::url(&broker.url())),
        public_url: Some("https://ota.example.test".into()),
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    let patience = Duration::from_secs(5);
    until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.0.0"),
        patience,
    )
    .await;

    // A device on 1.0.0 is known; 1.1.0 is published: the channel and the device hear of it.
    srv.check("door", "current=1.0.0&device=d1").await;
    until_device(&srv, "door", "id", json!("d1")).await;
    srv.release("door", "1.1.0", json!({"mandatory": true}))
        .await;
    let latest = until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.1.0"),
        patience,
    )
    .await;
    assert_eq!(latest["mandatory"], true);
    assert_eq!(latest["deprecated"], false);
    assert_eq!(latest["channel"], "stable");
    assert!(latest["size"].as_u64().unwrap() > 0);
    assert_eq!(latest["sha256"].as_str().unwrap().len(), 64);
    assert!(
        latest["url"]
            .as_str()
            .unwrap()
            .starts_with("https://ota.example.test/dl/door/1.1.0/"),
        "{latest}"
    );
    let update = until(
        &reader,
        "otter/door/devices/d1/update",
        "version",
        json!("1.1.0"),
        patience,
    )
    .await;
    assert_eq!(update["current"], "1.0.0");

    // The broker goes away (and with it every retained message). Publishing does not wait for
    // it; once it is back, otter publishes the current state again.
    broker.stop();
    srv.release("door", "1.2.0", json!({})).await;
    broker.restart();
    let latest = until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.2.0"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(latest["mandatory"], false);
    until(
        &reader,
        "otter/door/devices/d1/update",
        "version",
        json!("1.2.0"),
        patience,
    )
    .await;

    // Yanked: the channel's latest goes back; a device that is up to date has no message.
    srv.patch_release("door", "1.2.0", json!({"yanked": true}))
        .await;
    until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.1.0"),
        patience,
    )
    .await;
    srv.check("door", "current=1.1.0&device=d1").await;
    until_device(&srv, "door", "currentVersion", json!("1.1.0")).await;
    srv.patch_release("door", "1.1.0", json!({"deprecated": true}))
        .await;
    eventually("d1's update message is removed", async || {
        match retained(&reader, "otter/door/devices/d1/update").await {
            None => Ok(()),
            Some(m) => Err(m.to_string()),
        }
    })
    .await;
    let latest = until(
        &reader,
        "otter/door/stable/latest",
        "deprecated",
        json!(true),
        patience,
    )
    .await;
    assert_eq!(latest["version"], "1.1.0");

    // A device reporting what it installed hears of its next update at once, and loses the
    // message once it runs it.
    srv.release("door", "1.3.0", json!({})).await;
    until(
        &reader,
        "otter/door/devices/d1/update",
        "version",
        json!("1.3.0"),
        patience,
    )
    .await;
    let resp = srv
        .anon(reqwest::Method::POST, "/api/v1/products/door/reports")
        .json(&json!({"device": "d1", "version": "1.3.0", "state": "installed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    eventually(
        "d1's message goes once it runs 1.3.0",
        async || match retained(&reader, "otter/door/devices/d1/update").await {
            None => Ok(()),
            Some(m) => Err(m.to_string()),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_device_hears_of_its_pinned_release() {
    let Some(broker) = otter_testkit::mosquitto::start() else {
        return;
    };
    let reader = broker.reader();
    let srv = notifying(&broker).await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.release("door", "1.1.0", json!({})).await;
    srv.check("door", "current=1.1.0&device=d1").await;
    until_device(&srv, "door", "id", json!("d1")).await;
    let resp = srv
        .admin(Method::PATCH, "/api/v1/products/door/devices/d1")
        .json(&json!({"pinnedVersion": "1.0.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Pinned back to 1.0.0: its topic says so at once, not at the next release.
    let update = until(
        &reader,
        "otter/door/devices/d1/update",
        "version",
        json!("1.0.0"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(update["current"], "1.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinx_devices_get_firmware_update_with_a_token_on_their_topic() {
    let Some(broker) = otter_testkit::mosquitto::start() else {
        return;
    };
    let reader = broker.reader();
    let srv = notifying(&broker).await;
    srv.create_product("lamp", "semver").await;
    srv.release("lamp", "1.0.0", json!({})).await;
    let resp = srv
        .admin(Method::POST, "/api/v1/products/lamp/apikeys")
        .send()
        .await
        .unwrap();
    let key = json_body(resp, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = "cedc16bb6bb06daaa3ff6d30666d91aacd6e3efbf9abbc151b4dcade59af7c12";
    let resp = srv
        .anon(Method::POST, "/device/register")
        .header("authentication", &key)
        .json(&json!({"registration": {"mac": "5C:CF:7F:00:00:09", "version": "1.0.0", "owner": owner}}))
        .send()
        .await
        .unwrap();
    let udid = json_body(resp, StatusCode::OK).await["registration"]["udid"]
        .as_str()
        .unwrap()
        .to_owned();
    until_device(&srv, "lamp", "id", json!(udid)).await;

    let image = crate::common::firmware_for("lamp", "1.1.0");
    let sha = srv.upload(&image).await;
    srv.publish("lamp", "1.1.0", &sha, json!({})).await;
    let topic = format!("/{owner}/{udid}");
    let message =
        wait_until_async(
            Duration::from_secs(5),
            "the THiNX message",
            async || match retained(&reader, &topic).await {
                Some(m) if m["FIRMWARE_UPDATE"]["version"] == "1.1.0" => Ok(m),
                other => Err(format!("{other:?}")),
            },
        )
        .await;
    let update = &message["FIRMWARE_UPDATE"];
    assert_eq!(update["udid"], json!(udid));
    assert_eq!(update["mac"], "5C:CF:7F:00:00:09");
    // THiNXLib fetches /device/firmware?ott=… from its own server.
    let ott = update["ott"].as_str().unwrap();
    let resp = srv
        .anon(Method::GET, &format!("/device/firmware?ott={ott}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_private_ca() {
    let Some(broker) = otter_testkit::mosquitto::start_tls() else {
        return;
    };
    let reader = broker.reader();
    let tls = broker.tls.clone().expect("a TLS listener");
    let srv = TestServer::with_config(otter_server::Settings {
        mqtt_url: broker.tls_url().as_deref().map(Secret::url),
        mqtt_ca_file: Some(tls.ca_file),
        ..test_config()
    })
    .await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    // Published over TLS, read back on the broker's plain listener.
    until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.0.0"),
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_announced_to_its_stage_then_to_the_channel() {
    let Some(broker) = otter_testkit::mosquitto::start() else {
        return;
    };
    let reader = broker.reader();
    let srv = notifying(&broker).await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    srv.check("door", "current=1.0.0&device=canary-1").await;
    srv.check("door", "current=1.0.0&device=plain-1").await;
    eventually("both devices are listed", async || {
        let devices = srv.get_json("/api/v1/products/door/devices").await;
        (devices["items"].as_array().map(Vec::len) == Some(2))
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
    let resp = srv
        .admin(
            Method::POST,
            "/api/v1/products/door/tags/canary?device=canary-1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = srv
        .admin(Method::POST, "/api/v1/products/door/rollouts")
        .json(&json!({"version": "1.1.0", "stages": [{"tags": ["canary"]}, {"percent": 100}]}))
        .send()
        .await
        .unwrap();
    let id = json_body(resp, StatusCode::CREATED).await["id"].clone();
    srv.release("door", "1.1.0", json!({})).await;

    // The stage's device hears of it; the channel and the others do not yet.
    until(
        &reader,
        "otter/door/devices/canary-1/update",
        "version",
        json!("1.1.0"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        retained(&reader, "otter/door/stable/latest").await.unwrap()["version"],
        "1.0.0"
    );
    assert_eq!(
        retained(&reader, "otter/door/devices/plain-1/update").await,
        None
    );

    // Advanced to everyone: the channel and every device hear of it.
    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/door/rollouts/{id}/advance"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    until(
        &reader,
        "otter/door/stable/latest",
        "version",
        json!("1.1.0"),
        Duration::from_secs(5),
    )
    .await;
    until(
        &reader,
        "otter/door/devices/plain-1/update",
        "version",
        json!("1.1.0"),
        Duration::from_secs(5),
    )
    .await;
}
