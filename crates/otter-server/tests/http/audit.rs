//! The audit log: every change an admin route makes writes exactly one entry (checked for every
//! change the routes table declares, so a new route without a step here fails), with who, from
//! where, under which request id, what and a summary; a refused or failed change and a read write
//! none; `GET /api/v1/audit` filters.

use std::collections::BTreeSet;

use otter_core::iotawatt::SigningKey;
use otter_core::signing::documents::{MANIFEST_TYPE, ROOT_TYPE};
use otter_core::signing::keys::Algorithm;
use otter_server::router::admin_routes;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    TestServer, eventually, expect_error, firmware, header, multipart, sha256_hex,
};
use crate::signing::{Owner, key, manifest, online_key, root_doc, seal};

const DAY: i64 = 86_400;

/// Sends changes and checks that each wrote exactly one entry, remembering which routes of the
/// table it covered.
struct Audited<'a> {
    server: &'a TestServer,
    covered: BTreeSet<(String, &'static str)>,
}

impl Audited<'_> {
    async fn entries(&self) -> Vec<Value> {
        self.server.all_pages("/api/v1/audit", 500).await
    }

    /// Sends `request` to the table's route `method path`, expects success and exactly one new
    /// entry naming the route's action; returns the answer's body (`null` when empty) and the
    /// entry.
    async fn change(
        &mut self,
        method: Method,
        path: &'static str,
        request: RequestBuilder,
    ) -> (Value, Value) {
        let route = admin_routes()
            .into_iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not in the routes table"));
        let before = self.entries().await.len();
        let resp = request.send().await.expect("request");
        let status = resp.status();
        let request_id = header(resp.headers(), "x-request-id").expect("a request id");
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        let after = self.entries().await;
        assert_eq!(after.len(), before + 1, "{method} {path} writes one entry");
        let entry = after[0].clone();
        assert_eq!(entry["action"], route.action.unwrap(), "{entry}");
        assert_eq!(entry["requestId"], request_id.as_str(), "{entry}");
        self.covered.insert((method.to_string(), path));
        (body, entry)
    }
}

