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

/// The password of the users [`signed_in`] makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// Fills the login form the browser shows and sends it.
pub async fn log_in(browser: &Browser, name: &str, password: &str) {
    browser.fill("main#login input[name=name]", name).await;
    browser
        .fill("main#login input[name=password]", password)
        .await;
    browser.press("Log in").await;
}

/// A browser signed in to `server` with `role` (`admin`, `publisher`, `viewer`) as the user
/// `ui-{role}`, through the login form, showing the dashboard; `None` after a SKIP line when
/// Chromium is missing. Every UI test signs in through this one helper.
pub async fn signed_in(server: &TestServer, role: &str) -> Option<Browser> {
    let browser = Browser::start().await?;
    let name = format!("ui-{role}");
    server.create_user(&name, role, PASSWORD).await;
    browser.goto(&server.url("/ui/")).await.unwrap();
    log_in(&browser, &name, PASSWORD).await;
    browser.wait_for("main#dashboard").await;
    Some(browser)
}

/// A wrong password is refused on the login page; the right one leads to the page the user
/// asked for, with an HttpOnly cookie scripts cannot read; logging out ends the session, and
/// the page asked for again sends the browser back to the login page.
#[tokio::test]
async fn log_in_with_the_form_then_log_out() {
    let server = TestServer::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    server.create_user("ops", "publisher", PASSWORD).await;
    browser.goto(&server.url("/ui/?from=mail")).await.unwrap();
    log_in(&browser, "ops", "not the password at all").await;
    let refused = browser.wait_for("main#login .form-error").await;
    assert!(
        refused.text().await.unwrap().contains("name or password"),
        "the refusal says why"
    );
    browser.screenshots("login").await;
    log_in(&browser, "ops", PASSWORD).await;
    browser
        .wait_until(
            "the page asked for opens after the login",
            "return location.pathname + location.search === '/ui/?from=mail'",
        )
        .await;
    let scripts_see = browser
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(scripts_see, "", "the session cookie is HttpOnly");
    let who = browser.wait_for("header .who").await.text().await.unwrap();
    assert!(who.contains("ops"), "{who}");
    browser
        .wait_for("header .who button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("main#login").await;
    browser.goto(&server.url("/ui/")).await.unwrap();
    browser.wait_for("main#login").await;
    let audit = server.get_json("/api/v1/audit").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.login"), "{actions:?}");
    assert!(actions.contains(&"user.logout"), "{actions:?}");
}

/// The dashboard opens for a signed-in viewer, and the admin-only sections are not offered.
/// Everything the page loaded came from otter itself: no CDN, font or script from elsewhere.
#[tokio::test]
async fn a_viewer_sees_the_dashboard_without_admin_sections() {
    let server = TestServer::start().await;
    server.create_product("door-sensor", "semver").await;
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    let nav = browser.wait_for("header nav").await.text().await.unwrap();
    assert!(nav.contains("Products"), "{nav}");
    assert!(!nav.contains("Tokens"), "{nav}");
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map((r) => r.name)",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded.iter().any(|url| url.ends_with(".css")),
        "the stylesheet is among the loaded files: {loaded:?}"
    );
    for url in &loaded {
        assert!(url.starts_with(&server.base), "{url} is not otter's");
    }
}
