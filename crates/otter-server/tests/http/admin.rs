//! Admin API: authentication, products, releases, and the house error format for routing
//! mistakes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TOKEN, TestServer, expect_error, firmware, json_body, sha256_hex, unix_time};

/// Every admin route, with a body where one is needed to get past body parsing.
fn admin_routes(sha: &str) -> Vec<(Method, String)> {
    [
        (Method::GET, "/api/v1/status".to_owned()),
        (Method::GET, "/api/v1/products".to_owned()),
        (Method::POST, "/api/v1/products".to_owned()),
        (Method::GET, "/api/v1/products/door".to_owned()),
        (Method::GET, "/api/v1/products/door/releases".to_owned()),
        (Method::POST, "/api/v1/products/door/releases".to_owned()),
        (
            Method::GET,
            "/api/v1/products/door/releases/1.0.0".to_owned(),
        ),
        (
            Method::PATCH,
            "/api/v1/products/door/releases/1.0.0".to_owned(),
        ),
        (Method::GET, "/api/v1/products/door/devices".to_owned()),
        (Method::GET, "/api/v1/products/door/reports".to_owned()),
        (Method::PUT, "/api/v1/artifacts?filename=x.bin".to_owned()),
        (Method::POST, "/api/v1/artifacts".to_owned()),
        (Method::GET, format!("/api/v1/artifacts/{sha}")),
        (Method::POST, "/api/v1/uploads".to_owned()),
        (Method::GET, "/api/v1/uploads/abc".to_owned()),
        (Method::PUT, "/api/v1/uploads/abc?offset=0".to_owned()),
        (Method::DELETE, "/api/v1/uploads/abc".to_owned()),
        (Method::POST, "/api/v1/uploads/abc/finalize".to_owned()),
    ]
    .into()
}

#[tokio::test]
async fn admin_routes_refuse_missing_and_wrong_tokens() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let sha = srv.upload(b"image").await;
    srv.publish("door", "1.0.0", &sha, json!({})).await;

    for (method, path) in admin_routes(&sha) {
        let body = json!({"name": "sneaky", "version": "9.9.9", "artifact": sha, "yanked": true});
        let none = srv
            .anon(method.clone(), &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let e = expect_error(none, 401, "unauthorized").await;
        assert!(
            e["message"].as_str().unwrap().contains("Bearer"),
            "{method} {path}: the message tells how to authenticate: {e}"
        );
        for bad in [
            "Bearer wrong-token",
            "Bearer ",
            "Basic dGVzdC10b2tlbi0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OQ==",
            TOKEN,
        ] {
            let wrong = srv
                .anon(method.clone(), &path)
                .header("authorization", bad)
                .json(&body)
                .send()
                .await
                .unwrap();
            expect_error(wrong, 401, "unauthorized").await;
        }
    }

    // Nothing the refused requests asked for happened.
    let products = srv.get_json("/api/v1/products").await;
    assert_eq!(products["items"].as_array().unwrap().len(), 1);
    let release = srv.get_json("/api/v1/products/door/releases/1.0.0").await;
    assert_eq!(release["yanked"], false);
    let releases = srv.get_json("/api/v1/products/door/releases").await;
    assert_eq!(releases["items"].as_array().unwrap().len(), 1);

    // The lowercase scheme is accepted too; device endpoints and downloads need no token.
    let ok = srv
        .anon(Method::GET, "/api/v1/products")
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let check = srv
        .anon(Method::GET, "/api/v1/products/door/check")
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), StatusCode::OK);
    let dl = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    assert_eq!(&dl.bytes().await.unwrap()[..], b"image");
}

#[tokio::test]
async fn products_create_get_list_and_conflicts() {
    let srv = TestServer::start().await;
    let created = srv.create_product("door-sensor", "lexical").await;
    assert_eq!(created["name"], "door-sensor");
    assert_eq!(created["scheme"], "lexical");
    assert!(unix_time(&created["createdAt"]) > 1_700_000_000);

    // The scheme defaults to semver.
    let resp = srv
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"name": "valve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, StatusCode::CREATED).await["scheme"],
        "semver"
    );

    assert_eq!(srv.get_json("/api/v1/products/door-sensor").await, created);
    let list = srv.get_json("/api/v1/products").await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["door-sensor", "valve"]);
    assert_eq!(list["nextCursor"], serde_json::Value::Null);

    // Same name again, even with another scheme: 409, and the original is untouched.
    let again = srv
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"name": "door-sensor", "scheme": "opaque"}))
        .send()
        .await
        .unwrap();
    expect_error(again, 409, "product_exists").await;
    assert_eq!(
        srv.get_json("/api/v1/products/door-sensor").await["scheme"],
        "lexical"
    );

    let missing = srv
        .admin(Method::GET, "/api/v1/products/nope")
        .send()
        .await
        .unwrap();
    expect_error(missing, 404, "product_not_found").await;
}

