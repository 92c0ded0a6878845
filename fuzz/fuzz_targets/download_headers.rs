//! A download's `Range`, `If-Range`, `If-Match`, `If-None-Match`, `If-Modified-Since` and
//! `If-Unmodified-Since` headers (`otter-server`), as `name: value` lines after a first line
//! holding the image's size. A range that is served lies within the image and is not empty;
//! 304 and 412 only answer requests that asked a condition, 416 only one that sent a range.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use otter_fuzz::headers;
use otter_server::download::{Answer, answer};

const ETAG: &str = "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"";

fuzz_target!(|data: &[u8]| {
    let (first, rest) = data.split_at(data.iter().position(|&b| b == b'\n').unwrap_or(data.len()));
    let size = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1000);
    let headers = headers(rest);
    // Sun, 06 Dec 2026 00:00:00 GMT: dates in the seeds fall on both sides.
    let modified = UNIX_EPOCH + Duration::from_secs(1_796_515_200);
    let has = |name: &str| headers.contains_key(name);
    match answer(&headers, ETAG, modified, size) {
        Answer::Part(range) => {
            assert!(
                range.start < range.end && range.end <= size,
                "{range:?} of {size}"
            );
            assert!(has("range"));
        }
        Answer::Unsatisfiable => assert!(has("range")),
        Answer::NotModified => assert!(has("if-none-match") || has("if-modified-since")),
        Answer::PreconditionFailed => assert!(has("if-match") || has("if-unmodified-since")),
        Answer::Whole => {}
    }
});
