//! The OpenAPI document (`/api/openapi.json`) and its docs page (`/api/docs`): every route of the
//! admin table and the device API is in the document with its method (admin ones with their
//! role), the document is valid OpenAPI 3.1 (`openapi-spec-validator`, PyPI), real answers match
//! their schemas (`jsonschema`, from the validator's venv), and the docs page loads only
//! otter's own files.
//!
//! `openapi-spec-validator` is found on `PATH` or through `OTTER_OPENAPI_SPEC_VALIDATOR`; missing
//! locally it is a SKIP, under `CI=true` a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use otter_server::router::admin_routes;
use otter_testkit::images::firmware;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, json_body};

/// The public routes the document covers besides the admin table: the native device API, roots
/// of trust and downloads (a public route of the API added later, such as a login, goes here too).
const PUBLIC_ROUTES: [(&str, &str); 6] = [
    ("post", "/api/v1/session"),
    ("get", "/api/v1/products/{product}/check"),
    ("post", "/api/v1/products/{product}/reports"),
    ("get", "/api/v1/products/{product}/root/{file}"),
    ("get", "/dl/{sha256}"),
    ("get", "/dl/{product}/{version}/{filename}"),
];

/// The document as served, without credentials.
async fn document(srv: &TestServer) -> Value {
    let resp = srv
        .anon(Method::GET, "/api/openapi.json")
        .send()
        .await
        .expect("GET /api/openapi.json");
    json_body(resp, StatusCode::OK).await
}

/// The validator, or `None` after a SKIP line (a failure under `CI=true`).
fn validator() -> Option<PathBuf> {
    otter_testkit::tool(
        "openapi-spec-validator",
        Some("OTTER_OPENAPI_SPEC_VALIDATOR"),
    )
}

