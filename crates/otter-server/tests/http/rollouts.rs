//! Staged rollouts over HTTP: a simulated fleet going through stages by itself, bad releases
//! pausing themselves (by count and by rate), the concurrency cap under concurrent checks, the
//! penalty box and retry-failed, devices joining mid-rollout, devices outside a stage (and
//! devices that do not say who they are) never getting the release early nor a downgrade, a yank
//! aborting the rollout, and the cap and failure counts across two nodes on one PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use otter_core::rollout::{BUCKETS, bucket};
use otter_testkit::wait_until_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, json_body, test_config};

/// Checks at once from the simulated fleet.
const CONCURRENCY: usize = 32;

/// A server whose rollout upkeep runs every 100 ms.
async fn server() -> TestServer {
    TestServer::with_config(otter_server::Settings {
        rollout_tick: Duration::from_millis(100),
        ..test_config()
    })
    .await
}

/// Creates a rollout of `body` on `product`; returns it.
async fn create(srv: &TestServer, product: &str, body: Value) -> Value {
    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/{product}/rollouts"),
        )
        .json(&body)
        .send()
        .await
        .expect("create rollout");
    json_body(resp, StatusCode::CREATED).await
}

async fn act(srv: &TestServer, product: &str, id: &Value, action: &str) -> reqwest::Response {
    srv.admin(
        Method::POST,
        &format!("/api/v1/products/{product}/rollouts/{id}/{action}"),
    )
    .send()
    .await
    .expect("rollout action")
}

async fn show(srv: &TestServer, product: &str, id: &Value) -> Value {
    srv.get_json(&format!("/api/v1/products/{product}/rollouts/{id}"))
        .await
}

/// What `srv` offers `device` running `current`.
async fn try_offer(srv: &TestServer, product: &str, device: &str, current: &str) -> Option<String> {
    srv.offered(product, &format!("device={device}&current={current}"))
        .await
}

pub(crate) async fn report(
    srv: &TestServer,
    product: &str,
    device: &str,
    version: &str,
    state: &str,
) {
    let resp = srv
        .anon(Method::POST, &format!("/api/v1/products/{product}/reports"))
        .json(&json!({"device": device, "version": version, "state": state}))
        .send()
        .await
        .expect("report");
    assert!(
        resp.status().is_success(),
        "report answered {}",
        resp.status()
    );
}

