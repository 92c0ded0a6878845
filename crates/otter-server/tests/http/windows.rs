//! Maintenance windows and poll hints: what devices are offered outside a channel's window, and
//! the `nextCheckSeconds` the native check answers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, json_body};

/// A daily UTC slot that is closed now and for the next hour: it starts two hours from now.
fn closed_slot() -> String {
    let hour = (otter_store::now() / 3600 + 2) % 24;
    format!("daily {hour:02}:00-{:02}:00", (hour + 1) % 24)
}

async fn set_window(srv: &TestServer, product: &str, channel: &str, slot: &str) -> Value {
    let resp = srv
        .admin(
            Method::PUT,
            &format!("/api/v1/products/{product}/windows/{channel}"),
        )
        .json(&json!({"timezone": "UTC", "slots": [slot]}))
        .send()
        .await
        .unwrap();
    json_body(resp, StatusCode::OK).await
}

#[tokio::test]
async fn outside_its_window_a_channel_is_offered_only_mandatory_releases() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({"channels": ["stable", "beta"]}))
        .await;
    srv.release("door", "1.1.0", json!({"channels": ["stable", "beta"]}))
        .await;

    let closed = set_window(&srv, "door", "stable", &closed_slot()).await;
    assert_eq!(closed["openNow"], false, "{closed}");
    assert_eq!(srv.offered("door", "current=1.0.0").await, None);
    assert_eq!(
        srv.offered("door", "current=1.0.0&channel=beta")
            .await
            .as_deref(),
        Some("1.1.0"),
        "a channel without a window is always open"
    );

    // A mandatory release is offered whatever the hour, straight past the withheld one.
    srv.release("door", "1.2.0", json!({"mandatory": true}))
        .await;
    assert_eq!(
        srv.offered("door", "current=1.0.0").await.as_deref(),
        Some("1.2.0")
    );
    srv.release("door", "1.3.0", json!({})).await;
    assert_eq!(srv.offered("door", "current=1.2.0").await, None);

    // Inside the window everything is offered; removing the window opens it for good.
    let open = set_window(&srv, "door", "stable", "daily 00:00-24:00").await;
    assert_eq!(open["openNow"], true, "{open}");
    assert_eq!(
        srv.offered("door", "current=1.2.0").await.as_deref(),
        Some("1.3.0")
    );
    set_window(&srv, "door", "stable", &closed_slot()).await;
    let resp = srv
        .admin(Method::DELETE, "/api/v1/products/door/windows/stable")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        srv.offered("door", "current=1.2.0").await.as_deref(),
        Some("1.3.0")
    );
    let list = srv.get_json("/api/v1/products/door/windows").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn the_native_check_answers_a_jittered_poll_hint() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    srv.release("door", "1.0.0", json!({})).await;
    assert!(srv.check("door", "current=1.0.0").await["nextCheckSeconds"].is_null());

    let resp = srv
        .admin(Method::PUT, "/api/v1/products/door/poll-hint")
        .json(&json!({"intervalSeconds": 1000, "jitterPercent": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, StatusCode::OK).await,
        json!({"intervalSeconds": 1000, "jitterPercent": 20})
    );
    let mut seen = std::collections::BTreeSet::new();
    for query in ["current=1.0.0", "current=0.9.0"]
        .into_iter()
        .cycle()
        .take(40)
    {
        let answer = srv.check("door", query).await;
        let seconds = answer["nextCheckSeconds"].as_u64().expect("a hint");
        assert!((800..=1200).contains(&seconds), "{answer}");
        seen.insert(seconds);
    }
    assert!(seen.len() > 5, "jittered: {seen:?}");
    assert_eq!(
        srv.get_json("/api/v1/products/door/poll-hint").await["intervalSeconds"],
        1000
    );

    let resp = srv
        .admin(Method::DELETE, "/api/v1/products/door/poll-hint")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        srv.check("door", "current=1.0.0").await,
        json!({"hasUpdate": false})
    );
}

#[tokio::test]
async fn bad_windows_and_hints_are_refused_with_what_is_wrong() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let put = |path: &str, body: Value| {
        srv.admin(Method::PUT, &format!("/api/v1/products/door/{path}"))
            .json(&body)
    };
    for (body, needle) in [
        (
            json!({"timezone": "Mars/Olympus", "slots": ["daily 01:00-02:00"]}),
            "time zone",
        ),
        (
            json!({"timezone": "UTC", "slots": ["weekdays 01:00-02:00"]}),
            "unknown day",
        ),
        (json!({"timezone": "UTC", "slots": []}), "slots"),
    ] {
        let resp = put("windows/stable", body).send().await.unwrap();
        let error = expect_error(resp, 400, "invalid_window").await;
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    }
    let resp = put(
        "windows/no%20such",
        json!({"timezone": "UTC", "slots": ["daily 01:00-02:00"]}),
    )
    .send()
    .await
    .unwrap();
    expect_error(resp, 400, "invalid_field").await;
    for body in [
        json!({"intervalSeconds": 0}),
        json!({"intervalSeconds": 60, "jitterPercent": 101}),
    ] {
        let resp = put("poll-hint", body).send().await.unwrap();
        expect_error(resp, 400, "invalid_poll_hint").await;
    }
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/nope/poll-hint")
        .json(&json!({"intervalSeconds": 60}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "product_not_found").await;
}
