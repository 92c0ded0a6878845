//! The resumable uploader: an image goes to the server through an upload session in chunks, so
//! a large image survives a flaky link. A chunk that fails is retried with backoff; a chunk whose
//! connection broke continues from the bytes the server kept (it says how many) rather than
//! being sent again. `otter release publish` uses it; so can anything else holding a [`Client`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures_util::TryStreamExt;
use indicatif::ProgressBar;
use otter_core::model::{Artifact, UploadSession};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::client::Client;

/// How often one chunk is retried after a transient failure before the upload gives up.
pub const MAX_RETRIES: u32 = 5;
/// Read size while uploading; large reads keep syscall overhead low.
const READ_BUF: usize = 1024 * 1024;

/// How an upload is cut up and how long it waits before retrying.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Bytes sent per request.
    pub chunk_size: u64,
    /// The first retry waits this long; each further one waits twice as long as the one before.
    pub first_backoff: Duration,
}

impl Pacing {
    /// 8 MiB chunks are big enough that per-request overhead is negligible and small enough that
    /// a broken connection costs little to resend. Five retries starting at half a second ride
    /// out about 15 s of outage (a server restart, a flapping link).
    pub const DEFAULT: Pacing = Pacing {
        chunk_size: 8 * 1024 * 1024,
        first_backoff: Duration::from_millis(500),
    };
}

/// A local image, ready to upload.
#[derive(Debug)]
pub struct LocalImage {
    pub path: PathBuf,
    pub size: u64,
    /// The name the server keeps, used in download URLs.
    pub filename: String,
    /// When the file was last changed, to notice it changing while it is uploaded.
    modified: Option<SystemTime>,
}

/// Names `path` as the server will keep it and reads its size. The image is hashed while it
/// is uploaded, not before: one pass over the file rather than two.
pub fn local_image(path: &Path) -> anyhow::Result<LocalImage> {
    let (size, modified) = stat(path)?;
    let filename = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(LocalImage {
        path: path.to_owned(),
        size,
        filename,
        modified,
    })
}

fn stat(path: &Path) -> anyhow::Result<(u64, Option<SystemTime>)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((meta.len(), meta.modified().ok()))
}

/// The SHA-256 of the file's bytes as they are read for sending. Resent bytes (a chunk retried
/// from an earlier offset) are hashed once: only bytes past `upto` count.
struct Hashing {
    hasher: Sha256,
    upto: u64,
}

impl Hashing {
    /// Takes `bytes` read at file position `at`.
    fn feed(&mut self, at: u64, bytes: &[u8]) {
        let end = at + bytes.len() as u64;
        if at <= self.upto && end > self.upto {
            self.hasher.update(&bytes[(self.upto - at) as usize..]);
            self.upto = end;
        }
    }
}

