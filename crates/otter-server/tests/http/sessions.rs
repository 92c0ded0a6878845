//! Resumable upload sessions: chunks in order, a chunk cut off mid-way, resuming, offsets that
//! do not match, finalize checks, abort, restarts and idle expiry.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    TestServer, eventually, expect_error, firmware, json_body, sha256_hex, test_config, unix_time,
};

async fn staging_is_clean(srv: &TestServer) {
    let files = srv.staging_files();
    assert!(files.is_empty(), "staging holds {files:?}");
}

#[tokio::test]
async fn chunks_survive_a_cut_and_resume_to_a_downloadable_artifact() {
    let srv = TestServer::start().await;
    let image = firmware(10, 200_000);
    let sha = sha256_hex(&image);

    let resp = srv
        .admin(Method::POST, "/api/v1/uploads")
        .json(
            &json!({"size": image.len(), "sha256": sha.to_uppercase(), "filename": "big/fw 2.bin"}),
        )
        .send()
        .await
        .unwrap();
    let session = json_body(resp, StatusCode::CREATED).await;
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["size"], image.len());
    assert_eq!(session["sha256"], sha, "stored lowercase");
    assert_eq!(session["filename"], "fw_2.bin");
    assert_eq!(session["offset"], 0);
    assert!(unix_time(&session["createdAt"]) <= unix_time(&session["updatedAt"]));

    // Chunk 1.
    let resp = srv
        .put_chunk(&id, 0, &image[..50_000])
        .send()
        .await
        .unwrap();
    let after_one = json_body(resp, StatusCode::OK).await;
    assert_eq!(after_one["offset"], 50_000);
    assert_eq!(after_one["id"], id.as_str());

    // Chunk 2 is cut off after 30 000 of its 100 000 bytes: those bytes are kept.
    let answer = srv
        .raw_cut(
            &format!("PUT /api/v1/uploads/{id}?offset=50000 HTTP/1.1"),
            100_000,
            &image[50_000..80_000],
        )
        .await;
    let answer = answer.expect("the server answers the cut chunk");
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["error"], "upload_interrupted");
    assert_eq!(
        answer.json()["offset"],
        80_000,
        "the answer says where to resume"
    );
    assert_eq!(srv.upload_offset(&id).await, 80_000);

    // Out of order and duplicate chunks: 409 with the offset to resume from; nothing changes.
    for (offset, bytes) in [
        (90_000, &image[90_000..100_000]),
        (0, &image[..50_000]),
        (50_000, &image[50_000..80_000]),
    ] {
        let resp = srv.put_chunk(&id, offset, bytes).send().await.unwrap();
        let e = expect_error(resp, 409, "offset_mismatch").await;
        assert_eq!(e["offset"], 80_000, "{e}");
    }
    let resp = srv
        .admin(Method::PUT, &format!("/api/v1/uploads/{id}"))
        .body(image[80_000..].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_query").await;
    assert_eq!(srv.upload_offset(&id).await, 80_000);

    // Finalize before every byte arrived.
    let resp = srv
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 409, "upload_incomplete").await;
    assert_eq!(e["offset"], 80_000);

    // Resume; then a chunk past the declared size is refused and changes nothing.
    srv.send_chunk(&id, 80_000, &image[80_000..150_000]).await;
    let resp = srv
        .put_chunk(
            &id,
            150_000,
            &[image[150_000..].to_vec(), b"extra".to_vec()].concat(),
        )
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 400, "chunk_too_large").await;
    assert_eq!(e["offset"], 150_000);
    srv.send_chunk(&id, 150_000, &image[150_000..]).await;
    assert_eq!(srv.upload_offset(&id).await, image.len() as u64);

    let resp = srv
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    let artifact = json_body(resp, StatusCode::CREATED).await;
    assert_eq!(artifact["sha256"], sha);
    assert_eq!(artifact["size"], image.len());
    assert_eq!(artifact["filename"], "fw_2.bin");

    let dl = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    assert_eq!(&dl.bytes().await.unwrap()[..], &image[..]);

    // The session is gone.
    for (method, path) in [
        (Method::GET, format!("/api/v1/uploads/{id}")),
        (Method::PUT, format!("/api/v1/uploads/{id}?offset=0")),
        (Method::POST, format!("/api/v1/uploads/{id}/finalize")),
        (Method::DELETE, format!("/api/v1/uploads/{id}")),
    ] {
        let resp = srv.admin(method, &path).send().await.unwrap();
        expect_error(resp, 404, "upload_not_found").await;
    }
    staging_is_clean(&srv).await;
}

