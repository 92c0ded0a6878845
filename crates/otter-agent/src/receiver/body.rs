//! Request bodies and parameters as ViperHTTP reads them: chunks as raw bytes (streamed) or in
//! a JSON or form body (`data_base64`, `data_hex`), and named values from a JSON object, a form
//! or the query string.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Uri};
use base64::Engine;
use serde_json::{Map, Value};

use super::{PARAMS_LIMIT, PushError, PushResult, Receiver};

/// A chunk (or one-shot upload) body: raw bytes, streamed, or a JSON/form body carrying them as
/// `data_base64` or `data_hex`.
pub(super) enum ChunkBody {
    Raw {
        body: Body,
        /// From `Content-Length`, when sent.
        len: Option<u64>,
    },
    Decoded {
        data: Bytes,
        params: Params,
    },
}

impl ChunkBody {
    pub(super) async fn read(receiver: &Receiver, request: Request) -> PushResult<Self> {
        if !is_form(request.headers()) && !is_json(request.headers()) {
            let len = request
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            return Ok(ChunkBody::Raw {
                body: request.into_body(),
                len,
            });
        }
        // Hex doubles the size; a little more room for the other fields.
        let limit = usize::try_from(receiver.config.capacity.saturating_mul(2))
            .unwrap_or(usize::MAX)
            .saturating_add(PARAMS_LIMIT);
        let (params, bytes) = Params::read(request, limit).await?;
        let data = if let Some(text) = params.text("data_base64") {
            let text: String = text.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| PushError::invalid(format!("invalid data_base64: {e}")))?
                .into()
        } else if let Some(text) = params.text("data_hex") {
            hex::decode(text.trim())
                .map_err(|e| PushError::invalid(format!("invalid data_hex: {e}")))?
                .into()
        } else {
            // As ViperHTTP: a body without either field is the data itself.
            bytes
        };
        Ok(ChunkBody::Decoded { data, params })
    }

    pub(super) fn len(&self) -> Option<u64> {
        match self {
            ChunkBody::Raw { len, .. } => *len,
            ChunkBody::Decoded { data, .. } => Some(data.len() as u64),
        }
    }

    /// The body's own parameters (with the query's filling in), when it had any.
    pub(super) fn params(&self) -> Option<&Params> {
        match self {
            ChunkBody::Raw { .. } => None,
            ChunkBody::Decoded { params, .. } => Some(params),
        }
    }
}

fn content_type_is(headers: &HeaderMap, prefix: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(prefix))
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/json")
}

fn is_form(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/x-www-form-urlencoded")
}

/// A request's named values as ViperHTTP reads them: a JSON object body, else a form body, with
/// the query string filling in what the body does not name.
pub(super) struct Params(Map<String, Value>);

impl Params {
    pub(super) fn query(uri: &Uri) -> Self {
        let pairs = uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()));
        Params(
            pairs
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    }

    /// The parameters of `request`, and its body.
    pub(super) async fn read(request: Request, limit: usize) -> PushResult<(Self, Bytes)> {
        let mut params = Params::query(request.uri());
        let form = is_form(request.headers());
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|e| PushError::invalid(format!("unreadable body: {e}")))?;
        let body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => object,
            _ if form => url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
            _ => Map::new(),
        };
        params.0.extend(body);
        Ok((params, bytes))
    }

    /// A value as text; JSON `null` counts as absent.
    pub(super) fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub(super) fn flag(&self, key: &str, default: bool) -> bool {
        if let Some(Value::Bool(b)) = self.0.get(key) {
            return *b;
        }
        match self
            .text(key)
            .map(|t| t.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            _ => default,
        }
    }

    /// A non-negative integer.
    pub(super) fn count(&self, key: &str) -> PushResult<Option<u64>> {
        let Some(text) = self.text(key) else {
            return Ok(None);
        };
        match text.trim().parse::<i128>() {
            Ok(n) if n < 0 => Err(PushError::invalid(format!("{key} must be >= 0"))),
            Ok(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| PushError::invalid(format!("{key} must be int"))),
            Err(_) => Err(PushError::invalid(format!("{key} must be int"))),
        }
    }

    /// A SHA-256 in hex, lower-cased; empty counts as absent.
    pub(super) fn sha256(&self, key: &str) -> PushResult<Option<String>> {
        let Some(text) = self.text(key).map(|t| t.trim().to_ascii_lowercase()) else {
            return Ok(None);
        };
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() != 64 {
            return Err(PushError::invalid(format!("{key} must be 64 hex chars")));
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PushError::invalid(format!(
                "{key} must be lowercase/uppercase hex"
            )));
        }
        Ok(Some(text))
    }
}
