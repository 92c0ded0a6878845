//! HTTP answers as tests check them: a JSON body with its status asserted, and responses read
//! off a raw connection (where a client library would hide what is being tested).

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// An answer read off a raw connection.
pub struct RawResponse {
    /// As sent, e.g. `HTTP/1.0 200 OK`.
    pub status_line: String,
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

/// The answer at the start of `buf` and the number of bytes it took, or `None` while it is not
/// all there. Its body is as long as its `Content-Length`, unless it answers a `HEAD` (`head`).
fn cut_raw_response(buf: &[u8], head: bool) -> Option<(RawResponse, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let length = if head {
        0
    } else {
        content_length(&buf[..head_end])
    };
    let body = buf.get(head_end + 4..head_end + 4 + length)?.to_vec();
    let text = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line").to_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let answer = RawResponse {
        status_line,
        status,
        headers,
        body,
    };
    Some((answer, head_end + 4 + length))
}

/// The first `count` answers in `buf`, or `None` while they are not all there.
pub fn complete_raw_responses(buf: &[u8], count: usize) -> Option<Vec<RawResponse>> {
    let mut rest = buf;
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let (answer, used) = cut_raw_response(rest, false)?;
        answers.push(answer);
        rest = &rest[used..];
    }
    Some(answers)
}

/// Every answer in `buf`, one after another (those at the positions in `heads` answer a `HEAD`,
/// so have no body whatever their `Content-Length`).
pub fn parse_raw_responses(mut buf: &[u8], heads: &[usize]) -> Vec<RawResponse> {
    let mut answers = Vec::new();
    while !buf.is_empty() {
        let (answer, used) = cut_raw_response(buf, heads.contains(&answers.len()))
            .unwrap_or_else(|| panic!("answer cut short: {}", String::from_utf8_lossy(buf)));
        answers.push(answer);
        buf = &buf[used..];
    }
    answers
}

/// Parses one whole HTTP/1.1 response with a `Content-Length` body.
pub fn parse_raw_response(buf: &[u8]) -> RawResponse {
    cut_raw_response(buf, false)
        .unwrap_or_else(|| panic!("response cut short: {}", String::from_utf8_lossy(buf)))
        .0
}

/// Asserts `resp` is `status` with a JSON body and returns the body.
pub async fn json_body(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let url = resp.url().clone();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "{url} answered {got}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}
