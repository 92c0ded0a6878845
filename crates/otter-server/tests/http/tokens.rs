//! Admin API tokens: created with a role and an expiry and shown once, listed, revoked at once
//! (on another node sharing the database within a poll), names never reused, last use written
//! without a database write per request.

use std::time::Duration;

use otter_core::model::ApiToken;
use otter_store::TokenStore as _;
use otter_store::sql::SqlStore;
use otter_testkit::wait_until_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, json_body, unix_time};

async fn create(srv: &TestServer, body: Value) -> reqwest::Response {
    srv.admin(Method::POST, "/api/v1/tokens")
        .json(&body)
        .send()
        .await
        .expect("create token")
}

/// The token named `name` as the API lists it.
async fn listed(srv: &TestServer, name: &str) -> Value {
    let tokens = srv.all_pages("/api/v1/tokens", 1).await;
    tokens
        .into_iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no token {name} listed"))
}

/// The token named `name` as the server's database holds it.
async fn stored(srv: &TestServer, name: &str) -> ApiToken {
    let url = format!("sqlite://{}", srv.data_dir().join("otter.db").display());
    let store = SqlStore::connect(&url)
        .await
        .expect("the server's database");
    let token = store
        .all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.token.name == name)
        .expect("stored")
        .token;
    store.close().await;
    token
}

#[tokio::test]
async fn tokens_are_created_with_a_role_listed_and_revoked() {
    let mut srv = TestServer::start().await;
    let resp = create(
        &srv,
        json!({"name": "ci", "role": "publisher", "expires": "90d"}),
    )
    .await;
    let created = json_body(resp, StatusCode::CREATED).await;
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("otter_") && token.len() == 70, "{token}");
    assert_eq!(
        (&created["name"], &created["role"]),
        (&json!("ci"), &json!("publisher"))
    );
    let lifetime = unix_time(&created["expiresAt"]) - unix_time(&created["createdAt"]);
    assert_eq!(lifetime, 90 * 86_400);
    assert_eq!(created["revokedAt"], Value::Null);
    // A lifetime may be given in seconds too.
    let hour = json_body(
        create(
            &srv,
            json!({"name": "hour", "role": "viewer", "expires": 3600}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        unix_time(&hour["expiresAt"]) - unix_time(&hour["createdAt"]),
        3600
    );

    // Refusals.
    let resp = create(&srv, json!({"name": "ci", "role": "viewer"})).await;
    expect_error(resp, 409, "token_exists").await;
    for (body, code) in [
        (
            json!({"name": "configured", "role": "viewer"}),
            "invalid_field",
        ),
        (json!({"name": "a b", "role": "viewer"}), "invalid_field"),
        (
            json!({"name": "x", "role": "viewer", "expires": "soon"}),
            "invalid_field",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires": "0"}),
            "invalid_field",
        ),
        (json!({"name": "x", "role": "root"}), "invalid_json"),
        (
            json!({"name": "x", "role": "viewer", "expires": -5}),
            "invalid_json",
        ),
    ] {
        expect_error(create(&srv, body.clone()).await, 400, code).await;
    }

    // The bootstrap token is listed as an admin token; no listing shows a token.
    let configured = listed(&srv, "configured").await;
    assert_eq!(
        (&configured["role"], &configured["expiresAt"]),
        (&json!("admin"), &Value::Null)
    );
    let page = srv.get_json("/api/v1/tokens").await;
    assert!(!page.to_string().contains(&token), "{page}");

    // Used: the list knows at once, the database only when last uses are written (at most once
    // a minute, and on shutdown): no write per admin request.
    assert_eq!(listed(&srv, "ci").await["lastUsedAt"], Value::Null);
    let resp = srv
        .as_token(&token, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let used = unix_time(&listed(&srv, "ci").await["lastUsedAt"]);
    assert!(used >= unix_time(&created["createdAt"]));
    assert_eq!(stored(&srv, "ci").await.last_used_at, None);
    srv.restart().await;
    assert_eq!(stored(&srv, "ci").await.last_used_at, Some(used));
    assert_eq!(unix_time(&listed(&srv, "ci").await["lastUsedAt"]), used);

    // Revoked: refused at once, still listed, its name not given again.
    let resp = srv
        .admin(Method::DELETE, "/api/v1/tokens/ci")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = srv
        .as_token(&token, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 401, "unauthorized").await;
    assert_eq!(body["message"], "the admin token has been revoked");
    assert!(listed(&srv, "ci").await["revokedAt"].is_string());
    expect_error(
        create(&srv, json!({"name": "ci", "role": "viewer"})).await,
        409,
        "token_exists",
    )
    .await;
    let resp = srv
        .admin(Method::DELETE, "/api/v1/tokens/nobody")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "token_not_found").await;
}

#[tokio::test]
async fn a_token_revoked_on_one_node_is_refused_by_the_other_within_a_poll() {
    let a = TestServer::start().await;
    let b = TestServer::sharing_database_with(&a).await;
    let token = a.create_token("ci", "publisher").await;
    let status = async |srv: &TestServer| {
        srv.as_token(&token, Method::GET, "/api/v1/products")
            .send()
            .await
            .unwrap()
            .status()
    };
    // The catalogue poll is half a second: two give room on a busy machine.
    wait_until_async(
        Duration::from_secs(2),
        "node B accepts the new token",
        async || match status(&b).await {
            StatusCode::OK => Ok(()),
            other => Err(other.to_string()),
        },
    )
    .await;
    let resp = a
        .admin(Method::DELETE, "/api/v1/tokens/ci")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(&a).await,
        StatusCode::UNAUTHORIZED,
        "at once on node A"
    );
    wait_until_async(
        Duration::from_secs(2),
        "node B refuses the revoked token",
        async || match status(&b).await {
            StatusCode::UNAUTHORIZED => Ok(()),
            other => Err(other.to_string()),
        },
    )
    .await;
}
