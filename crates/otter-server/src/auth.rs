//! Admin authentication and roles: `Authorization: Bearer <token>`, checked against the
//! application's admin tokens (see `otter_app::tokens`), or the admin UI's session cookie
//! (`otter_session`, see `otter_app::accounts`), and the role each admin route declares in the
//! routes table ([`crate::router::admin_routes`]). A bearer token wins when a request has both.
//!
//! A request authenticated by its cookie that changes something (any method but GET, HEAD and
//! OPTIONS) must come from otter's own pages: [`same_origin`] checks its `Origin` (or `Referer`)
//! against its `Host`, and a mismatch is a 403 `cross_origin`. The cookie's `SameSite=Strict`
//! is the second layer. Bearer requests are not affected: a browser never adds the header by
//! itself, so a foreign page cannot make one.
//!
//! [`guard`] runs in front of every admin route, and only there: it authenticates, refuses a
//! role below the route's, hands the handler the [`Actor`] (through the [`Admin`] extractor) and,
//! for a change that succeeded, writes the audit entry ([`crate::audit`]). A handler cannot skip
//! any of it, and a handler taking [`Admin`] that is mounted outside the table fails closed.
//!
//! A refusal is a 401 with `WWW-Authenticate: Bearer` (RFC 6750) for a missing, unknown, revoked
//! or expired token or an ended session, and a 403 `forbidden` for a role too low. A token that
//! is not ours is logged with the client's address, at most one line a second with the count
//! since the last line, so that guessing shows in the log without flooding it. A missing token is not logged:
//! ota-backend's `/v1/create` takes one only optionally.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, REFERER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use otter_app::App;
use otter_app::accounts::{self, NewSession, Session};
use otter_app::tokens::Refused;
use otter_core::model::{Actor, Role};

use crate::error::ApiError;

/// The token in `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Proof that the routes table's [`guard`] let the request in, with who made it.
pub struct Admin(pub Actor);

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, ApiError> {
        match parts.extensions.get::<Actor>() {
            Some(actor) => Ok(Admin(actor.clone())),
            // Fail closed: a route nobody declared a role for is a bug, not an open door.
            None => Err(ApiError::internal(format!(
                "{} reached an admin handler without the role check: declare it in \
                 router::admin_routes",
                parts.uri.path()
            ))),
        }
    }
}

/// Why a request is not authenticated: answered 401 with `WWW-Authenticate`.
#[derive(Debug)]
pub struct Unauthorized(&'static str);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut refused =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", self.0).into_response();
        refused.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"otter\""),
        );
        refused
    }
}

/// The request's admin actor, or why it has none.
pub fn authenticate(
    app: &App,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
) -> Result<Actor, Unauthorized> {
    let message = match bearer(headers) {
        Some(token) => match app.tokens.authenticate(token, otter_store::now()) {
            Ok(actor) => return Ok(actor),
            Err(Refused::Revoked) => "the admin token has been revoked",
            Err(Refused::Expired) => "the admin token has expired",
            Err(Refused::Unknown) => {
                if let Some(failures) = FAILURES.record(Instant::now()) {
                    let remote = remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                    tracing::warn!(%remote, failures, "admin authentication failed");
                }
                "the admin token is not valid"
            }
        },
        None => "this endpoint needs `Authorization: Bearer <admin token>` or a session (log in)",
    };
    Err(Unauthorized(message))
}

/// What the routes table declares of one admin route, for its [`guard`].
#[derive(Clone)]
pub struct Rule {
    pub app: App,
    pub role: Role,
    /// The audit action of a change; `None` for a read.
    pub action: Option<&'static str>,
}

/// In front of every admin route: authentication, the role check, and the audit entry of a
/// change that succeeded.
pub async fn guard(
    State(rule): State<Rule>,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let actor = match admin_actor(&rule.app, request.method(), request.headers(), remote).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    if actor.role < rule.role {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this endpoint needs the {} role; the {} {:?} has {}",
                rule.role,
                actor.kind.as_str(),
                actor.name,
                actor.role
            ),
        )
        .into_response();
    }
    // The default target: the path's parameters, e.g. `door-sensor/1.1.0`.
    let target: Vec<&str> = params.iter().map(|(_, value)| value).collect();
    let target = target.join("/");
    request.extensions_mut().insert(actor.clone());
    let mut response = next.run(request).await;
    if let Some(action) = rule.action
        && response.status().is_success()
    {
        crate::audit::record(
            &rule.app,
            crate::audit::Change {
                actor,
                action,
                target,
                remote,
            },
            &mut response,
        )
        .await;
    }
    response
}

/// Who makes an admin request: the bearer token's actor, else the session cookie's (a change by
/// cookie only from otter's own origin), else a refusal.
async fn admin_actor(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
) -> Result<Actor, Response> {
    if bearer(headers).is_none()
        && let Some(secret) = cookie_secret(headers)
    {
        let session = match accounts::session(app, secret).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                return Err(Unauthorized("the session has ended: log in again").into_response());
            }
            // The database failed: a 500, not a logout.
            Err(e) => return Err(ApiError::from(e).into_response()),
        };
        if !is_safe(method) && !same_origin(headers) {
            return Err(cross_origin().into_response());
        }
        return Ok(session.actor);
    }
    authenticate(app, headers, remote).map_err(IntoResponse::into_response)
}

/// The name of the admin UI's session cookie.
pub const SESSION_COOKIE: &str = "otter_session";

/// The session cookie's secret in the request's `Cookie` headers, if any.
pub fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The live session behind the request's cookie, if any. A database failure is logged where it
/// is made (as an internal error) and opens nothing.
pub async fn session(app: &App, headers: &HeaderMap) -> Option<Session> {
    accounts::session(app, cookie_secret(headers)?)
        .await
        .ok()
        .flatten()
}

