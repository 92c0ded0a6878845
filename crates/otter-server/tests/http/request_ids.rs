//! Request ids: echoed or made, sent back in `X-Request-Id`, and quoted in a 500's body.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, expect_error, header};

#[tokio::test]
async fn a_callers_request_id_is_echoed_and_one_is_made_otherwise() {
    let server = TestServer::start().await;
    let resp = server
        .anon(Method::GET, "/healthz")
        .header("x-request-id", "lb-7f3a-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(resp.headers(), "x-request-id").as_deref(),
        Some("lb-7f3a-0001")
    );

    let mut made = Vec::new();
    for _ in 0..2 {
        let resp = server.anon(Method::GET, "/healthz").send().await.unwrap();
        made.push(header(resp.headers(), "x-request-id").expect("a request id is made"));
    }
    assert_ne!(made[0], made[1], "every request gets its own id");

    // An id a log line could not carry safely (control characters, too long) is replaced.
    let long = "x".repeat(200);
    let resp = server
        .anon(Method::GET, "/healthz")
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = header(resp.headers(), "x-request-id").unwrap();
    assert!(!id.is_empty() && id != long, "{id}");
}

/// A server fault answers 500 `internal` with the request's id, so an operator can find the
/// cause in the log; the cause itself (database text) never reaches the client.
#[tokio::test]
async fn a_server_fault_names_the_request_id_and_nothing_else() {
    let server = TestServer::start().await;
    server.create_product("fw", "semver").await;
    // Break the database under the running server: the reports table disappears.
    let db = server.data_dir().join("otter.db");
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=60); c.execute('ALTER TABLE update_reports RENAME TO gone'); c.commit()")
        .arg(&db)
        .status()
        .expect("python3 runs");
    assert!(python.success());
    let resp = server
        .anon(Method::POST, "/api/v1/products/fw/reports")
        .header("x-request-id", "trace-500")
        .json(&json!({"device": "d1", "version": "1.0.0", "state": "installed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(resp.headers(), "x-request-id").as_deref(),
        Some("trace-500")
    );
    let body = expect_error(resp, 500, "internal").await;
    assert_eq!(body["requestId"], "trace-500", "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("update_reports") && !text.to_ascii_lowercase().contains("sql"),
        "{text}"
    );
}
