//! A thin HTTP client for otter's admin API, shared by the admin subcommands and anything else
//! that manages a server.
//!
//! It knows where the server is and how to authenticate, builds URLs from path segments (so
//! product names and versions are always percent-encoded correctly, and a server mounted under a
//! path prefix works), and turns every failure into an [`Error`] whose text is what the user needs
//! to read: the server's own message and code, or which server could not be reached.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use otter_core::model::Page;
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// The largest API answer read: a page of a list is far smaller; anything larger is not an
/// answer of otter's (a broken proxy, or a server feeding the CLI without end).
const MAX_ANSWER: usize = 64 << 20;

/// Where the admin token is looked for when neither `--token` nor `OTTER_TOKEN` is given.
const TOKEN_FILE: &str = "admin-token";
/// The data directory `otter serve` uses by default, relative to the working directory.
const DEFAULT_DATA_DIR: &str = "otter-data";
/// The largest page the API hands out; fewer round trips when listing everything.
const PAGE_LIMIT: &str = "500";

/// How to reach and authenticate against an otter server.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the otter server (a path prefix such as https://example.com/otter is kept).
    #[arg(
        long,
        env = "OTTER_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL",
        global = true
    )]
    pub server: String,

    /// Admin token sent as `Authorization: Bearer`. When neither this nor OTTER_TOKEN is set,
    /// the token is read from `$OTTER_DATA/admin-token` (default `./otter-data/admin-token`), the
    /// file `otter serve` writes on first start.
    #[arg(
        long,
        env = "OTTER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    pub token: Option<String>,
}

