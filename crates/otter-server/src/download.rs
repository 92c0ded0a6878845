//! Artifact downloads: `/dl/{sha256}` and `/dl/{product}/{version}/{filename}`.
//!
//! HTTP caching and resumption done by hand because devices depend on it: `Content-Length`,
//! `Accept-Ranges`, one `Range` → 206, unsatisfiable → 416, strong `ETag` (the SHA-256),
//! `If-None-Match`/`If-Modified-Since` → 304, `If-Match`/`If-Unmodified-Since` → 412, and
//! `If-Range` (which tower-http lacks). Several
//! ranges in one request get the whole file (allowed by RFC 9110, and no device asks for them).
//! The bytes stream from the blob store; nothing is buffered whole. Over HTTP/1 a local image is
//! sent with `sendfile(2)` ([`Delivery`]).
//!
//! With blobs in S3 the default [`DownloadMode`] is `redirect`: a `GET` is answered with
//! `302 Found` to a presigned URL valid for [`PRESIGNED_URL_TTL`], so the bytes flow from the
//! bucket to the device and ranges, conditional requests and resumption are the bucket's
//! business. `HEAD` and requests answered with 304 never leave otter. Device protocols whose
//! clients cannot follow redirects go through [`serve_proxied`].

use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, HOST, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED, LOCATION, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use metrics::gauge;
use otter_core::digest::is_hex_digest;
use otter_core::model::Artifact;

use otter_app::App;
use otter_store::blob::ByteStream;

use crate::DownloadMode;
use crate::error::{ApiError, ApiPath, ApiResult};

/// How long a presigned download URL is valid. A device that resumes later asks otter again
/// and gets a fresh one; a transfer that started in time finishes whatever it takes.
pub const PRESIGNED_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// `GET|HEAD /dl/{sha256}`
#[utoipa::path(
    get,
    path = "/dl/{sha256}",
    summary = "Download an image by its SHA-256",
    tag = "downloads",
    responses(
        (status = 200, description = "The image (also `HEAD`; `Range`, `If-None-Match` and `If-Modified-Since` work)", content(("application/octet-stream"))),
        (status = 206, description = "The range asked for"),
        (status = 302, description = "To a presigned URL of the object store (--download-mode redirect)"),
        (status = 304, description = "Not modified"),
    )
)]
pub async fn by_hash(
    State(app): State<App>,
    ApiPath(sha256): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !is_hex_digest(&sha256, 64) {
        return Err(not_found());
    }
    let sha256 = sha256.to_ascii_lowercase();
    let artifact = app.artifact(&sha256).await?.ok_or_else(not_found)?;
    serve(&app, &artifact, &method, &headers).await
}

/// `GET|HEAD /dl/{product}/{version}/{filename}`; the file name is cosmetic (devices and
/// browsers like URLs that end in `.bin`).
#[utoipa::path(
    get,
    path = "/dl/{product}/{version}/{filename}",
    summary = "Download a release's image",
    tag = "downloads",
    responses(
        (status = 200, description = "The release's image (also `HEAD`; `Range`, `If-None-Match` and `If-Modified-Since` work); the file name is cosmetic", content(("application/octet-stream"))),
        (status = 206, description = "The range asked for"),
        (status = 302, description = "To a presigned URL of the object store (--download-mode redirect)"),
        (status = 304, description = "Not modified"),
    )
)]
pub async fn by_release(
    State(app): State<App>,
    ApiPath((product, version, _filename)): ApiPath<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = app.find_product(&product).await?.ok_or_else(not_found)?;
    let release = index.release(&version).ok_or_else(not_found)?;
    let artifact = release.release.artifact.clone();
    drop(index);
    serve(&app, &artifact, &method, &headers).await
}

/// The scheme and host download URLs start with: the configured public URL, else the request's
/// `Host`.
pub fn url_base(app: &App, headers: &HeaderMap) -> String {
    url_base_for(app, request_host(headers))
}

/// The request's `Host`, if it sent one that is text.
pub fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(HOST).and_then(|h| h.to_str().ok())
}

/// [`url_base`] for a request that named `host`.
pub fn url_base_for(app: &App, host: Option<&str>) -> String {
    match &app.config.public_url {
        Some(url) => url.clone(),
        None => {
            let host = host.unwrap_or("localhost");
            // Not `format!`: this runs on every check answer.
            let mut base = String::with_capacity(7 + host.len());
            base.push_str("http://");
            base.push_str(host);
            base
        }
    }
}

