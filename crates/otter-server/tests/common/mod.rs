//! A real otter server on 127.0.0.1 (an OS-assigned port) over a temporary data directory, and
//! the HTTP helpers the integration tests share.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otter_server::{Bootstrap, Secret, Server, Settings};
use otter_store::objects::S3Settings;
pub use otter_testkit::eventually;
pub use otter_testkit::http::{
    RawResponse, complete_raw_responses, json_body, parse_raw_response, parse_raw_responses,
};
pub use otter_testkit::images::{firmware, sha256_hex};
use otter_testkit::s3::TempS3;
use otter_testkit::wait_until_async;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin token every test server is started with.
pub const TOKEN: &str = "test-token-0123456789abcdef0123456789";

/// Object-store options as [`Settings`] hold them: values secret, as they are credentials.
pub fn secret_options(options: &[(String, String)]) -> Vec<(String, Secret)> {
    options
        .iter()
        .map(|(key, value)| (key.clone(), Secret::from(value.as_str())))
        .collect()
}

/// Settings for tests: the defaults, with a short shutdown grace so restarts stay quick.
pub fn test_config() -> Settings {
    Settings {
        shutdown_grace: Duration::from_secs(5),
        ..Settings::default()
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

pub struct TestServer {
    /// `http://127.0.0.1:<port>`; changes on [`TestServer::restart`].
    pub base: String,
    pub addr: SocketAddr,
    pub token: String,
    pub client: Client,
    pub config: Settings,
    /// The admin token the server is given on the next (re)start; `None` makes the server rely
    /// on the tokens it stored before.
    pub start_token: Option<String>,
    /// Database URL for the next (re)start; `None` is the data directory's own SQLite file.
    pub database_url: Option<String>,
    /// Blob URL (`s3://…`) for the next (re)start; `None` is the data directory's `blobs/`.
    pub blob_url: Option<String>,
    /// How to reach the S3 server of `blob_url`.
    pub s3: S3Settings,
    /// What the server reported about its admin token at the last start.
    pub bootstrap: &'static str,
    dir: tempfile::TempDir,
    running: Option<Running>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    /// A second node sharing `first`'s database (its own data directory, so its own blobs,
    /// unless `first` keeps them in a bucket: then it shares the bucket too).
    pub async fn sharing_database_with(first: &TestServer) -> Self {
        let url = format!("sqlite://{}", first.data_dir().join("otter.db").display());
        Self::build(
            first.config.clone(),
            Some(url),
            first.blob_url.clone(),
            first.s3.clone(),
        )
        .await
    }

    /// A node on the database at `url` (migrated already), with its own data directory.
    pub async fn on_database(url: &str, config: Settings) -> Self {
        Self::build(config, Some(url.to_owned()), None, S3Settings::default()).await
    }

    pub async fn with_config(config: Settings) -> Self {
        Self::build(config, None, None, S3Settings::default()).await
    }

    /// A server whose blobs (and resumable upload sessions) are in `s3`'s bucket under `prefix`.
    pub async fn with_s3(s3: &TempS3, prefix: &str, config: Settings) -> Self {
        let settings = S3Settings {
            endpoint: Some(s3.endpoint.clone()),
            options: s3.options(),
        };
        Self::build(config, None, Some(s3.url(prefix)), settings).await
    }

    async fn build(
        config: Settings,
        database_url: Option<String>,
        blob_url: Option<String>,
        s3: S3Settings,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        let mut server = TestServer {
            base: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: TOKEN.to_owned(),
            client,
            config,
            start_token: Some(TOKEN.to_owned()),
            database_url,
            blob_url,
            s3,
            bootstrap: "",
            dir,
            running: None,
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let settings = Settings {
            data_dir: self.dir.path().to_path_buf(),
            database_url: self.database_url.as_deref().map(Secret::url),
            admin_token: self.start_token.as_deref().map(Secret::from),
            blob_url: self.blob_url.clone(),
            s3_endpoint: self.s3.endpoint.clone(),
            s3_options: secret_options(&self.s3.options),
            ..self.config.clone()
        };
        let server = Server::open(settings).await.expect("server opens");
        self.bootstrap = match server.bootstrap {
            Bootstrap::Configured => "configured",
            Bootstrap::Existing => "existing",
            Bootstrap::Generated { .. } => "generated",
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.addr = listener.local_addr().expect("local addr");
        self.base = format!("http://{}", self.addr);
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            rx.await.ok();
        }));
        self.running = Some(Running { stop, task });
    }

    /// Shuts the server down and waits until it has finished (sightings flushed, database
    /// closed).
    pub async fn shutdown(&mut self) {
        let Running { stop, task } = self.running.take().expect("server is running");
        stop.send(()).ok();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("server stops within 15 s")
            .expect("serve task did not panic")
            .expect("serve ended cleanly");
    }

    /// Sends the shutdown signal without waiting; the returned task ends when the server has
    /// stopped.
    pub fn signal_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        let Running { stop, task } = self.running.take().expect("server is running");
        stop.send(()).ok();
        task
    }

    /// Shuts down and opens a new server on the same data directory (on a new port).
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.launch().await;
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Names of the files in `<data>/staging`.
    pub fn staging_files(&self) -> Vec<String> {
        let dir: PathBuf = self.dir.path().join("staging");
        std::fs::read_dir(dir)
            .expect("staging dir exists")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request carrying the admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// A request carrying another admin token than the bootstrap one.
    pub fn as_token(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Creates an admin API token `name` with `role` through the API; returns the token.
    pub async fn create_token(&self, name: &str, role: &str) -> String {
        let resp = self
            .admin(Method::POST, "/api/v1/tokens")
            .json(&json!({"name": name, "role": role}))
            .send()
            .await
            .expect("create token");
        let created = json_body(resp, StatusCode::CREATED).await;
        created["token"].as_str().expect("token").to_owned()
    }

    /// A request without credentials (device endpoints, downloads).
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Creates a user of the admin UI through the API (as the bootstrap admin).
    pub async fn create_user(&self, name: &str, role: &str, password: &str) {
        let resp = self
            .admin(Method::POST, "/api/v1/users")
            .json(&json!({"name": name, "role": role, "password": password}))
            .send()
            .await
            .expect("create user");
        json_body(resp, StatusCode::CREATED).await;
    }

    /// Logs `name` in; returns the session cookie's secret.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let resp = self.try_login(&self.client, name, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "log in as {name}");
        session_secret(resp.headers()).expect("a session cookie")
    }

    /// `POST /api/v1/session` through `client` (which may come from another local address).
    pub async fn try_login(&self, client: &Client, name: &str, password: &str) -> Response {
        client
            .post(self.url("/api/v1/session"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .expect("log in")
    }

    /// A request with the session cookie `secret` from otter's own origin, as the UI's pages
    /// send them.
    pub fn as_user(&self, secret: &str, method: Method, path: &str) -> RequestBuilder {
        self.cookie_only(secret, method, path)
            .header("origin", &self.base)
    }

    /// A request with the session cookie `secret` and no `Origin` or `Referer`.
    pub fn cookie_only(&self, secret: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("cookie", format!("otter_session={secret}"))
    }

    pub async fn create_product(&self, name: &str, scheme: &str) -> Value {
        let resp = self
            .admin(Method::POST, "/api/v1/products")
            .json(&json!({"name": name, "scheme": scheme}))
            .send()
            .await
            .expect("create product");
        json_body(resp, StatusCode::CREATED).await
    }

    /// Uploads `bytes` with a raw PUT and returns the artifact.
    pub async fn upload_named(&self, bytes: &[u8], filename: &str) -> Value {
        let resp = self
            .admin(
                Method::PUT,
                &format!("/api/v1/artifacts?filename={filename}"),
            )
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "upload answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("artifact JSON")
    }

    /// Uploads `bytes` and returns their SHA-256 as the server reports it.
    pub async fn upload(&self, bytes: &[u8]) -> String {
        let artifact = self.upload_named(bytes, "fw.bin").await;
        let sha = artifact["sha256"].as_str().expect("sha256").to_owned();
        assert_eq!(sha, sha256_hex(bytes), "server's SHA-256 of the upload");
        sha
    }

    /// Publishes `version` of `product` with artifact `sha256`; `extra` is merged into the
    /// body (channels, minSourceVersion, title, ...).
    pub async fn publish(&self, product: &str, version: &str, sha256: &str, extra: Value) -> Value {
        let resp = self.try_publish(product, version, sha256, extra).await;
        json_body(resp, StatusCode::CREATED).await
    }

    pub async fn try_publish(
        &self,
        product: &str,
        version: &str,
        sha256: &str,
        extra: Value,
    ) -> Response {
        let mut body = json!({"version": version, "artifact": sha256});
        if let Value::Object(extra) = extra {
            body.as_object_mut().expect("object").extend(extra);
        }
        self.admin(
            Method::POST,
            &format!("/api/v1/products/{product}/releases"),
        )
        .json(&body)
        .send()
        .await
        .expect("publish")
    }

    /// Uploads distinct bytes for `version` (named `<product>-<version>.bin`) and publishes them.
    pub async fn release(&self, product: &str, version: &str, extra: Value) -> Value {
        let bytes = firmware_for(product, version);
        let artifact = self
            .upload_named(&bytes, &format!("{product}-{version}.bin"))
            .await;
        let sha = artifact["sha256"].as_str().expect("sha256");
        self.publish(product, version, sha, extra).await
    }

    pub async fn patch_release(&self, product: &str, version: &str, patch: Value) -> Value {
        let resp = self
            .admin(
                Method::PATCH,
                &format!("/api/v1/products/{product}/releases/{version}"),
            )
            .json(&patch)
            .send()
            .await
            .expect("patch release");
        json_body(resp, StatusCode::OK).await
    }

    /// `GET /api/v1/products/{product}/check?{query}`, expecting 200.
    pub async fn check(&self, product: &str, query: &str) -> Value {
        let resp = self
            .anon(
                Method::GET,
                &format!("/api/v1/products/{product}/check?{query}"),
            )
            .send()
            .await
            .expect("check");
        json_body(resp, StatusCode::OK).await
    }

    /// The version a check offers, or `None` for `{"hasUpdate":false}`.
    pub async fn offered(&self, product: &str, query: &str) -> Option<String> {
        let answer = self.check(product, query).await;
        match answer["hasUpdate"].as_bool() {
            Some(true) => Some(
                answer["manifest"]["version"]
                    .as_str()
                    .expect("manifest version")
                    .to_owned(),
            ),
            Some(false) => {
                assert_eq!(answer, json!({"hasUpdate": false}), "no-update body");
                None
            }
            None => panic!("check answer without hasUpdate: {answer}"),
        }
    }

    /// A GET with the admin token, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self
            .admin(Method::GET, path)
            .send()
            .await
            .expect("admin GET");
        json_body(resp, StatusCode::OK).await
    }

    /// A GET without credentials, expecting 200; the body as text (a public document,
    /// `/metrics`).
    pub async fn anon_text(&self, path: &str) -> String {
        let resp = self.anon(Method::GET, path).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.text().await.expect("a text body")
    }

    /// Every item of a paginated admin list, following `nextCursor` with pages of `limit`.
    pub async fn all_pages(&self, path: &str, limit: u32) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get_json(&url).await;
            let got = page["items"].as_array().expect("items");
            assert!(
                got.len() <= limit as usize,
                "page longer than limit: {page}"
            );
            items.extend(got.iter().cloned());
            match &page["nextCursor"] {
                Value::Null => return items,
                Value::String(c) => {
                    assert_eq!(got.len(), limit as usize, "a short page with a cursor");
                    cursor = Some(c.clone());
                }
                other => panic!("nextCursor is {other}"),
            }
        }
        panic!("pagination of {path} does not end");
    }

    /// A session for the resumable-upload tests: returns its id.
    pub async fn begin_upload(&self, size: usize, sha256: &str, filename: &str) -> String {
        let resp = self
            .admin(Method::POST, "/api/v1/uploads")
            .json(&json!({"size": size, "sha256": sha256, "filename": filename}))
            .send()
            .await
            .expect("begin upload");
        let session = json_body(resp, StatusCode::CREATED).await;
        assert_eq!(session["offset"], 0);
        assert_eq!(session["size"], size);
        session["id"].as_str().expect("id").to_owned()
    }

    pub fn put_chunk(&self, id: &str, offset: usize, bytes: &[u8]) -> RequestBuilder {
        self.admin(
            Method::PUT,
            &format!("/api/v1/uploads/{id}?offset={offset}"),
        )
        .body(bytes.to_vec())
    }

    /// The session's offset as `GET /api/v1/uploads/{id}` reports it.
    /// Sends a chunk that must be taken (retrying while the session is briefly busy, e.g. with
    /// the janitor) and checks the new offset.
    pub async fn send_chunk(&self, id: &str, offset: usize, bytes: &[u8]) {
        eventually("the session takes the chunk", async || {
            let resp = self.put_chunk(id, offset, bytes).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            if status == StatusCode::CONFLICT && body["error"] == "upload_busy" {
                return Err(body.to_string());
            }
            assert_eq!(status, StatusCode::OK, "chunk at {offset}: {body}");
            assert_eq!(body["offset"], offset + bytes.len(), "{body}");
            Ok(())
        })
        .await;
    }

    /// Waits (at most 10 s) until an idle upload session has expired and answers 404.
    pub async fn wait_for_upload_expiry(&self, id: &str) {
        let path = format!("/api/v1/uploads/{id}");
        wait_until_async(
            Duration::from_secs(10),
            "the idle session expires",
            async || {
                let resp = self.admin(Method::GET, &path).send().await.unwrap();
                if resp.status() == StatusCode::NOT_FOUND {
                    Ok(())
                } else {
                    Err(resp.text().await.unwrap())
                }
            },
        )
        .await;
    }

    pub async fn upload_offset(&self, id: &str) -> u64 {
        self.get_json(&format!("/api/v1/uploads/{id}")).await["offset"]
            .as_u64()
            .expect("offset")
    }

    /// Sends a request by hand on a fresh connection: `head` is the request line and headers
    /// (without the blank line), `body` the bytes written after them. Returns status, headers
    /// (lowercased names) and body of the answer, read by its `Content-Length`.
    pub async fn raw(&self, head: &str, body: &[u8]) -> RawResponse {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let head = format!(
            "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.addr, self.token
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        stream.flush().await.expect("flush");
        read_raw_responses(&mut stream, 1).await.remove(0)
    }

    /// Sends a bodiless request by hand (with `Connection: close`) and returns every byte the
    /// server sent until it closed the connection.
    pub async fn raw_until_close(&self, head: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let head = format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        stream.write_all(head.as_bytes()).await.expect("write head");
        read_until_closed(&mut stream).await
    }

    /// Sends `head` and the first `sent` bytes of a body whose `Content-Length` is larger, then
    /// ends the stream: a cable pulled mid-request. Waits until the server has answered (if it
    /// does) and closed the connection, so the request has been dealt with on return.
    pub async fn raw_cut(
        &self,
        head: &str,
        content_length: usize,
        sent: &[u8],
    ) -> Option<RawResponse> {
        assert!(sent.len() < content_length);
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let head = format!(
            "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {content_length}\r\n\r\n",
            self.addr, self.token
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(sent).await.expect("write partial body");
        stream.shutdown().await.expect("shutdown the sending side");
        let answer = read_until_closed(&mut stream).await;
        if answer.is_empty() {
            return None;
        }
        Some(parse_raw_response(&answer))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.send(()).ok();
        }
    }
}

/// Every byte the server sends on `stream` until it closes the connection (within 10 s).
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection within 10 s")
        .expect("read");
    answer
}

