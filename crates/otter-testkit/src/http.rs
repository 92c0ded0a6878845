//! HTTP answers as tests check them: a JSON body with its status asserted, and responses read
//! off a raw connection (where a client library would hide what is being tested).

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// An answer read off a raw connection.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// The `Content-Length` of a response head (0 when it has none).
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().expect("content-length"))
}

/// Parses one whole HTTP/1.1 response with a `Content-Length` body.
pub fn parse_raw_response(buf: &[u8]) -> RawResponse {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole response head");
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = content_length(&buf[..head_end]);
    let body = buf[head_end + 4..].to_vec();
    assert!(body.len() >= length, "response body cut short");
    RawResponse {
        status,
        headers,
        body: body[..length].to_vec(),
    }
}

/// Asserts `resp` is `status` with a JSON body and returns the body.
pub async fn json_body(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let url = resp.url().clone();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "{url} answered {got}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}
