//! Prometheus metrics: what a scrape shows after real traffic, and the separate listener.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::{TOKEN, TestServer, test_config};

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

/// The value of the first sample line starting with `prefix` (metrics are per process and
/// tests run in parallel, so callers compare before and after rather than expect exact counts).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_scrape_shows_requests_checks_downloads_and_store_latency() {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let release = srv.release("door", "1.0.0", json!({})).await;
    let sha = release["artifact"]["sha256"].as_str().unwrap().to_owned();
    let metrics_url = srv.url("/metrics");
    let before = scrape(&srv.client, &metrics_url).await;

    srv.check("door", "current=0.9.0&device=d1").await;
    srv.check("door", "current=1.0.0").await;
    let bytes = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let after = scrape(&srv.client, &metrics_url).await;

    let offered = r#"otter_checks_total{protocol="native",result="offered"}"#;
    let up_to_date = r#"otter_checks_total{protocol="native",result="up_to_date"}"#;
    assert!(
        sample(&after, offered) >= sample(&before, offered) + 1.0,
        "{after}"
    );
    assert!(sample(&after, up_to_date) >= sample(&before, up_to_date) + 1.0);
    let route = r#"otter_http_requests_total{route="/api/v1/products/{product}/check",method="GET",status="200"}"#;
    assert!(
        sample(&after, route) >= sample(&before, route) + 2.0,
        "{after}"
    );
    let served = "otter_download_bytes_total";
    assert!(sample(&after, served) >= sample(&before, served) + bytes.len() as f64);
    for series in [
        r#"otter_http_request_duration_seconds_bucket{route="/dl/{sha256}",method="GET""#,
        r#"otter_store_duration_seconds_bucket{op="create_release""#,
        "otter_downloads_active",
        "otter_upload_sessions",
        "otter_sighting_queue_depth",
        "otter_sightings_dropped_total",
    ] {
        assert!(after.contains(series), "missing {series} in:\n{after}");
    }
}

#[tokio::test]
async fn metrics_can_move_to_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let settings = otter_server::Settings {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(TOKEN.into()),
        ..test_config()
    };
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let private = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main_addr, private_addr) = (main.local_addr().unwrap(), private.local_addr().unwrap());
    let server = otter_server::Server::open(settings)
        .await
        .unwrap()
        .with_metrics_listener(private);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(main, async {
        stopped.await.ok();
    }));
    let client = reqwest::Client::new();
    let text = scrape(&client, &format!("http://{private_addr}/metrics")).await;
    assert!(text.contains("otter_upload_sessions"));
    let on_main = client
        .get(format!("http://{main_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_main.status(), StatusCode::NOT_FOUND);
    // Nothing else is served on the metrics listener.
    let other = client
        .get(format!("http://{private_addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