/// The devices among `devices` that `srv` offers `version` to when they run `current`, checked
/// `CONCURRENCY` at a time; any other offer fails the test.
async fn offered_to(
    srv: &TestServer,
    product: &str,
    devices: &[String],
    current: &str,
    version: &str,
) -> HashSet<String> {
    futures_util::stream::iter(devices)
        .map(|d| async move {
            let offer = try_offer(srv, product, d, current).await;
            match offer.as_deref() {
                None => None,
                Some(v) if v == version => Some(d.clone()),
                Some(other) => panic!("{d} on {current} was offered {other}"),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|d| async move { d })
        .collect()
        .await
}

/// Each of `devices` checks in running `version`: what tells otter it installed it.
async fn check_in_on(srv: &TestServer, product: &str, devices: &HashSet<String>, version: &str) {
    futures_util::stream::iter(devices)
        .map(|d| async move {
            assert_eq!(try_offer(srv, product, d, version).await, None);
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

async fn wait_for(
    srv: &TestServer,
    product: &str,
    id: &Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    // Generous: the upkeep's next pass, on a machine busy with the rest of the suite.
    wait_until_async(Duration::from_secs(60), what, async || {
        let r = show(srv, product, id).await;
        if done(&r) { Ok(r) } else { Err(r.to_string()) }
    })
    .await
}

/// Waits until `srv` offers `version` to `device` on 1.0.0: a change the upkeep made in the
/// database reaches the check index a moment after.
async fn wait_offered(srv: &TestServer, product: &str, device: &str, version: &str) {
    wait_until_async(
        Duration::from_secs(30),
        "the check index follows",
        async || match try_offer(srv, product, device, "1.0.0").await {
            Some(v) if v == version => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Devices of `all` in the first `percent` % of rollout `key`.
fn in_percent(key: &str, all: &[String], percent: f64) -> HashSet<String> {
    let below = (percent * 100.0).round() as u32;
    all.iter()
        .filter(|d| bucket(key, d) < below)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_fleet_of_10000_goes_through_its_stages_by_itself() {
    let srv = server().await;
    srv.create_product("fleet", "semver").await;
    srv.release("fleet", "1.0.0", json!({})).await;
    // The rollout first, then the release: nobody outside the first stage ever sees it.
    let rollout = create(
        &srv,
        "fleet",
        json!({
            "version": "2.0.0",
            "stages": [{"percent": 1}, {"percent": 10}, {"percent": 100}],
            "policy": {"autoAdvance": {"minInstalled": 1, "minInstalledPercent": 100}},
        }),
    )
    .await;
    let id = &rollout["id"];
    assert_eq!(rollout["state"], "running");
    srv.release("fleet", "2.0.0", json!({})).await;
    let key = format!("fleet/{id}");
    let fleet = ids("unit", 10_000);
    let mut updated: HashSet<String> = HashSet::new();
    for (stage, percent) in [(0, 1.0), (1, 10.0), (2, 100.0)] {
        let expected: HashSet<String> = &in_percent(&key, &fleet, percent) - &updated;
        // The upkeep advanced the stage in the database; the check index follows a moment later.
        let probe = expected.iter().next().unwrap();
        wait_offered(&srv, "fleet", probe, "2.0.0").await;
        let waiting: Vec<String> = fleet
            .iter()
            .filter(|d| !updated.contains(*d))
            .cloned()
            .collect();
        let offered = offered_to(&srv, "fleet", &waiting, "1.0.0", "2.0.0").await;
        assert_eq!(
            offered, expected,
            "stage {stage} ({percent} %) offers exactly its bucket"
        );
        check_in_on(&srv, "fleet", &offered, "2.0.0").await;
        updated.extend(offered);
        let counts = &show(&srv, "fleet", id).await["counts"][stage];
        assert_eq!(
            counts["installed"].as_u64(),
            Some(expected.len() as u64),
            "{counts}"
        );
        let next = stage + 1;
        wait_for(&srv, "fleet", id, "the stage advances by itself", |r| {
            r["currentStage"] == next || r["state"] == "completed"
        })
        .await;
    }
    assert_eq!(updated.len(), 10_000);
    let done = show(&srv, "fleet", id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let share = |p: f64| (p * 100.0) as usize;
    let first = in_percent(&key, &fleet, 1.0).len();
    assert!(
        (share(0.5)..share(1.5)).contains(&first),
        "1 % took {first} of 10,000"
    );
}

#[tokio::test]
async fn a_bad_release_pauses_itself_by_failure_count() {
    let srv = server().await;
    srv.create_product("bad", "semver").await;
    srv.release("bad", "1.0.0", json!({})).await;
    srv.release("bad", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "bad",
        json!({"version": "2.0.0", "stages": [{"percent": 50}],
               "policy": {"pauseOn": {"failures": 5}}}),
    )
    .await;
    let id = &rollout["id"];
    let fleet = ids("bad", 200);
    let offered = offered_to(&srv, "bad", &fleet, "1.0.0", "2.0.0").await;
    assert!(
        offered.len() > 50,
        "half of 200 devices, got {}",
        offered.len()
    );
    let mut failing = offered.iter();
    for _ in 0..4 {
        report(&srv, "bad", failing.next().unwrap(), "2.0.0", "failed").await;
    }
    assert_eq!(show(&srv, "bad", id).await["state"], "running");
    report(&srv, "bad", failing.next().unwrap(), "2.0.0", "rolled_back").await;
    // At once, not at the next upkeep pass.
    let paused = show(&srv, "bad", id).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    let reason = paused["reason"].as_str().unwrap();
    assert!(reason.contains("5 devices failed"), "{reason}");
    assert_eq!(paused["counts"][0]["failed"], 5);
    // Paused: devices already let in may finish; nobody new gets it.
    let holding = failing.next().unwrap();
    assert_eq!(
        try_offer(&srv, "bad", holding, "1.0.0").await.as_deref(),
        Some("2.0.0")
    );
    let key = format!("bad/{id}");
    let newcomer = ids("late", 400)
        .into_iter()
        .find(|d| bucket(&key, d) < BUCKETS / 2)
        .unwrap();
    assert_eq!(try_offer(&srv, "bad", &newcomer, "1.0.0").await, None);
    // Resumed, it takes devices in again.
    let resumed = json_body(act(&srv, "bad", id, "resume").await, StatusCode::OK).await;
    assert_eq!(resumed["state"], "running");
    assert_eq!(
        try_offer(&srv, "bad", &newcomer, "1.0.0").await.as_deref(),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn a_bad_release_pauses_itself_by_failure_rate() {
    let srv = server().await;
    srv.create_product("rate", "semver").await;
    srv.release("rate", "1.0.0", json!({})).await;
    srv.release("rate", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "rate",
        json!({"version": "2.0.0", "stages": [{"percent": 100}],
               "policy": {"pauseOn": {"failurePercent": 30, "minAttempts": 20}}}),
    )
    .await;
    let id = &rollout["id"];
    let fleet = ids("rate", 40);
    let offered = offered_to(&srv, "rate", &fleet, "1.0.0", "2.0.0").await;
    assert_eq!(offered.len(), 40);
    let mut devices: Vec<&String> = offered.iter().collect();
    devices.sort();
    // Three failures first: 100 % of attempts, but too few attempts to judge. Then 14 installs
    // and 2 failures: 5 of 19 attempts.
    let plan = [("failed", 3), ("installed", 14), ("failed", 2)];
    let mut next = devices.iter();
    for (state, n) in plan {
        for d in next.by_ref().take(n) {
            report(&srv, "rate", d, "2.0.0", state).await;
        }
    }
    assert_eq!(show(&srv, "rate", id).await["state"], "running");
    // The 20th attempt fails: 6 of 20 is 30 %.
    report(&srv, "rate", next.next().unwrap(), "2.0.0", "failed").await;
    let r = show(&srv, "rate", id).await;
    assert_eq!(r["state"], "paused", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("6 of 20 attempts"),
        "{r}"
    );
}

#[tokio::test]
async fn the_concurrency_cap_holds_under_200_concurrent_checks() {
    let srv = server().await;
    srv.create_product("cap", "semver").await;
    srv.release("cap", "1.0.0", json!({})).await;
    let v2 = srv.release("cap", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "cap",
        json!({"version": "2.0.0", "stages": [{"percent": 100}],
               "policy": {"maxConcurrent": 10}}),
    )
    .await;
    let id = &rollout["id"];
    let fleet = ids("cap", 200);
    let all_at_once =
        futures_util::future::join_all(fleet.iter().map(|d| try_offer(&srv, "cap", d, "1.0.0")))
            .await;
    let admitted: Vec<&String> = fleet
        .iter()
        .zip(&all_at_once)
        .filter(|(_, o)| o.as_deref() == Some("2.0.0"))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(admitted.len(), 10, "exactly the cap");
    assert!(
        all_at_once
            .iter()
            .all(|o| o.is_none() || o.as_deref() == Some("2.0.0"))
    );
    assert_eq!(show(&srv, "cap", id).await["inFlight"], 10);
    // A device let in keeps its offer; one that finishes gives its slot to the next.
    assert_eq!(
        try_offer(&srv, "cap", admitted[0], "1.0.0")
            .await
            .as_deref(),
        Some("2.0.0")
    );
    // (An agent may name what it installed by the image's SHA-256.)
    let v2_sha = v2["artifact"]["sha256"].as_str().unwrap();
    report(&srv, "cap", admitted[0], v2_sha, "installed").await;
    let waiting: Vec<String> = fleet
        .iter()
        .filter(|d| !admitted.contains(d))
        .cloned()
        .collect();
    let next = offered_to(&srv, "cap", &waiting, "1.0.0", "2.0.0").await;
    assert_eq!(next.len(), 1);
    assert_eq!(show(&srv, "cap", id).await["inFlight"], 10);
}

#[tokio::test]
async fn failed_devices_wait_for_retry_and_the_penalty_box() {
    let srv = server().await;
    srv.create_product("box", "semver").await;
    srv.release("box", "1.0.0", json!({})).await;
    srv.release("box", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "box",
        json!({"version": "2.0.0", "stages": [{"percent": 100}],
               "policy": {"penaltyFailures": 2, "penaltySeconds": 2, "maxConcurrent": 5}}),
    )
    .await;
    let id = &rollout["id"];
    let offer = async || try_offer(&srv, "box", "unit-1", "1.0.0").await;
    assert_eq!(offer().await.as_deref(), Some("2.0.0"));
    report(&srv, "box", "unit-1", "2.0.0", "downloading").await;
    report(&srv, "box", "unit-1", "2.0.0", "failed").await;
    assert_eq!(
        offer().await,
        None,
        "a failed device waits for retry-failed"
    );
    assert_eq!(
        show(&srv, "box", id).await["inFlight"],
        0,
        "its slot came back"
    );
    let retried = json_body(act(&srv, "box", id, "retry-failed").await, StatusCode::OK).await;
    assert_eq!(retried["retried"], 1);
    assert_eq!(offer().await.as_deref(), Some("2.0.0"));
    // It said it was downloading, then came back on the old version: that failed too.
    report(&srv, "box", "unit-1", "2.0.0", "downloading").await;
    assert_eq!(offer().await, None);
    let r = show(&srv, "box", id).await;
    assert_eq!(r["counts"][0]["penalty"], 1, "{r}");
    // The device list finds it by its status.
    let listed = |status: &'static str| {
        let srv = &srv;
        async move {
            let page = srv
                .get_json(&format!("/api/v1/products/box/devices?status={status}"))
                .await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("penalty").await, ["unit-1"]);
    // The device itself says where it stands.
    let device = srv.get_json("/api/v1/products/box/devices/unit-1").await;
    let attempt = &device["rollouts"][0];
    assert_eq!(attempt["rollout"], *id, "{device}");
    assert_eq!(
        (
            &attempt["state"],
            &attempt["failures"],
            &attempt["rolloutState"]
        ),
        (&json!("failed"), &json!(2), &json!("running")),
        "{device}"
    );
    assert!(attempt["penaltyUntil"].is_string(), "{device}");
    assert!(
        listed("failed").await.is_empty(),
        "the penalty box is not `failed`"
    );
    let resp = srv
        .admin(
            reqwest::Method::GET,
            "/api/v1/products/box/devices?status=broken",
        )
        .send()
        .await
        .unwrap();
    crate::common::expect_error(resp, 400, "invalid_query").await;
    let retried = json_body(act(&srv, "box", id, "retry-failed").await, StatusCode::OK).await;
    assert_eq!(retried["retried"], 0, "the penalty box holds");
    assert_eq!(offer().await, None);
    // Once its time is served, retry-failed lets it in again.
    wait_until_async(Duration::from_secs(10), "the penalty ends", async || {
        let r = json_body(act(&srv, "box", id, "retry-failed").await, StatusCode::OK).await;
        if r["retried"] == 1 {
            Ok(())
        } else {
            Err(r.to_string())
        }
    })
    .await;
    assert_eq!(offer().await.as_deref(), Some("2.0.0"));
}

#[tokio::test]
async fn devices_that_appear_mid_rollout_join_by_the_same_rule() {
    let srv = server().await;
    srv.create_product("join", "semver").await;
    srv.release("join", "1.0.0", json!({})).await;
    srv.release("join", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "join",
        json!({"version": "2.0.0", "stages": [{"percent": 20}, {"percent": 60}]}),
    )
    .await;
    let id = &rollout["id"];
    let key = format!("join/{id}");
    let early = ids("early", 300);
    let first = offered_to(&srv, "join", &early, "1.0.0", "2.0.0").await;
    assert_eq!(first, in_percent(&key, &early, 20.0));
    let late = ids("late", 300);
    let joined = offered_to(&srv, "join", &late, "1.0.0", "2.0.0").await;
    assert_eq!(
        joined,
        in_percent(&key, &late, 20.0),
        "newcomers join by the same hash"
    );
    let advanced = json_body(act(&srv, "join", id, "advance").await, StatusCode::OK).await;
    assert_eq!(advanced["currentStage"], 1);
    let everyone: Vec<String> = early.iter().chain(&late).cloned().collect();
    let second = offered_to(&srv, "join", &everyone, "1.0.0", "2.0.0").await;
    assert_eq!(second, in_percent(&key, &everyone, 60.0));
    assert!(
        first.iter().chain(&joined).all(|d| second.contains(d)),
        "nobody leaves"
    );
}

#[tokio::test]
async fn outside_the_stage_devices_keep_the_previous_release_and_never_go_back() {
    let srv = server().await;
    srv.create_product("keep", "semver").await;
    srv.release("keep", "1.0.0", json!({})).await;
    srv.release("keep", "1.1.0", json!({})).await;
    srv.release("keep", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "keep",
        json!({"version": "2.0.0", "stages": [{"tags": ["canary"]}, {"percent": 100}]}),
    )
    .await;
    let id = &rollout["id"];
    // Nobody carries the tag (yet): the release is as if never published.
    assert_eq!(
        try_offer(&srv, "keep", "unit-1", "1.0.0").await.as_deref(),
        Some("1.1.0")
    );
    assert_eq!(try_offer(&srv, "keep", "unit-1", "1.1.0").await, None);
    assert_eq!(
        try_offer(&srv, "keep", "unit-2", "2.0.0").await,
        None,
        "no downgrade"
    );
    assert_eq!(
        srv.offered("keep", "current=1.1.0").await,
        None,
        "nor for the anonymous"
    );
    // Devices that do not say who they are get it once a stage takes everyone.
    act(&srv, "keep", id, "advance").await;
    assert_eq!(
        srv.offered("keep", "current=1.1.0").await.as_deref(),
        Some("2.0.0")
    );
    assert_eq!(
        try_offer(&srv, "keep", "unit-1", "1.1.0").await.as_deref(),
        Some("2.0.0")
    );
    // But not while it is paused.
    act(&srv, "keep", id, "pause").await;
    assert_eq!(srv.offered("keep", "current=1.1.0").await, None);
    let done = json_body(act(&srv, "keep", id, "resume").await, StatusCode::OK).await;
    assert_eq!(done["state"], "running");
    let done = json_body(act(&srv, "keep", id, "advance").await, StatusCode::OK).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(
        srv.offered("keep", "current=1.1.0").await.as_deref(),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn a_yank_aborts_the_rollout_and_mistakes_are_4xx() {
    let srv = server().await;
    srv.create_product("yank", "semver").await;
    srv.release("yank", "1.0.0", json!({})).await;
    srv.release("yank", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "yank",
        json!({"version": "2.0.0", "stages": [{"percent": 10}]}),
    )
    .await;
    let id = &rollout["id"];
    let path = "/api/v1/products/yank/rollouts";
    let post = |body: Value| srv.admin(Method::POST, path).json(&body).send();
    let again = post(json!({"version": "2.0.0", "stages": [{"percent": 50}]}))
        .await
        .unwrap();
    expect_error(again, 409, "rollout_exists").await;
    let bad = post(json!({"version": "2.0.0", "channel": "beta", "stages": [{"percent": 5}]}));
    expect_error(bad.await.unwrap(), 400, "invalid_rollout").await;
    let bad = post(json!({"version": "2.0.0", "stages": [{"percent": 500}]}));
    expect_error(bad.await.unwrap(), 400, "invalid_rollout").await;
    let bad = post(json!({"version": "2.0.0", "stages": []}));
    expect_error(bad.await.unwrap(), 400, "invalid_rollout").await;
    expect_error(
        act(&srv, "yank", id, "resume").await,
        409,
        "rollout_not_active",
    )
    .await;
    expect_error(
        act(&srv, "yank", &json!(999), "pause").await,
        404,
        "rollout_not_found",
    )
    .await;

    srv.patch_release("yank", "2.0.0", json!({"yanked": true}))
        .await;
    let aborted = show(&srv, "yank", id).await;
    assert_eq!(aborted["state"], "aborted");
    assert!(
        aborted["reason"].as_str().unwrap().contains("yanked"),
        "{aborted}"
    );
    let yanked = post(json!({"version": "2.0.0", "stages": [{"percent": 10}]}));
    expect_error(yanked.await.unwrap(), 400, "invalid_rollout").await;
    let list = srv.get_json(path).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_the_cap_and_the_failure_count() {
    let Some(pg) = otter_testkit::postgres::start() else {
        return;
    };
    let url = pg.fresh_database_url();
    otter_store::sql::SqlStore::migrate(&url)
        .await
        .expect("migrate");
    let config = otter_server::Settings {
        rollout_tick: Duration::from_millis(100),
        catalog_poll: Duration::from_millis(100),
        ..test_config()
    };
    let a = TestServer::on_database(&url, config.clone()).await;
    let b = TestServer::on_database(&url, config).await;
    a.create_product("pair", "semver").await;
    a.release("pair", "1.0.0", json!({})).await;
    a.release("pair", "2.0.0", json!({})).await;
    let rollout = create(
        &a,
        "pair",
        json!({"version": "2.0.0", "stages": [{"percent": 100}],
               "policy": {"maxConcurrent": 6, "pauseOn": {"failures": 4}}}),
    )
    .await;
    let id = &rollout["id"];
    wait_until_async(
        Duration::from_secs(10),
        "node B knows the product",
        async || {
            let path = format!("/api/v1/products/pair/rollouts/{id}");
            let resp = b
                .admin(Method::GET, &path)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() == StatusCode::OK {
                Ok(())
            } else {
                Err(resp.status().to_string())
            }
        },
    )
    .await;
    let fleet = ids("pair", 120);
    let nodes = [&a, &b];
    let answers = futures_util::future::join_all(
        fleet
            .iter()
            .enumerate()
            .map(|(i, d)| try_offer(nodes[i % 2], "pair", d, "1.0.0")),
    )
    .await;
    let admitted: Vec<&String> = fleet
        .iter()
        .zip(&answers)
        .filter(|(_, o)| o.is_some())
        .map(|(d, _)| d)
        .collect();
    assert_eq!(admitted.len(), 6, "the cap holds across nodes");
    // Failures reported through either node count together.
    for (i, d) in admitted.iter().take(3).enumerate() {
        report(nodes[i % 2], "pair", d, "2.0.0", "failed").await;
    }
    assert_eq!(show(&b, "pair", id).await["state"], "running");
    report(&b, "pair", admitted[3], "2.0.0", "failed").await;
    let paused = show(&a, "pair", id).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    assert_eq!(paused["counts"][0]["failed"], 4);
    assert_eq!(paused["inFlight"], 2);
    // Both nodes stop letting devices in.
    for node in nodes {
        wait_until_async(
            Duration::from_secs(10),
            "the pause reaches the node",
            async || match try_offer(node, "pair", "newcomer", "1.0.0").await {
                None => Ok(()),
                Some(v) => Err(v),
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_scheduled_rollout_starts_at_its_time() {
    let srv = server().await;
    srv.create_product("later", "semver").await;
    srv.release("later", "1.0.0", json!({})).await;
    srv.release("later", "2.0.0", json!({})).await;
    let start = otter_store::now() + 2;
    let rollout = create(
        &srv,
        "later",
        json!({"version": "2.0.0", "stages": [{"percent": 100}], "startAt": start}),
    )
    .await;
    let id = &rollout["id"];
    assert_eq!(rollout["state"], "scheduled");
    assert_eq!(try_offer(&srv, "later", "unit-1", "1.0.0").await, None);
    let started = wait_for(&srv, "later", id, "the rollout starts", |r| {
        r["state"] == "running"
    })
    .await;
    assert!(
        otter_store::now() >= start,
        "not before its time: {started}"
    );
    wait_offered(&srv, "later", "unit-1", "2.0.0").await;
}

#[tokio::test]
async fn silent_devices_time_out() {
    let srv = server().await;
    srv.create_product("quiet", "semver").await;
    srv.release("quiet", "1.0.0", json!({})).await;
    srv.release("quiet", "2.0.0", json!({})).await;
    let rollout = create(
        &srv,
        "quiet",
        json!({"version": "2.0.0", "stages": [{"percent": 100}],
               "policy": {"deviceTimeoutSeconds": 1, "maxConcurrent": 2}}),
    )
    .await;
    let id = &rollout["id"];
    for d in ["offered-only", "downloading"] {
        assert_eq!(
            try_offer(&srv, "quiet", d, "1.0.0").await.as_deref(),
            Some("2.0.0")
        );
    }
    report(&srv, "quiet", "downloading", "2.0.0", "downloading").await;
    assert_eq!(
        try_offer(&srv, "quiet", "third", "1.0.0").await,
        None,
        "the cap is full"
    );
    // Silent past the timeout: the download failed, the mere offer just gives its slot back.
    let r = wait_for(&srv, "quiet", id, "both attempts time out", |r| {
        r["inFlight"] == 0
    })
    .await;
    let counts = &r["counts"][0];
    assert_eq!(
        (counts["failed"].as_u64(), counts["offered"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    assert_eq!(try_offer(&srv, "quiet", "downloading", "1.0.0").await, None);
    assert_eq!(
        try_offer(&srv, "quiet", "third", "1.0.0").await.as_deref(),
        Some("2.0.0")
    );
    assert_eq!(
        try_offer(&srv, "quiet", "offered-only", "1.0.0")
            .await
            .as_deref(),
        Some("2.0.0"),
        "let in again, taking the last slot"
    );
}

#[tokio::test]
async fn a_tag_stage_takes_in_the_tagged_devices_only() {
    let srv = server().await;
    srv.create_product("tagged", "semver").await;
    srv.release("tagged", "1.0.0", json!({})).await;
    srv.release("tagged", "2.0.0", json!({})).await;
    // The devices exist (tags go on devices the product has seen).
    for device in ["canary-1", "canary-2", "plain-1"] {
        assert_eq!(
            try_offer(&srv, "tagged", device, "1.0.0").await.as_deref(),
            Some("2.0.0")
        );
    }
    let rollout = create(
        &srv,
        "tagged",
        json!({"version": "2.0.0", "stages": [{"tags": ["canary"]}, {"percent": 100}]}),
    )
    .await;
    let id = &rollout["id"];
    assert_eq!(try_offer(&srv, "tagged", "canary-1", "1.0.0").await, None);
    wait_until_async(
        Duration::from_secs(20),
        "the three devices recorded",
        async || {
            let page = srv.get_json("/api/v1/products/tagged/devices").await;
            match page["items"].as_array().map(Vec::len) {
                Some(3) => Ok(()),
                _ => Err(page.to_string()),
            }
        },
    )
    .await;
    for device in ["canary-1", "canary-2"] {
        let resp = srv
            .admin(
                Method::POST,
                &format!("/api/v1/products/tagged/tags/canary?device={device}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(json_body(resp, StatusCode::OK).await["changed"], 1);
    }
    for (device, offered) in [
        ("canary-1", Some("2.0.0")),
        ("canary-2", Some("2.0.0")),
        ("plain-1", None),
    ] {
        assert_eq!(
            try_offer(&srv, "tagged", device, "1.0.0").await.as_deref(),
            offered,
            "{device}"
        );
    }
    json_body(act(&srv, "tagged", id, "advance").await, StatusCode::OK).await;
    assert_eq!(
        try_offer(&srv, "tagged", "plain-1", "1.0.0")
            .await
            .as_deref(),
        Some("2.0.0"),
        "the next stage takes in everyone"
    );
}

/// What device `MAC` is offered over each protocol that names devices (native, Arduino, THiNX
/// with auto-update on) and over the manifest contract, which names none.
async fn offered_everywhere(srv: &TestServer, key: &str) -> [(&'static str, bool); 4] {
    const MAC: &str = "5C:CF:7F:12:34:56";
    let native = try_offer(srv, "door", MAC, "1.0.0").await.is_some();
    let arduino = srv
        .anon(Method::GET, "/arduino/door/update")
        .header("x-ESP8266-STA-MAC", MAC)
        .header("x-ESP8266-version", "1.0.0")
        .send()
        .await
        .unwrap()
        .status();
    assert!(matches!(arduino.as_u16(), 200 | 304), "{arduino}");
    let thinx = srv
        .anon(Method::POST, "/device/register")
        .header("authentication", key)
        .json(&json!({"registration": {"mac": MAC, "udid": MAC, "version": "1.0.0"}}))
        .send()
        .await
        .unwrap();
    let thinx = json_body(thinx, StatusCode::OK).await;
    let manifest = srv
        .get_json("/m/door/api/firmware/check?current=1.0.0")
        .await;
    [
        ("native", native),
        ("arduino", arduino == StatusCode::OK),
        (
            "thinx",
            thinx["registration"]["status"] == "FIRMWARE_UPDATE",
        ),
        ("manifest", manifest["manifest"]["version"] == "1.1.0"),
    ]
}

#[tokio::test]
async fn every_protocol_obeys_the_rollout() {
    const MAC: &str = "5C:CF:7F:12:34:56";
    let srv = server().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    let resp = srv
        .admin(Method::POST, "/api/v1/products/door/apikeys")
        .json(&json!({"label": "t"}))
        .send()
        .await
        .unwrap();
    let key = json_body(resp, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The device is known, with THiNX's auto-update on.
    offered_everywhere(&srv, &key).await;
    wait_until_async(Duration::from_secs(20), "the device recorded", async || {
        let resp = srv
            .admin(
                Method::PATCH,
                &format!("/api/v1/products/door/devices/{MAC}"),
            )
            .json(&json!({"autoUpdate": true}))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(resp.status().to_string())
        }
    })
    .await;

    let rollout = create(
        &srv,
        "door",
        json!({"version": "1.1.0", "stages": [{"tags": ["canary"]}, {"percent": 100}]}),
    )
    .await;
    srv.release("door", "1.1.0", json!({})).await;
    let none = offered_everywhere(&srv, &key).await;
    assert!(none.iter().all(|(_, offered)| !offered), "{none:?}");

    let resp = srv
        .admin(
            Method::POST,
            &format!("/api/v1/products/door/tags/canary?device={MAC}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(resp, StatusCode::OK).await["changed"], 1);
    let tagged = offered_everywhere(&srv, &key).await;
    assert_eq!(
        tagged,
        [
            ("native", true),
            ("arduino", true),
            ("thinx", true),
            ("manifest", false),
        ],
        "devices that name themselves join the tag stage; the manifest contract waits for 100 %"
    );
    json_body(
        act(&srv, "door", &rollout["id"], "advance").await,
        StatusCode::OK,
    )
    .await;
    let everyone = offered_everywhere(&srv, &key).await;
    assert!(everyone.iter().all(|(_, offered)| *offered), "{everyone:?}");
}
