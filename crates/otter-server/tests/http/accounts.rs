//! User accounts and sessions: logging in sets a strict cookie, failures look alike and are
//! rate-limited per account and per address, the cookie opens admin routes with the user's role
//! (changes only from otter's own origin), audit entries name the user, and logout, expiry,
//! revocation, disabling and a new password each end a session.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use otter_testkit::wait_until_async;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, header, json_body, session_secret, test_config};

const PASSWORD: &str = "correct horse battery staple";

/// A client whose connections come from `127.0.0.<n>` (Linux routes all of 127/8 to loopback),
/// to log in from several addresses.
fn client_from(n: u8) -> Client {
    Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .expect("client")
}

/// Whether the session `secret` still opens `GET /api/v1/session`.
async fn live(server: &TestServer, secret: &str) -> bool {
    let resp = server
        .cookie_only(secret, Method::GET, "/api/v1/session")
        .send()
        .await
        .unwrap();
    match resp.status() {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("GET /api/v1/session answered {other}"),
    }
}

async fn audit(server: &TestServer, action: &str) -> Vec<Value> {
    server
        .all_pages(&format!("/api/v1/audit?action={action}"), 100)
        .await
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_failures_look_alike() {
    let server = TestServer::start().await;
    server.create_user("ann", "publisher", PASSWORD).await;

    let resp = server.try_login(&server.client, "ann", PASSWORD).await;
    let cookie = header(resp.headers(), "set-cookie").expect("Set-Cookie");
    let secret = session_secret(resp.headers()).unwrap();
    let body = json_body(resp, StatusCode::OK).await;
    assert_eq!(
        (&body["name"], &body["role"], &body["kind"]),
        (&json!("ann"), &json!("publisher"), &json!("user"))
    );
    let attributes: Vec<&str> = cookie.split("; ").collect();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&attribute), "{cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP: {cookie}");
    assert!(secret.len() >= 64, "a 256-bit secret: {secret}");

    let me = json_body(
        server
            .as_user(&secret, Method::GET, "/api/v1/session")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!((&me["name"], &me["kind"]), (&json!("ann"), &json!("user")));
    assert_eq!(me["expiresAt"], body["expiresAt"]);

    let wrong = expect_error(
        server
            .try_login(&server.client, "ann", "not the password")
            .await,
        401,
        "login_failed",
    )
    .await;
    let unknown = expect_error(
        server.try_login(&server.client, "nobody", PASSWORD).await,
        401,
        "login_failed",
    )
    .await;
    assert_eq!(
        wrong, unknown,
        "a wrong password and an unknown user look alike"
    );
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let server = TestServer::with_config(otter_server::Settings {
        public_url: Some("https://otter.example".to_owned()),
        ..test_config()
    })
    .await;
    server.create_user("ann", "viewer", PASSWORD).await;
    let resp = server.try_login(&server.client, "ann", PASSWORD).await;
    let cookie = header(resp.headers(), "set-cookie").unwrap();
    assert!(cookie.split("; ").any(|a| a == "Secure"), "{cookie}");
}

