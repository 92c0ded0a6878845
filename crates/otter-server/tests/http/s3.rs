//! Blobs in an S3-compatible bucket (moto on loopback, started by otter-testkit): downloads
//! redirected to presigned URLs or proxied from the bucket, resumable sessions whose chunks live
//! in the bucket so any node takes any chunk, and idle sessions expiring with their chunks.
//! Without moto these print a SKIP line (and fail under `CI=true`).

use std::time::Duration;

use otter_server::{DownloadMode, Settings, StartError};
use reqwest::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_NONE_MATCH, IF_RANGE,
    LOCATION, RANGE,
};
use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::json;

use crate::common::{
    TOKEN, TestServer, eventually, expect_error, firmware, header, json_body, secret_options,
    sha256_hex, test_config,
};

/// A client that shows redirects instead of following them.
fn no_follow() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn blob_key(prefix: &str, sha: &str) -> String {
    format!("{prefix}/sha256/{}/{sha}", &sha[..2])
}

/// Publishes `image` as `door` 1.0.0 and returns its SHA-256 and the path of the manifest URL.
async fn publish(srv: &TestServer, image: &[u8]) -> (String, String) {
    srv.create_product("door", "semver").await;
    let sha = srv.upload(image).await;
    srv.publish("door", "1.0.0", &sha, json!({})).await;
    let check = srv.check("door", "current=0.9.0").await;
    assert_eq!(check["manifest"]["sha256"], sha.as_str());
    let url = check["manifest"]["url"].as_str().unwrap();
    let path = url
        .strip_prefix(&srv.base)
        .expect("manifest URL on the server");
    (sha, path.to_owned())
}

