//! hawkBit DDI over HTTP: the `hawkbit` crate (a real DDI client) through a full cycle and
//! through failures that pause a rollout, a cancel when the rollout pauses; the JSON shapes the
//! clients need and the odd bodies they send; tokens, anonymous polls and token downloads; a
//! yank turning an open action into a cancel; and the DDI paths beside otter's own root paths.

use std::time::Duration;

use hawkbit::ddi::{Client, ClientAuthorization, Execution, Finished, Mode};
use otter_testkit::wait_until_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, firmware_for, json_body, test_config};

/// Makes `device`'s TargetToken through the admin API.
async fn target_token(srv: &TestServer, product: &str, device: &str) -> String {
    made_token(
        srv,
        &format!("/api/v1/products/{product}/devices/{device}/ddi-token"),
    )
    .await
}

/// Makes `product`'s GatewayToken through the admin API.
async fn gateway_token(srv: &TestServer, product: &str) -> String {
    made_token(
        srv,
        &format!("/api/v1/products/{product}/ddi/gateway-token"),
    )
    .await
}

/// The token a `POST` to an admin token route made.
async fn made_token(srv: &TestServer, path: &str) -> String {
    let resp = srv
        .admin(Method::POST, path)
        .send()
        .await
        .expect("make token");
    json_body(resp, StatusCode::CREATED).await["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn client(srv: &TestServer, device: &str, auth: ClientAuthorization) -> Client {
    Client::new(&srv.url(""), "DEFAULT", device, auth, None, None, None).expect("DDI client")
}

/// A DDI request with a TargetToken.
fn ddi(srv: &TestServer, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    srv.anon(method, path)
        .header("authorization", format!("TargetToken {token}"))
}

async fn poll_json(srv: &TestServer, token: &str, device: &str) -> Value {
    let resp = ddi(
        srv,
        token,
        Method::GET,
        &format!("/DEFAULT/controller/v1/{device}"),
    )
    .send()
    .await
    .expect("poll");
    json_body(resp, StatusCode::OK).await
}

/// The path of a link in a poll answer.
fn link(poll: &Value, name: &str) -> Option<String> {
    poll["_links"][name]["href"].as_str().map(path_of)
}

/// `/path?query` of an absolute `http://host/path?query`.
fn path_of(href: &str) -> String {
    let rest = href.strip_prefix("http://").expect("an http URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}

#[tokio::test]
async fn the_hawkbit_crate_runs_a_full_cycle() {
    let srv = TestServer::start().await;
    srv.create_product("gw", "semver").await;
    srv.release("gw", "1.0.0", json!({})).await;
    srv.release("gw", "1.1.0", json!({})).await;
    let token = target_token(&srv, "gw", "gw-1").await;
    let ddi = client(
        &srv,
        "gw-1",
        ClientAuthorization::TargetToken(token.clone()),
    );

    let reply = ddi.poll().await.expect("poll");
    assert_eq!(reply.polling_sleep().unwrap(), Duration::from_secs(300));
    reply
        .config_data_request()
        .expect("otter asks for configData")
        .upload(
            Execution::Closed,
            Finished::Success,
            Some(Mode::Merge),
            json!({"hwRevision": "2", "serial": "A-17"}),
            vec![],
        )
        .await
        .expect("configData");
    let update = reply
        .update()
        .expect("an update")
        .fetch()
        .await
        .expect("deploymentBase");
    let chunk = update.chunks().next().expect("one chunk");
    assert_eq!(chunk.version(), "1.1.0");
    let artifact = chunk.artifacts().next().expect("one artifact");
    assert_eq!(artifact.filename(), "gw-1.1.0.bin");
    update
        .send_feedback(Execution::Proceeding, Finished::None, vec!["downloading"])
        .await
        .expect("feedback");
    let dir = tempfile::tempdir().unwrap();
    update.download(dir.path()).await.expect("download");
    let file = std::fs::read(dir.path().join("gw").join("gw-1.1.0.bin")).unwrap();
    assert_eq!(file, firmware_for("gw", "1.1.0"));
    update
        .send_feedback(Execution::Closed, Finished::Success, vec![])
        .await
        .expect("feedback");

    // Installed: nothing more to do, and never the older release again.
    let reply = ddi.poll().await.expect("poll");
    assert!(reply.update().is_none());
    let reports = srv
        .get_json("/api/v1/products/gw/reports?device=gw-1")
        .await;
    let states: Vec<&str> = reports["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["installed", "downloading"], "{reports}");
    let device = wait_until_async(
        Duration::from_secs(10),
        "the device row has its attributes and version",
        async || {
            let device = srv.get_json("/api/v1/products/gw/devices/gw-1").await;
            if device["currentVersion"] == "1.1.0" && device["attributes"]["serial"] == "A-17" {
                Ok(device)
            } else {
                Err(device.to_string())
            }
        },
    )
    .await;
    assert_eq!(device["protocol"], "ddi", "{device}");
    // Known attributes: no configData link any more; the installed action is linked.
    let poll = poll_json(&srv, &token, "gw-1").await;
    assert!(link(&poll, "configData").is_none(), "{poll}");
    assert!(link(&poll, "installedBase").is_some(), "{poll}");
}

/// Creates a rollout of `version` to every device that pauses at `failures` failures.
async fn rollout(srv: &TestServer, product: &str, version: &str, failures: u32) -> Value {
    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/{product}/rollouts"),
        )
        .json(&json!({"version": version, "stages": [{"percent": 100}],
                      "policy": {"pauseOn": {"failures": failures}}}))
        .send()
        .await
        .expect("create rollout");
    json_body(resp, StatusCode::CREATED).await
}

#[tokio::test]
async fn failures_through_ddi_pause_a_rollout_and_the_pause_cancels_open_actions() {
    let srv = TestServer::start().await;
    srv.create_product("fleet", "semver").await;
    srv.release("fleet", "1.0.0", json!({})).await;
    srv.release("fleet", "2.0.0", json!({})).await;
    let r = rollout(&srv, "fleet", "2.0.0", 2).await;
    let gateway = gateway_token(&srv, "fleet").await;
    let gw = |device: &str| {
        client(
            &srv,
            device,
            ClientAuthorization::GatewayToken(gateway.clone()),
        )
    };

    // One device takes the update and is still at it when the others fail.
    let waiting = gw("waiting");
    let open = waiting.poll().await.unwrap().update().expect("offered");
    let open = open.fetch().await.unwrap();
    assert_eq!(open.chunks().next().unwrap().version(), "2.0.0");
    open.send_feedback(Execution::Proceeding, Finished::None, vec![])
        .await
        .unwrap();
    for device in ["bad-1", "bad-2"] {
        let update = gw(device).poll().await.unwrap().update().expect("offered");
        let update = update.fetch().await.unwrap();
        update
            .send_feedback(Execution::Closed, Finished::Failure, vec!["flash failed"])
            .await
            .unwrap();
    }
    let shown = srv
        .get_json(&format!("/api/v1/products/fleet/rollouts/{}", r["id"]))
        .await;
    assert_eq!(shown["state"], "paused", "{shown}");
    assert_eq!(shown["counts"][0]["failed"], 2, "{shown}");

    // The open action is taken back; the device confirms and is left alone.
    let reply = waiting.poll().await.unwrap();
    assert!(reply.update().is_none());
    let cancel = reply.cancel_action().expect("a cancel");
    assert_eq!(cancel.id().await.unwrap(), open.action_id());
    cancel
        .send_feedback(Execution::Closed, Finished::Success, vec![])
        .await
        .unwrap();
    let reply = waiting.poll().await.unwrap();
    assert!(reply.update().is_none() && reply.cancel_action().is_none());
    // The attempt otter canceled is no failure, though the device still runs 1.0.0.
    let shown = srv
        .get_json(&format!("/api/v1/products/fleet/rollouts/{}", r["id"]))
        .await;
    assert_eq!(shown["counts"][0]["failed"], 2, "{shown}");
    // A newcomer (running who knows what) is offered the release outside the paused rollout.
    let update = gw("newcomer")
        .poll()
        .await
        .unwrap()
        .update()
        .expect("offered");
    let update = update.fetch().await.unwrap();
    assert_eq!(update.chunks().next().unwrap().version(), "1.0.0");
}

#[tokio::test]
async fn answers_have_the_shapes_clients_need() {
    let srv = TestServer::start().await;
    srv.create_product("shape", "semver").await;
    srv.release("shape", "1.0.0", json!({"mandatory": true}))
        .await;
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/shape/poll-hint")
        .json(&json!({"intervalSeconds": 3725, "jitterPercent": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token = target_token(&srv, "shape", "s-1").await;
    let poll = poll_json(&srv, &token, "s-1").await;
    assert_eq!(poll["config"]["polling"]["sleep"], "01:02:05", "{poll}");
    let base = link(&poll, "deploymentBase").expect("deploymentBase");
    assert!(base.contains("?c="), "{base}");
    assert!(link(&poll, "configData").is_some(), "{poll}");
    // The same action, the same link.
    assert_eq!(
        link(&poll_json(&srv, &token, "s-1").await, "deploymentBase"),
        Some(base.clone())
    );

    let resp = ddi(&srv, &token, Method::GET, &base).send().await.unwrap();
    let d = json_body(resp, StatusCode::OK).await;
    let id = d["id"].as_str().expect("id is a string");
    assert!(base.contains(&format!("/deploymentBase/{id}?")), "{base}");
    assert_eq!(d["deployment"]["download"], "forced");
    assert_eq!(d["deployment"]["update"], "forced");
    let chunk = &d["deployment"]["chunks"][0];
    assert_eq!(chunk["part"], "os");
    assert_eq!(chunk["version"], "1.0.0");
    assert_eq!(chunk["name"], "shape");
    let artifact = &chunk["artifacts"][0];
    let bytes = firmware_for("shape", "1.0.0");
    assert_eq!(artifact["size"], bytes.len());
    for hash in ["md5", "sha1", "sha256"] {
        assert!(artifact["hashes"][hash].is_string(), "{hash}: {artifact}");
    }
    let sha256 = artifact["hashes"]["sha256"].as_str().unwrap();
    for name in ["download", "download-http"] {
        let href = artifact["_links"][name]["href"].as_str().unwrap();
        assert_eq!(href, srv.url(&format!("/dl/{sha256}")), "{name}");
    }
    // Ranges, as rauc-hawkbit-updater resumes.
    let resp = srv
        .anon(Method::GET, &format!("/dl/{sha256}"))
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.bytes().await.unwrap()[..], &bytes[10..]);
    let md5sum = path_of(artifact["_links"]["md5sum-http"]["href"].as_str().unwrap());
    let resp = ddi(&srv, &token, Method::GET, &md5sum)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.text().await.unwrap(),
        format!(
            "{}  shape-1.0.0.bin\n",
            artifact["hashes"]["md5"].as_str().unwrap()
        )
    );

    // No window, no maintenanceWindow; outside the channel's window, `unavailable` (the
    // release is mandatory, so still offered). A new action changes the link's `c`.
    assert!(d["deployment"].get("maintenanceWindow").is_none(), "{d}");
    let hour = (otter_store::now() / 3600 + 2) % 24;
    let slot = format!("daily {hour:02}:00-{:02}:00", (hour + 1) % 24);
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/shape/windows/stable")
        .json(&json!({"timezone": "UTC", "slots": [slot]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = ddi(&srv, &token, Method::GET, &base).send().await.unwrap();
    let d = json_body(resp, StatusCode::OK).await;
    assert_eq!(d["deployment"]["maintenanceWindow"], "unavailable", "{d}");
    let feedback = base.split('?').next().unwrap().to_owned() + "/feedback";
    let resp = ddi(&srv, &token, Method::POST, &feedback)
        .json(
            &json!({"id": id, "status": {"execution": "rejected", "result": {"finished": "none"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let next = link(&poll_json(&srv, &token, "s-1").await, "deploymentBase").expect("again");
    assert_ne!(next, base);
    // A device that cancels an action itself is offered afresh too.
    let feedback = next.split('?').next().unwrap().to_owned() + "/feedback";
    let resp = ddi(&srv, &token, Method::POST, &feedback)
        .json(
            &json!({"id": "", "status": {"execution": "canceled", "result": {"finished": "none"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let third = link(&poll_json(&srv, &token, "s-1").await, "deploymentBase").expect("again");
    assert!(third != next && third != base, "{third}");
    // Neither a rejection nor a cancel is a report.
    let reports = srv
        .get_json("/api/v1/products/shape/reports?device=s-1")
        .await;
    assert_eq!(reports["items"], json!([]), "{reports}");
}

#[tokio::test]
async fn the_bodies_clients_really_send_are_accepted() {
    let srv = TestServer::start().await;
    srv.create_product("odd", "semver").await;
    srv.release("odd", "1.0.0", json!({})).await;
    let token = target_token(&srv, "odd", "o-1").await;
    let poll = poll_json(&srv, &token, "o-1").await;
    let base = link(&poll, "deploymentBase").unwrap();
    let base = base.split('?').next().unwrap();
    let id: i64 = base.rsplit('/').next().unwrap().parse().unwrap();
    let feedback = format!("{base}/feedback");
    let send = |body: Value| {
        ddi(&srv, &token, Method::POST, &feedback)
            .json(&body)
            .send()
    };
    // Every execution that keeps the action open, with every result, and every spelling of id.
    let ids = [json!(id), json!(id.to_string()), json!("")];
    for (n, execution) in [
        "proceeding",
        "scheduled",
        "resumed",
        "download",
        "downloaded",
    ]
    .into_iter()
    .enumerate()
    {
        for finished in ["none", "success", "failure"] {
            let body = json!({
                "id": ids[n % 3],
                "time": "20261205T225008",
                "status": {"execution": execution, "result": {"finished": finished,
                           "progress": {"cnt": 1, "of": 3}}, "details": [""]},
            });
            let resp = send(body.clone()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{body}");
        }
    }
    // Without time, details or progress; closed with no result keeps the action open.
    let resp = send(json!({"status": {"execution": "closed", "result": {"finished": "none"}}}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(link(&poll_json(&srv, &token, "o-1").await, "deploymentBase").is_some());
    // What otter cannot read is a 400, not a 500.
    for body in [
        json!({"status": {"execution": "exploded", "result": {"finished": "none"}}}),
        json!({"status": {"execution": "closed", "result": {"finished": "maybe"}}}),
        json!({"id": 1}),
    ] {
        expect_error(send(body).await.unwrap(), 400, "invalid_json").await;
    }
    // Feedback on an action that is not this controller's.
    let resp = ddi(
        &srv,
        &token,
        Method::POST,
        "/DEFAULT/controller/v1/o-1/deploymentBase/999999/feedback",
    )
    .json(&json!({"status": {"execution": "closed", "result": {"finished": "success"}}}))
    .send()
    .await
    .unwrap();
    expect_error(resp, 404, "ddi_action_not_found").await;
    let resp = ddi(
        &srv,
        &token,
        Method::GET,
        "/DEFAULT/controller/v1/o-1/deploymentBase/not-a-number",
    )
    .send()
    .await
    .unwrap();
    expect_error(resp, 404, "ddi_action_not_found").await;

    // configData with `mode` null and numbers; then `remove`.
    let config = "/DEFAULT/controller/v1/o-1/configData";
    for body in [
        json!({"id": "", "time": "20261205T225008", "mode": null,
               "status": {"execution": "closed", "result": {"finished": "success"}, "details": [""]},
               "data": {"board": "rev2", "cores": 4}}),
        json!({"mode": "remove", "data": {"cores": ""}}),
    ] {
        let resp = ddi(&srv, &token, Method::PUT, config)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{body}");
    }
    let resp = ddi(&srv, &token, Method::PUT, config)
        .json(&json!({"data": {"nested": {"a": 1}}}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_config_data").await;
    wait_until_async(
        Duration::from_secs(10),
        "configData reaches the device row",
        async || {
            let device = srv.get_json("/api/v1/products/odd/devices/o-1").await;
            if device["attributes"] == json!({"board": "rev2"}) {
                Ok(())
            } else {
                Err(device.to_string())
            }
        },
    )
    .await;

    // Every final execution: closed+success installs, the action is done.
    let resp = send(
        json!({"id": id, "status": {"execution": "closed", "result": {"finished": "success"}}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Repeated, it counts once.
    let resp = send(
        json!({"id": id, "status": {"execution": "closed", "result": {"finished": "success"}}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let reports = srv
        .get_json("/api/v1/products/odd/reports?device=o-1")
        .await;
    let installed = reports["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "installed")
        .count();
    assert_eq!(installed, 1, "{reports}");
    let poll = poll_json(&srv, &token, "o-1").await;
    assert!(link(&poll, "deploymentBase").is_none(), "{poll}");
    let resp = ddi(
        &srv,
        &token,
        Method::GET,
        &link(&poll, "installedBase").unwrap(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(json_body(resp, StatusCode::OK).await["id"], id.to_string());
}

#[tokio::test]
async fn tokens_anonymous_polls_and_token_downloads() {
    let srv = TestServer::with_config(otter_server::Settings {
        ddi_default_product: Some("anon".into()),
        ..test_config()
    })
    .await;
    srv.create_product("anon", "semver").await;
    srv.release("anon", "1.0.0", json!({})).await;
    let poll = |path: &str, auth: Option<String>| {
        let mut request = srv.anon(Method::GET, path);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    let path = "/DEFAULT/controller/v1/a-1";
    expect_error(poll(path, None).await.unwrap(), 401, "ddi_unauthorized").await;
    for auth in [
        "TargetToken nope",
        "GatewayToken nope",
        "Bearer x",
        "TargetToken ",
    ] {
        let resp = poll(path, Some(auth.into())).await.unwrap();
        expect_error(resp, 401, "ddi_unauthorized").await;
    }
    let token = target_token(&srv, "anon", "a-1").await;
    let resp = poll(
        "/DEFAULT/controller/v1/a-2",
        Some(format!("TargetToken {token}")),
    )
    .await
    .unwrap();
    expect_error(resp, 403, "ddi_wrong_controller").await;
    // A new token replaces the old one.
    let newer = target_token(&srv, "anon", "a-1").await;
    let resp = poll(path, Some(format!("TargetToken {token}")))
        .await
        .unwrap();
    expect_error(resp, 401, "ddi_unauthorized").await;
    assert_eq!(
        poll(path, Some(format!("targettoken {newer}")))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Anonymous DDI, once the product allows it: by product name, and by the default product.
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/anon/ddi")
        .json(&json!({"anonymous": true, "tokenDownloads": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, StatusCode::OK).await,
        json!({"anonymous": true, "tokenDownloads": true})
    );
    for tenant in ["anon", "DEFAULT"] {
        let resp = poll(&format!("/{tenant}/controller/v1/free"), None)
            .await
            .unwrap();
        let answer = json_body(resp, StatusCode::OK).await;
        assert!(
            link(&answer, "deploymentBase")
                .unwrap()
                .starts_with(&format!("/{tenant}/"))
        );
    }
    // Token downloads: the link is under the controller's path and wants the token.
    let answer = poll_json(&srv, &newer, "a-1").await;
    let base = link(&answer, "deploymentBase").unwrap();
    let resp = ddi(&srv, &newer, Method::GET, &base).send().await.unwrap();
    let d = json_body(resp, StatusCode::OK).await;
    let href = d["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        href.contains("/DEFAULT/controller/v1/a-1/artifacts/"),
        "{href}"
    );
    let path = &path_of(&href);
    let resp = ddi(&srv, &newer, Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &firmware_for("anon", "1.0.0")[..]
    );
    let resp = srv
        .anon(Method::GET, path)
        .header("authorization", "TargetToken wrong")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "ddi_unauthorized").await;
}

#[tokio::test]
async fn a_yank_turns_an_open_action_into_a_cancel() {
    let srv = TestServer::start().await;
    srv.create_product("yank", "semver").await;
    srv.release("yank", "1.0.0", json!({})).await;
    let token = target_token(&srv, "yank", "y-1").await;
    let base = link(&poll_json(&srv, &token, "y-1").await, "deploymentBase").unwrap();
    let id = base
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    srv.patch_release("yank", "1.0.0", json!({"yanked": true}))
        .await;
    let poll = poll_json(&srv, &token, "y-1").await;
    assert!(link(&poll, "deploymentBase").is_none(), "{poll}");
    let cancel = link(&poll, "cancelAction").expect("a cancel");
    let resp = ddi(&srv, &token, Method::GET, &cancel)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, StatusCode::OK).await,
        json!({"id": id, "cancelAction": {"stopId": id}})
    );
    let resp = ddi(&srv, &token, Method::POST, &format!("{cancel}/feedback"))
        .json(&json!({"id": id.parse::<i64>().unwrap(), "time": "20261205T225008",
                      "status": {"execution": "closed", "result": {"finished": "success"}, "details": [""]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let poll = poll_json(&srv, &token, "y-1").await;
    assert!(link(&poll, "cancelAction").is_none(), "{poll}");
}

#[tokio::test]
async fn the_ddi_paths_live_beside_otters_root_paths() {
    let srv = TestServer::start().await;
    srv.create_product("root", "semver").await;
    srv.release("root", "1.0.0", json!({})).await;
    // A DDI path answers as DDI (here: no token).
    let resp = srv
        .anon(Method::GET, "/DEFAULT/controller/v1/dev")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "ddi_unauthorized").await;
    // otter's own root paths still reach their handlers, not the DDI routes nor the fallback.
    for path in [
        "/arduino/root/update",
        "/v1/check",
        "/ui/login",
        "/healthz",
        "/m/root/api/firmware/latest",
        "/api/v1/products/root/check?device=d",
        "/firmware/versions.json",
    ] {
        let resp = srv.anon(Method::GET, path).send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("no such endpoint") && !body.contains("ddi_"),
            "{path}: {status} {body}"
        );
    }
}
