//! What otter's fuzz targets share: carving one input into several fields, HTTP headers from
//! text lines, and a Tokio runtime for the async readers and routers.
//!
//! Inputs stay plain bytes (no `arbitrary` structure) so the committed seeds are the real
//! formats, readable and editable: several fields are joined by [`SEP`].

use std::future::Future;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// Separates the fields of one input (`\n%%\n`, unlikely inside any of the formats).
pub const SEP: &[u8] = b"\n%%\n";

/// The first `N - 1` fields of `data` split at [`SEP`], and the rest as the last; missing
/// fields are empty.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for field in out.iter_mut().take(N - 1) {
        match find(rest, SEP) {
            Some(at) => {
                *field = &rest[..at];
                rest = &rest[at + SEP.len()..];
            }
            None => {
                *field = rest;
                return out;
            }
        }
    }
    out[N - 1] = rest;
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `name: value` lines as a header map; lines that are not a valid header are skipped, as a
/// server's HTTP parser would have refused them before any handler ran.
pub fn headers(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Runs `future` to completion on this thread's current-thread runtime (built once).
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread Tokio runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_and_pad() {
        assert_eq!(fields::<3>(b"a\n%%\nb"), [&b"a"[..], b"b", b""]);
        assert_eq!(fields::<2>(b"a\n%%\nb\n%%\nc"), [&b"a"[..], b"b\n%%\nc"]);
    }

    #[test]
    fn headers_skip_what_http_would_refuse() {
        let map = headers(b"Range: bytes=0-1\nno colon\nbad name: x\nIf-Match: \"a\"");
        assert_eq!(map.len(), 2);
        assert_eq!(map["range"], "bytes=0-1");
    }
}