#[tokio::test]
async fn the_sixth_failure_in_a_row_is_refused_per_account_and_per_address() {
    let server = TestServer::start().await;
    server.create_user("ann", "viewer", PASSWORD).await;
    server.create_user("bob", "viewer", PASSWORD).await;
    let (here, elsewhere, third) = (client_from(1), client_from(2), client_from(3));
    for _ in 0..5 {
        let resp = server.try_login(&here, "ann", "not the password").await;
        expect_error(resp, 401, "login_failed").await;
    }
    // Even the right password is refused now, before it is checked.
    let resp = server.try_login(&here, "ann", PASSWORD).await;
    let retry_after: u64 = header(resp.headers(), "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    expect_error(resp, 429, "rate_limited").await;
    // Per account: from another address too.
    let resp = server.try_login(&elsewhere, "ann", PASSWORD).await;
    expect_error(resp, 429, "rate_limited").await;
    // Per address: another account from the same address.
    let resp = server.try_login(&here, "bob", PASSWORD).await;
    expect_error(resp, 429, "rate_limited").await;
    // Neither: let in.
    let resp = server.try_login(&third, "bob", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_cookie_opens_admin_routes_with_the_users_role_and_audit_names_the_user() {
    let server = TestServer::start().await;
    server.create_user("val", "viewer", PASSWORD).await;
    server.create_user("pat", "publisher", PASSWORD).await;
    server.create_product("door", "semver").await;
    let sha256 = server.upload(b"door firmware 1.0.0").await;
    let viewer = server.login("val", PASSWORD).await;
    let publisher = server.login("pat", PASSWORD).await;

    let resp = server
        .as_user(&viewer, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = server
        .as_user(&viewer, Method::POST, "/api/v1/products/door/releases")
        .json(&json!({"version": "1.0.0", "artifact": sha256}))
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 403, "forbidden").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the user \"val\" has viewer"),
        "{body}"
    );
    let resp = server
        .as_user(&publisher, Method::POST, "/api/v1/products/door/releases")
        .json(&json!({"version": "1.0.0", "artifact": sha256}))
        .send()
        .await
        .unwrap();
    json_body(resp, StatusCode::CREATED).await;

    let published = audit(&server, "release.publish").await;
    assert_eq!(
        (&published[0]["actor"], &published[0]["actorKind"]),
        (&json!("pat"), &json!("user")),
        "{published:?}"
    );
    let logins = audit(&server, "user.login").await;
    let names: Vec<&Value> = logins.iter().map(|e| &e["actor"]).collect();
    assert_eq!(names, [&json!("pat"), &json!("val")]);
    assert!(
        logins.iter().all(|e| e["actorKind"] == "user"
            && e["requestId"].is_string()
            && e["remote"].is_string()),
        "{logins:?}"
    );

    let resp = server
        .as_user(&publisher, Method::DELETE, "/api/v1/session")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let cleared = header(resp.headers(), "set-cookie").unwrap();
    assert!(cleared.starts_with("otter_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let logouts = audit(&server, "user.logout").await;
    assert_eq!(
        (logouts.len(), &logouts[0]["actor"], &logouts[0]["target"]),
        (1, &json!("pat"), &json!("pat"))
    );
}

#[tokio::test]
async fn cookie_changes_need_the_same_origin_and_bearer_requests_do_not() {
    let server = TestServer::start().await;
    server.create_user("ada", "admin", PASSWORD).await;
    let secret = server.login("ada", PASSWORD).await;
    let product = |name: &str| json!({"name": name, "scheme": "semver"});

    let referer = server.url("/ui/products");
    // (product name, headers beside the cookie, expected status): no Origin or Referer, a
    // foreign Origin, a foreign Origin beside a matching Referer (the Origin wins), otter's own
    // Origin, otter's own Referer.
    let cases = [
        ("no-origin", vec![], 403),
        ("foreign", vec![("origin", "http://evil.example")], 403),
        (
            "foreign-2",
            vec![("origin", "http://evil.example"), ("referer", &referer)],
            403,
        ),
        ("same-origin", vec![("origin", &server.base)], 201),
        ("same-referer", vec![("referer", &referer)], 201),
    ];
    for (name, headers, status) in cases {
        let mut request = server.cookie_only(&secret, Method::POST, "/api/v1/products");
        for (header, value) in headers {
            request = request.header(header, value);
        }
        let resp = request.json(&product(name)).send().await.unwrap();
        if status == 403 {
            expect_error(resp, 403, "cross_origin").await;
        } else {
            assert_eq!(resp.status().as_u16(), status, "{name}");
        }
    }
    // Reads need no Origin.
    let resp = server
        .cookie_only(&secret, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A bearer request without Origin passes, with a stale cookie beside it too.
    let resp = server
        .admin(Method::POST, "/api/v1/products")
        .header("cookie", "otter_session=0123")
        .json(&product("bearer"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let names: Vec<Value> = server
        .all_pages("/api/v1/products", 100)
        .await
        .into_iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("bearer"), json!("same-origin"), json!("same-referer")]
    );

    // A foreign page cannot log the browser in either.
    let resp = server
        .client
        .post(server.url("/api/v1/session"))
        .header("origin", "http://evil.example")
        .json(&json!({"name": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "cross_origin").await;
}

#[tokio::test]
async fn logout_revocation_disabling_and_a_new_password_each_end_sessions() {
    let server = TestServer::start().await;
    server.create_user("ann", "viewer", PASSWORD).await;
    let patch = |body: Value| {
        server
            .admin(Method::PATCH, "/api/v1/users/ann")
            .json(&body)
            .send()
    };

    // Logout ends this session only.
    let (first, second) = (
        server.login("ann", PASSWORD).await,
        server.login("ann", PASSWORD).await,
    );
    let resp = server
        .as_user(&first, Method::DELETE, "/api/v1/session")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!live(&server, &first).await);
    assert!(live(&server, &second).await);

    // An admin revokes every session of the user.
    let third = server.login("ann", PASSWORD).await;
    let revoked = json_body(
        server
            .admin(Method::DELETE, "/api/v1/users/ann/sessions")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(revoked["revoked"], 2);
    assert!(!live(&server, &second).await && !live(&server, &third).await);

    // Disabling ends sessions and logins; enabling lets the user in again.
    let session = server.login("ann", PASSWORD).await;
    let user = json_body(
        patch(json!({"disabled": true})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["disabled"], true);
    assert!(!live(&server, &session).await);
    let resp = server.try_login(&server.client, "ann", PASSWORD).await;
    expect_error(resp, 401, "login_failed").await;
    json_body(
        patch(json!({"disabled": false})).await.unwrap(),
        StatusCode::OK,
    )
    .await;

    // A new password ends sessions; the old one opens nothing.
    let session = server.login("ann", PASSWORD).await;
    let new_password = "another long passphrase";
    json_body(
        patch(json!({"password": new_password})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(!live(&server, &session).await);
    let resp = server.try_login(&server.client, "ann", PASSWORD).await;
    expect_error(resp, 401, "login_failed").await;
    let session = server.login("ann", new_password).await;

    // A role change holds at once, in the live session.
    json_body(
        patch(json!({"role": "admin"})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let resp = server
        .as_user(&session, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn sessions_expire_after_the_session_lifetime() {
    let server = TestServer::with_config(otter_server::Settings {
        session_lifetime: Duration::from_secs(1),
        ..test_config()
    })
    .await;
    server.create_user("ann", "viewer", PASSWORD).await;
    let session = server.login("ann", PASSWORD).await;
    wait_until_async(Duration::from_secs(10), "the session expires", async || {
        if live(&server, &session).await {
            Err("still live".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn users_are_listed_and_their_input_checked() {
    let server = TestServer::start().await;
    for name in ["cy", "ann", "bob"] {
        server.create_user(name, "viewer", PASSWORD).await;
    }
    let users = server.all_pages("/api/v1/users", 2).await;
    let names: Vec<&Value> = users.iter().map(|u| &u["name"]).collect();
    assert_eq!(names, [&json!("ann"), &json!("bob"), &json!("cy")]);
    assert!(
        users
            .iter()
            .all(|u| u.get("passwordHash").is_none() && u["disabled"] == false),
        "{users:?}"
    );

    let create = |body: Value| {
        server
            .admin(Method::POST, "/api/v1/users")
            .json(&body)
            .send()
    };
    let resp = create(json!({"name": "dee", "role": "viewer", "password": "short"})).await;
    expect_error(resp.unwrap(), 400, "weak_password").await;
    let resp = create(json!({"name": "ann", "role": "viewer", "password": PASSWORD})).await;
    expect_error(resp.unwrap(), 409, "user_exists").await;
    let resp = create(json!({"name": "../x", "role": "viewer", "password": PASSWORD})).await;
    assert_eq!(resp.unwrap().status(), StatusCode::BAD_REQUEST);
    let resp = server
        .admin(Method::PATCH, "/api/v1/users/nobody")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "user_not_found").await;
    let resp = server
        .admin(Method::DELETE, "/api/v1/users/nobody/sessions")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "user_not_found").await;
    // A token has no session to log out of.
    let resp = server
        .admin(Method::DELETE, "/api/v1/session")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "no_session").await;
}
