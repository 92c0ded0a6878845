//! Connection deadlines, on raw sockets: a client that says nothing, sends its headers or body a
//! byte a second, idles on a keep-alive connection or never reads its download is cut after the
//! (shortened) deadline, however long it would hold on; one cut in the middle of its request head
//! is told so with a 408. Heads the HTTP library cannot parse get otter's JSON errors too.

use std::time::Duration;

use otter_server::Settings;
use otter_testkit::wait_until_async;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestServer, firmware, test_config};

/// Test settings: every deadline 30 s (as good as never here) but the ones a test shortens.
fn deadlines(header: u64, idle: u64, min_rate: u64) -> Settings {
    Settings {
        header_timeout: Duration::from_secs(header),
        idle_timeout: Duration::from_secs(idle),
        min_rate,
        min_rate_window: Duration::from_secs(1),
        ..test_config()
    }
}

/// Reads what the server sends until it closes the connection (an end of stream or a reset),
/// within a deadline far past any test's.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the server closes the connection within 30 s");
    got
}

/// Sends `bytes` one a second from a task of its own, until they run out or the server closes;
/// returns the reading half.
fn trickle(stream: TcpStream, bytes: Vec<u8>) -> OwnedReadHalf {
    let (reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        for byte in bytes {
            every.tick().await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    reader
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let srv = TestServer::with_config(deadlines(1, 30, 0)).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    assert!(until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn partial_headers_are_closed_after_the_header_timeout() {
    let srv = TestServer::with_config(deadlines(1, 30, 0)).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", srv.addr);
    stream.write_all(head.as_bytes()).await.expect("write");
    expect_json_error(&until_closed(&mut stream).await, 408, "request_timeout");
}

#[tokio::test]
async fn headers_a_byte_a_second_are_closed_after_the_header_timeout() {
    let srv = TestServer::with_config(deadlines(2, 30, 0)).await;
    let stream = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: {}\r\n\r\n",
        srv.addr,
        "a".repeat(60)
    );
    let mut stream = trickle(stream, head.into_bytes());
    expect_json_error(&until_closed(&mut stream).await, 408, "request_timeout");
}

/// Asserts that `answer` is one whole HTTP/1.1 answer with `status`, `Connection: close` and a
/// JSON error body with `code`.
fn expect_json_error(answer: &[u8], status: u16, code: &str) {
    let answer = String::from_utf8_lossy(answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with(&format!("http/1.1 {status} ")), "{answer}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{answer}"
    );
    assert!(head.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
        "{answer}"
    );
    assert!(head.contains("\r\nx-request-id: "), "{answer}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"], code, "{answer}");
}

/// Requests the HTTP library refuses before otter's router sees them are answered in otter's
/// JSON error format, with the library's status, and the connection is closed.
#[tokio::test]
async fn heads_that_cannot_be_parsed_get_json_errors() {
    let srv = TestServer::start().await;
    let host = srv.addr.to_string();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            400,
            "malformed_request",
        ),
        (
            format!("POST /healthz HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400,
            "malformed_request",
        ),
        (
            format!("GET /he\u{1}lthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            400,
            "malformed_request",
        ),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                "a".repeat(70_000)
            ),
            414,
            "uri_too_long",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(2 << 20)
            ),
            431,
            "headers_too_large",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
                (0..150)
                    .map(|i| format!("X-{i}: 1\r\n"))
                    .collect::<String>()
            ),
            431,
            "headers_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
        // The server may answer and close before it has read all of a long head.
        let _ = stream.write_all(request.as_bytes()).await;
        expect_json_error(&until_closed(&mut stream).await, status, code);
    }
    // A well-formed request on a fresh connection is answered as always.
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_a_byte_a_second_is_cut_below_the_minimum_rate() {
    let srv = TestServer::with_config(deadlines(30, 30, 1000)).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!(
        "PUT /api/v1/artifacts?filename=slow.bin HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n",
        srv.addr, srv.token
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut stream = trickle(stream, vec![0; 100_000]);
    assert!(until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let srv = TestServer::with_config(deadlines(30, 1, 0)).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr);
    stream.write_all(head.as_bytes()).await.expect("write");
    // The answer comes, and the connection stays open for the next request until it idles out.
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `otter_connections_cut_total` for `deadline`, as `/metrics` shows it.
async fn cuts(srv: &TestServer, deadline: &str) -> u64 {
    let text = srv
        .client
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let series = format!("otter_connections_cut_total{{deadline=\"{deadline}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test]
async fn a_download_that_is_never_read_is_cut_below_the_minimum_rate() {
    let srv = TestServer::with_config(deadlines(30, 30, 1000)).await;
    srv.create_product("slow", "semver").await;
    // Far more than the socket buffers on both sides hold, so the server's writes stall.
    let image = firmware(21, 12 << 20);
    let sha = srv.upload_named(&image, "slow-1.0.0.bin").await["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    srv.publish("slow", "1.0.0", &sha, json!({})).await;
    let before = cuts(&srv, "response_rate").await;
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(srv.addr).await.expect("connect");
    let head = format!("GET /dl/{sha} HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr);
    stream.write_all(head.as_bytes()).await.expect("write");
    wait_until_async(
        Duration::from_secs(30),
        "the server cuts the download nobody reads",
        async || {
            let now = cuts(&srv, "response_rate").await;
            if now > before {
                Ok(())
            } else {
                Err(format!("{now} response_rate cuts"))
            }
        },
    )
    .await;
    let got = until_closed(&mut stream).await;
    assert!(
        got.len() < image.len(),
        "only what the socket buffers held arrives: {} bytes",
        got.len()
    );
}
