//! Request heads as otter's own HTTP/1 loop reads them (`otter-server`, `http1::parse`): what it
//! takes is a `GET` or `HEAD` without a body, within the bytes it was given, and every header it
//! parsed reaches the request; HTTP/1.0 keeps the connection only when asked to.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otter_server::http1::{Parsed, parse};

fuzz_target!(|data: &[u8]| {
    let Parsed::Head(head) = parse(data) else {
        return;
    };
    assert!(head.size() <= data.len());
    let bytes = Bytes::copy_from_slice(&data[..head.size()]);
    let Some(request) = head.request(&bytes) else {
        return;
    };
    assert!(matches!(request.method().as_str(), "GET" | "HEAD"));
    // Header lines: those after the request line (which blank lines may precede) with a colon.
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(0);
    let lines = bytes[start..]
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|line| line.contains(&b':'))
        .count();
    assert_eq!(request.headers().len(), lines, "{:?}", String::from_utf8_lossy(&bytes));
    for name in ["transfer-encoding", "upgrade", "expect"] {
        assert!(!request.headers().contains_key(name));
    }
    if request.version() == axum::http::Version::HTTP_10 && head.keep_alive() {
        let asked = request
            .headers()
            .get_all("connection")
            .iter()
            .any(|v| v.as_bytes().to_ascii_lowercase().windows(10).any(|w| w == b"keep-alive"));
        assert!(asked);
    }
});