#[tokio::test]
async fn every_admin_and_device_route_is_in_the_document_with_its_method_and_role() {
    let srv = TestServer::start().await;
    let doc = document(&srv).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI {version}, not 3.1");

    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut missing = Vec::new();
    for route in admin_routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let operation = &doc["paths"][route.path][&method];
        if operation.is_null() {
            missing.push(format!("{} {}", route.method, route.path));
            continue;
        }
        assert_eq!(
            operation["x-otter-role"],
            route.role.as_str(),
            "{method} {}: its least role",
            route.path
        );
        assert_eq!(
            operation["security"],
            json!([{ "bearer": [] }, { "cookie": [] }]),
            "{method} {}: a token or a session",
            route.path
        );
        for status in ["400", "401", "403", "404", "429"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {}: no {status} response",
                route.path
            );
        }
    }
    for (method, path) in PUBLIC_ROUTES {
        let operation = &doc["paths"][path][method];
        if operation.is_null() {
            missing.push(format!("{method} {path}"));
            continue;
        }
        assert!(
            operation["security"].is_null(),
            "{method} {path} is public: {}",
            operation["security"]
        );
    }
    assert!(
        missing.is_empty(),
        "routes missing from the document (add their handlers to otter_server::openapi::ApiDoc): {missing:?}"
    );
    // And nothing documented that is not served.
    let routed = |method: &str, path: &str| {
        admin_routes()
            .iter()
            .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method))
            || PUBLIC_ROUTES.contains(&(method, path))
    };
    let stale: Vec<_> = documented
        .iter()
        .filter(|(method, path)| !routed(method, path))
        .collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");

    // The shared error body and the two ways to authenticate.
    let components = &doc["components"];
    assert_eq!(
        components["schemas"]["Error"]["required"],
        json!(["error", "message"])
    );
    assert_eq!(
        components["securitySchemes"]["bearer"]["scheme"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some("bearer".to_owned())
    );
    assert_eq!(
        components["securitySchemes"]["cookie"],
        json!({
            "type": "apiKey",
            "in": "cookie",
            "name": "otter_session",
            "description": "The session of a user logged in to the web UI"
        })
    );
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let Some(validator) = validator() else {
        return;
    };
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document(&srv).await.to_string()).expect("write the document");
    let out = Command::new(&validator)
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `answers` (schema name in `components.schemas`, JSON) against the document with
/// `jsonschema` (Draft 2020-12, which OpenAPI 3.1's schemas are), run by the validator's Python.
/// Each schema is made strict first: a property the schema does not declare is an error too, so
/// a field the server sends but the document lacks is caught like a wrong type.
fn check_answers(validator: &Path, doc: &Value, answers: &[(&str, Value)]) {
    let python = validator
        .canonicalize()
        .ok()
        .and_then(|v| Some(v.parent()?.join("python3")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"));
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("answers.json");
    let answers: Vec<Value> = answers
        .iter()
        .map(|(schema, answer)| json!([schema, answer]))
        .collect();
    let input_json = json!({ "components": doc["components"], "answers": answers });
    std::fs::write(&input, input_json.to_string()).expect("write answers");
    let out = Command::new(&python)
        .arg("-c")
        .arg(CHECK_ANSWERS)
        .arg(&input)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "answers do not match their schemas:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CHECK_ANSWERS: &str = r##"
import copy, json, sys
from jsonschema import Draft202012Validator, FormatChecker

data = json.load(open(sys.argv[1]))
components = data["components"]

def strict(schema):
    # An object schema with properties, not combined with others: no undeclared properties.
    if isinstance(schema, dict):
        for value in schema.values():
            strict(value)
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for value in schema:
            strict(value)

original = copy.deepcopy(components)

def flatten_aware(schema):
    # What `#[serde(flatten)]` makes: allOf parts that each see the whole object. They may not
    # forbid each other's properties; the whole may not have properties none of them declares.
    if isinstance(schema, dict):
        if "allOf" in schema:
            parts = []
            for part in schema["allOf"]:
                if isinstance(part, dict) and "$ref" in part:
                    part = copy.deepcopy(original["schemas"][part["$ref"].split("/")[-1]])
                    strict(part)
                if isinstance(part, dict):
                    part.pop("additionalProperties", None)
                parts.append(part)
            schema["allOf"] = parts
            schema["unevaluatedProperties"] = False
        for value in schema.values():
            flatten_aware(value)
    elif isinstance(schema, list):
        for value in schema:
            flatten_aware(value)

strict(components)
flatten_aware(components)
failures = []
for name, answer in data["answers"]:
    schema = {"$ref": "#/components/schemas/" + name, "components": components}
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    for error in validator.iter_errors(answer):
        failures.append(f"{name}: {error.json_path}: {error.message}")
if failures:
    print("\n".join(failures))
    sys.exit(1)
"##;

#[tokio::test]
async fn real_answers_match_their_schemas() {
    let Some(validator) = validator() else {
        return;
    };
    let srv = TestServer::start().await;
    let doc = document(&srv).await;
    let product = srv.create_product("door-sensor", "semver").await;
    let sha = srv.upload(&firmware(1, 4096)).await;
    let release = srv
        .publish(
            "door-sensor",
            "1.1.0",
            &sha,
            json!({"title": "Fixes", "channels": ["stable", "beta"]}),
        )
        .await;
    srv.check("door-sensor", "device=d1&current=1.0.0").await;
    let report = json_body(
        srv.anon(Method::POST, "/api/v1/products/door-sensor/reports")
            .json(&json!({"device": "d1", "version": "1.1.0", "state": "installed"}))
            .send()
            .await
            .expect("report"),
        StatusCode::CREATED,
    )
    .await;
    let devices = otter_testkit::eventually("the device is listed", async || {
        let page = srv.get_json("/api/v1/products/door-sensor/devices").await;
        match page["items"].as_array().map(Vec::len) {
            Some(1) => Ok(page),
            _ => Err(format!("devices: {page}")),
        }
    })
    .await;
    let rollout = json_body(
        srv.admin(Method::POST, "/api/v1/products/door-sensor/rollouts")
            .json(&json!({
                "version": "1.1.0",
                "stages": [{"percent": 10.0}, {"tags": ["canary"]}, {"percent": 100.0}],
                "policy": {"pauseOn": {"failures": 2}},
            }))
            .send()
            .await
            .expect("create rollout"),
        StatusCode::CREATED,
    )
    .await;
    let error = json_body(
        srv.admin(Method::GET, "/api/v1/products/nowhere")
            .send()
            .await
            .expect("get"),
        StatusCode::NOT_FOUND,
    )
    .await;
    let tokens = srv.get_json("/api/v1/tokens").await;
    let audit = srv.get_json("/api/v1/audit").await;
    let device = srv
        .get_json("/api/v1/products/door-sensor/devices/d1")
        .await;
    check_answers(
        &validator,
        &doc,
        &[
            ("Product", product),
            ("Release", release),
            ("UpdateReport", report),
            ("Page_Device", devices),
            ("DeviceDetail", device),
            ("RolloutView", rollout),
            ("Page_ApiToken", tokens),
            ("Page_AuditEntry", audit),
            ("Error", error),
        ],
    );
}

#[tokio::test]
async fn the_docs_page_loads_only_otters_own_files() {
    let srv = TestServer::start().await;
    let resp = srv
        .anon(Method::GET, "/api/docs/")
        .send()
        .await
        .expect("GET /api/docs/");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[CONTENT_TYPE]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html")),
        "{:?}",
        resp.headers()[CONTENT_TYPE]
    );
    let html = resp.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the docs page names another host: {html}"
    );
    let refs = attribute_values(&html, &["src", "href"]);
    assert!(
        refs.iter().any(|r| r.ends_with(".js")) && refs.iter().any(|r| r.ends_with(".css")),
        "Swagger UI's scripts and styles: {refs:?}"
    );
    for url in &refs {
        assert!(
            !url.contains("//"),
            "the docs page loads {url} from another host"
        );
        // Relative to /api/docs/, and served there.
        let resp = srv
            .anon(
                Method::GET,
                &format!("/api/docs/{}", url.trim_start_matches("./")),
            )
            .send()
            .await
            .expect("GET asset");
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
    }
    let initializer = srv
        .anon(Method::GET, "/api/docs/swagger-initializer.js")
        .send()
        .await
        .expect("GET initializer")
        .text()
        .await
        .expect("initializer");
    assert!(
        initializer.contains("\"/api/openapi.json\""),
        "points at the document: {initializer}"
    );
    assert!(
        !initializer.contains("http://") && !initializer.contains("https://"),
        "the initializer names another host: {initializer}"
    );
    // `/api/docs` itself leads to the page.
    let resp = srv
        .anon(Method::GET, "/api/docs")
        .send()
        .await
        .expect("GET /api/docs");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/api/docs/");
}

/// The values of the HTML attributes `names` (`src="…"`, `href='…'`).
fn attribute_values(html: &str, names: &[&str]) -> Vec<String> {
    let mut values = Vec::new();
    for name in names {
        for quote in ['"', '\''] {
            let start = format!("{name}={quote}");
            for (at, _) in html.match_indices(&start) {
                let rest = &html[at + start.len()..];
                if let Some(end) = rest.find(quote) {
                    values.push(rest[..end].to_owned());
                }
            }
        }
    }
    values
}