/// An authenticated connection to one otter server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server: Url,
    token: Option<String>,
    /// Where a token would have been read from, to tell the user when they have none.
    token_file: PathBuf,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// The server answered with a non-2xx status.
    Api {
        status: StatusCode,
        /// The stable machine-readable code, e.g. `product_not_found`.
        code: String,
        message: String,
        /// The whole error body; some errors carry extra fields (`offset_mismatch` has `offset`).
        body: Value,
        /// Advice from the client side, e.g. how to supply a missing token.
        hint: Option<String>,
    },
    /// No connection could be made.
    Unreachable { server: Url, cause: String },
    /// The connection broke or timed out during the exchange.
    Transport {
        method: Method,
        url: Url,
        cause: String,
    },
    /// A 2xx answer whose body is not what the API documents.
    BadResponse { url: Url, cause: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                code,
                message,
                hint,
                ..
            } => {
                write!(f, "{message} ({code})")?;
                if let Some(hint) = hint {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            Error::Unreachable { server, cause } => {
                write!(f, "could not reach the otter server at {server}: {cause}")
            }
            Error::Transport { method, url, cause } => write!(f, "{method} {url} failed: {cause}"),
            Error::BadResponse { url, cause } => {
                write!(f, "unexpected response from {url}: {cause}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying the same request again later may succeed: the network failed or the
    /// server had a fault. A 4xx is the server's considered answer and would only repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Transport { .. } => true,
            Error::Api { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            Error::BadResponse { .. } => false,
        }
    }

    /// For a 409 `offset_mismatch` from an upload session: the offset the server has, from which
    /// the upload must continue.
    pub fn offset_mismatch(&self) -> Option<u64> {
        match self {
            Error::Api {
                status: StatusCode::CONFLICT,
                code,
                body,
                ..
            } if code == "offset_mismatch" => body.get("offset")?.as_u64(),
            _ => None,
        }
    }
}

impl Client {
    /// Checks the server URL and finds the admin token (flag, environment, or the token file).
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let server = Url::parse(&args.server)
            .map_err(|err| anyhow::anyhow!("invalid server URL {:?}: {err}", args.server))?;
        if !matches!(server.scheme(), "http" | "https") || server.cannot_be_a_base() {
            anyhow::bail!(
                "invalid server URL {:?}: expected http:// or https://",
                args.server
            );
        }
        let data_dir = std::env::var_os("OTTER_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let token_file = data_dir.join(TOKEN_FILE);
        let token = match &args.token {
            Some(token) => Some(token.trim().to_owned()),
            None => match std::fs::read_to_string(&token_file) {
                Ok(token) => Some(token.trim().to_owned()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => anyhow::bail!(
                    "could not read the admin token from {}: {err}",
                    token_file.display()
                ),
            },
        }
        .filter(|token| !token.is_empty());
        let http = reqwest::Client::builder()
            .user_agent(concat!("otter/", env!("CARGO_PKG_VERSION")))
            // Only connecting is bounded: a chunk upload over a slow link may legitimately take
            // minutes, and the server answers everything else promptly.
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client {
            http,
            server,
            token,
            token_file,
        })
    }

    /// The URL of `segments` under the server's base URL; each segment is percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.server.clone();
        url.path_segments_mut()
            .expect("Client::new accepts only URLs that can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// `GET url`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, Error> {
        self.send(Method::GET, url, |request| request).await
    }

    /// `POST url` with a JSON body, decoding the JSON answer.
    pub async fn post<B, T>(&self, url: Url, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::POST, url, |request| request.json(body))
            .await
    }

    /// `POST url` without a body, for actions such as finalizing an upload.
    pub async fn post_empty<T: DeserializeOwned>(&self, url: Url) -> Result<T, Error> {
        self.send(Method::POST, url, |request| request).await
    }

    /// `PUT url` with `len` raw bytes from `body`, decoding the JSON answer. The length is sent
    /// up front so the server can refuse an oversized body before any of it arrives.
    pub async fn put<T: DeserializeOwned>(
        &self,
        url: Url,
        body: reqwest::Body,
        len: u64,
    ) -> Result<T, Error> {
        self.send(Method::PUT, url, |request| {
            request.header(CONTENT_LENGTH, len).body(body)
        })
        .await
    }

    /// `PUT url` with a JSON body, decoding the JSON answer.
    pub async fn put_json<B, T>(&self, url: Url, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::PUT, url, |request| request.json(body))
            .await
    }

    /// `PATCH url` with a JSON body, decoding the JSON answer.
    pub async fn patch<B, T>(&self, url: Url, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::PATCH, url, |request| request.json(body))
            .await
    }

    /// `DELETE url`.
    pub async fn delete(&self, url: Url) -> Result<(), Error> {
        self.delete_json(url).await
    }

    /// `DELETE url`, decoding the JSON answer (what is left, how many changed).
    pub async fn delete_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, Error> {
        self.send(Method::DELETE, url, |request| request).await
    }

    /// Every item of a paginated list, following `nextCursor` until the last page. Items stay raw
    /// JSON so `--json` can print exactly what the server sent.
    pub async fn list_all(&self, url: Url) -> Result<Vec<Box<RawValue>>, Error> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_url = url.clone();
            {
                let mut query = page_url.query_pairs_mut();
                query.append_pair("limit", PAGE_LIMIT);
                if let Some(cursor) = &cursor {
                    query.append_pair("cursor", cursor);
                }
            }
            let page: Page<Box<RawValue>> = self.get(page_url).await?;
            items.extend(page.items);
            match page.next_cursor {
                // A cursor that does not move would loop forever; treat it as the end.
                Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => return Ok(items),
            }
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, Error> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let transport = |err: reqwest::Error| {
            if err.is_connect() {
                Error::Unreachable {
                    server: self.server.clone(),
                    cause: root_cause(&err),
                }
            } else {
                Error::Transport {
                    method: method.clone(),
                    url: url.clone(),
                    cause: root_cause(&err),
                }
            }
        };
        let mut response = build(request).send().await.map_err(transport)?;
        let status = response.status();
        // Read whole before parsing, so bounded: an answer past the cap is not otter's.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(Error::BadResponse {
                    url,
                    cause: format!("the answer is larger than {MAX_ANSWER} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            // An empty answer (204) reads as JSON `null`, so `()` can be asked for.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            serde_json::from_slice(bytes).map_err(|err| Error::BadResponse {
                url,
                cause: err.to_string(),
            })
        } else {
            Err(self.api_error(status, &bytes))
        }
    }

    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> Error {
        let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let (code, message) = match (field("error"), field("message")) {
            (Some(code), Some(message)) => (code, message),
            // Not otter's error format: most likely a proxy in between; the status is all there is.
            _ => (
                format!("http_{}", status.as_u16()),
                format!("the server answered {status}"),
            ),
        };
        let hint = (status == StatusCode::UNAUTHORIZED && self.token.is_none()).then(|| {
            format!(
                "no admin token was given: pass --token, set OTTER_TOKEN, or run where {} exists",
                self.token_file.display()
            )
        });
        Error::Api {
            status,
            code,
            message,
            body,
            hint,
        }
    }
}

/// The innermost cause of a reqwest error, e.g. `Connection refused (os error 111)`: reqwest's
/// own text names the URL (already said by our message) and wraps the cause several layers deep.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_keep_the_prefix() {
        let client = Client::new(&ClientArgs {
            server: "https://example.com/otter/".into(),
            token: Some("t".into()),
        })
        .unwrap();
        let url = client.url(&["api", "v1", "products", "p", "releases", "1.0.0+build/5"]);
        assert_eq!(
            url.as_str(),
            "https://example.com/otter/api/v1/products/p/releases/1.0.0+build%2F5"
        );
    }
}