/// Uploads `image` through a resumable upload session, hashing it on the way, and returns the
/// stored artifact. The session begins without a SHA-256 and finalize sends the one computed
/// here: the server refuses the upload (`checksum_mismatch`) unless the bytes it received hash
/// the same, so bytes damaged on the way never become an artifact. A file that changed while it
/// was read (its size or modification time moved) is not finalized.
pub async fn upload(
    client: &Client,
    image: &LocalImage,
    pacing: Pacing,
    progress: &ProgressBar,
) -> anyhow::Result<Artifact> {
    let body = json!({ "size": image.size, "filename": image.filename });
    let session: UploadSession = client
        .post(client.url(&["api", "v1", "uploads"]), &body)
        .await?;
    let session_url = client.url(&["api", "v1", "uploads", &session.id]);
    let hashing = Arc::new(Mutex::new(Hashing {
        hasher: Sha256::new(),
        upto: 0,
    }));

    progress.reset();
    progress.set_message("uploading");
    progress.set_length(image.size);
    let mut offset = session.offset;
    let mut failures = 0;
    while offset < image.size {
        progress.set_position(offset);
        let len = pacing.chunk_size.min(image.size - offset);
        let mut url = session_url.clone();
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string());
        let body = chunk_body(&image.path, offset, len, &hashing, progress).await?;
        let err = match client.put::<UploadSession>(url, body, len).await {
            Ok(session) if session.offset > offset => {
                offset = session.offset;
                failures = 0;
                continue;
            }
            Ok(_) => anyhow::bail!("the server accepted none of the chunk at byte {offset}"),
            Err(err) => err,
        };
        failures += 1;
        if failures > MAX_RETRIES {
            return Err(anyhow::Error::new(err).context(format!(
                "upload of {} stopped at byte {offset} of {} after {MAX_RETRIES} retries",
                image.filename, image.size
            )));
        }
        if let Some(current) = err.offset_mismatch() {
            // The server holds a different amount than we thought, e.g. part of a chunk whose
            // connection broke; continue from what it has.
            offset = current;
        } else if err.is_transient() {
            let delay = pacing.first_backoff * 2u32.pow(failures - 1);
            progress.suspend(|| {
                eprintln!(
                    "warning: {err}; retrying in {:.1}s ({failures}/{MAX_RETRIES})",
                    delay.as_secs_f64()
                )
            });
            tokio::time::sleep(delay).await;
            // A broken chunk keeps the bytes that arrived: ask how many rather than resend them.
            // If even that fails, the next chunk's offset_mismatch tells us instead.
            match client.get::<UploadSession>(session_url.clone()).await {
                Ok(session) => offset = session.offset,
                Err(err) if err.is_transient() => {}
                Err(err) => return Err(err.into()),
            }
        } else {
            return Err(err.into());
        }
    }
    let hashing = std::mem::replace(
        &mut *hashing.lock().unwrap_or_else(|e| e.into_inner()),
        Hashing {
            hasher: Sha256::new(),
            upto: 0,
        },
    );
    anyhow::ensure!(
        hashing.upto == image.size && stat(&image.path)? == (image.size, image.modified),
        "{} changed while it was uploaded; nothing was published",
        image.path.display(),
    );
    let sha256 = hex::encode(hashing.hasher.finalize());
    progress.set_position(image.size);
    progress.set_message("finishing");
    let mut finalize = session_url;
    finalize
        .path_segments_mut()
        .expect("session URL is built from segments")
        .push("finalize");
    Ok(client.post(finalize, &json!({ "sha256": sha256 })).await?)
}

