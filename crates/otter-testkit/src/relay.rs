//! A man in the middle at the HTTP level, for attack tests: it sits between a device and the
//! real server, may change what the device asks (the request line), answer in the server's
//! place (a status of its own, or an endless body), and change what the server answers (the
//! body), as an attacker on the path would. One request per connection (`Connection: close`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the device sent it.
#[derive(Debug, Clone)]
pub struct Asked {
    pub method: String,
    /// Path and query, e.g. `/api/v1/products/p/check?current=1.0.0`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Asked {
    /// The request with query parameter `name` set to `value` (added when missing).
    pub fn with_query(mut self, name: &str, value: &str) -> Asked {
        let (path, query) = self
            .target
            .split_once('?')
            .unwrap_or((self.target.as_str(), ""));
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
            .map(str::to_owned)
            .collect();
        pairs.push(format!("{name}={value}"));
        self.target = format!("{path}?{}", pairs.join("&"));
        self
    }
}

/// What the relay does with a request.
pub enum Move {
    /// Sends it (perhaps changed) to the server.
    Forward(Asked),
    /// Answers it with this status and an empty body, in the server's place.
    Status(u16),
    /// Answers 200 with a body that never ends (until the client hangs up, or 256 MiB).
    Endless,
}

type Before = dyn Fn(Asked) -> Move + Send + Sync;
type After = dyn Fn(&Asked, Vec<u8>) -> Vec<u8> + Send + Sync;

/// A running relay; it stops with the test's runtime.
pub struct Relay {
    addr: SocketAddr,
}

impl Relay {
    /// Relays requests on a free loopback port to `upstream` (`http://host:port`): `before`
    /// decides what becomes of each request, `after` may change the body the server answered.
    pub async fn start(
        upstream: &str,
        before: impl Fn(Asked) -> Move + Send + Sync + 'static,
        after: impl Fn(&Asked, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
    ) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let upstream = upstream.trim_end_matches('/').to_owned();
        let before: Arc<Before> = Arc::new(before);
        let after: Arc<After> = Arc::new(after);
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, before, after, client) = (
                    upstream.clone(),
                    before.clone(),
                    after.clone(),
                    client.clone(),
                );
                tokio::spawn(async move {
                    relay_one(stream, &upstream, &*before, &*after, &client).await;
                });
            }
        });
        Relay { addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn relay_one(
    mut stream: TcpStream,
    upstream: &str,
    before: &Before,
    after: &After,
    client: &reqwest::Client,
) {
    let Some(asked) = read_request(&mut stream).await else {
        return;
    };
    let asked = match before(asked) {
        Move::Forward(asked) => asked,
        Move::Status(status) => {
            let head = format!(
                "HTTP/1.1 {status} Relayed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.ok();
            return;
        }
        Move::Endless => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"hasUpdate\":\"";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let filler = vec![b'x'; 64 * 1024];
            for _ in 0..4096 {
                if stream.write_all(&filler).await.is_err() {
                    return;
                }
            }
            return;
        }
    };
    let method = reqwest::Method::from_bytes(asked.method.as_bytes()).expect("a method");
    let mut request = client.request(method, format!("{upstream}{}", asked.target));
    // The device's `Host` goes through as it is: download URLs built from it lead back here,
    // as they would through a transparent man in the middle.
    for (name, value) in &asked.headers {
        if !["connection", "content-length"].contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let Ok(response) = request.body(asked.body.clone()).send().await else {
        return;
    };
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if !["content-length", "connection", "transfer-encoding"].contains(&name.as_str()) {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
    }
    let body = after(&asked, response.bytes().await.unwrap_or_default().to_vec());
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    if stream.write_all(head.as_bytes()).await.is_ok() {
        stream.write_all(&body).await.ok();
    }
}

/// One request off the connection: the head, then a `Content-Length` body.
async fn read_request(stream: &mut TcpStream) -> Option<Asked> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target) = (request_line.next()?, request_line.next()?);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = crate::http::content_length(&buf[..head_end]);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0; length - body.len()];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Asked {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body,
    })
}