#[tokio::test]
async fn every_change_in_the_routes_table_writes_exactly_one_entry() {
    let srv = TestServer::start().await;
    let mut audited = Audited {
        server: &srv,
        covered: BTreeSet::new(),
    };
    let a = &mut audited;
    let admin = |method: Method, path: &str| srv.admin(method, path);

    // Products, artifacts, releases.
    let (_, entry) = a
        .change(
            Method::POST,
            "/api/v1/products",
            admin(Method::POST, "/api/v1/products").json(&json!({"name": "p", "scheme": "semver"})),
        )
        .await;
    assert_eq!(
        (
            &entry["target"],
            &entry["summary"],
            &entry["actor"],
            &entry["role"]
        ),
        (
            &json!("p"),
            &json!("scheme semver"),
            &json!("configured"),
            &json!("admin")
        )
    );
    assert_eq!(entry["actorKind"], "token");
    assert!(
        entry["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{entry}"
    );
    let image = firmware(1, 3000);
    let (artifact, entry) = a
        .change(
            Method::PUT,
            "/api/v1/artifacts",
            admin(Method::PUT, "/api/v1/artifacts?filename=fw.bin").body(image.clone()),
        )
        .await;
    assert_eq!(entry["target"], sha256_hex(&image));
    let boundary = "audit-boundary";
    a.change(
        Method::POST,
        "/api/v1/artifacts",
        admin(Method::POST, "/api/v1/artifacts")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart(
                boundary,
                &[("file", Some("two.bin"), &firmware(2, 3000))],
            )),
    )
    .await;
    // A publisher publishes: the entry names that token and its role.
    let ci = srv.create_token("ci", "publisher").await;
    let (_, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/releases",
            srv.as_token(&ci, Method::POST, "/api/v1/products/p/releases")
                .json(&json!({"version": "1.0.0", "artifact": artifact["sha256"], "channels": ["stable", "beta"]})),
        )
        .await;
    assert_eq!(
        (&entry["actor"], &entry["role"], &entry["target"]),
        (&json!("ci"), &json!("publisher"), &json!("p/1.0.0"))
    );
    let summary = entry["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("published 1.0.0 on beta, stable, artifact "),
        "{summary}"
    );
    let (_, entry) = a
        .change(
            Method::PATCH,
            "/api/v1/products/{product}/releases/{version}",
            admin(Method::PATCH, "/api/v1/products/p/releases/1.0.0")
                .json(&json!({"yanked": true, "mandatory": false})),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("p/1.0.0"), &json!("yanked=true, mandatory=false"))
    );

    // Resumable uploads.
    let chunk = firmware(3, 1000);
    let (session, _) = a
        .change(
            Method::POST,
            "/api/v1/uploads",
            admin(Method::POST, "/api/v1/uploads")
                .json(&json!({"size": 1000, "sha256": sha256_hex(&chunk)})),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    a.change(
        Method::PUT,
        "/api/v1/uploads/{id}",
        srv.put_chunk(id, 0, &chunk),
    )
    .await;
    a.change(
        Method::POST,
        "/api/v1/uploads/{id}/finalize",
        admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize")),
    )
    .await;
    let (session, _) = a
        .change(
            Method::POST,
            "/api/v1/uploads",
            admin(Method::POST, "/api/v1/uploads").json(&json!({"size": 10})),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    let (_, entry) = a
        .change(
            Method::DELETE,
            "/api/v1/uploads/{id}",
            admin(Method::DELETE, &format!("/api/v1/uploads/{id}")),
        )
        .await;
    assert_eq!(entry["target"], id);

    // Devices and their API keys.
    srv.check("p", "current=0.9.0&device=d1").await;
    eventually("the device is recorded", async || {
        let resp = admin(Method::GET, "/api/v1/products/p/devices")
            .send()
            .await
            .unwrap();
        let page: Value = resp.json().await.unwrap();
        if page["items"].as_array().is_some_and(|d| !d.is_empty()) {
            Ok(())
        } else {
            Err(page.to_string())
        }
    })
    .await;
    let (_, entry) = a
        .change(
            Method::PATCH,
            "/api/v1/products/{product}/devices/{device}",
            admin(Method::PATCH, "/api/v1/products/p/devices/d1")
                .json(&json!({"autoUpdate": true})),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("p/d1"), &json!("autoUpdate=true"))
    );
    let (_, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/tags/{tag}",
            admin(Method::POST, "/api/v1/products/p/tags/canary?device=d1"),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("p/canary"), &json!("tagged 1 devices"))
    );
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/tags/{tag}",
        admin(Method::DELETE, "/api/v1/products/p/tags/canary"),
    )
    .await;
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/admission",
        admin(Method::PUT, "/api/v1/products/p/admission").json(&json!({"mode": "open"})),
    )
    .await;
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/admission/{device}",
        admin(Method::PUT, "/api/v1/products/p/admission/d1").json(&json!({"access": "allow"})),
    )
    .await;
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/admission/{device}",
        admin(Method::DELETE, "/api/v1/products/p/admission/d1"),
    )
    .await;
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/devices/{device}",
        admin(Method::DELETE, "/api/v1/products/p/devices/d1"),
    )
    .await;
    let (key_body, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/apikeys",
            admin(Method::POST, "/api/v1/products/p/apikeys").json(&json!({"label": "factory"})),
        )
        .await;
    let key_id = key_body["id"].as_str().unwrap();
    assert_eq!(entry["target"], format!("p/{key_id}"));
    assert!(
        !entry
            .to_string()
            .contains(key_body["key"].as_str().unwrap()),
        "the key itself is not in the log"
    );
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/apikeys/{id}",
        admin(
            Method::DELETE,
            &format!("/api/v1/products/p/apikeys/{key_id}"),
        ),
    )
    .await;

    // hawkBit DDI tokens (never in the log) and options.
    let (made, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/devices/{device}/ddi-token",
            admin(Method::POST, "/api/v1/products/p/devices/d1/ddi-token"),
        )
        .await;
    assert_eq!(entry["target"], "p/d1");
    let (gateway, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/ddi/gateway-token",
            admin(Method::POST, "/api/v1/products/p/ddi/gateway-token"),
        )
        .await;
    assert_eq!(entry["target"], "p");
    for token in [&made["token"], &gateway["token"]] {
        assert!(!entry.to_string().contains(token.as_str().unwrap()));
    }
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/ddi",
        admin(Method::PUT, "/api/v1/products/p/ddi").json(&json!({"anonymous": true})),
    )
    .await;

    // A rollout through its whole life.
    let (rollout, entry) = a
        .change(
            Method::POST,
            "/api/v1/products/{product}/rollouts",
            admin(Method::POST, "/api/v1/products/p/rollouts")
                .json(&json!({"version": "9.0.0", "stages": [{"percent": 10}, {"percent": 100}]})),
        )
        .await;
    let id = rollout["id"].as_i64().unwrap();
    assert_eq!(entry["target"], "p");
    for step in ["pause", "resume", "advance", "retry-failed", "abort"] {
        let path = match step {
            "pause" => "/api/v1/products/{product}/rollouts/{id}/pause",
            "resume" => "/api/v1/products/{product}/rollouts/{id}/resume",
            "advance" => "/api/v1/products/{product}/rollouts/{id}/advance",
            "retry-failed" => "/api/v1/products/{product}/rollouts/{id}/retry-failed",
            _ => "/api/v1/products/{product}/rollouts/{id}/abort",
        };
        let (_, entry) = a
            .change(
                Method::POST,
                path,
                admin(
                    Method::POST,
                    &format!("/api/v1/products/p/rollouts/{id}/{step}"),
                ),
            )
            .await;
        assert_eq!(entry["target"], format!("p/{id}"));
    }

    // Maintenance windows and the poll hint.
    let (_, entry) = a
        .change(
            Method::PUT,
            "/api/v1/products/{product}/windows/{channel}",
            admin(Method::PUT, "/api/v1/products/p/windows/stable")
                .json(&json!({"timezone": "UTC", "slots": ["daily 02:00-04:00"]})),
        )
        .await;
    assert_eq!(entry["target"], "p/stable");
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/windows/{channel}",
        admin(Method::DELETE, "/api/v1/products/p/windows/stable"),
    )
    .await;
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/poll-hint",
        admin(Method::PUT, "/api/v1/products/p/poll-hint").json(&json!({"intervalSeconds": 600})),
    )
    .await;
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/poll-hint",
        admin(Method::DELETE, "/api/v1/products/p/poll-hint"),
    )
    .await;
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/delta-policy",
        admin(Method::PUT, "/api/v1/products/p/delta-policy").json(&json!({"format": "zstd"})),
    )
    .await;
    a.change(
        Method::DELETE,
        "/api/v1/products/{product}/delta-policy",
        admin(Method::DELETE, "/api/v1/products/p/delta-policy"),
    )
    .await;

    // Product settings: an IotaWatt key, a declared image format.
    srv.create_product("iw", "lexical").await;
    let iotawatt = SigningKey::generate().unwrap();
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/iotawatt",
        admin(Method::PUT, "/api/v1/products/iw/iotawatt")
            .json(&json!({ "publicKey": otter_core::iotawatt::c_array(&iotawatt.public_key()) })),
    )
    .await;
    let sbv2 = key(Algorithm::P256);
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/image-format",
        admin(Method::PUT, "/api/v1/products/iw/image-format")
            .json(&json!({"format": "esp-idf-sbv2", "publicKey": sbv2.public_key().to_pem()})),
    )
    .await;

    // Signed releases: a root, then a signature replaced on a published release.
    srv.create_product("door", "semver").await;
    let owner = Owner {
        root: key(Algorithm::Ed25519),
        release: key(Algorithm::Ed25519),
        release_p256: key(Algorithm::P256),
        online: online_key(&srv).await,
    };
    let now = otter_store::now();
    let root1 = seal(
        ROOT_TYPE,
        &root_doc(&owner, 1, &[&owner.root], now, now + 365 * DAY),
        &[&owner.root],
    );
    a.change(
        Method::POST,
        "/api/v1/products/{product}/roots",
        admin(Method::POST, "/api/v1/products/door/roots").json(&root1),
    )
    .await;
    let door = firmware(4, 2000);
    let sha = srv.upload(&door).await;
    let signed = seal(
        MANIFEST_TYPE,
        &manifest("1.0.0", 1, &door, 30 * DAY),
        &[&owner.release],
    );
    let resp = srv
        .try_publish("door", "1.0.0", &sha, json!({ "signature": signed }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resigned = seal(
        MANIFEST_TYPE,
        &manifest("1.0.0", 1, &door, 60 * DAY),
        &[&owner.release],
    );
    a.change(
        Method::PUT,
        "/api/v1/products/{product}/releases/{version}/signature",
        admin(
            Method::PUT,
            "/api/v1/products/door/releases/1.0.0/signature",
        )
        .json(&resigned),
    )
    .await;

    // Tokens: created (the token itself never in the log) and revoked.
    let (created, entry) = a
        .change(
            Method::POST,
            "/api/v1/tokens",
            admin(Method::POST, "/api/v1/tokens")
                .json(&json!({"name": "dashboard", "role": "viewer", "expires": "90d"})),
        )
        .await;
    assert_eq!(entry["target"], "dashboard");
    let summary = entry["summary"].as_str().unwrap();
    assert!(summary.starts_with("role viewer, expires "), "{summary}");
    assert!(
        !entry
            .to_string()
            .contains(created["token"].as_str().unwrap())
    );
    let (_, entry) = a
        .change(
            Method::DELETE,
            "/api/v1/tokens/{name}",
            admin(Method::DELETE, "/api/v1/tokens/dashboard"),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("dashboard"), &json!("revoked a viewer token"))
    );

    // Users and sessions: the user's own logout is under their name.
    let (created, entry) = a
        .change(
            Method::POST,
            "/api/v1/users",
            admin(Method::POST, "/api/v1/users").json(
                &json!({"name": "ann", "role": "viewer", "password": "correct horse battery"}),
            ),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("ann"), &json!("role viewer"))
    );
    assert!(!entry.to_string().contains("correct horse") && created.get("password").is_none());
    let (_, entry) = a
        .change(
            Method::PATCH,
            "/api/v1/users/{name}",
            admin(Method::PATCH, "/api/v1/users/ann")
                .json(&json!({"role": "publisher", "password": "battery horse correct"})),
        )
        .await;
    assert_eq!(
        (&entry["target"], &entry["summary"]),
        (&json!("ann"), &json!("role publisher, new password"))
    );
    srv.login("ann", "battery horse correct").await;
    let (_, entry) = a
        .change(
            Method::DELETE,
            "/api/v1/users/{name}/sessions",
            admin(Method::DELETE, "/api/v1/users/ann/sessions"),
        )
        .await;
    assert_eq!(entry["summary"], "revoked 1 sessions");
    let session = srv.login("ann", "battery horse correct").await;
    let (_, entry) = a
        .change(
            Method::DELETE,
            "/api/v1/session",
            srv.as_user(&session, Method::DELETE, "/api/v1/session"),
        )
        .await;
    assert_eq!(
        (&entry["actor"], &entry["actorKind"], &entry["role"]),
        (&json!("ann"), &json!("user"), &json!("publisher"))
    );

    let declared: BTreeSet<(String, &'static str)> = admin_routes()
        .into_iter()
        .filter(|r| r.action.is_some())
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let missing: Vec<_> = declared.difference(&audited.covered).collect();
    assert!(
        missing.is_empty(),
        "changes without a step in this test: {missing:?}"
    );
}