/// The refusal of a request whose `Host` is not `host[:port]`, or that sends two (RFC 9110 §7.2
/// and RFC 9112 §3.2 ask for a 400): without `--public-url` that header becomes the start of
/// every download URL otter hands out, so `Host: evil.example/x?y=` must not reach a handler.
pub fn invalid_host(headers: &HeaderMap) -> Option<Response> {
    let valid = valid_hosts(headers.get_all(HOST).iter().map(HeaderValue::as_bytes));
    (!valid).then(|| {
        ApiError::bad_request(
            "invalid_host",
            "the Host header must be sent once, as host[:port], e.g. otter.example:8080",
        )
        .into_response()
    })
}

/// Whether a request's `Host` headers are none, or one that is `host[:port]`.
pub fn valid_hosts<'a>(mut hosts: impl Iterator<Item = &'a [u8]>) -> bool {
    match hosts.next() {
        None => true,
        // Two are refused too (RFC 9112 §3.2): which one a URL was built from would be a guess.
        Some(host) => {
            std::str::from_utf8(host).is_ok_and(is_host_and_port) && hosts.next().is_none()
        }
    }
}

/// `host[:port]`: a DNS name or IPv4 address, or an IPv6 address in brackets, and an optional
/// decimal port.
pub fn is_host_and_port(value: &str) -> bool {
    let (host_ok, port) = match value.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, port)) => (addr.parse::<Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = value.find(':').map_or((value, ""), |i| value.split_at(i));
            let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            // And a host the clients' URL parsers take (WHATWG URL, as the `url` crate
            // implements it): found by `fuzz/` (target `host`), `12xamp0.1` (a name ending in
            // a number is an IPv4 address to them, and this one is invalid) and `a.xn--g` (not
            // punycode) were accepted, and became download URLs no client could parse.
            let name_ok = !host.is_empty() && host.bytes().all(name);
            (
                name_ok && (plainly_a_host(host) || url::Host::parse(host).is_ok()),
                port,
            )
        }
    };
    host_ok
        && (port.is_empty()
            || port.strip_prefix(':').is_some_and(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
            }))
}

/// A host of name characters that URL parsers take without a doubt, decided without their IDNA
/// machinery, which showed in the check path's profile on every request: a dotted-decimal IPv4 address, or a name
/// whose last label starts with a letter (so it is no IPv4 number) and none of whose labels is
/// punycode (`xn--`, which must decode). Anything else goes to `url::Host::parse`.
fn plainly_a_host(host: &str) -> bool {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    last.starts_with(|c: char| c.is_ascii_alphabetic())
        && !host.split('.').any(|label| {
            label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        })
}

/// The `Cache-Control` of an answer that holds download URLs: shared caches may keep it only
/// when the URLs come from `--public-url`; built from the request's `Host`, one client's answer
/// is not another's.
pub fn url_cache_control(app: &App, max_age: &'static str) -> String {
    let scope = if app.config.public_url.is_some() {
        "public"
    } else {
        "private"
    };
    format!("{scope}, {max_age}")
}

fn not_found() -> ApiError {
    ApiError::not_found("artifact_not_found", "no such firmware image")
}

/// Answers a download in the configured [`DownloadMode`]: a `GET` in `redirect` mode gets
/// `302 Found` to a presigned URL of the object store (unless `If-None-Match` or
/// `If-Modified-Since` already make it a 304); everything else is [`serve_proxied`].
pub async fn serve(
    app: &App,
    artifact: &Artifact,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    if app.config.download_mode == Some(DownloadMode::Redirect)
        && method == Method::GET
        && !not_modified(headers, &etag(artifact), modified(artifact))
        && !precondition_failed(headers, &etag(artifact), modified(artifact))
    {
        match app
            .blobs
            .presigned_url(&artifact.sha256, &artifact.filename, PRESIGNED_URL_TTL)
            .await
        {
            Ok(Some(url)) => return redirect(artifact, &url),
            Ok(None) => {}
            // Signing needs credentials (e.g. from instance metadata): serve the bytes rather
            // than fail the device.
            Err(e) => tracing::warn!(error = %e, sha256 = %artifact.sha256,
                "could not presign a download URL; proxying"),
        }
    }
    serve_proxied(app, artifact, method, headers).await
}

