//! otter's own HTTP/1 loop for the requests devices make most: `GET` and `HEAD` without a body.
//!
//! Every connection starts here. A request head is parsed with `httparse`, handed to the same
//! router (every middleware and handler as over hyper), or for a plain device check to the
//! [`Lane`], and its answer written straight to the socket; a download of a local image goes
//! out with `sendfile(2)` ([`Delivery`]), so its bytes are never copied through otter. The first request this loop does not take — one with a body,
//! an `Upgrade` or `Expect` header, HTTP/2's preface, or a head it cannot parse — hands the
//! connection, with the bytes already read, to hyper for the rest of its life.
//!
//! Why a loop of its own: for a check, hyper's connection machinery was a fifth of the
//! instructions spent per request, and a download through hyper must be copied into the socket
//! from a buffer. What is kept from hyper's behaviour: keep-alive rules (HTTP/1.1 unless
//! `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`), pipelined requests,
//! `Content-Length` from the body's size, chunked bodies of unknown length (close-delimited
//! over HTTP/1.0), no body for `HEAD`, 1xx, 204 and 304, and a `Date` header.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::connections::{Activity, Busy, Metered, stopping};
use crate::download::Delivery;
use crate::request_log::REQUEST_ID;
use crate::router::Lane;

/// Most headers a request may have here; a request with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 64;
/// Longest request head read here before the connection goes to hyper, whose limits and
/// answers (`431 headers_too_large`) apply from there.
const MAX_HEAD: usize = 16 * 1024;
/// A body at most this long goes out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// Serves requests on `io` until the connection ends (`Ok(None)`) or meets a request hyper must
/// serve: then returns the bytes read and not yet served, that request's first.
pub(crate) async fn serve(
    io: &mut Metered,
    router: &Router,
    lane: Option<&Lane>,
    activity: &Arc<Activity>,
    remote: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<Option<BytesMut>> {
    let mut buf = BytesMut::with_capacity(4096);
    // Whether the bytes read since the last parse may end a head: only a line feed can, so a
    // head sent in many small pieces is not parsed again from its start for each of them (the
    // header deadline bounds how long that takes, not how much parsing it costs).
    let mut may_end = false;
    loop {
        let parsed = if may_end {
            parse(&buf)
        } else {
            Parsed::Partial
        };
        let head = match parsed {
            Parsed::Partial if buf.len() >= MAX_HEAD => return Ok(Some(buf)),
            Parsed::Partial => {
                buf.reserve(4096);
                let before = buf.len();
                let read = if buf.is_empty() {
                    // Between requests: a shutdown closes the connection here.
                    tokio::select! {
                        read = io.read_buf(&mut buf) => read?,
                        () = stopping(shutdown) => return Ok(None),
                    }
                } else {
                    io.read_buf(&mut buf).await?
                };
                if read == 0 {
                    return Ok(None);
                }
                // The first bytes are parsed whatever they are, so what is not HTTP/1 at all
                // (HTTP/2, a TLS hello) goes to hyper at once.
                may_end = before == 0 || buf[before..].contains(&b'\n');
                continue;
            }
            Parsed::NotHere => return Ok(Some(buf)),
            Parsed::Head(head) => head,
        };
        let bytes = buf.split_to(head.len).freeze();
        let busy = Busy::start(activity.clone());
        let laned = match lane {
            Some(lane) => {
                let target = &bytes[head.path.clone()];
                let id = head.values(&bytes, REQUEST_ID).next();
                let hosts = head.values(&bytes, "host");
                lane.answer(&head.method, target, hosts, id, remote).await
            }
            None => None,
        };
        let response = match laned {
            Some(response) => response,
            None => {
                let Some(mut request) = head.request(&bytes) else {
                    // Something only hyper's checks catch: it answers (or serves) it.
                    drop(busy);
                    let mut whole = BytesMut::from(&bytes[..]);
                    whole.extend_from_slice(&buf);
                    return Ok(Some(whole));
                };
                request.extensions_mut().insert(ConnectInfo(remote));
                let Ok(response) = tower_service::Service::call(&mut router.clone(), request).await;
                response
            }
        };
        let close = !head.keep_alive || *shutdown.borrow();
        let kept = write(io, response, &head, close).await?;
        drop(busy);
        if !kept {
            return Ok(None);
        }
        // A pipelined request may already be here, whole.
        may_end = !buf.is_empty();
    }
}

/// What the buffered bytes of a connection hold.
pub enum Parsed {
    /// Not yet a whole request head.
    Partial,
    /// A request hyper must serve (or answer with an error).
    NotHere,
    Head(Head),
}

/// A parsed request head, as offsets into the bytes it was parsed from.
pub struct Head {
    len: usize,
    method: Method,
    version: Version,
    path: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    keep_alive: bool,
}

/// Reads the request head at the start of `buf` (outside input: `fuzz/` checks it on its own).
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotHere,
    };
    let method = match request.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::NotHere,
    };
    let version = match request.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Parsed::NotHere,
    };
    let offset = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + part.len()
    };
    let Some(path) = request.path.map(|p| offset(p.as_bytes())) else {
        return Parsed::NotHere;
    };
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut offsets = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || (name.eq_ignore_ascii_case("content-length") && header.value != b"0")
        {
            return Parsed::NotHere;
        }
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        offsets.push((offset(name.as_bytes()), offset(header.value)));
    }
    let keep_alive = match version {
        Version::HTTP_10 => connection_keep_alive && !connection_close,
        _ => !connection_close,
    };
    Parsed::Head(Head {
        len,
        method,
        version,
        path,
        headers: offsets,
        keep_alive,
    })
}