/// Reads `stream` until the first `count` answers on it are whole (by `Content-Length`).
pub async fn read_raw_responses(stream: &mut TcpStream, count: usize) -> Vec<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(answers) = complete_raw_responses(&buf, count) {
            return answers;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "connection closed before {count} whole responses arrived"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Asserts `resp` is an error `status` in the house format `{"error": code, "message": ...}`
/// and returns the body.
pub async fn expect_error(resp: Response, status: u16, code: &str) -> Value {
    let got = resp.status();
    let url = resp.url().clone();
    let content_type = header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = resp.text().await.expect("body");
    assert_eq!(
        got.as_u16(),
        status,
        "{url}: wanted {status} {code}, got {got}: {text}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{url}: error content type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: error body is not JSON ({e}): {text}"));
    assert_eq!(body["error"], code, "{url}: error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{url}: error without a message: {body}"
    );
    body
}

/// The session secret a `Set-Cookie: otter_session=…` hands out (`None` if there is none, or it
/// clears the cookie).
pub fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("otter_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .filter(|secret| !secret.is_empty())
}

pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

/// Distinct bytes for a product's version (a few KiB).
pub fn firmware_for(product: &str, version: &str) -> Vec<u8> {
    let mut image = format!("{product} {version}\n").into_bytes();
    let seed = sha256_hex(&image);
    let seed = u64::from_str_radix(&seed[..16], 16).expect("hex");
    image.extend(firmware(seed, 4096));
    image
}

/// The Unix seconds of a time in an API body, which must be RFC 3339 UTC (`…Z`), as every time
/// the API sends is (like `releaseDate`).
#[track_caller]
pub fn unix_time(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a time as an RFC 3339 string, not {value}"));
    assert!(text.ends_with('Z'), "a UTC time: {text}");
    otter_core::model::parse_rfc3339("time", text)
        .unwrap_or_else(|e| panic!("{e}"))
        .unix_timestamp()
}

/// A `multipart/form-data` body of `(field name, file name, bytes)` parts.
pub fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}
