//! The web UI's frame, in a real headless Chromium: the way in, the pages guard, the assets.
//! The pages' own flows are in the `ui_*` modules.

use otter_testkit::browser::Browser;
use reqwest::Method;
use reqwest::header::{ACCEPT, CACHE_CONTROL, LOCATION};

use crate::common::TestServer;

/// A browser asking for `/` lands on the UI, and without a session on the login page.
#[tokio::test]
async fn a_browser_at_the_root_is_sent_to_the_login_page() {
    let server = TestServer::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&server.url("/")).await.unwrap();
    browser.wait_for("main#login input[name=password]").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/login");
    assert_eq!(url.query(), Some("next=%2Fui%2F"));
}

/// An API client at `/` still gets the JSON 404 it always got; a page without a session is a
/// redirect, not a page.
#[tokio::test]
async fn only_browsers_are_redirected_and_pages_need_a_session() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    let page = client
        .get(server.url("/ui/"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()[LOCATION], "/ui/login?next=%2Fui%2F");
    // The bearer token of the API opens no page: pages are for browsers with a session.
    let bearer = server.admin(Method::GET, "/ui/").send().await.unwrap();
    assert_eq!(bearer.url().path(), "/ui/login");
}

/// The stylesheet and script are served under their content hash, cached for a year; any other
/// name is a 404.
#[tokio::test]
async fn assets_are_served_under_their_hash_and_cached() {
    let server = TestServer::start().await;
    let login = server.anon(Method::GET, "/ui/login").send().await.unwrap();
    let html = login.text().await.unwrap();
    let css = html
        .split('"')
        .find(|part| part.starts_with("/ui/assets/otter-") && part.ends_with(".css"))
        .expect("the login page links the stylesheet")
        .to_owned();
    let answer = server.anon(Method::GET, &css).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(answer.text().await.unwrap().contains("--accent"));
    let stale = server
        .anon(Method::GET, "/ui/assets/otter-000000000000.css")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
}

/// A browser signed in to `server` with `role` (`admin`, `publisher`, `viewer`) as the user
/// `ui-{role}`, showing the dashboard; `None` after a SKIP line when Chromium is missing. Every
/// UI test signs in through this one helper.
///
/// STAND-IN until the login form is wired (at the merge of accounts): the page logs in through
/// the session API, so the browser holds a real session cookie, as after the login form.
pub async fn signed_in(server: &TestServer, role: &str) -> Option<Browser> {
    let browser = Browser::start().await?;
    let name = format!("ui-{role}");
    let password = "correct horse battery staple";
    server.create_user(&name, role, password).await;
    browser.goto(&server.url("/ui/login")).await.unwrap();
    let status = browser
        .execute_async(
            "const done = arguments[2];\
             fetch('/api/v1/session', {method: 'POST', headers: {'content-type': \
             'application/json'}, body: JSON.stringify({name: arguments[0], password: \
             arguments[1]})}).then((r) => done(r.status), (e) => done(String(e)));",
            vec![name.into(), password.into()],
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "log in as ui-{role}");
    browser.goto(&server.url("/ui/")).await.unwrap();
    browser.wait_for("main#dashboard").await;
    Some(browser)
}

/// The dashboard opens for a signed-in viewer, and the admin-only sections are not offered.
#[tokio::test]
async fn a_viewer_sees_the_dashboard_without_admin_sections() {
    let server = TestServer::start().await;
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    let nav = browser.wait_for("header nav").await.text().await.unwrap();
    assert!(nav.contains("Products"), "{nav}");
    assert!(!nav.contains("Tokens"), "{nav}");
}
