//! The ViperHTTP OTA push receiver (`otter_agent::receiver`), served on a free loopback port and
//! driven the way ViperHTTP's own client and its docs' client drive a device: both variants end
//! to end, the token on every route, one session at a time, the idle timeout, and a failed
//! finalize that ends the session.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use otter_agent::receiver::{InstallError, Installer, Received, Receiver, ReceiverConfig, router};
use otter_testkit::http::{json_body, parse_raw_response};
use otter_testkit::images::{firmware, sha256_hex};
use otter_testkit::wait::eventually;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const TOKEN: &str = "ota-secret";
const CAPACITY: u64 = 1 << 20;

/// Hands every installed image to the test and counts mark-valid calls.
struct TestInstaller {
    installed: mpsc::UnboundedSender<Received>,
    marked_valid: AtomicUsize,
    fail: AtomicBool,
}

impl Installer for TestInstaller {
    fn install(&self, image: Received) -> BoxFuture<'_, Result<(), InstallError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err("the slot is read-only".into());
            }
            self.installed.send(image).map_err(|e| e.to_string().into())
        })
    }

    fn mark_valid(&self) -> BoxFuture<'_, Result<(), InstallError>> {
        self.marked_valid.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// A receiver on 127.0.0.1 and what it hands to its installer.
struct Device {
    base: String,
    client: Client,
    staging: PathBuf,
    installed: mpsc::UnboundedReceiver<Received>,
    installer: Arc<TestInstaller>,
    _dir: tempfile::TempDir,
}

impl Device {
    async fn start() -> Device {
        Device::with(|_| {}).await
    }

    async fn with(configure: impl FnOnce(&mut ReceiverConfig)) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("slot-b.img");
        let mut config = ReceiverConfig::new(&staging, CAPACITY);
        config.token = Some(TOKEN.to_owned());
        configure(&mut config);
        let (tx, installed) = mpsc::unbounded_channel();
        let installer = Arc::new(TestInstaller {
            installed: tx,
            marked_valid: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        });
        let app = router(Arc::new(Receiver::new(config, installer.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Device {
            base,
            client: Client::builder().no_proxy().build().unwrap(),
            staging,
            installed,
            installer,
            _dir: dir,
        }
    }

    /// A request without credentials.
    fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A request as ViperHTTP's code expects it: the token in `X-OTA-Token`.
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).header("x-ota-token", TOKEN)
    }

    /// A request as ViperHTTP's docs describe it: a bearer token.
    fn doc(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(TOKEN)
    }

    async fn status(&self) -> Value {
        ok(self.req(Method::GET, "/ota/status").send().await.unwrap()).await
    }

    async fn begin(&self, body: Value) -> Value {
        ok(self
            .req(Method::POST, "/ota/begin")
            .json(&body)
            .send()
            .await
            .unwrap())
        .await
    }

