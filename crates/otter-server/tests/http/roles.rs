//! Roles, generated from the routes table: every admin route refuses a request without a token,
//! with a revoked or an expired token (401), and with a token of each role below the one it
//! declares (403 `forbidden`), and lets its declared role through. The role table in
//! docs/tokens.md is checked against the routes table too.

use std::collections::BTreeSet;
use std::time::Duration;

use otter_core::model::{ApiToken, Role};
use otter_server::router::{AdminRoute, admin_routes};
use otter_store::TokenStore as _;
use otter_store::sql::SqlStore;
use otter_testkit::wait_until_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, sha256_hex};

/// The route's path with every parameter filled in (with values that need not exist).
pub fn concrete_path(route: &AdminRoute) -> String {
    route
        .path
        .replace("{product}", "p")
        .replace("{version}", "1.0.0")
        .replace("{device}", "d1")
        .replace("{id}", "0123456789abcdef")
        .replace("{sha256}", &"ab".repeat(32))
        .replace("{name}", "nobody")
}

/// Sends `route` with `token` (none: no `Authorization`) and a small JSON body for changes.
async fn send(server: &TestServer, route: &AdminRoute, token: Option<&str>) -> reqwest::Response {
    let path = concrete_path(route);
    let mut request = match token {
        Some(token) => server.as_token(token, route.method.clone(), &path),
        None => server.anon(route.method.clone(), &path),
    };
    if route.method != Method::GET {
        request = request.json(&json!({}));
    }
    request.send().await.expect("request")
}

/// An admin token that expired ten seconds ago, written to the server's database as another
/// node would; returns it once the server has picked it up.
pub async fn expired_token(server: &TestServer) -> String {
    let token = "expired-token-0123456789abcdef0123456789".to_owned();
    let url = format!("sqlite://{}", server.data_dir().join("otter.db").display());
    let store = SqlStore::connect(&url)
        .await
        .expect("the server's database");
    let now = otter_store::now();
    let expired = ApiToken {
        name: "expired".to_owned(),
        role: Role::Admin,
        created_at: now - 100,
        last_used_at: None,
        expires_at: Some(now - 10),
        revoked_at: None,
    };
    store
        .add_token(&sha256_hex(token.as_bytes()), &expired)
        .await
        .expect("add the expired token");
    store.close().await;
    wait_until_async(
        Duration::from_secs(10),
        "the server knows the expired token",
        async || {
            let resp = server
                .as_token(&token, Method::GET, "/api/v1/status")
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            match body["message"].as_str() {
                Some(m) if m.contains("expired") => Ok(()),
                _ => Err(body.to_string()),
            }
        },
    )
    .await;
    token
}

#[tokio::test]
async fn every_admin_route_refuses_lesser_roles_and_dead_tokens() {
    let server = TestServer::start().await;
    let viewer = server.create_token("viewer", "viewer").await;
    let publisher = server.create_token("publisher", "publisher").await;
    let admin = server.create_token("admin", "admin").await;
    let revoked = server.create_token("revoked", "admin").await;
    let resp = server
        .admin(Method::DELETE, "/api/v1/tokens/revoked")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let expired = expired_token(&server).await;
    let of_role = |role: Role| match role {
        Role::Viewer => &viewer,
        Role::Publisher => &publisher,
        Role::Admin => &admin,
    };

    let routes = admin_routes();
    assert!(routes.len() >= 30, "the table lists every admin route");
    for route in &routes {
        let what = format!("{} {}", route.method, route.path);
        for (token, why) in [
            (None, "no token"),
            (Some(revoked.as_str()), "a revoked token"),
            (Some(expired.as_str()), "an expired token"),
        ] {
            let resp = send(&server, route, token).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what} with {why}");
            assert!(
                resp.headers().contains_key("www-authenticate"),
                "{what} with {why}"
            );
        }
        for lesser in Role::ALL.into_iter().filter(|r| *r < route.role) {
            let resp = send(&server, route, Some(of_role(lesser))).await;
            let body = expect_error(resp, 403, "forbidden").await;
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("needs the {} role", route.role)),
                "{what} as {lesser}: {message}"
            );
        }
        let resp = send(&server, route, Some(of_role(route.role))).await;
        let status = resp.status();
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{what} as {}: {status} {}",
            route.role,
            resp.text().await.unwrap_or_default()
        );
    }
}

#[test]
fn every_change_names_an_audit_action_and_every_read_none() {
    let mut seen = BTreeSet::new();
    for route in admin_routes() {
        assert!(
            seen.insert((route.method.to_string(), route.path)),
            "{} {} is declared twice",
            route.method,
            route.path
        );
        assert_eq!(
            route.action.is_some(),
            route.method != Method::GET,
            "{} {}",
            route.method,
            route.path
        );
        assert!(route.path.starts_with("/api/v1/"), "{}", route.path);
    }
}

/// docs/tokens.md lists every admin route with its role and action, and nothing else.
#[test]
fn the_documented_roles_are_the_routes_table() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tokens.md"),
    )
    .expect("docs/tokens.md");
    // Rows like "| `POST /api/v1/products` | admin | `product.create` |", in their section.
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Routes and their roles"))
        .expect("a section \"Routes and their roles\"");
    let documented: BTreeSet<(String, String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let [route, role, action] = cells[..] else {
                return None;
            };
            let route = route.trim().strip_prefix('`')?.strip_suffix('`')?;
            route.contains(" /api/v1/").then(|| {
                (
                    route.to_owned(),
                    role.trim().to_owned(),
                    action.trim().trim_matches('`').to_owned(),
                )
            })
        })
        .collect();
    let declared: BTreeSet<(String, String, String)> = admin_routes()
        .iter()
        .map(|r| {
            (
                format!("{} {}", r.method, r.path),
                r.role.to_string(),
                r.action.unwrap_or("—").to_owned(),
            )
        })
        .collect();
    assert_eq!(documented, declared, "docs/tokens.md's route table");
}