/// Whether cookies must be `Secure`: otter is reached over HTTPS (`--public-url` is https).
/// otter serves plain HTTP itself and trusts no proxy header, so the public URL decides.
pub fn secure_cookies(app: &App, _headers: &HeaderMap) -> bool {
    app.config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

/// The `Set-Cookie` value that hands a new session to the browser: `HttpOnly` (no script reads
/// it), `SameSite=Strict` (no other site's page sends it), for the whole site, until the session
/// expires.
pub fn session_cookie(new: &NewSession, secure: bool) -> HeaderValue {
    let max_age = (new.session.expires_at - otter_store::now()).max(0);
    cookie(&new.secret, max_age, secure)
}

/// The `Set-Cookie` value that makes the browser forget its session cookie.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    cookie("", 0, secure)
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("a session secret is hex")
}

/// Methods that change nothing, which the CSRF rule lets through.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF rule: the request's `Origin` (or, without one, its `Referer`) names the same
/// `host[:port]` as its `Host` header. A request with neither fails it.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(ORIGIN)
        .or_else(|| headers.get(REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(source) = source else {
        return false;
    };
    let Some((_, rest)) = source.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.eq_ignore_ascii_case(host)
}

/// 403 `cross_origin`: a cookie-authenticated change from another origin (or from nowhere).
pub fn cross_origin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "a change made with a session cookie must come from otter's own pages (its Origin or \
         Referer must match the Host)",
    )
}

/// Logs `name` in, for `POST /api/v1/session` and the web UI's login form alike: refuses a
/// login sent from another site's page (an `Origin` that is not otter's `Host`: browsers always
/// send one with a cross-site POST, the CLI sends none), checks the password, writes the audit
/// entry `user.login`, and returns the session with the `Set-Cookie` value that hands it over.
pub async fn log_in(
    app: &App,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    name: &str,
    password: &str,
) -> Result<(NewSession, HeaderValue), ApiError> {
    if headers.contains_key(ORIGIN) && !same_origin(headers) {
        return Err(cross_origin());
    }
    let new = accounts::login(app, name, password, remote.map(|addr| addr.ip())).await?;
    let cookie = session_cookie(&new, secure_cookies(app, headers));
    let change = crate::audit::Change {
        actor: new.session.actor.clone(),
        action: "user.login",
        target: new.session.actor.name.clone(),
        remote,
    };
    crate::audit::write(app, change, crate::audit::AuditNote::default()).await;
    Ok((new, cookie))
}

/// Failed admin authentications since the last log line.
static FAILURES: FailureLog = FailureLog {
    state: Mutex::new(None),
};

/// How often failed authentications are logged at most.
const LOG_EVERY: Duration = Duration::from_secs(1);

struct FailureLog {
    /// When the last line was written, and how many failures it has not told of.
    state: Mutex<Option<(Instant, u64)>>,
}

impl FailureLog {
    /// Counts a failure at `now`; returns how many to log (this one and those not yet told
    /// of) when a line is due.
    fn record(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some((last, unlogged)) if now.duration_since(*last) < LOG_EVERY => {
                *unlogged += 1;
                None
            }
            _ => {
                let count = state.map_or(0, |(_, unlogged)| unlogged) + 1;
                *state = Some((now, 0));
                Some(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn same_origin_compares_origin_or_referer_with_host() {
        let host = ("host", "otter.example:8080");
        for (source, same) in [
            (("origin", "http://otter.example:8080"), true),
            (("origin", "https://OTTER.example:8080"), true),
            (("origin", "http://otter.example"), false),
            (("origin", "http://evil.example:8080"), false),
            (("origin", "null"), false),
            (
                ("referer", "http://otter.example:8080/ui/products?x=1"),
                true,
            ),
            (
                ("referer", "http://otter.example:8080.evil.example/"),
                false,
            ),
        ] {
            assert_eq!(same_origin(&headers(&[host, source])), same, "{source:?}");
        }
        assert!(!same_origin(&headers(&[host])), "neither header");
        // Origin wins over Referer.
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example"),
            ("referer", "http://otter.example:8080/")
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; otter_session=abc; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie_secret(&map), Some("abc"));
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "otter_session=")])),
            None
        );
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "x_otter_session=1")])),
            None
        );
    }

    #[test]
    fn failures_are_logged_at_most_once_a_second_with_a_count() {
        let log = FailureLog {
            state: Mutex::new(None),
        };
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(log.record(at(0)), Some(1));
        assert_eq!(log.record(at(100)), None);
        assert_eq!(log.record(at(999)), None);
        assert_eq!(log.record(at(1000)), Some(3));
        assert_eq!(log.record(at(5000)), Some(1));
    }

    /// A handler taking [`Admin`] mounted outside the routes table is a bug: it answers 500
    /// even to the bootstrap admin, never lets a request through unchecked.
    #[tokio::test]
    async fn an_admin_handler_outside_the_routes_table_fails_closed() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower_service::Service as _;

        let dir = tempfile::tempdir().unwrap();
        let token = "a-bootstrap-token-0123456789abcdef0123";
        let opened = App::open(otter_app::Settings {
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(otter_app::settings::Secret::from(token)),
            ..otter_app::Settings::default()
        })
        .await
        .unwrap();
        let mut router: Router = Router::new()
            .route("/undeclared", get(|_: Admin| async { "let in" }))
            .with_state(opened.app.clone());
        let request = Request::get("/undeclared")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = router.call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