impl Head {
    /// How many bytes of the buffer the head takes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// Whether the connection stays open after the answer.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The values of the headers named `name` (lowercase), from the `bytes` the head was
    /// parsed from.
    pub fn values<'a>(
        &'a self,
        bytes: &'a [u8],
        name: &'a str,
    ) -> impl Iterator<Item = &'a [u8]> + Clone {
        self.headers
            .iter()
            .filter(move |(n, _)| bytes[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(move |(_, value)| &bytes[value.clone()])
    }

    /// The request, sharing `bytes` (the head) rather than copying its parts; `None` if the
    /// target or a header is not one `http` takes.
    pub fn request(&self, bytes: &Bytes) -> Option<Request<Body>> {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = self.method.clone();
        *request.version_mut() = self.version;
        *request.uri_mut() = Uri::from_maybe_shared(bytes.slice(self.path.clone())).ok()?;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(&bytes[name.clone()]).ok()?,
                HeaderValue::from_maybe_shared(bytes.slice(value.clone())).ok()?,
            );
        }
        Some(request)
    }
}

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 with no known length: the body ends with the connection.
    UntilClose,
}

/// Writes `response`; returns whether the connection stays open for another request.
async fn write(
    io: &mut Metered,
    response: Response<Body>,
    head: &Head,
    close: bool,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodiless = head.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let framing = match (bodiless, declared, body.size_hint().exact()) {
        (true, _, _) => Framing::None,
        (false, Some(length), _) | (false, None, Some(length)) => Framing::Length(length),
        (false, None, None) if head.version == Version::HTTP_10 => Framing::UntilClose,
        (false, None, None) => Framing::Chunked,
    };
    let close = close
        || framing == Framing::UntilClose
        || parts
            .headers
            .get(CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));

    // Room for the head and a body small enough to go out with it, so it is never regrown.
    let inline = body
        .size_hint()
        .exact()
        .filter(|n| *n <= INLINE_BODY as u64);
    let mut out = Vec::with_capacity(1024 + inline.unwrap_or(0) as usize);
    out.extend_from_slice(match head.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !parts.headers.contains_key(DATE) {
        date(&mut out);
    }
    match framing {
        Framing::Length(length) if declared.is_none() => {
            let mut digits = String::new();
            let _ = write!(digits, "{length}");
            header(&mut out, b"content-length", digits.as_bytes());
        }
        Framing::Chunked => header(&mut out, b"transfer-encoding", b"chunked"),
        _ => {}
    }
    if close {
        header(&mut out, b"connection", b"close");
    } else if head.version == Version::HTTP_10 {
        header(&mut out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");

    if framing == Framing::None {
        io.write_all(&out).await?;
        return Ok(!close);
    }
    #[cfg(target_os = "linux")]
    if let Framing::Length(length) = framing
        && let Some(delivery) = parts.extensions.get::<Delivery>()
        && let Some((file, range)) = delivery.take_file()
        && range.end - range.start == length
    {
        io.send_file(&out, &file, range).await?;
        delivery.sent(length);
        return Ok(!close);
    }

    let mut sent = 0u64;
    let mut head_out = Some(out);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(io::Error::other)?.into_data() else {
            continue; // trailers: not sent
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(length) = framing
            && sent > length
        {
            return Err(io::Error::other(
                "response body longer than its Content-Length",
            ));
        }
        let mut pending = head_out.take().unwrap_or_default();
        if framing == Framing::Chunked {
            let mut size = String::new();
            let _ = write!(size, "{:x}\r\n", data.len());
            pending.extend_from_slice(size.as_bytes());
        }
        if data.len() <= INLINE_BODY {
            pending.extend_from_slice(&data);
            if framing == Framing::Chunked {
                pending.extend_from_slice(b"\r\n");
            }
            io.write_all(&pending).await?;
        } else {
            io.write_all(&pending).await?;
            io.write_all(&data).await?;
            if framing == Framing::Chunked {
                io.write_all(b"\r\n").await?;
            }
        }
    }
    if let Some(out) = head_out {
        io.write_all(&out).await?;
    }
    match framing {
        Framing::Chunked => io.write_all(b"0\r\n\r\n").await?,
        Framing::Length(length) if sent != length => {
            return Err(io::Error::other(
                "response body shorter than its Content-Length",
            ));
        }
        _ => {}
    }
    Ok(!close)
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `Date` header, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        header(out, b"date", text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        match parse(raw.as_bytes()) {
            Parsed::Head(head) => head,
            Parsed::Partial => panic!("partial: {raw:?}"),
            Parsed::NotHere => panic!("not here: {raw:?}"),
        }
    }

    fn not_here(raw: &str) -> bool {
        matches!(parse(raw.as_bytes()), Parsed::NotHere)
    }

    #[test]
    fn bodiless_gets_and_heads_are_served_here() {
        let first = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        // A pipelined second request is left in the buffer.
        let h = head(&format!("{first}GET"));
        assert_eq!(h.len, first.len());
        assert!(h.keep_alive);
        let bytes = Bytes::from_static(first.as_bytes());
        let request = h.request(&bytes).unwrap();
        assert_eq!(request.uri(), "/a?b=c");
        assert_eq!(request.headers()["host"], "x");
        assert_eq!(head("HEAD / HTTP/1.1\r\n\r\n").method, Method::HEAD);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn what_hyper_must_serve_is_left_to_it() {
        assert!(not_here("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
        assert!(not_here("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
        assert!(not_here(
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(not_here("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"));
        assert!(not_here("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
        assert!(not_here("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(not_here("GET /\x01 HTTP/1.1\r\n\r\n"));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x{i}: y\r\n")).collect();
        assert!(not_here(&format!("GET / HTTP/1.1\r\n{many}\r\n")));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost:"), Parsed::Partial));
    }
}
