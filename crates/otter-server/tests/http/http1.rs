//! otter's own HTTP/1 loop, on raw sockets: keep-alive and pipelining as HTTP/1.0 and 1.1
//! clients expect them, downloads sent from the file, and a connection handed to hyper when a
//! request with a body arrives on it.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{
    TestServer, firmware, parse_raw_responses, read_raw_responses, read_until_closed,
};

/// A server with one published image; returns it and the image's bytes and digest.
async fn with_image() -> (TestServer, Vec<u8>, String) {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let image = firmware(7, 300_001);
    let sha = srv.upload(&image).await;
    srv.publish("door", "1.0.0", &sha, json!({})).await;
    (srv, image, sha)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (srv, image, sha) = with_image().await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /dl/{sha} HTTP/1.1\r\nHost: a\r\nRange: bytes=10-19\r\n\r\n\
         HEAD /dl/{sha} HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /api/v1/products/door/check?current=0.9.0 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut stream).await;
    let answers = parse_raw_responses(&got, &[2]);
    assert_eq!(answers.len(), 4, "{}", String::from_utf8_lossy(&got));

    assert_eq!(answers[0].status_line, "HTTP/1.1 200 OK");
    assert_eq!(answers[0].body, b"ok");
    assert!(answers[0].header("date").is_some());
    assert!(answers[0].header("x-request-id").is_some());

    assert_eq!(answers[1].status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(answers[1].body, &image[10..20]);
    assert_eq!(
        answers[1].header("content-range"),
        Some(format!("bytes 10-19/{}", image.len()).as_str())
    );

    assert_eq!(answers[2].status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        answers[2].header("content-length"),
        Some(image.len().to_string().as_str())
    );
    assert!(answers[2].body.is_empty());

    assert_eq!(answers[3].status_line, "HTTP/1.1 200 OK");
    assert_eq!(answers[3].header("connection"), Some("close"));
    let check: serde_json::Value = serde_json::from_slice(&answers[3].body).unwrap();
    assert_eq!(check["manifest"]["version"], "1.0.0", "{check}");
}

#[tokio::test]
async fn http_1_0_connections_close_unless_kept_alive() {
    let srv = TestServer::start().await;

    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut stream).await;
    let answer = &parse_raw_responses(&got, &[])[0];
    assert_eq!(answer.status_line, "HTTP/1.0 200 OK");
    assert_eq!(answer.header("content-length"), Some("2"));
    assert_eq!(answer.body, b"ok");

    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let answer = &read_raw_responses(&mut stream, 1).await[0];
        assert_eq!(answer.status_line, "HTTP/1.0 200 OK");
        assert_eq!(answer.header("connection"), Some("keep-alive"));
    }
}

#[tokio::test]
async fn a_request_with_a_body_is_served_by_hyper_on_the_same_connection() {
    let (srv, image, sha) = with_image().await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(format!("GET /dl/{sha} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let first = read_raw_responses(&mut stream, 1).await;
    assert_eq!(first[0].body, image);

    // A product created with a JSON body, then a check, on the connection the download used.
    let body = r#"{"name":"gate","scheme":"semver"}"#;
    let requests = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        srv.token,
        body.len()
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut stream).await;
    let answers = parse_raw_responses(&got, &[]);
    assert_eq!(answers.len(), 2, "{}", String::from_utf8_lossy(&got));
    assert_eq!(answers[0].status_line, "HTTP/1.1 201 Created");
    assert_eq!(answers[1].body, b"ok");
    assert_eq!(srv.get_json("/api/v1/products/gate").await["name"], "gate");
}

#[tokio::test]
async fn an_idle_connection_is_closed_when_the_server_shuts_down() {
    let mut srv = TestServer::start().await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    read_raw_responses(&mut stream, 1).await;
    srv.shutdown().await;
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn a_head_sent_in_pieces_is_answered_once_whole() {
    let srv = TestServer::start().await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    for piece in [
        "GET /hea",
        "lthz HTTP/1.1\r",
        "\nHost: a\r\n",
        "Connection: cl",
        "ose\r\n",
        "\r\n",
    ] {
        stream.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = read_until_closed(&mut stream).await;
    let answer = &parse_raw_responses(&got, &[])[0];
    assert_eq!(answer.status_line, "HTTP/1.1 200 OK");
    assert_eq!(answer.body, b"ok");
}