#[tokio::test]
async fn refused_failed_and_read_requests_write_nothing() {
    let srv = TestServer::start().await;
    srv.create_product("p", "semver").await;
    let viewer = srv.create_token("viewer", "viewer").await;
    let count = async || srv.all_pages("/api/v1/audit", 500).await.len();
    let before = count().await;
    // Refused (role too low), failed (validation), reads.
    let resp = srv
        .as_token(&viewer, Method::POST, "/api/v1/products")
        .json(&json!({"name": "q"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
    let resp = srv
        .try_publish("p", "not a version", &"ab".repeat(32), json!({}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = srv
        .admin(Method::DELETE, "/api/v1/tokens/nobody")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "token_not_found").await;
    srv.get_json("/api/v1/products").await;
    srv.get_json("/api/v1/tokens").await;
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_action_target_and_time() {
    let srv = TestServer::start().await;
    let ci = srv.create_token("ci", "publisher").await;
    srv.create_product("door", "semver").await;
    srv.create_product("lamp", "semver").await;
    for (product, version) in [("door", "1.0.0"), ("lamp", "1.0.0"), ("door", "1.1.0")] {
        let sha = srv
            .upload(&crate::common::firmware_for(product, version))
            .await;
        let resp = srv
            .as_token(
                &ci,
                Method::POST,
                &format!("/api/v1/products/{product}/releases"),
            )
            .json(&json!({"version": version, "artifact": sha}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let targets = async |query: &str| -> Vec<String> {
        srv.all_pages(&format!("/api/v1/audit?{query}"), 2)
            .await
            .iter()
            .map(|e| e["target"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        targets("actor=ci&action=release.publish&target=door").await,
        ["door/1.1.0", "door/1.0.0"]
    );
    assert_eq!(targets("action=product.create").await, ["lamp", "door"]);
    assert_eq!(targets("actor=nobody").await, Vec::<String>::new());
    let future = otter_core::model::format_rfc3339(otter_store::now() + 3600);
    assert_eq!(
        targets(&format!("since={future}")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        targets(&format!("until={future}&action=token.create")).await,
        ["ci"]
    );
    for query in [
        "since=yesterday".to_owned(),
        format!("since={future}&until={future}"),
    ] {
        let resp = srv
            .admin(Method::GET, &format!("/api/v1/audit?{query}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_query").await;
    }
    // The audit log names tokens: a publisher may not read it.
    let resp = srv
        .as_token(&ci, Method::GET, "/api/v1/audit")
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
}
