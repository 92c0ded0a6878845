//! Several otter nodes on one database: a change made through one node reaches every node's
//! check endpoint within a second, without the check path asking the database.

use std::time::{Duration, Instant};

use otter_testkit::wait_until_async;
use serde_json::json;

use crate::common::TestServer;

/// What `node` offers a device on `current`, or why it could not say (e.g. 404 while the node
/// has not learnt of the product yet).
async fn offer(node: &TestServer, current: &str) -> Result<Option<String>, String> {
    let resp = node
        .anon(
            reqwest::Method::GET,
            &format!("/api/v1/products/door/check?current={current}"),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let answer: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    Ok(answer["manifest"]["version"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_release_published_on_one_node_is_offered_and_withdrawn_by_another() {
    let a = TestServer::start().await;
    let b = TestServer::sharing_database_with(&a).await;
    a.create_product("door", "semver").await;
    a.release("door", "1.0.0", json!({})).await;

    // Node B learns of the product and its release by polling catalogue versions.
    let published = Instant::now();
    wait_until_async(
        Duration::from_secs(1),
        "node B offers 1.0.0",
        async || match offer(&b, "0.9.0").await? {
            Some(v) if v == "1.0.0" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(published.elapsed() < Duration::from_secs(1));

    a.release("door", "1.1.0", json!({})).await;
    wait_until_async(
        Duration::from_secs(1),
        "node B offers 1.1.0",
        async || match offer(&b, "1.0.0").await? {
            Some(v) if v == "1.1.0" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // A yank through node A withdraws the release on node B.
    a.patch_release("door", "1.1.0", json!({"yanked": true}))
        .await;
    wait_until_async(
        Duration::from_secs(1),
        "node B withdraws 1.1.0",
        async || match offer(&b, "1.0.0").await? {
            None => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // And the other way round: node B's publish reaches node A.
    b.release("door", "1.2.0", json!({})).await;
    wait_until_async(
        Duration::from_secs(1),
        "node A offers 1.2.0",
        async || match offer(&a, "1.0.0").await? {
            Some(v) if v == "1.2.0" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}
