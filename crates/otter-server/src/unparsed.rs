//! Answers to requests that never reach the router, in otter's JSON error format.
//!
//! hyper answers a request head it cannot parse by itself, before any service runs: 400 (a bad
//! request line, header, `Content-Length` or `Transfer-Encoding`), 414 (a request target past its
//! limit) or 431 (a head over about 400 KB, or more than 100 headers), each with an empty body.
//! It offers no hook to change them, so the connection's socket wrapper recognises them on their
//! way out and puts [`answer`] in their place. The wrapper also writes [`request_timeout`] to a
//! client cut for sending a request head too slowly.
//!
//! hyper's own answer is always exactly a status line, `connection: close`, `content-length: 0`
//! and `date`: no answer from the router has that shape (every one carries `x-request-id`), so
//! nothing else is ever replaced.

use bytes::{BufMut, Bytes, BytesMut};

/// The JSON answer for hyper's own answer `head`, if `head` is one.
pub(crate) fn answer(head: &[u8]) -> Option<Bytes> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let status = rest.get(..3)?;
    let (code, message) = match status {
        b"400" => (
            "malformed_request",
            "the request is not valid HTTP/1.1: its request line, a header, or its \
             Content-Length or Transfer-Encoding could not be parsed",
        ),
        b"414" => (
            "uri_too_long",
            "the request target is longer than otter accepts",
        ),
        b"431" => (
            "headers_too_large",
            "the request head is over about 400 KB or has more than 100 headers",
        ),
        _ => return None,
    };
    let line_end = find(rest, b"\r\n")?;
    let fields =
        rest[line_end + 2..].strip_prefix(b"connection: close\r\ncontent-length: 0\r\n")?;
    // `date: <IMF-fixdate>`, and the end of the head: nothing else may follow.
    let date = fields.strip_prefix(b"date: ")?.strip_suffix(b"\r\n\r\n")?;
    if date.len() != 29 || find(date, b"\r\n").is_some() {
        return None;
    }
    Some(json_answer(&head[..9 + line_end], code, message, date))
}

/// The 408 written to a client that sent part of a request head and then too little for
/// `--header-timeout`, before its connection is closed.
pub(crate) fn request_timeout() -> Bytes {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    json_answer(
        b"HTTP/1.1 408 Request Timeout",
        "request_timeout",
        "no complete request head arrived within --header-timeout",
        date.as_bytes(),
    )
}

/// A whole answer: `status_line`, the headers every otter error carries, and the JSON body.
fn json_answer(status_line: &[u8], code: &str, message: &str, date: &[u8]) -> Bytes {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let id = crate::request_log::new_id();
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(status_line);
    out.put_slice(b"\r\ncontent-type: application/json\r\nconnection: close\r\n");
    out.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.put_slice(format!("{}: {id}\r\n", crate::request_log::REQUEST_ID).as_bytes());
    out.put_slice(b"date: ");
    out.put_slice(date);
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body.as_bytes());
    out.freeze()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Dec 2026 14:24:44 GMT";

    fn hypers(status: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        )
        .into_bytes()
    }

    fn parts(answer: &Bytes) -> (String, serde_json::Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length = format!("content-length: {}\r\n", body.len());
        assert!(head.contains(&length), "{head}");
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hypers_own_answers_become_json_with_the_same_status() {
        for (status, code) in [
            ("400 Bad Request", "malformed_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let answer = answer(&hypers(status)).unwrap();
            let (head, body) = parts(&answer);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(
                head.contains("content-type: application/json\r\n"),
                "{head}"
            );
            assert!(head.contains("connection: close\r\n"), "{head}");
            assert!(head.contains(&format!("date: {DATE}")), "{head}");
            assert!(head.contains("x-request-id: "), "{head}");
            assert_eq!(body["error"], code);
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn nothing_else_is_replaced() {
        for head in [
            // An answer from the router: it carries x-request-id (and a body).
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: a\r\n\
             content-length: 2\r\ndate: Sun, 06 Dec 2026 14:24:44 GMT\r\n\r\n{}",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: \
             a\r\ndate: Sun, 06 Dec 2026 14:24:44 GMT\r\n\r\n",
            // Bytes after the head, another status, a cut-off head.
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, \
             06 Dec 2026 14:24:44 GMT\r\n\r\nx",
            "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 \
             Dec 2026 14:24:44 GMT\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n",
            "HTTP/1.0 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 \
             Dec 2026 14:24:44 GMT\r\n\r\n",
            "",
        ] {
            assert!(answer(head.as_bytes()).is_none(), "{head:?}");
        }
    }

    #[test]
    fn the_timeout_answer_is_a_408_in_json() {
        let (head, body) = parts(&request_timeout());
        assert!(
            head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{head}"
        );
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert_eq!(body["error"], "request_timeout");
    }
}