    async fn chunk(&self, offset: usize, bytes: &[u8]) -> Response {
        self.req(Method::POST, &format!("/ota/chunk?offset={offset}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    async fn finalize(&self, body: Value) -> Response {
        self.req(Method::POST, "/ota/finalize")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The next image handed to the installer.
    async fn next_installed(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.installed.recv())
            .await
            .expect("an image is installed within 5 s")
            .expect("the receiver is alive")
    }
}

async fn ok(resp: Response) -> Value {
    json_body(resp, StatusCode::OK).await
}

/// Asserts a `{"detail": …}` error.
async fn refused(resp: Response, status: u16, detail: &str) {
    let body = json_body(resp, StatusCode::from_u16(status).unwrap()).await;
    assert_eq!(body, json!({ "detail": detail }));
}

#[tokio::test]
async fn the_code_variant_end_to_end() {
    let mut device = Device::start().await;
    let image = firmware(7, 10_000);
    let sha256 = sha256_hex(&image);

    let status = device.status().await;
    assert_eq!(status["supported"], true);
    assert_eq!(status["active"], false);
    assert_eq!(status["session"], Value::Null);
    assert_eq!(status["next_update_partition"]["label"], "slot-b.img");
    assert_eq!(status["next_update_partition"]["size"], CAPACITY);

    let begun = device
        .begin(json!({ "expected_size": image.len(), "expected_sha256": sha256.to_uppercase() }))
        .await;
    assert_eq!(begun["active"], true);
    assert_eq!(begun["session"]["id"], 1);
    assert_eq!(begun["session"]["written_bytes"], 0);
    assert_eq!(begun["session"]["expected_sha256"], sha256);
    assert_eq!(begun["session"]["capacity_bytes"], CAPACITY);

    let after_first = ok(device.chunk(0, &image[..2_500]).await).await;
    assert_eq!(after_first["session"]["written_bytes"], 2_500);
    assert_eq!(after_first["session"]["remaining_bytes"], 7_500);
    assert_eq!(after_first["session"]["progress_pct"], 25.0);
    for offset in (2_500..image.len()).step_by(2_500) {
        ok(device.chunk(offset, &image[offset..offset + 2_500]).await).await;
    }
    let session = &device.status().await["session"];
    assert_eq!(session["written_bytes"], 10_000);
    assert_eq!(session["progress_pct"], 100.0);

    let result = ok(device.finalize(json!({ "reboot": "yes" })).await).await;
    assert_eq!(result["ok"], true);
    assert_eq!(result["session_id"], 1);
    assert_eq!(result["written_bytes"], 10_000);
    assert_eq!(result["sha256"], sha256);
    assert_eq!(result["set_boot"], true);
    assert_eq!(result["reboot"], true);

    assert_eq!(std::fs::read(&device.staging).unwrap(), image);
    let installed = device.next_installed().await;
    assert_eq!(
        installed,
        Received {
            path: device.staging.clone(),
            size: 10_000,
            sha256: sha256.clone(),
            set_boot: true,
            reboot: true,
            manifest: None,
        }
    );
    let status = device.status().await;
    assert_eq!(status["active"], false);
    assert_eq!(status["last_result"], result);
    assert_eq!(status["last_error"], Value::Null);
}

#[tokio::test]
async fn the_documented_variant_end_to_end() {
    let mut device = Device::start().await;
    let image = firmware(8, 9_000);
    let sha256 = sha256_hex(&image);

    // The docs' error table: writing without a session is a 400.
    let resp = device
        .doc(Method::POST, "/ota/write")
        .body(image[..10].to_vec())
        .send()
        .await
        .unwrap();
    refused(resp, 400, "ota session is not active").await;

    let begun = device
        .doc(Method::POST, "/ota/begin")
        .json(&json!({ "size": image.len() }))
        .send()
        .await
        .unwrap();
    let begun = ok(begun).await;
    assert_eq!(begun["session_id"], 1);
    assert_eq!(begun["session"]["expected_size"], 9_000);

    for chunk in image.chunks(4096) {
        let resp = device
            .doc(Method::POST, "/ota/write")
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        ok(resp).await;
    }
    let resp = device
        .doc(Method::POST, "/ota/finalize")
        .json(&json!({ "sha256": sha256 }))
        .send()
        .await
        .unwrap();
    let result = ok(resp).await;
    assert_eq!(result["ok"], true);
    assert_eq!(result["sha256"], sha256);

    assert_eq!(std::fs::read(&device.staging).unwrap(), image);
    let installed = device.next_installed().await;
    assert_eq!(installed.sha256, sha256);
    assert_eq!(installed.size, 9_000);
    assert!(installed.set_boot && !installed.reboot);
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let device = Device::start().await;
    let routes = [
        (Method::GET, "/ota/status"),
        (Method::POST, "/ota/begin"),
        (Method::POST, "/ota/chunk?offset=0"),
        (Method::POST, "/ota/write"),
        (Method::POST, "/ota/finalize"),
        (Method::POST, "/ota/abort"),
        (Method::POST, "/ota/upload"),
        (Method::POST, "/ota/mark-valid"),
    ];
    for (method, path) in routes {
        let attempts = [
            device.anon(method.clone(), path),
            device
                .anon(method.clone(), path)
                .header("x-ota-token", "wrong"),
            device.anon(method.clone(), path).bearer_auth("wrong"),
            device.anon(method.clone(), &format!("{path}{}token=wrong", sep(path))),
        ];
        for attempt in attempts {
            let resp = attempt.body("x").send().await.unwrap();
            refused(resp, 401, "invalid ota token").await;
        }
    }
    assert_eq!(device.installer.marked_valid.load(Ordering::SeqCst), 0);
    // Each way of presenting the right token works.
    ok(device.req(Method::GET, "/ota/status").send().await.unwrap()).await;
    ok(device.doc(Method::GET, "/ota/status").send().await.unwrap()).await;
    let path = format!("/ota/status?token={TOKEN}");
    ok(device.anon(Method::GET, &path).send().await.unwrap()).await;
}

fn sep(path: &str) -> char {
    if path.contains('?') { '&' } else { '?' }
}

#[tokio::test]
async fn without_a_configured_token_anyone_may_push() {
    let device = Device::with(|config| config.token = None).await;
    ok(device
        .anon(Method::GET, "/ota/status")
        .send()
        .await
        .unwrap())
    .await;
}

#[tokio::test]
async fn one_session_at_a_time_unless_forced() {
    let device = Device::start().await;
    device.begin(json!({ "expected_size": 100 })).await;
    ok(device.chunk(0, &[1; 40]).await).await;
    let resp = device
        .req(Method::POST, "/ota/begin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    refused(resp, 409, "ota session already active").await;

    // Forced, from the query string: a fresh session with a new id.
    let resp = device
        .req(Method::POST, "/ota/begin?force=on&expected_size=5")
        .send()
        .await
        .unwrap();
    let begun = ok(resp).await;
    assert_eq!(begun["session"]["id"], 2);
    assert_eq!(begun["session"]["written_bytes"], 0);
    assert_eq!(begun["session"]["expected_size"], 5);
    ok(device.chunk(0, b"hello").await).await;
    ok(device.finalize(json!({})).await).await;
    assert_eq!(std::fs::read(&device.staging).unwrap(), b"hello");
}

#[tokio::test]
async fn chunks_are_sequential_and_need_a_session() {
    let device = Device::start().await;
    refused(
        device.chunk(0, b"abc").await,
        409,
        "ota session is not active",
    )
    .await;
    device.begin(json!({ "expected_size": 10 })).await;
    ok(device.chunk(0, b"abcd").await).await;
    refused(
        device.chunk(2, b"cd").await,
        409,
        "offset mismatch; only sequential writes are supported",
    )
    .await;
    refused(device.chunk(4, b"").await, 400, "empty chunk").await;
    refused(
        device.chunk(4, b"efghijk").await,
        400,
        "chunk exceeds expected_size",
    )
    .await;
    // Without an offset a chunk appends.
    let resp = device
        .req(Method::POST, "/ota/chunk")
        .body(b"efghij".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(ok(resp).await["session"]["written_bytes"], 10);
    ok(device.finalize(json!({})).await).await;
    assert_eq!(std::fs::read(&device.staging).unwrap(), b"abcdefghij");
}

#[tokio::test]
async fn a_sha256_mismatch_ends_the_session() {
    let device = Device::start().await;
    let image = firmware(9, 3_000);
    device
        .begin(json!({ "expected_size": 3_000, "expected_sha256": sha256_hex(b"other") }))
        .await;
    ok(device.chunk(0, &image).await).await;
    refused(device.finalize(json!({})).await, 409, "sha256 mismatch").await;
    let status = device.status().await;
    assert_eq!(status["active"], false);
    assert_eq!(status["last_error"], "sha256 mismatch");
    assert_eq!(status["last_result"], Value::Null);

    // The documented variant's hash at finalize is checked as well.
    device.begin(json!({ "size": 3_000 })).await;
    ok(device.chunk(0, &image).await).await;
    let wrong = json!({ "sha256": sha256_hex(b"other") });
    refused(device.finalize(wrong).await, 409, "sha256 mismatch").await;
    refused(
        device.finalize(json!({})).await,
        409,
        "ota session is not active",
    )
    .await;
}

#[tokio::test]
async fn strict_size_refuses_a_short_image() {
    let device = Device::start().await;
    device.begin(json!({ "expected_size": 100 })).await;
    ok(device.chunk(0, &[7; 50]).await).await;
    refused(
        device.finalize(json!({})).await,
        409,
        "written size does not match expected_size",
    )
    .await;
    assert_eq!(
        device.status().await["last_error"],
        "written size does not match expected_size"
    );

    device.begin(json!({ "expected_size": 100 })).await;
    ok(device.chunk(0, &[7; 50]).await).await;
    let result = ok(device.finalize(json!({ "strict_size": "0" })).await).await;
    assert_eq!(result["written_bytes"], 50);

    device.begin(json!({})).await;
    refused(
        device.finalize(json!({})).await,
        409,
        "no firmware bytes written",
    )
    .await;
}

#[tokio::test]
async fn an_idle_session_is_aborted() {
    let device = Device::with(|config| config.idle_timeout = Duration::from_millis(300)).await;
    device.begin(json!({ "expected_size": 100 })).await;
    // Data keeps it alive (over twice the timeout in all)…
    for offset in (0..80).step_by(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ok(device.chunk(offset, &[1; 10]).await).await;
    }
    // …silence ends it.
    eventually("the idle session is aborted", async || {
        let status = device.status().await;
        (status["active"] == false)
            .then_some(())
            .ok_or(status.to_string())
    })
    .await;
    assert_eq!(
        device.status().await["last_error"],
        "ota session timed out: no data for 300 ms"
    );
    refused(
        device.chunk(80, &[1; 10]).await,
        409,
        "ota session is not active",
    )
    .await;
    device.begin(json!({})).await;
}

#[tokio::test]
async fn upload_takes_the_whole_image_at_once() {
    let mut device = Device::start().await;
    let image = firmware(10, 200_000);
    let sha256 = sha256_hex(&image);
    // It replaces whatever session was going on.
    device.begin(json!({})).await;
    let resp = device
        .req(
            Method::POST,
            &format!("/ota/upload?expected_sha256={sha256}&set_boot=no"),
        )
        .body(image.clone())
        .send()
        .await
        .unwrap();
    let result = ok(resp).await;
    assert_eq!(result["session_id"], 2);
    assert_eq!(result["expected_size"], 200_000);
    assert_eq!(result["set_boot"], false);
    assert_eq!(std::fs::read(&device.staging).unwrap(), image);
    let installed = device.next_installed().await;
    assert_eq!(installed.sha256, sha256);
    assert!(!installed.set_boot);

    let resp = device
        .req(
            Method::POST,
            &format!("/ota/upload?expected_sha256={}", sha256_hex(b"x")),
        )
        .body(image.clone())
        .send()
        .await
        .unwrap();
    refused(resp, 409, "sha256 mismatch").await;
    assert_eq!(device.status().await["active"], false);

    let resp = device
        .req(Method::POST, "/ota/upload")
        .send()
        .await
        .unwrap();
    refused(resp, 400, "empty upload body").await;
}

#[tokio::test]
async fn chunks_and_parameters_in_json_or_form_bodies() {
    let device = Device::start().await;
    let resp = device
        .req(Method::POST, "/ota/begin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("expected_size=9&force=1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok(resp).await["session"]["expected_size"], 9);
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"abc");
    let resp = device
        .req(Method::POST, "/ota/chunk")
        .json(&json!({ "offset": 0, "data_base64": b64 }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok(resp).await["session"]["written_bytes"], 3);
    let resp = device
        .req(Method::POST, "/ota/chunk?offset=3")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("data_hex={}", hex::encode(b"defghi")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok(resp).await["session"]["written_bytes"], 9);
    let resp = device
        .req(Method::POST, "/ota/chunk")
        .json(&json!({ "data_hex": "zz" }))
        .send()
        .await
        .unwrap();
    let body = json_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("invalid data_hex")
    );
    ok(device.finalize(json!({ "set_boot": false })).await).await;
    assert_eq!(std::fs::read(&device.staging).unwrap(), b"abcdefghi");

    for (body, detail) in [
        (json!({ "expected_size": -1 }), "expected_size must be >= 0"),
        (
            json!({ "expected_size": "big" }),
            "expected_size must be int",
        ),
        (
            json!({ "expected_size": CAPACITY + 1 }),
            "expected_size exceeds update partition capacity",
        ),
        (
            json!({ "expected_sha256": "abc" }),
            "expected_sha256 must be 64 hex chars",
        ),
    ] {
        let resp = device
            .req(Method::POST, "/ota/begin")
            .json(&body)
            .send()
            .await
            .unwrap();
        refused(resp, 400, detail).await;
    }
}

#[tokio::test]
async fn abort_and_mark_valid() {
    let device = Device::start().await;
    let resp = device.req(Method::POST, "/ota/abort").send().await.unwrap();
    assert_eq!(
        ok(resp).await,
        json!({ "ok": true, "aborted": false, "active": false })
    );
    device.begin(json!({})).await;
    let resp = device.req(Method::POST, "/ota/abort").send().await.unwrap();
    assert_eq!(
        ok(resp).await,
        json!({ "ok": true, "aborted": true, "session_id": 1, "active": false })
    );
    assert_eq!(device.status().await["last_error"], "aborted");

    let resp = device
        .req(Method::POST, "/ota/mark-valid")
        .send()
        .await
        .unwrap();
    assert_eq!(ok(resp).await, json!({ "ok": true }));
    assert_eq!(device.installer.marked_valid.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_installer_failure_is_reported() {
    let device = Device::start().await;
    device.installer.fail.store(true, Ordering::SeqCst);
    device.begin(json!({})).await;
    ok(device.chunk(0, b"image").await).await;
    refused(
        device.finalize(json!({})).await,
        500,
        "installing the image failed (see the device log)",
    )
    .await;
    let status = device.status().await;
    assert_eq!(status["active"], false);
    assert_eq!(
        status["last_error"],
        "installing the image failed (see the device log)"
    );
    device.begin(json!({})).await;
}

#[tokio::test]
async fn a_stalled_chunk_keeps_what_arrived_and_a_retry_supersedes_it() {
    let device = Device::start().await;
    let image = firmware(11, 1_000);
    device.begin(json!({ "expected_size": 1_000 })).await;

    // A chunk whose sender stalls after 300 of its 800 bytes.
    let mut stalled = TcpStream::connect(device.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /ota/chunk?offset=0 HTTP/1.1\r\nhost: device\r\nx-ota-token: {TOKEN}\r\n\
         content-length: 800\r\nconnection: close\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&image[..300]).await.unwrap();
    eventually("the first 300 bytes are written", async || {
        let written = device.status().await["session"]["written_bytes"].clone();
        (written == 300).then_some(()).ok_or(written.to_string())
    })
    .await;

    // The pusher gives up on it and continues from what the device has.
    ok(device.chunk(300, &image[300..]).await).await;
    // The stalled request, resumed, may no longer write.
    stalled.write_all(&image[300..800]).await.unwrap();
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).await.unwrap();
    let answer = parse_raw_response(&answer);
    assert_eq!(answer.status, 409);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer.body).unwrap(),
        json!({ "detail": "superseded by a newer chunk request" })
    );

    ok(device.finalize(json!({})).await).await;
    assert_eq!(std::fs::read(&device.staging).unwrap(), image);
}