/// `302 Found` to `url`. The answer must not be cached: the URL expires, the artifact does not.
fn redirect(artifact: &Artifact, url: &str) -> ApiResult<Response> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, url)
        .header(ETAG, etag(artifact))
        .header(CACHE_CONTROL, "private, no-store")
        .header(CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

fn etag(artifact: &Artifact) -> String {
    format!("\"{}\"", artifact.sha256)
}

fn modified(artifact: &Artifact) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(artifact.created_at.max(0) as u64)
}

/// Streams an artifact (or part of it) through otter with the caching and range headers
/// described above, whatever the download mode.
///
/// Device-protocol adapters whose clients cannot follow redirects must answer with this rather
/// than [`serve`]. Among the device protocols
/// (`docs/protocols/README.md`):
/// - THiNX: devices fetch `GET /device/firmware?ott=…` with ESP8266httpUpdate, which does not
///   follow redirects unless the firmware enables it, and THiNX's client library does not.
/// - IotaWatt: `GET /firmware/bin/<version>.bin` through asyncHTTPrequest, which does not
///   follow redirects at all; any answer but 200 makes the device delete the download.
///
/// otter's own `/dl` routes follow `--download-mode`; clients that follow redirects (curl
/// `-L`, browsers, reqwest) use them.
pub async fn serve_proxied(
    app: &App,
    artifact: &Artifact,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let size = artifact.size;
    let etag = etag(artifact);
    let modified = modified(artifact);
    let last_modified = httpdate::fmt_http_date(modified);

    let mut response = Response::builder()
        .header(ETAG, &etag)
        .header(LAST_MODIFIED, &last_modified)
        .header(ACCEPT_RANGES, "bytes")
        .header(CACHE_CONTROL, "public, max-age=31536000, immutable");

    let (status, range) = match answer(headers, &etag, modified, size) {
        Answer::PreconditionFailed => {
            return Ok(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("the image's ETag is {etag} and it was last modified {last_modified}"),
            )
            .into_response());
        }
        Answer::NotModified => {
            return response
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
        Answer::Whole => (StatusCode::OK, 0..size),
        Answer::Part(range) => {
            response = response.header(
                CONTENT_RANGE,
                format!("bytes {}-{}/{size}", range.start, range.end - 1),
            );
            (StatusCode::PARTIAL_CONTENT, range)
        }
        Answer::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the image is {size} bytes long"),
            )
            .with("size", size)
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refused.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Ok(refused);
        }
    };

    let mut body = Body::empty();
    if method != Method::HEAD {
        let (file, stream) = app
            .blobs
            .open_download(&artifact.sha256, size, range.clone())
            .await?;
        let delivery = Delivery::start(file, range.clone());
        body = Body::from_stream(delivery.body(stream));
        response = response.extension(delivery);
    }
    response
        .status(status)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, range.end - range.start)
        .header(
            CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", artifact.filename))
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        )
        .body(body)
        .map_err(ApiError::internal)
}

/// A download on its way to the connection, shared by its body and (as a response extension)
/// [`crate::http1`], which sends a local image with `sendfile(2)` instead of polling the body.
/// Either way its bytes count in `otter_download_bytes_total`, `otter_downloads_active` is up
/// until both are gone (finished, failed or disconnected), and what an adapter set with
/// [`Delivery::when_sent`] runs once the last byte has gone out (never for a download cut short).
#[derive(Clone)]
pub struct Delivery(Arc<Progress>);

struct Progress {
    /// The image's file, when it is local, until the loop takes it to send or the body (which
    /// reads the image its own way) lets it go: it is not held open for the whole of a download
    /// hyper serves.
    file: Mutex<Option<std::fs::File>>,
    /// The part of it this answer carries.
    range: Range<u64>,
    /// Bytes not yet sent.
    left: AtomicU64,
    then: Mutex<Option<Then>>,
}

type Then = Box<dyn FnOnce() + Send>;

impl Drop for Progress {
    fn drop(&mut self) {
        gauge!("otter_downloads_active").decrement(1.0);
    }
}

