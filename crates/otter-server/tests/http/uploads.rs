//! One-request uploads: raw PUT and multipart, digests, deduplication, the size limit, and
//! that a failed upload leaves nothing behind.

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{
    TestServer, eventually, expect_error, firmware, json_body, multipart, sha256_hex, test_config,
};

const MIB: usize = 1024 * 1024;

async fn limited_server() -> TestServer {
    TestServer::with_config(otter_server::Settings {
        max_upload: MIB as u64,
        ..test_config()
    })
    .await
}

/// A body of `data` streamed in `chunk`-byte pieces, so it goes out without `Content-Length`.
fn streamed(data: &[u8], chunk: usize) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

/// Asserts that neither the artifact nor its download exists.
async fn assert_absent(srv: &TestServer, sha: &str) {
    let meta = srv
        .admin(Method::GET, &format!("/api/v1/artifacts/{sha}"))
        .send()
        .await
        .unwrap();
    expect_error(meta, 404, "artifact_not_found").await;
    let dl = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    expect_error(dl, 404, "artifact_not_found").await;
}

/// An upload refused before its body was read says `Connection: close`: otter does not read
/// the rest, so the connection ends with the answer, and a client that reused it for its next
/// request would see that request fail.
#[tokio::test]
async fn an_upload_refused_before_its_body_is_read_closes_the_connection() {
    let srv = limited_server().await;
    let head = format!(
        "PUT /api/v1/artifacts?filename=big.bin HTTP/1.1\r\nContent-Length: {}",
        2 * MIB
    );
    let answer = srv.raw(&head, &[0u8; 64 * 1024]).await;
    assert_eq!(answer.status, 413, "{:?}", answer.headers);
    assert_eq!(answer.header("connection"), Some("close"));

    // A request whose body was read to its end keeps the connection.
    let answer = srv
        .raw(
            "PUT /api/v1/artifacts?filename=a.bin HTTP/1.1\r\nContent-Length: 3",
            b"abc",
        )
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("connection"), None);
}

#[tokio::test]
async fn raw_put_stores_digests_and_deduplicates() {
    let srv = TestServer::start().await;
    let bytes = b"The quick brown fox jumps over the lazy dog";
    let resp = srv
        .admin(Method::PUT, "/api/v1/artifacts?filename=fox.bin")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let artifact = json_body(resp, StatusCode::CREATED).await;
    // Reference digests of this sentence (as printed by sha256sum, sha1sum, md5sum).
    assert_eq!(
        artifact["sha256"],
        "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
    );
    assert_eq!(artifact["sha1"], "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    assert_eq!(artifact["md5"], "9e107d9d372bb6826bd81d3542a419d6");
    assert_eq!(artifact["size"], bytes.len());
    assert_eq!(artifact["filename"], "fox.bin");
    let sha = artifact["sha256"].as_str().unwrap();

    // The same bytes again: 200 and the stored artifact (first name, first time).
    let again = srv
        .admin(Method::PUT, "/api/v1/artifacts?filename=other-name.bin")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(again, StatusCode::OK).await, artifact);

    assert_eq!(
        srv.get_json(&format!("/api/v1/artifacts/{sha}")).await,
        artifact
    );
    // Hashes are case-insensitive in lookups.
    assert_eq!(
        srv.get_json(&format!("/api/v1/artifacts/{}", sha.to_uppercase()))
            .await,
        artifact
    );
    let dl = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    assert_eq!(&dl.bytes().await.unwrap()[..], bytes);
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());
}