/// A duplicate is a 409 in otter's own words: nothing of the database's message (table,
/// constraint or column names, engine wording) reaches the client.
#[tokio::test]
async fn duplicates_answer_409_without_database_text() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let release = srv.release("door", "1.0.0", json!({})).await;
    let sha = release["artifact"]["sha256"].as_str().unwrap().to_owned();

    let product = srv
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"name": "door", "scheme": "semver"}))
        .send()
        .await
        .unwrap();
    let product = expect_error(product, 409, "product_exists").await;
    let version = srv.try_publish("door", "1.0.0", &sha, json!({})).await;
    let version = expect_error(version, 409, "version_exists").await;
    for body in [product, version] {
        let message = body["message"].as_str().unwrap().to_lowercase();
        for database_word in [
            "unique",
            "constraint",
            "duplicate key",
            "violat",
            "sql",
            "postgres",
            "database",
            "products.name",
            "releases.",
        ] {
            assert!(
                !message.contains(database_word),
                "{database_word:?} in {body}"
            );
        }
    }
}

#[tokio::test]
async fn product_bodies_are_validated() {
    let srv = TestServer::start().await;
    for name in ["has space", "", ".hidden", "slash/y", &"x".repeat(129)] {
        let resp = srv
            .admin(Method::POST, "/api/v1/products")
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        let code = if name.len() > 128 {
            "field_too_long"
        } else {
            "invalid_field"
        };
        expect_error(resp, 400, code).await;
    }
    // Malformed JSON, missing fields, unknown fields, unknown schemes: 400 invalid_json.
    for body in [
        "{\"name\":",
        "{}",
        "[1,2]",
        "{\"name\":\"p\",\"colour\":\"red\"}",
        "{\"name\":\"p\",\"scheme\":\"calendar\"}",
    ] {
        let resp = srv
            .admin(Method::POST, "/api/v1/products")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_json").await;
    }
    let no_type = srv
        .admin(Method::POST, "/api/v1/products")
        .body("{\"name\":\"p\"}")
        .send()
        .await
        .unwrap();
    expect_error(no_type, 415, "unsupported_media_type").await;

    // None of that created anything.
    let list = srv.get_json("/api/v1/products").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn releases_publish_get_patch() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let image = firmware(1, 1000);
    let artifact = srv.upload_named(&image, "door.bin").await;
    let sha = artifact["sha256"].as_str().unwrap();

    let release = srv
        .publish(
            "door",
            "1.2.0",
            &sha.to_uppercase(),
            json!({
                "channels": ["stable", "beta"],
                "releaseDate": "2026-05-22T11:30:00-04:00",
                "minSourceVersion": "1.0.0",
                "mandatory": true,
                "title": "é".repeat(60),
                "summary": "Fixes the door",
                "releaseNotesUrl": "https://example.com/notes/1.2.0",
                "metadata": {"build": 42}
            }),
        )
        .await;
    assert_eq!(release["product"], "door");
    assert_eq!(release["version"], "1.2.0");
    assert_eq!(
        release["artifact"], artifact,
        "the whole artifact, hash lowercased"
    );
    assert_eq!(release["channels"], json!(["beta", "stable"]));
    assert_eq!(release["releaseDate"], "2026-05-22T11:30:00-04:00");
    assert_eq!(release["minSourceVersion"], "1.0.0");
    assert_eq!(release["mandatory"], true);
    assert_eq!(release["deprecated"], false);
    assert_eq!(release["yanked"], false);
    assert_eq!(release["title"], "é".repeat(60), "60 characters fit");
    assert_eq!(release["summary"], "Fixes the door");
    assert_eq!(
        release["releaseNotesUrl"],
        "https://example.com/notes/1.2.0"
    );
    assert_eq!(release["metadata"], json!({"build": 42}));
    assert!(release["seq"].is_i64());
    assert!(unix_time(&release["createdAt"]) > 1_700_000_000);

    assert_eq!(
        srv.get_json("/api/v1/products/door/releases/1.2.0").await,
        release
    );

    // Defaults: stable channel, a release date of now, empty metadata, not mandatory.
    let plain = srv.publish("door", "1.3.0", sha, json!({})).await;
    assert_eq!(plain["channels"], json!(["stable"]));
    assert_eq!(plain["metadata"], json!({}));
    assert_eq!(plain["mandatory"], false);
    assert_eq!(plain["minSourceVersion"], serde_json::Value::Null);
    assert!(plain["releaseDate"].as_str().unwrap().starts_with("20"));

    let patched = srv
        .patch_release("door", "1.2.0", json!({"deprecated": true}))
        .await;
    assert_eq!(patched["deprecated"], true);
    assert_eq!(patched["yanked"], false);
    assert_eq!(patched["mandatory"], true, "untouched flags stay");
    let patched = srv
        .patch_release("door", "1.2.0", json!({"mandatory": false, "yanked": true}))
        .await;
    assert_eq!(patched["deprecated"], true);
    assert_eq!(patched["yanked"], true);
    assert_eq!(patched["mandatory"], false);
    assert_eq!(
        srv.get_json("/api/v1/products/door/releases/1.2.0").await,
        patched
    );

    let bad_patch = srv
        .admin(Method::PATCH, "/api/v1/products/door/releases/1.3.0")
        .json(&json!({"version": "2.0.0"}))
        .send()
        .await
        .unwrap();
    expect_error(bad_patch, 400, "invalid_json").await;
}

