//! Downloads: whole files, HEAD, ranges, conditional requests and resuming.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, expect_error, firmware, header, sha256_hex};

/// More than one read chunk of the blob store (256 KiB), with an odd size.
const SIZE: usize = 600_001;

struct Fixture {
    srv: TestServer,
    image: Vec<u8>,
    sha: String,
    /// Both download URLs of the image (paths).
    paths: [String; 2],
}

async fn fixture() -> Fixture {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let image = firmware(20, SIZE);
    let artifact = srv.upload_named(&image, "door-1.0.0.bin").await;
    let sha = artifact["sha256"].as_str().unwrap().to_owned();
    srv.publish("door", "1.0.0", &sha, json!({})).await;
    let paths = [
        format!("/dl/{sha}"),
        "/dl/door/1.0.0/door-1.0.0.bin".to_owned(),
    ];
    Fixture {
        srv,
        image,
        sha,
        paths,
    }
}

fn h(headers: &HeaderMap, name: &str) -> String {
    header(headers, name).unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[tokio::test]
async fn full_downloads_and_head() {
    let f = fixture().await;
    for path in &f.paths {
        let resp = f.srv.anon(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(h(&headers, "content-length"), SIZE.to_string());
        assert_eq!(h(&headers, "accept-ranges"), "bytes");
        assert_eq!(h(&headers, "etag"), format!("\"{}\"", f.sha));
        assert_eq!(h(&headers, "content-type"), "application/octet-stream");
        assert!(h(&headers, "cache-control").contains("max-age"));
        assert_eq!(
            h(&headers, "content-disposition"),
            "attachment; filename=\"door-1.0.0.bin\""
        );
        let modified = httpdate::parse_http_date(&h(&headers, "last-modified"))
            .expect("Last-Modified is an HTTP date");
        let age = std::time::SystemTime::now()
            .duration_since(modified)
            .expect("Last-Modified is not in the future");
        assert!(age.as_secs() < 600, "Last-Modified is the upload time");
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), SIZE);
        assert!(body[..] == f.image[..], "{path}: downloaded bytes differ");
        assert_eq!(sha256_hex(&body), f.sha);

        let head = f.srv.anon(Method::HEAD, path).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(h(head.headers(), "content-length"), SIZE.to_string());
        assert_eq!(h(head.headers(), "etag"), format!("\"{}\"", f.sha));
        assert!(head.bytes().await.unwrap().is_empty());
    }

    // HEAD on the wire: the head, with the length of the image, and not one byte more.
    let raw = f
        .srv
        .raw_until_close(&format!("HEAD {} HTTP/1.1", f.paths[0]))
        .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {SIZE}\r\n")),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "bytes after the head: {text}");

    // Names that do not exist.
    for path in [
        format!("/dl/{}", sha256_hex(b"nothing")),
        "/dl/not-a-hash".to_owned(),
        "/dl/door/9.9.9/door.bin".to_owned(),
        "/dl/ghost/1.0.0/door.bin".to_owned(),
    ] {
        let resp = f.srv.anon(Method::GET, &path).send().await.unwrap();
        expect_error(resp, 404, "artifact_not_found").await;
    }
    // Any file name works on the release path.
    let resp = f
        .srv
        .anon(Method::GET, "/dl/door/1.0.0/anything.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), SIZE);
    // The hash path is case-insensitive.
    let resp = f
        .srv
        .anon(Method::GET, &format!("/dl/{}", f.sha.to_uppercase()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn ranged(f: &Fixture, path: &str, range: &str) -> reqwest::Response {
    f.srv
        .anon(Method::GET, path)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ranges() {
    let f = fixture().await;
    let last = SIZE - 1;
    for path in &f.paths {
        for (range, start, end) in [
            ("bytes=0-0", 0, 0),
            ("bytes=100-199", 100, 199),
            ("bytes=262000-262500", 262_000, 262_500),
            ("bytes=599990-", 599_990, last),
            ("bytes=-10", SIZE - 10, last),
            ("bytes=-700000", 0, last),
            ("bytes=500000-999999", 500_000, last),
        ] {
            let resp = ranged(&f, path, range).await;
            assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{path} {range}");
            assert_eq!(
                h(resp.headers(), "content-range"),
                format!("bytes {start}-{end}/{SIZE}"),
                "{range}"
            );
            assert_eq!(
                h(resp.headers(), "content-length"),
                (end - start + 1).to_string()
            );
            assert_eq!(h(resp.headers(), "etag"), format!("\"{}\"", f.sha));
            let body = resp.bytes().await.unwrap();
            assert!(
                body[..] == f.image[start..=end],
                "{path} {range}: wrong bytes"
            );
        }

        // Unsatisfiable: 416 with the size.
        for range in [
            format!("bytes={SIZE}-"),
            "bytes=-0".to_owned(),
            format!("bytes={}-{}", SIZE + 5, SIZE + 10),
        ] {
            let resp = ranged(&f, path, &range).await;
            assert_eq!(
                h(resp.headers(), "content-range"),
                format!("bytes */{SIZE}"),
                "{range}"
            );
            let e = expect_error(resp, 416, "range_not_satisfiable").await;
            assert_eq!(e["size"], SIZE);
        }

        // Several ranges, or ones otter does not understand: the whole file.
        for range in ["bytes=0-1,5-6", "items=0-5", "bytes=9-1"] {
            let resp = ranged(&f, path, range).await;
            assert_eq!(resp.status(), StatusCode::OK, "{range}");
            assert!(resp.headers().get("content-range").is_none());
            assert_eq!(resp.bytes().await.unwrap().len(), SIZE);
        }

        // HEAD with a range: the part's headers, no body.
        let head = f
            .srv
            .anon(Method::HEAD, path)
            .header("range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(h(head.headers(), "content-length"), "10");
        assert_eq!(
            h(head.headers(), "content-range"),
            format!("bytes 10-19/{SIZE}")
        );
        assert!(head.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn conditional_requests() {
    let f = fixture().await;
    let etag = format!("\"{}\"", f.sha);
    let stale = format!("\"{}\"", sha256_hex(b"older image"));
    let first = f.srv.anon(Method::GET, &f.paths[0]).send().await.unwrap();
    let last_modified = h(first.headers(), "last-modified");
    drop(first);

    for path in &f.paths {
        // If-None-Match with the current ETag (alone, in a list, weak, or *): 304, no body.
        for inm in [
            etag.clone(),
            format!("{stale}, {etag}"),
            format!("W/{etag}"),
            "*".to_owned(),
        ] {
            let resp = f
                .srv
                .anon(Method::GET, path)
                .header("if-none-match", &inm)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{inm}");
            assert_eq!(h(resp.headers(), "etag"), etag);
            assert!(resp.bytes().await.unwrap().is_empty());
        }
        let resp = f
            .srv
            .anon(Method::GET, path)
            .header("if-none-match", &stale)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().len(), SIZE);

        // If-Modified-Since the upload time: 304; from long before: 200.
        let resp = f
            .srv
            .anon(Method::GET, path)
            .header("if-modified-since", &last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let resp = f
            .srv
            .anon(Method::GET, path)
            .header("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        // If-Range: the range only while the image is the one the client started on.
        for (if_range, partial) in [
            (etag.clone(), true),
            (last_modified.clone(), true),
            (stale.clone(), false),
            (format!("W/{etag}"), false),
            ("Sat, 01 Jan 2000 00:00:00 GMT".to_owned(), false),
        ] {
            let resp = f
                .srv
                .anon(Method::GET, path)
                .header("range", "bytes=1000-1999")
                .header("if-range", &if_range)
                .send()
                .await
                .unwrap();
            if partial {
                assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{if_range}");
                assert_eq!(
                    h(resp.headers(), "content-range"),
                    format!("bytes 1000-1999/{SIZE}")
                );
                let body = resp.bytes().await.unwrap();
                assert!(body[..] == f.image[1000..2000]);
            } else {
                assert_eq!(resp.status(), StatusCode::OK, "{if_range}");
                assert!(resp.headers().get("content-range").is_none());
                let body = resp.bytes().await.unwrap();
                assert!(
                    body[..] == f.image[..],
                    "{if_range}: the whole, current image"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_interrupted_download_resumes_by_range() {
    let f = fixture().await;
    let half = SIZE / 2;
    for path in &f.paths {
        let first = ranged(&f, path, &format!("bytes=0-{}", half - 1)).await;
        assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
        let etag = h(first.headers(), "etag");
        let mut got = first.bytes().await.unwrap().to_vec();
        assert_eq!(got.len(), half);

        let rest = f
            .srv
            .anon(Method::GET, path)
            .header("range", format!("bytes={half}-"))
            .header("if-range", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            h(rest.headers(), "content-range"),
            format!("bytes {half}-{}/{SIZE}", SIZE - 1)
        );
        got.extend_from_slice(&rest.bytes().await.unwrap());
        assert_eq!(got.len(), SIZE);
        assert!(got == f.image, "{path}: the pieces do not make the image");
        assert_eq!(sha256_hex(&got), f.sha);
    }
}