#[tokio::test]
async fn checksum_mismatch_discards_the_session() {
    let srv = TestServer::start().await;
    let image = firmware(11, 10_000);
    let id = srv
        .begin_upload(image.len(), &sha256_hex(b"something else"), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image).await;
    let resp = srv
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 400, "checksum_mismatch").await;
    assert!(
        e["message"].as_str().unwrap().contains(&sha256_hex(&image)),
        "the message names the actual SHA-256: {e}"
    );
    let resp = srv
        .admin(Method::GET, &format!("/api/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "upload_not_found").await;
    let resp = srv
        .admin(
            Method::GET,
            &format!("/api/v1/artifacts/{}", sha256_hex(&image)),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "artifact_not_found").await;
    staging_is_clean(&srv).await;
}

/// A session that begins without a SHA-256 (the client hashes while sending) is checked against
/// the one finalize brings: a wrong one is refused and leaves nothing, the right one keeps the
/// artifact.
#[tokio::test]
async fn sha256_given_at_finalize_is_checked() {
    let srv = TestServer::start().await;
    let image = firmware(13, 30_000);
    let sha = sha256_hex(&image);
    let begin = |srv: &TestServer| {
        srv.admin(Method::POST, "/api/v1/uploads")
            .json(&json!({"size": image.len(), "filename": "fw.bin"}))
            .send()
    };
    let finalize = |srv: &TestServer, id: &str, body: Option<Value>| {
        let request = srv.admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"));
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    };

    let session = json_body(begin(&srv).await.unwrap(), StatusCode::CREATED).await;
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["sha256"], "");
    srv.send_chunk(&id, 0, &image[..10_000]).await;
    srv.send_chunk(&id, 10_000, &image[10_000..]).await;
    // Without a SHA-256 from either side there is nothing to check against: refused, kept.
    let resp = finalize(&srv, &id, None).await.unwrap();
    expect_error(resp, 400, "invalid_field").await;
    assert_eq!(srv.upload_offset(&id).await, image.len() as u64);
    let wrong = sha256_hex(b"something else");
    let resp = finalize(&srv, &id, Some(json!({ "sha256": wrong })))
        .await
        .unwrap();
    let e = expect_error(resp, 400, "checksum_mismatch").await;
    assert!(e["message"].as_str().unwrap().contains(&sha), "{e}");
    let resp = srv
        .admin(Method::GET, &format!("/api/v1/artifacts/{sha}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "artifact_not_found").await;
    staging_is_clean(&srv).await;

    let session = json_body(begin(&srv).await.unwrap(), StatusCode::CREATED).await;
    let id = session["id"].as_str().unwrap().to_owned();
    srv.send_chunk(&id, 0, &image).await;
    let resp = finalize(&srv, &id, Some(json!({ "sha256": sha.to_uppercase() })))
        .await
        .unwrap();
    let artifact = json_body(resp, StatusCode::CREATED).await;
    assert_eq!(artifact["sha256"], sha);
    // The digests were carried from chunk to chunk; they are those of the whole image.
    let mut whole = otter_core::digest::MultiHasher::new();
    whole.update(&image);
    let whole = whole.finish();
    assert_eq!(artifact["sha1"], whole.sha1);
    assert_eq!(artifact["md5"], whole.md5);
    staging_is_clean(&srv).await;
}

#[tokio::test]
async fn abort_deletes_the_session_and_its_bytes() {
    let srv = TestServer::start().await;
    let image = firmware(12, 10_000);
    let id = srv
        .begin_upload(image.len(), &sha256_hex(&image), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image[..4_000]).await;
    assert_eq!(srv.staging_files().len(), 1);

    let resp = srv
        .admin(Method::DELETE, &format!("/api/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    for (method, path) in [
        (Method::GET, format!("/api/v1/uploads/{id}")),
        (Method::PUT, format!("/api/v1/uploads/{id}?offset=4000")),
        (Method::DELETE, format!("/api/v1/uploads/{id}")),
    ] {
        let resp = srv.admin(method, &path).send().await.unwrap();
        expect_error(resp, 404, "upload_not_found").await;
    }
    staging_is_clean(&srv).await;

    let resp = srv
        .admin(Method::GET, "/api/v1/uploads/does-not-exist")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "upload_not_found").await;
}

#[tokio::test]
async fn begin_validates_its_body() {
    let srv = TestServer::start().await;
    for body in [
        json!({"size": 10, "sha256": "abc"}),
        json!({"size": 10, "sha256": "g".repeat(64)}),
    ] {
        let resp = srv
            .admin(Method::POST, "/api/v1/uploads")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_field").await;
    }
    for body in [
        json!({"sha256": "a".repeat(64)}),
        json!({"size": -1, "sha256": "a".repeat(64)}),
        json!({"size": 1, "sha256": "a".repeat(64), "offset": 3}),
    ] {
        let resp = srv
            .admin(Method::POST, "/api/v1/uploads")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_json").await;
    }
    staging_is_clean(&srv).await;
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let mut srv = TestServer::start().await;
    let image = firmware(13, 120_000);
    let sha = sha256_hex(&image);
    let id = srv.begin_upload(image.len(), &sha, "fw.bin").await;
    srv.send_chunk(&id, 0, &image[..70_000]).await;

    srv.restart().await;

    let session = srv.get_json(&format!("/api/v1/uploads/{id}")).await;
    assert_eq!(session["offset"], 70_000);
    assert_eq!(session["sha256"], sha);
    srv.send_chunk(&id, 70_000, &image[70_000..]).await;
    let resp = srv
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/finalize"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(resp, StatusCode::CREATED).await["sha256"], sha);
    let dl = srv
        .anon(Method::GET, &format!("/dl/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(&dl.bytes().await.unwrap()[..], &image[..]);
    staging_is_clean(&srv).await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let srv = TestServer::with_config(otter_server::Settings {
        upload_ttl: Duration::from_secs(1),
        ..test_config()
    })
    .await;
    let image = firmware(14, 10_000);
    let id = srv
        .begin_upload(image.len(), &sha256_hex(&image), "fw.bin")
        .await;
    srv.send_chunk(&id, 0, &image[..5_000]).await;
    assert_eq!(srv.staging_files().len(), 1);

    // Idle for longer than the TTL: timestamps have whole seconds and the janitor runs each
    // second, so the session goes 2-3 s after the last chunk (bounded at 10 s for slow hosts).
    srv.wait_for_upload_expiry(&id).await;
    let s = &srv;
    let path = format!("/api/v1/uploads/{id}");
    let resp = srv.admin(Method::GET, &path).send().await.unwrap();
    expect_error(resp, 404, "upload_not_found").await;
    // The row goes first, then the bytes.
    eventually("the expired session's bytes are deleted", async || {
        let files = s.staging_files();
        if files.is_empty() {
            Ok(())
        } else {
            Err(format!("{files:?}"))
        }
    })
    .await;
    // Resuming now is refused. (While the janitor is still deleting, the session is briefly
    // `upload_busy`; that is not what is tested here.)
    let resp = eventually("the janitor lets go of the session", async || {
        let resp = s
            .put_chunk(&id, 5_000, &image[5_000..])
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::CONFLICT {
            Err(resp.text().await.unwrap())
        } else {
            Ok(resp)
        }
    })
    .await;
    expect_error(resp, 404, "upload_not_found").await;
    assert!(
        srv.staging_files().is_empty(),
        "the refused chunk left nothing"
    );
}