#[tokio::test]
async fn upload_file_names_are_sanitised() {
    let srv = TestServer::start().await;
    let cases = [
        ("fw-1.2.bin", "fw-1.2.bin"),
        ("..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("my%20image%3F.bin", "my_image_.bin"),
        ("", "firmware.bin"),
    ];
    for (i, (given, kept)) in cases.into_iter().enumerate() {
        let resp = srv
            .admin(Method::PUT, &format!("/api/v1/artifacts?filename={given}"))
            .body(firmware(i as u64, 10))
            .send()
            .await
            .unwrap();
        assert_eq!(
            json_body(resp, StatusCode::CREATED).await["filename"],
            kept,
            "{given}"
        );
    }
    let no_name = srv
        .admin(Method::PUT, "/api/v1/artifacts")
        .body(firmware(99, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(no_name, StatusCode::CREATED).await["filename"],
        "firmware.bin"
    );
}

#[tokio::test]
async fn multipart_upload_keeps_the_file_name() {
    let srv = TestServer::start().await;
    let image = firmware(3, 300_000);
    let boundary = "otter-test-boundary-5b1f0c";
    let body = multipart(
        boundary,
        &[
            ("note", None, b"a text field before the file is skipped"),
            ("image", Some("door-sensor-2.1.0.bin"), &image),
            ("other", Some("ignored.bin"), b"only the first file counts"),
        ],
    );
    let resp = srv
        .admin(Method::POST, "/api/v1/artifacts")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let artifact = json_body(resp, StatusCode::CREATED).await;
    assert_eq!(artifact["filename"], "door-sensor-2.1.0.bin");
    assert_eq!(artifact["size"], image.len());
    assert_eq!(artifact["sha256"], sha256_hex(&image));
    let dl = srv
        .anon(
            Method::GET,
            &format!("/dl/{}", artifact["sha256"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(&dl.bytes().await.unwrap()[..], &image[..]);
    assert_absent(&srv, &sha256_hex(b"only the first file counts")).await;

    // A form without a file part, and a body that is not multipart at all.
    let no_file = multipart(boundary, &[("note", None, b"hello")]);
    let resp = srv
        .admin(Method::POST, "/api/v1/artifacts")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(no_file)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_multipart").await;
    let resp = srv
        .admin(Method::POST, "/api/v1/artifacts")
        .json(&json!({"not": "multipart"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_multipart").await;
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing() {
    let srv = limited_server().await;

    // Exactly the limit is fine.
    let at_limit = firmware(4, MIB);
    let resp = srv
        .admin(Method::PUT, "/api/v1/artifacts?filename=max.bin")
        .body(at_limit.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, StatusCode::CREATED).await["size"],
        at_limit.len()
    );

    // A declared Content-Length over the limit is refused before any byte of the body is sent.
    let raw = srv
        .raw(
            &format!(
                "PUT /api/v1/artifacts?filename=big.bin HTTP/1.1\r\nContent-Length: {}\r\nConnection: close",
                MIB + 1
            ),
            b"",
        )
        .await;
    assert_eq!(raw.status, 413);
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = raw.json();
    assert_eq!(body["error"], "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("1048576"));

    // A streamed body (no Content-Length) is cut off once it passes the limit.
    let too_big = firmware(5, MIB + 64 * 1024);
    let resp = srv
        .admin(Method::PUT, "/api/v1/artifacts?filename=big.bin")
        .body(streamed(&too_big, 16 * 1024))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "payload_too_large").await;
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());
    assert_absent(&srv, &sha256_hex(&too_big)).await;
    assert_absent(&srv, &sha256_hex(&too_big[..MIB])).await;

    // The same through multipart.
    let boundary = "b0undary";
    let form = multipart(boundary, &[("image", Some("big.bin"), &too_big)]);
    let resp = srv
        .admin(Method::POST, "/api/v1/artifacts")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(streamed(&form, 16 * 1024))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "payload_too_large").await;
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());
    assert_absent(&srv, &sha256_hex(&too_big)).await;

    // A resumable session larger than the limit is refused up front.
    let resp = srv
        .admin(Method::POST, "/api/v1/uploads")
        .json(&json!({"size": MIB + 1, "sha256": sha256_hex(&too_big), "filename": "big.bin"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "payload_too_large").await;
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());

    // The server still works, and only the image at the limit exists.
    let small = srv.upload(b"still fine").await;
    assert_eq!(small, sha256_hex(b"still fine"));
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing() {
    let srv = TestServer::start().await;
    let image = firmware(6, 200_000);
    let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(&image[..100_000])),
        Err(std::io::Error::other("cable pulled")),
    ];
    let result = srv
        .admin(Method::PUT, "/api/v1/artifacts?filename=cut.bin")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await;
    assert!(result.is_err(), "the client saw its own body fail");

    // Cut off on the wire with a Content-Length that is never reached. Once the server has
    // closed the connection the request is over, so the staging area must be clean now.
    let answer = srv
        .raw_cut(
            "PUT /api/v1/artifacts?filename=cut.bin HTTP/1.1",
            image.len(),
            &image[..150_000],
        )
        .await;
    let answer = answer.expect("the server answers a request it could not finish");
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["error"], "upload_interrupted");
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());

    // The reqwest upload above ends on the server side on its own schedule.
    let s = &srv;
    eventually("staging is empty after interrupted uploads", async || {
        let files = s.staging_files();
        if files.is_empty() {
            Ok(())
        } else {
            Err(format!("{files:?}"))
        }
    })
    .await;
    for prefix in [100_000, 150_000, image.len()] {
        assert_absent(&srv, &sha256_hex(&image[..prefix])).await;
    }
}
