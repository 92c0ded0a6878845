//! The ViperHTTP push receiver (`otter-agent`), fed whole requests: up to eight per input,
//! joined by `SEP`, each `METHOD URI`, header lines, a blank line and the body. They run in
//! order against one receiver, so sessions go through begin, chunks, finalize and abort.
//! The receiver parses its parameters while reading the body and a session's offsets and sizes
//! are checked where the bytes meet the staging file, so the requests go through its router
//! rather than through a parser on its own. A staging file never grows past the capacity.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use otter_agent::receiver::{InstallError, Installer, Received, Receiver, ReceiverConfig, router};
use otter_fuzz::{SEP, headers};
use tower::ServiceExt;

const CAPACITY: u64 = 64 * 1024;

struct Accept;

impl Installer for Accept {
    fn install(
        &self,
        image: Received,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), InstallError>> + Send + '_>> {
        assert!(image.size <= CAPACITY);
        Box::pin(async { Ok(()) })
    }

    fn mark_valid(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), InstallError>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

fn staging() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a staging directory"))
        .path()
}

/// `METHOD URI\nheaders\n\nbody` as a request; `None` where HTTP itself would refuse it.
fn request(bytes: &[u8]) -> Option<Request<Body>> {
    let head_end = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    let body = bytes.get(head_end + 2..).unwrap_or_default();
    let (line, header_lines) =
        head.split_at(head.iter().position(|&b| b == b'\n').unwrap_or(head.len()));
    let line = std::str::from_utf8(line).ok()?;
    let (method, uri) = line.split_once(' ')?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_vec()))
        .ok()?;
    *request.headers_mut() = headers(header_lines);
    Some(request)
}

fuzz_target!(|data: &[u8]| {
    let mut config = ReceiverConfig::new(staging().join("slot"), CAPACITY);
    config.token = Some("t".into());
    let receiver = Arc::new(Receiver::new(config, Arc::new(Accept)));
    let app = router(receiver);
    // A runtime per input: the receiver's idle-session watchers sleep for a minute, and
    // dropping the runtime ends them instead of piling them up.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime");
    runtime.block_on(async {
        let mut rest = data;
        for _ in 0..8 {
            let (one, more) = match rest.windows(SEP.len()).position(|w| w == SEP) {
                Some(at) => (&rest[..at], Some(&rest[at + SEP.len()..])),
                None => (rest, None),
            };
            if let Some(request) = request(one) {
                let response = app.clone().oneshot(request).await.expect("infallible");
                assert!(
                    !response.status().is_server_error(),
                    "{}",
                    response.status()
                );
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("a response body");
                assert!(
                    body.is_empty() || serde_json::from_slice::<serde_json::Value>(&body).is_ok()
                );
            }
            match more {
                Some(more) => rest = more,
                None => break,
            }
        }
    });
    if let Ok(meta) = std::fs::metadata(staging().join("slot")) {
        assert!(
            meta.len() <= CAPACITY,
            "the staging file grew past the capacity"
        );
    }
});