impl Delivery {
    fn start(file: Option<std::fs::File>, range: Range<u64>) -> Self {
        gauge!("otter_downloads_active").increment(1.0);
        Self(Arc::new(Progress {
            file: Mutex::new(file),
            left: AtomicU64::new(range.end - range.start),
            range,
            then: Mutex::new(None),
        }))
    }

    /// Runs `then` once the body has been sent in full.
    pub fn when_sent(&self, then: impl FnOnce() + Send + 'static) {
        *self.0.then.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(then));
    }

    /// The local file and the range of it the answer carries, for sending it whole.
    pub(crate) fn take_file(&self) -> Option<(std::fs::File, Range<u64>)> {
        let file = self
            .0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some((file, self.0.range.clone()))
    }

    /// Counts `bytes` more as sent; after the last, runs what was set.
    pub(crate) fn sent(&self, bytes: u64) {
        crate::metrics::download_bytes().increment(bytes);
        // One sender at a time (the body, or the HTTP/1 loop), so no lost update.
        let left = self.0.left.load(Relaxed).saturating_sub(bytes);
        self.0.left.store(left, Relaxed);
        if left == 0 {
            let then = self.0.then.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(then) = then {
                then();
            }
        }
    }

    /// `stream`, the answer's bytes, accounted for as they pass.
    fn body(&self, stream: ByteStream) -> ByteStream {
        let delivery = self.clone();
        let mut file_released = false;
        stream
            .inspect_ok(move |chunk| {
                if !file_released {
                    drop(delivery.take_file());
                    file_released = true;
                }
                delivery.sent(chunk.len() as u64);
            })
            .boxed()
    }
}

/// `If-None-Match` wins over `If-Modified-Since` (RFC 9110 §13.2.2).
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| modified <= since)
}

/// `If-Match` (strong comparison; `*` matches the one image there is), else
/// `If-Unmodified-Since`, refuse the request (RFC 9110 §13.2.2 evaluates them before
/// `If-None-Match`).
fn precondition_failed(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(im) = headers.get(IF_MATCH) {
        return !im.to_str().is_ok_and(|im| {
            im.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag == etag)
        });
    }
    headers
        .get(IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| modified > since)
}

/// What a download request's conditional and `Range` headers ask of an image of `size` bytes
/// whose strong ETag is `etag` and that was last modified at `modified`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `If-Match` or `If-Unmodified-Since` failed: 412.
    PreconditionFailed,
    /// `If-None-Match` or `If-Modified-Since` matched: 304.
    NotModified,
    /// 200 with the whole image.
    Whole,
    /// 206 with these bytes, never empty and never past the end.
    Part(Range<u64>),
    /// 416.
    Unsatisfiable,
}