#[tokio::test]
async fn release_errors() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let sha = srv.upload(&firmware(2, 100)).await;
    srv.publish("door", "1.0.0", &sha, json!({})).await;

    let cases = [
        ("1.0", json!({}), 400, "invalid_version"),
        ("v1.0.0", json!({}), 400, "invalid_version"),
        ("1.0.0 beta", json!({}), 400, "invalid_version"),
        (
            "1.1.0",
            json!({"minSourceVersion": "one"}),
            400,
            "invalid_version",
        ),
        (
            "1.1.0",
            json!({"title": "t".repeat(61)}),
            400,
            "field_too_long",
        ),
        (
            "1.1.0",
            json!({"summary": "s".repeat(201)}),
            400,
            "field_too_long",
        ),
        (
            "1.1.0",
            json!({"releaseNotesUrl": "ftp://x/y"}),
            400,
            "invalid_field",
        ),
        (
            "1.1.0",
            json!({"releaseDate": "yesterday"}),
            400,
            "invalid_field",
        ),
        ("1.1.0", json!({"metadata": [1]}), 400, "invalid_field"),
        (
            "1.1.0",
            json!({"channels": ["has space"]}),
            400,
            "invalid_field",
        ),
        ("1.1.0", json!({"colour": "red"}), 400, "invalid_json"),
        ("1.1.0", json!({"mandatory": "yes"}), 400, "invalid_json"),
        ("1.0.0", json!({}), 409, "version_exists"),
    ];
    for (version, extra, status, code) in cases {
        let resp = srv.try_publish("door", version, &sha, extra.clone()).await;
        let body = expect_error(resp, status, code).await;
        if code == "field_too_long" {
            let field = extra.as_object().unwrap().keys().next().unwrap().clone();
            assert!(
                body["message"].as_str().unwrap().contains(&field),
                "the message names the field: {body}"
            );
        }
    }
    let bad_artifact = srv.try_publish("door", "1.1.0", "xyz", json!({})).await;
    expect_error(bad_artifact, 400, "invalid_field").await;
    let unknown = sha256_hex(b"never uploaded");
    let resp = srv.try_publish("door", "1.1.0", &unknown, json!({})).await;
    expect_error(resp, 404, "artifact_not_found").await;
    let resp = srv.try_publish("nope", "1.1.0", &sha, json!({})).await;
    expect_error(resp, 404, "product_not_found").await;

    // Versions are never reused, not even after a yank.
    srv.patch_release("door", "1.0.0", json!({"yanked": true}))
        .await;
    let resp = srv.try_publish("door", "1.0.0", &sha, json!({})).await;
    expect_error(resp, 409, "version_exists").await;

    // Only the one good release exists.
    let list = srv.get_json("/api/v1/products/door/releases").await;
    let versions: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0"]);

    let resp = srv
        .admin(Method::GET, "/api/v1/products/door/releases/9.9.9")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "release_not_found").await;
    let resp = srv
        .admin(Method::PATCH, "/api/v1/products/door/releases/9.9.9")
        .json(&json!({"yanked": true}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "release_not_found").await;
    let resp = srv
        .admin(Method::GET, "/api/v1/products/nope/releases")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "product_not_found").await;
    let resp = srv
        .admin(Method::GET, &format!("/api/v1/artifacts/{unknown}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "artifact_not_found").await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_json() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    for path in [
        "/",
        "/api/v1/nope",
        "/api/v2/products",
        "/dl",
        "/api/v1/products/door/x",
    ] {
        let resp = srv.admin(Method::GET, path).send().await.unwrap();
        expect_error(resp, 404, "not_found").await;
    }
    let wrong = [
        (Method::DELETE, "/api/v1/products"),
        (Method::PUT, "/api/v1/products/door"),
        (Method::POST, "/api/v1/products/door/check"),
        (Method::DELETE, "/api/v1/products/door/releases/1.0.0"),
        (Method::GET, "/api/v1/uploads"),
        (Method::POST, &format!("/dl/{}", "a".repeat(64))),
    ];
    for (method, path) in wrong {
        let resp = srv.admin(method, path).send().await.unwrap();
        expect_error(resp, 405, "method_not_allowed").await;
    }
    let health = srv.anon(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let status = srv.get_json("/api/v1/status").await;
    assert!(status["version"].is_string());
    assert!(status["seenQueueDepth"].is_u64());
}