/// A request body streaming `len` bytes of the file from `offset` through `hashing`, advancing
/// the progress bar as bytes are handed to the connection.
async fn chunk_body(
    path: &Path,
    offset: u64,
    len: u64,
    hashing: &Arc<Mutex<Hashing>>,
    progress: &ProgressBar,
) -> anyhow::Result<reqwest::Body> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (progress, hashing) = (progress.clone(), hashing.clone());
    let mut at = offset;
    let stream = ReaderStream::with_capacity(file.take(len), READ_BUF).inspect_ok(move |bytes| {
        hashing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed(at, bytes);
        at += bytes.len() as u64;
        progress.inc(bytes.len() as u64);
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::body::Bytes;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post, put};

    use otter_core::model::Product;
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::client::ClientArgs;

    /// Something the fake server does instead of answering normally.
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        /// The next chunk fails with 503 and nothing of it is kept.
        Reject,
        /// The next chunk keeps only this many bytes, as when its connection breaks, then 503.
        CutOff(usize),
        /// The next session lookup fails with 503.
        LookupFails,
        /// The stored bytes are damaged before finalize hashes them.
        Damage,
    }

    /// An upload-session endpoint that behaves like the real one, with injectable faults.
    #[derive(Default)]
    struct Fake {
        size: u64,
        sha256: String,
        data: Vec<u8>,
        faults: VecDeque<Fault>,
        puts: usize,
        unauthorized: usize,
        /// The SHA-256 finalize carried, if any.
        finalized_with: Option<String>,
    }

    type Shared = Arc<Mutex<Fake>>;

    fn api_error(status: StatusCode, code: &str, extra: Value) -> Response {
        let mut body = json!({ "error": code, "message": format!("fake says {code}") });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        (status, Json(body)).into_response()
    }

    fn session(fake: &Fake) -> Json<UploadSession> {
        Json(UploadSession {
            id: "s1".into(),
            filename: "fw.bin".into(),
            size: fake.size,
            sha256: fake.sha256.clone(),
            offset: fake.data.len() as u64,
            created_at: 0,
            updated_at: 0,
        })
    }

    fn check_auth(fake: &mut Fake, headers: &HeaderMap) {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer secret") {
            fake.unauthorized += 1;
        }
    }

    async fn create(
        State(fake): State<Shared>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let mut fake = fake.lock().unwrap();
        check_auth(&mut fake, &headers);
        fake.size = body["size"].as_u64().unwrap();
        fake.sha256 = body["sha256"].as_str().unwrap_or_default().to_owned();
        (StatusCode::CREATED, session(&fake)).into_response()
    }

    async fn lookup(State(fake): State<Shared>) -> Response {
        let mut fake = fake.lock().unwrap();
        if let Some(Fault::LookupFails) = fake.faults.front() {
            fake.faults.pop_front();
            return api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", json!({}));
        }
        session(&fake).into_response()
    }

    async fn chunk(
        State(fake): State<Shared>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, u64>>,
        body: Bytes,
    ) -> Response {
        let mut fake = fake.lock().unwrap();
        check_auth(&mut fake, &headers);
        fake.puts += 1;
        let have = fake.data.len() as u64;
        if query["offset"] != have {
            return api_error(
                StatusCode::CONFLICT,
                "offset_mismatch",
                json!({ "offset": have }),
            );
        }
        if have + body.len() as u64 > fake.size {
            return api_error(StatusCode::BAD_REQUEST, "chunk_too_large", json!({}));
        }
        match fake.faults.front().copied() {
            Some(Fault::Reject) => {
                fake.faults.pop_front();
                api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", json!({}))
            }
            Some(Fault::CutOff(kept)) => {
                fake.faults.pop_front();
                fake.data.extend_from_slice(&body[..kept]);
                api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", json!({}))
            }
            _ => {
                fake.data.extend_from_slice(&body);
                session(&fake).into_response()
            }
        }
    }

    async fn finalize(State(fake): State<Shared>, Json(body): Json<Value>) -> Response {
        let mut fake = fake.lock().unwrap();
        if fake.data.len() as u64 != fake.size {
            return api_error(StatusCode::CONFLICT, "upload_incomplete", json!({}));
        }
        if let Some(claimed) = body["sha256"].as_str() {
            fake.sha256 = claimed.to_owned();
            fake.finalized_with = Some(claimed.to_owned());
        }
        if fake
            .faults
            .front()
            .is_some_and(|f| matches!(f, Fault::Damage))
        {
            fake.data[0] ^= 1;
        }
        let sha256 = hex::encode(Sha256::digest(&fake.data));
        if sha256 != fake.sha256 {
            return api_error(StatusCode::BAD_REQUEST, "checksum_mismatch", json!({}));
        }
        let artifact = Artifact {
            sha256,
            sha1: String::new(),
            md5: String::new(),
            size: fake.size,
            filename: "fw.bin".into(),
            created_at: 0,
        };
        (StatusCode::CREATED, Json(artifact)).into_response()
    }

    /// Starts the fake on a free port; returns a client for it and the fake's state.
    async fn start(faults: &[Fault]) -> (Client, Shared) {
        let fake: Shared = Arc::new(Mutex::new(Fake {
            faults: faults.iter().copied().collect(),
            ..Fake::default()
        }));
        let app = axum::Router::new()
            .route(
                "/api/v1/products",
                get(|| async { api_error(StatusCode::UNAUTHORIZED, "unauthorized", json!({})) }),
            )
            .route("/api/v1/uploads", post(create))
            .route("/api/v1/uploads/{id}", get(lookup).put(chunk))
            .route("/api/v1/uploads/{id}/finalize", post(finalize))
            .route(
                "/api/v1/products/{product}",
                get(|| async { api_error(StatusCode::NOT_FOUND, "product_not_found", json!({})) }),
            )
            .route(
                "/api/v1/products/{product}/releases",
                put(|| async { "not json" }).get(|| async { (StatusCode::BAD_GATEWAY, "<html>") }),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::new(&ClientArgs {
            server: format!("http://{addr}"),
            token: Some("secret".into()),
        })
        .unwrap();
        (client, fake)
    }

    /// A temp file of `size` bytes that are not all alike, so misplaced chunks change the hash.
    async fn image(size: usize) -> (tempfile::TempDir, LocalImage, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.bin");
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let image = local_image(&path).unwrap();
        (dir, image, bytes)
    }

    const TEST_PACING: Pacing = Pacing {
        chunk_size: 1000,
        first_backoff: Duration::from_millis(10),
    };

    #[tokio::test]
    async fn names_the_file() {
        let (_dir, image, _) = image(10_500).await;
        assert_eq!(image.size, 10_500);
        assert_eq!(image.filename, "fw.bin");
    }

    #[tokio::test]
    async fn bytes_damaged_on_the_way_are_refused() {
        // The image is hashed while it is sent; the server's digest of what it received must
        // match the one finalize carries.
        let (client, _) = start(&[Fault::Damage]).await;
        let (_dir, image, _) = image(2_500).await;
        let err = upload(&client, &image, TEST_PACING, &ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("checksum_mismatch"), "{err:#}");
    }

    #[tokio::test]
    async fn uploads_in_chunks() {
        let (client, fake) = start(&[]).await;
        let (_dir, image, bytes) = image(10_500).await;
        let artifact = upload(&client, &image, TEST_PACING, &ProgressBar::hidden())
            .await
            .unwrap();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        assert_eq!(artifact.sha256, sha256);
        let fake = fake.lock().unwrap();
        // One pass over the file: the session began before the image was hashed, and finalize
        // brought the digest.
        assert_eq!(fake.finalized_with.as_deref(), Some(sha256.as_str()));
        assert_eq!(fake.data, bytes);
        assert_eq!(fake.puts, 11);
        assert_eq!(fake.unauthorized, 0);
    }

    #[tokio::test]
    async fn an_empty_image_needs_no_chunks() {
        let (client, fake) = start(&[]).await;
        let (_dir, image, _) = image(0).await;
        upload(&client, &image, TEST_PACING, &ProgressBar::hidden())
            .await
            .unwrap();
        assert_eq!(fake.lock().unwrap().puts, 0);
    }

    #[tokio::test]
    async fn retries_and_resumes_where_the_server_is() {
        // A rejected chunk is resent; a cut-off chunk continues from the kept bytes, learnt from
        // the session; and when even that lookup fails, from the offset_mismatch answer.
        let faults = [
            Fault::Reject,
            Fault::CutOff(300),
            Fault::CutOff(100),
            Fault::LookupFails,
        ];
        let (client, fake) = start(&faults).await;
        let (_dir, image, bytes) = image(4_200).await;
        let artifact = upload(&client, &image, TEST_PACING, &ProgressBar::hidden())
            .await
            .unwrap();
        assert_eq!(artifact.size, 4_200);
        // Resent bytes were hashed once: finalize carried the file's own digest.
        assert_eq!(artifact.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(fake.lock().unwrap().data, bytes);
    }

    #[tokio::test]
    async fn gives_up_after_the_retries() {
        let faults = [Fault::Reject; MAX_RETRIES as usize + 1];
        let (client, fake) = start(&faults).await;
        let (_dir, image, _) = image(2_000).await;
        let err = upload(&client, &image, TEST_PACING, &ProgressBar::hidden())
            .await
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "upload of fw.bin stopped at byte 0 of 2000 after 5 retries: \
             fake says unavailable (unavailable)"
        );
        assert_eq!(fake.lock().unwrap().puts, MAX_RETRIES as usize + 1);
    }

    #[tokio::test]
    async fn errors_read_like_the_server_says() {
        let (client, _) = start(&[]).await;
        let err = client
            .get::<Product>(client.url(&["api", "v1", "products", "nope"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fake says product_not_found (product_not_found)"
        );
        assert!(!err.is_transient());

        let releases = client.url(&["api", "v1", "products", "p", "releases"]);
        let err = client.get::<Value>(releases.clone()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server answered 502 Bad Gateway (http_502)"
        );
        assert!(err.is_transient());

        let body = reqwest::Body::from("x");
        let err = client.put::<Value>(releases, body, 1).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unexpected response from http://"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        // Bind and drop to find a port that nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&ClientArgs {
            server: format!("http://127.0.0.1:{port}"),
            token: None,
        })
        .unwrap();
        let err = client
            .get::<Value>(client.url(&["api", "v1", "products"]))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "could not reach the otter server at http://127.0.0.1:{port}/: "
            )),
            "{text}"
        );
        assert!(err.is_transient());
    }
}