/// The answer to a download's headers, before any byte is read: a pure function of what the
/// client sent (outside input, so `fuzz/` checks it on its own). RFC 9110 §13.2.2's order:
/// `If-Match`/`If-Unmodified-Since`, then `If-None-Match`/`If-Modified-Since`, then `Range` if
/// `If-Range` (an ETag or a date) still holds.
pub fn answer(headers: &HeaderMap, etag: &str, modified: SystemTime, size: u64) -> Answer {
    if precondition_failed(headers, etag, modified) {
        return Answer::PreconditionFailed;
    }
    if not_modified(headers, etag, modified) {
        return Answer::NotModified;
    }
    let range_applies = match headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| d == modified),
    };
    headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_applies)
        .map_or(Answer::Whole, |v| parse_range(v, size))
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (the unit is case-insensitive, RFC 9110
/// §14.1). Headers otter does not understand, and lists of several ranges, mean the whole image
/// (a server may ignore `Range`). Positions too large for a `u64` are past any image's end.
fn parse_range(header: &str, size: u64) -> Answer {
    let header = header.trim();
    let Some(spec) = header
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &header[6..])
    else {
        return Answer::Whole;
    };
    if spec.contains(',') {
        return Answer::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Answer::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (position(start), position(end)) {
        (Ok(s), Ok(e)) if s <= e => Some((s, e.saturating_add(1).min(size))),
        (Ok(_), Ok(_)) => return Answer::Whole,
        (Ok(s), Err(_)) if end.is_empty() => Some((s, size)),
        (Err(_), Ok(n)) if start.is_empty() => {
            if n == 0 {
                return Answer::Unsatisfiable;
            }
            Some((size.saturating_sub(n), size))
        }
        _ => None,
    };
    match parsed {
        None => Answer::Whole,
        Some((s, _)) if s >= size => Answer::Unsatisfiable,
        Some((s, e)) => Answer::Part(s..e),
    }
}

/// A decimal position of a range, saturating at `u64::MAX` (an overflowing start is then
/// unsatisfiable like any other start past the end, and an overflowing end means "to the end").
fn position(digits: &str) -> Result<u64, ()> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(digits.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_runs_when_sent_runs_once_the_last_byte_has_passed() {
        let runs = Arc::new(AtomicU64::new(0));
        let delivery = Delivery::start(None, 100..110);
        let counter = runs.clone();
        delivery.when_sent(move || {
            counter.fetch_add(1, Relaxed);
        });
        let chunks = ["abcd", "efg", "hij"].map(|c| Ok(bytes::Bytes::from_static(c.as_bytes())));
        let mut body = delivery.body(futures_util::stream::iter(chunks).boxed());
        for (i, expected) in [0, 0, 1].into_iter().enumerate() {
            body.next().await.unwrap().unwrap();
            assert_eq!(runs.load(Relaxed), expected, "after chunk {i}");
        }
        // Cut short: nothing runs.
        let cut = Delivery::start(None, 0..10);
        let counter = runs.clone();
        cut.when_sent(move || {
            counter.fetch_add(1, Relaxed);
        });
        cut.sent(9);
        drop(cut);
        assert_eq!(runs.load(Relaxed), 1);
    }

    #[test]
    fn ranges() {
        use Answer::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Part(0..100));
        assert_eq!(parse_range("bytes=50-5000", 100), Part(50..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=9-1", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-y", 100), Whole);
        assert_eq!(parse_range("Bytes=0-1", 100), Part(0..2));
        assert_eq!(parse_range("BYTES=-10", 100), Part(90..100));
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=99999999999999999999-99999999999999999999", 100),
            Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=0-99999999999999999999", 100),
            Part(0..100)
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999", 100),
            Part(0..100)
        );
        assert_eq!(parse_range("bytes=+5-", 100), Whole);
    }

    /// A host the clients' URL parsers refuse makes download URLs no client can use (`fuzz/`,
    /// target `host`): a name ending in a number must be a valid IPv4 address, `xn--` labels
    /// valid punycode.
    #[test]
    fn hosts_that_url_parsers_refuse_are_refused() {
        for bad in [
            "12xamp0.1",
            "a.XN--G",
            "xn--g:8080",
            "1.2.3.999",
            "example.0x1f",
            "example.0X",
            "example.1.",
        ] {
            assert!(!is_host_and_port(bad), "{bad}");
        }
        for ok in ["10.0.0.1:8080", "example.1a", "0x1f.example", "v1.example"] {
            assert!(is_host_and_port(ok), "{ok}");
        }
    }

    /// The shortcut never takes a host the URL parser would refuse.
    #[test]
    fn plain_hosts_are_hosts_to_url_parsers() {
        let labels = [
            "a", "Ab", "x1", "1", "0x1f", "xn--g", "XN--G", "a-b", "_", "", "99",
        ];
        let mut plain = 0;
        for a in labels {
            for b in labels {
                for c in labels {
                    for host in [
                        format!("{a}.{b}.{c}"),
                        format!("{a}.{b}.{c}."),
                        format!("{b}{c}"),
                    ] {
                        if plainly_a_host(&host) {
                            plain += 1;
                            assert!(url::Host::parse(&host).is_ok(), "{host}");
                        }
                    }
                }
            }
        }
        assert!(plain > 300, "{plain}");
        assert!(plainly_a_host("192.168.1.20") && plainly_a_host("ota.example.com"));
    }

    #[test]
    fn hosts() {
        for ok in [
            "otter.example",
            "otter.example:8080",
            "127.0.0.1:1",
            "[::1]:8080",
            "[::1]",
            "a_b",
        ] {
            assert!(is_host_and_port(ok), "{ok}");
        }
        for bad in [
            "evil.example/x?y=",
            "",
            ":80",
            "a:b",
            "a:",
            "a:99999",
            "[::1",
            "[x]:1",
            "a b",
            "a@b",
            "a:1:2",
        ] {
            assert!(!is_host_and_port(bad), "{bad}");
        }
    }
}