#[tokio::test]
async fn redirect_mode_sends_devices_to_a_presigned_url_with_the_exact_bytes() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    // The default with blobs in S3 is redirect.
    let srv = TestServer::with_s3(&s3, "ota/fleet", test_config()).await;
    let image = firmware(40, 300_000);
    let (sha, manifest_path) = publish(&srv, &image).await;
    assert_eq!(s3.get(&blob_key("ota/fleet", &sha)).unwrap(), image);
    assert!(srv.staging_files().is_empty(), "{:?}", srv.staging_files());

    let client = no_follow();
    for path in [manifest_path.clone(), format!("/dl/{sha}")] {
        let resp = client.get(srv.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{path}");
        let location = header(resp.headers(), LOCATION.as_str()).expect("Location");
        assert!(
            location.starts_with(&format!("{}/{}/ota/fleet/sha256/", s3.endpoint, s3.bucket)),
            "{location}"
        );
        assert!(location.contains("X-Amz-Expires=900"), "{location}");
        assert_eq!(
            header(resp.headers(), ETAG.as_str()),
            Some(format!("\"{sha}\""))
        );
        assert_eq!(
            header(resp.headers(), CACHE_CONTROL.as_str()).as_deref(),
            Some("private, no-store")
        );

        // A plain GET of the Location, without otter or credentials, gets the exact bytes, and
        // the bucket serves ranges itself.
        let plain = Client::builder().no_proxy().build().unwrap();
        let whole = plain.get(&location).send().await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(&whole.bytes().await.unwrap()[..], &image[..]);
        let part = plain
            .get(&location)
            .header(RANGE, "bytes=1000-1999")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(&part.bytes().await.unwrap()[..], &image[1000..2000]);
    }

    // A client that follows redirects (reqwest's default) gets the image in one go.
    let followed = srv.anon(Method::GET, &manifest_path).send().await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(sha256_hex(&followed.bytes().await.unwrap()), sha);

    // Revalidation with otter's ETag is answered by otter: 304, no trip to the bucket.
    let resp = client
        .get(srv.url(&manifest_path))
        .header(IF_NONE_MATCH, format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    // HEAD never redirects: otter knows the size.
    let resp = client
        .head(srv.url(&format!("/dl/{sha}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), CONTENT_LENGTH.as_str()),
        Some(image.len().to_string())
    );
    // Unknown images are still 404, not a redirect to nothing.
    let resp = client
        .get(srv.url(&format!("/dl/{}", sha256_hex(b"nope"))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "artifact_not_found").await;
}

#[tokio::test]
async fn proxy_mode_streams_from_the_bucket_with_ranges_and_validators() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    // No download cache: every request reads the bucket, ranges included.
    let config = Settings {
        download_mode: Some(DownloadMode::Proxy),
        download_cache: 0,
        ..test_config()
    };
    let srv = TestServer::with_s3(&s3, "", config).await;
    let image = firmware(41, 3_000_000);
    let (sha, path) = publish(&srv, &image).await;
    let etag = format!("\"{sha}\"");
    let client = no_follow();

    let resp = client.get(srv.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(resp.headers(), ETAG.as_str()), Some(etag.clone()));
    assert_eq!(
        header(resp.headers(), ACCEPT_RANGES.as_str()).as_deref(),
        Some("bytes")
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[..]);

    for (range, want, content_range) in [
        ("bytes=1000-1999", 1000..2000, "bytes 1000-1999/3000000"),
        (
            "bytes=-500",
            2_999_500..3_000_000,
            "bytes 2999500-2999999/3000000",
        ),
        (
            "bytes=2000000-",
            2_000_000..3_000_000,
            "bytes 2000000-2999999/3000000",
        ),
    ] {
        let resp = client
            .get(srv.url(&path))
            .header(RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(resp.headers(), CONTENT_RANGE.as_str()).as_deref(),
            Some(content_range)
        );
        assert_eq!(&resp.bytes().await.unwrap()[..], &image[want], "{range}");
    }
    let resp = client
        .get(srv.url(&path))
        .header(RANGE, "bytes=3000000-")
        .send()
        .await
        .unwrap();
    expect_error(resp, 416, "range_not_satisfiable").await;

    let resp = client
        .get(srv.url(&path))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.unwrap().is_empty());
    // If-Range: the same image resumes, a changed one starts over.
    let resp = client
        .get(srv.url(&path))
        .header(RANGE, "bytes=10-19")
        .header(IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.bytes().await.unwrap()[..], &image[10..20]);
    let resp = client
        .get(srv.url(&path))
        .header(RANGE, "bytes=10-19")
        .header(IF_RANGE, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), image.len());
}

#[tokio::test]
async fn a_resumable_upload_goes_through_the_bucket_chunk_by_chunk_on_any_node() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let a = TestServer::with_s3(&s3, "ota", test_config()).await;
    // A second node: same database, same bucket, its own memory and data directory.
    let b = TestServer::sharing_database_with(&a).await;
    let image = firmware(42, 300_000);
    let sha = sha256_hex(&image);
    let id = a.begin_upload(image.len(), &sha, "fw.bin").await;
    assert_eq!(b.upload_offset(&id).await, 0);

    a.send_chunk(&id, 0, &image[..100_000]).await;
    assert_eq!(b.upload_offset(&id).await, 100_000);
    // Node B takes the next chunk, which is cut off after 30 000 of its 100 000 bytes.
    let answer = b
        .raw_cut(
            &format!("PUT /api/v1/uploads/{id}?offset=100000 HTTP/1.1"),
            100_000,
            &image[100_000..130_000],
        )
        .await
        .expect("the server answers the cut chunk");
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["error"], "upload_interrupted");
    assert_eq!(answer.json()["offset"], 130_000);
    assert_eq!(
        a.upload_offset(&id).await,
        130_000,
        "node A sees what B kept"
    );
    assert_eq!(
        s3.keys(&format!("ota/uploads/{id}/")),
        [0, 100_000].map(|o| format!("ota/uploads/{id}/{o:020}"))
    );

    // Duplicate and out-of-order chunks: 409 with the offset to resume from, on either node.
    for (node, offset, bytes) in [
        (&a, 100_000, &image[100_000..200_000]),
        (&b, 0, &image[..100_000]),
        (&a, 150_000, &image[150_000..]),
    ] {
        let resp = node.put_chunk(&id, offset, bytes).send().await.unwrap();
        let e = expect_error(resp, 409, "offset_mismatch").await;
        assert_eq!(e["offset"], 130_000, "{e}");
    }
    let resp = b
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 409, "upload_incomplete").await;
    assert_eq!(e["offset"], 130_000);

    a.send_chunk(&id, 130_000, &image[130_000..]).await;
    let resp = b
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    let artifact = json_body(resp, StatusCode::CREATED).await;
    assert_eq!(artifact["sha256"], sha.as_str());
    assert_eq!(artifact["size"], image.len());

    // Only the blob is left in the bucket; nothing in either node's staging directory.
    assert_eq!(s3.keys("ota/"), vec![blob_key("ota", &sha)]);
    assert_eq!(s3.get(&blob_key("ota", &sha)).unwrap(), image);
    assert!(a.staging_files().is_empty() && b.staging_files().is_empty());
    for node in [&a, &b] {
        let resp = node
            .admin(Method::GET, &format!("/api/v1/uploads/{id}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "upload_not_found").await;
        let dl = node
            .anon(Method::GET, &format!("/dl/{sha}"))
            .send()
            .await
            .unwrap();
        assert_eq!(dl.status(), StatusCode::OK);
        assert_eq!(&dl.bytes().await.unwrap()[..], &image[..]);
    }
}

#[tokio::test]
async fn a_checksum_mismatch_or_an_abort_leaves_nothing_in_the_bucket() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let srv = TestServer::with_s3(&s3, "ota", test_config()).await;
    let image = firmware(43, 20_000);
    let id = srv
        .begin_upload(image.len(), &sha256_hex(b"something else"), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image).await;
    let resp = srv
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "checksum_mismatch").await;
    assert!(s3.keys("").is_empty(), "{:?}", s3.keys(""));

    let id = srv
        .begin_upload(image.len(), &sha256_hex(&image), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image[..5_000]).await;
    assert_eq!(s3.keys("ota/uploads/").len(), 1);
    let resp = srv
        .admin(Method::DELETE, &format!("/api/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(s3.keys("").is_empty(), "{:?}", s3.keys(""));
}

#[tokio::test]
async fn idle_sessions_in_the_bucket_expire_with_their_chunks() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let config = Settings {
        upload_ttl: Duration::from_secs(1),
        ..test_config()
    };
    let srv = TestServer::with_s3(&s3, "ota", config).await;
    let image = firmware(44, 10_000);
    let id = srv
        .begin_upload(image.len(), &sha256_hex(&image), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image[..4_000]).await;
    srv.send_chunk(&id, 4_000, &image[4_000..6_000]).await;
    assert_eq!(s3.keys(&format!("ota/uploads/{id}/")).len(), 2);

    srv.wait_for_upload_expiry(&id).await;
    let bucket = &s3;
    eventually("the expired session's chunks are deleted", async || {
        let keys = bucket.keys("ota/uploads/");
        if keys.is_empty() {
            Ok(())
        } else {
            Err(format!("{keys:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn redirecting_downloads_of_local_blobs_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(TOKEN.into()),
        download_mode: Some(DownloadMode::Redirect),
        ..test_config()
    };
    match otter_server::Server::open(settings).await {
        Err(StartError::Config(why)) => {
            assert!(why.contains("--download-mode redirect"), "{why}");
            assert!(why.contains("s3://"), "{why}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("redirect with file:// blobs started"),
    }
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        blob_url: Some("gopher://x".into()),
        ..test_config()
    };
    match otter_server::Server::open(settings).await {
        Err(StartError::Config(why)) => assert!(why.contains("s3://bucket/prefix"), "{why}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a gopher:// blob URL was accepted"),
    }
}

#[tokio::test]
async fn a_bucket_that_does_not_answer_is_a_startup_error() {
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(TOKEN.into()),
        blob_url: Some(format!("s3://{}-missing/ota", s3.bucket)),
        s3_endpoint: Some(s3.endpoint.clone()),
        s3_options: secret_options(&s3.options()),
        ..test_config()
    };
    match otter_server::Server::open(settings).await {
        Err(StartError::Store(e)) => {
            let why = e.to_string();
            assert!(why.contains("does not answer"), "{why}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("started on a bucket that does not exist"),
    }
}
