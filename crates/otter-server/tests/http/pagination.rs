//! Paginated lists: `limit`, `nextCursor`, and cursors that were never handed out.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error};

fn field<'a>(items: &'a [Value], key: &str) -> Vec<&'a str> {
    items.iter().map(|i| i[key].as_str().unwrap()).collect()
}

#[tokio::test]
async fn lists_follow_next_cursor_to_the_end() {
    let srv = TestServer::start().await;
    let names: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
    for name in names.iter().rev() {
        srv.create_product(name, "semver").await;
    }
    for limit in [1, 3, 6, 7, 50] {
        let all = srv.all_pages("/api/v1/products", limit).await;
        assert_eq!(field(&all, "name"), names, "limit {limit}");
    }

    // Releases, newest first.
    let versions: Vec<String> = (0..7).map(|i| format!("1.{i}.0")).collect();
    for v in &versions {
        srv.release("p0", v, json!({})).await;
    }
    let newest_first: Vec<&str> = versions.iter().rev().map(String::as_str).collect();
    for limit in [2, 7, 8] {
        let all = srv.all_pages("/api/v1/products/p0/releases", limit).await;
        assert_eq!(field(&all, "version"), newest_first, "limit {limit}");
    }
    let first = srv.get_json("/api/v1/products/p0/releases?limit=3").await;
    assert_eq!(
        field(first["items"].as_array().unwrap(), "version"),
        ["1.6.0", "1.5.0", "1.4.0"]
    );
    assert!(first["nextCursor"].is_string());
    let exact = srv.get_json("/api/v1/products/p0/releases?limit=7").await;
    assert_eq!(exact["items"].as_array().unwrap().len(), 7);
    assert_eq!(
        exact["nextCursor"],
        Value::Null,
        "no cursor when nothing is left"
    );

    // Reports (newest first) and devices (by id).
    for i in 0..7 {
        let resp = srv
            .anon(Method::POST, "/api/v1/products/p0/reports")
            .json(&json!({"device": format!("dev-{}", i % 5), "version": "1.6.0", "state": "installed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let everything = srv.get_json("/api/v1/products/p0/reports?limit=500").await;
    let everything = everything["items"].as_array().unwrap().clone();
    assert_eq!(everything.len(), 7);
    let ids: Vec<i64> = everything
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(
        srv.all_pages("/api/v1/products/p0/reports", 3).await,
        everything
    );
    let dev0 = srv
        .all_pages("/api/v1/products/p0/reports?device=dev-0", 1)
        .await;
    assert_eq!(dev0.len(), 2);
    assert!(dev0.iter().all(|r| r["device"] == "dev-0"));
    let devices = srv.all_pages("/api/v1/products/p0/devices", 2).await;
    assert_eq!(
        field(&devices, "id"),
        ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4"]
    );
}

#[tokio::test]
async fn bad_cursors_and_limits_are_refused() {
    let srv = TestServer::start().await;
    srv.create_product("p", "semver").await;
    for path in [
        "/api/v1/products/p/releases?cursor=abc",
        "/api/v1/products/p/reports?cursor=abc",
        "/api/v1/products/p/reports?device=d&cursor=1.5",
    ] {
        let resp = srv.admin(Method::GET, path).send().await.unwrap();
        expect_error(resp, 400, "invalid_cursor").await;
    }
    for path in [
        "/api/v1/products?limit=0",
        "/api/v1/products?limit=501",
        "/api/v1/products?limit=ten",
        "/api/v1/products?page=2",
        "/api/v1/products/p/releases?limit=0",
        "/api/v1/products/p/devices?limit=1000",
        "/api/v1/products/p/reports?limit=-1",
    ] {
        let resp = srv.admin(Method::GET, path).send().await.unwrap();
        expect_error(resp, 400, "invalid_query").await;
    }
    let max = srv.get_json("/api/v1/products?limit=500").await;
    assert_eq!(max["items"].as_array().unwrap().len(), 1);
}
