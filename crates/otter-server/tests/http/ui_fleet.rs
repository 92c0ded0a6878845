//! The fleet pages in a real headless Chromium: devices (list, filters, tagging from a device's
//! page), rollouts (created from the form with two stages, a live chart that follows reports
//! without a reload, pause and resume, an automatic pause's reason), tokens (shown once,
//! revoked), users, and the audit log listing what the UI changed under the signed-in name.
//! Screenshots of every page at desktop and phone width land in `target/ui-screenshots/`.

use fantoccini::Locator;
use otter_testkit::browser::Browser;
use otter_testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, json_body};
use crate::rollouts::report;
use crate::ui::signed_in;

/// `device` checks in to `product` running `current`, and waits until the registry lists it
/// (sightings are written behind the check).
async fn check_in(server: &TestServer, product: &str, device: &str, current: &str) {
    server
        .check(product, &format!("device={device}&current={current}"))
        .await;
    let path = format!("/api/v1/products/{product}/devices/{device}");
    eventually("the device is in the registry", async || {
        let resp = server.admin(Method::GET, &path).send().await.unwrap();
        match resp.status() {
            StatusCode::OK => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
}

async fn tag(server: &TestServer, product: &str, tag: &str, device: &str) {
    let resp = server
        .admin(
            Method::POST,
            &format!("/api/v1/products/{product}/tags/{tag}?device={device}"),
        )
        .send()
        .await
        .unwrap();
    json_body(resp, StatusCode::OK).await;
}

/// Marks the open page, so a later check can tell it was not reloaded.
async fn mark(browser: &Browser) {
    browser
        .execute("window.stillHere = true; return true", vec![])
        .await
        .unwrap();
}

/// The text of the live chart's cell for `count` of stage `stage` equals `value`, on the page
/// marked by [`mark`].
fn count_reads(stage: u32, count: &str, value: u64) -> String {
    format!(
        "const cell = document.querySelector('#live [data-stage=\"{stage}\"][data-count=\"{count}\"]'); \
         return window.stillHere === true && cell !== null && cell.textContent === '{value}'"
    )
}

#[tokio::test]
async fn a_device_is_listed_found_by_its_tag_and_tagged_from_its_page() {
    let server = TestServer::start().await;
    server.create_product("door", "semver").await;
    server.release("door", "1.0.0", json!({})).await;
    check_in(&server, "door", "front", "1.0.0").await;
    check_in(&server, "door", "back", "1.0.0").await;
    tag(&server, "door", "lab", "back").await;
    let Some(browser) = signed_in(&server, "publisher").await else {
        return;
    };

    browser.goto(&server.url("/ui/devices")).await.unwrap();
    browser.wait_for("main#devices tr[data-device=front]").await;
    let all = browser.main_text().await;
    assert!(all.contains("front") && all.contains("back"), "{all}");
    browser.screenshots("devices").await;

    // The filter form is a GET: the tag filter finds the tagged device only.
    browser.fill("form.filters input[name=tag]", "lab").await;
    browser.press("Filter").await;
    browser
        .wait_until(
            "the list shows the tag's devices",
            "return location.search.includes('tag=lab') && \
             document.querySelector('tr[data-device=back]') !== null",
        )
        .await;
    assert!(
        browser
            .find(Locator::Css("tr[data-device=front]"))
            .await
            .is_err(),
        "an untagged device is filtered out"
    );

    // Tag the other one from its page.
    browser.goto(&server.url("/ui/devices")).await.unwrap();
    browser
        .wait_for("tr[data-device=front] a")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("main#device").await;
    let facts = browser.main_text().await;
    assert!(
        facts.contains("1.0.0") && facts.contains("native"),
        "{facts}"
    );
    browser.fill("#tags input[name=tag]", "canary").await;
    browser.press("Add tag").await;
    browser
        .wait_until(
            "the page shows the new tag",
            "const card = document.querySelector('#tags'); \
             return card !== null && card.textContent.includes('Remove tag canary')",
        )
        .await;
    let device = server.get_json("/api/v1/products/door/devices/front").await;
    assert_eq!(device["tags"], json!(["canary"]));
    browser.screenshots("device").await;
}

#[tokio::test]
async fn a_rollout_started_from_the_form_shows_its_devices_live_and_pauses_and_resumes() {
    let server = TestServer::start().await;
    server.create_product("lamp", "semver").await;
    server.release("lamp", "1.0.0", json!({})).await;
    let canaries = ["c1", "c2", "c3", "c4"];
    for device in canaries {
        check_in(&server, "lamp", device, "1.0.0").await;
        tag(&server, "lamp", "canary", device).await;
    }
    let Some(browser) = signed_in(&server, "publisher").await else {
        return;
    };

    // Two stages from the stage editor: the canaries, then half the fleet.
    browser
        .goto(&server.url("/ui/products/lamp/rollouts"))
        .await
        .unwrap();
    browser
        .fill("form[data-rollout] input[name=version]", "2.0.0")
        .await;
    browser.fill(".stage-row [data-stage=tags]", "canary").await;
    browser.fill(".stage-row [data-stage=percent]", "100").await;
    browser.press("Add stage").await;
    browser
        .fill(".stage-row:nth-child(2) [data-stage=percent]", "50")
        .await;
    browser.fill("[data-policy='pauseOn.failures']", "5").await;
    browser.screenshots("rollout-new").await;
    browser.press("Start rollout").await;
    browser.wait_for("main#rollout #live").await;
    let rollouts = server.get_json("/api/v1/products/lamp/rollouts").await;
    let rollout = &rollouts["items"][0];
    assert_eq!(
        rollout["stages"],
        json!([{"tags": ["canary"], "percent": 100.0}, {"percent": 50.0}])
    );
    assert_eq!(rollout["policy"]["pauseOn"]["failures"], 5);
    let id = rollout["id"].as_i64().unwrap();
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        format!("/ui/products/lamp/rollouts/{id}")
    );

    // The release comes after the rollout; the canaries take it and report, and the open page
    // follows without a reload.
    mark(&browser).await;
    server.release("lamp", "2.0.0", json!({})).await;
    for device in canaries {
        assert_eq!(
            server
                .offered("lamp", &format!("device={device}&current=1.0.0"))
                .await
                .as_deref(),
            Some("2.0.0")
        );
    }
    browser
        .wait_until("4 devices offered", &count_reads(1, "offered", 4))
        .await;
    for device in ["c1", "c2", "c3"] {
        report(&server, "lamp", device, "2.0.0", "installed").await;
    }
    report(&server, "lamp", "c4", "2.0.0", "downloading").await;
    browser
        .wait_until("3 installed", &count_reads(1, "installed", 3))
        .await;
    browser
        .wait_until("1 downloading", &count_reads(1, "downloading", 1))
        .await;
    report(&server, "lamp", "c4", "2.0.0", "failed").await;
    browser
        .wait_until("1 failed", &count_reads(1, "failed", 1))
        .await;
    browser.screenshots("rollout").await;

    // Pause and resume from the page.
    let state_is = |state: &str| {
        format!(
            "const s = document.querySelector('#live [data-state]'); return s !== null && s.dataset.state === '{state}'"
        )
    };
    browser.press("Pause").await;
    browser
        .wait_until("the state reads paused", &state_is("paused"))
        .await;
    let live = browser.find(Locator::Css("#live")).await.unwrap();
    let live = live.text().await.unwrap();
    assert!(live.contains("Paused: paused by hand"), "{live}");
    assert_eq!(
        server
            .get_json(&format!("/api/v1/products/lamp/rollouts/{id}"))
            .await["state"],
        "paused"
    );
    browser.press("Resume").await;
    browser
        .wait_until("the state reads running", &state_is("running"))
        .await;

    browser.goto(&server.url("/ui/rollouts")).await.unwrap();
    browser.wait_for("main#rollouts").await;
    let list = browser.main_text().await;
    assert!(
        list.contains(&format!("#{id}")) && list.contains("running"),
        "{list}"
    );
    browser.screenshots("rollouts").await;
}

#[tokio::test]
async fn an_automatic_pause_shows_its_reason_on_the_open_page() {
    let server = TestServer::start().await;
    server.create_product("fan", "semver").await;
    server.release("fan", "1.0.0", json!({})).await;
    server.release("fan", "2.0.0", json!({})).await;
    let resp = server
        .admin(Method::POST, "/api/v1/products/fan/rollouts")
        .json(&json!({"version": "2.0.0", "stages": [{"percent": 100}],
                      "policy": {"pauseOn": {"failures": 1}}}))
        .send()
        .await
        .unwrap();
    let id = json_body(resp, StatusCode::CREATED).await["id"].clone();
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    browser
        .goto(&server.url(&format!("/ui/products/fan/rollouts/{id}")))
        .await
        .unwrap();
    browser.wait_for("main#rollout #live").await;
    // A viewer is shown no moves (the API would refuse them anyway).
    assert!(browser.find(Locator::Css("#moves")).await.is_err());
    mark(&browser).await;
    assert_eq!(
        server
            .offered("fan", "device=f1&current=1.0.0")
            .await
            .as_deref(),
        Some("2.0.0")
    );
    report(&server, "fan", "f1", "2.0.0", "failed").await;
    browser
        .wait_until(
            "the reason shows without a reload",
            "const r = document.querySelector('#live #reason'); \
             return window.stillHere === true && r !== null && \
             r.textContent.includes('1 devices failed in this stage (pause at 1)')",
        )
        .await;
}

#[tokio::test]
async fn tokens_are_shown_once_and_revoked_users_managed_and_the_audit_log_names_the_user() {
    let server = TestServer::start().await;
    let Some(browser) = signed_in(&server, "admin").await else {
        return;
    };

    // A token, shown once in the page.
    browser.goto(&server.url("/ui/tokens")).await.unwrap();
    browser.fill("main#tokens input[name=name]", "ci-bot").await;
    browser
        .wait_for("main#tokens select[name=role]")
        .await
        .select_by_value("publisher")
        .await
        .unwrap();
    browser.press("Create token").await;
    browser
        .wait_until(
            "the new token shows",
            "const t = document.querySelector('[data-new-token]'); \
             return t !== null && t.textContent.length > 20",
        )
        .await;
    let token = browser
        .find(Locator::Css("[data-new-token]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let works = server
        .as_token(&token, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(works.status(), 200);
    browser.refresh().await.unwrap();
    browser.wait_for("tr[data-token=ci-bot]").await;
    let page = browser.main_text().await;
    assert!(!page.contains(&token), "the token is shown only once");

    // Revoked after a confirmation: listed as revoked, refused by the API.
    browser.press("Revoke ci-bot").await;
    browser.press("Confirm").await;
    browser.wait_for("tr[data-token=ci-bot] .badge.bad").await;
    let refused = server
        .as_token(&token, Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    browser.screenshots("tokens").await;

    // A user, created and disabled.
    browser.goto(&server.url("/ui/users")).await.unwrap();
    browser.fill("main#users input[name=name]", "ann").await;
    browser
        .fill("main#users input[name=password]", "a long enough password")
        .await;
    browser.press("Create user").await;
    browser.wait_for("tr[data-user=ann]").await;
    browser.press("Disable ann").await;
    browser.press("Confirm").await;
    browser.wait_for("tr[data-user=ann] .badge.bad").await;
    let users = server.get_json("/api/v1/users").await;
    let ann: Vec<&Value> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["name"] == "ann")
        .collect();
    assert_eq!(ann[0]["disabled"], true);
    browser.screenshots("users").await;

    // Every change above is in the audit log under the signed-in user's name.
    browser
        .goto(&server.url("/ui/audit?actor=ui-admin"))
        .await
        .unwrap();
    browser.wait_for("main#audit table#audit").await;
    let log = browser.main_text().await;
    for action in ["token.create", "token.revoke", "user.create", "user.update"] {
        assert!(log.contains(action), "{action} missing from:\n{log}");
    }
    browser.screenshots("audit").await;
    browser
        .fill("form.filters input[name=action]", "token.revoke")
        .await;
    browser.press("Filter").await;
    browser
        .wait_until(
            "only revocations are listed",
            "return location.search.includes('action=token.revoke') && \
             document.querySelectorAll('table#audit tbody tr').length === 1",
        )
        .await;
}

/// The page at `path` as the session `secret` gets it: status and HTML.
async fn page_as(server: &TestServer, secret: &str, path: &str) -> (StatusCode, String) {
    let resp = server
        .cookie_only(secret, Method::GET, path)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The "Next page" link of a list page, unescaped.
fn next_page(html: &str) -> Option<String> {
    let link = html.split("<nav class=\"pager\"><a href=\"").nth(1)?;
    Some(link.split('"').next()?.replace("&amp;", "&"))
}

/// Without a browser: what the pages answer for lists longer than a page, filters that mean
/// nothing, things that do not exist, and a viewer.
#[tokio::test]
async fn lists_page_with_their_filters_and_wrong_addresses_are_refused_pages() {
    let server = TestServer::start().await;
    server.create_product("hub", "semver").await;
    for i in 0..55 {
        server
            .check("hub", &format!("device=hub-{i:02}&current=1.0.0"))
            .await;
    }
    eventually("55 devices in the registry", async || {
        let all = server.all_pages("/api/v1/products/hub/devices", 500).await;
        if all.len() == 55 {
            Ok(())
        } else {
            Err(all.len().to_string())
        }
    })
    .await;
    let tagged = server
        .admin(Method::POST, "/api/v1/products/hub/tags/lab")
        .send()
        .await
        .unwrap();
    json_body(tagged, StatusCode::OK).await;
    server
        .create_user("vera", "viewer", "a long enough password")
        .await;
    let vera = server.login("vera", "a long enough password").await;

    let (status, first) = page_as(&server, &vera, "/ui/devices?product=hub&tag=lab").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first.matches("<tr data-device=").count(), 50);
    let next = next_page(&first).expect("a link to the next page");
    assert!(
        next.contains("tag=lab") && next.contains("cursor="),
        "{next}"
    );
    let (_, second) = page_as(&server, &vera, &next).await;
    assert_eq!(second.matches("<tr data-device=").count(), 5);
    assert_eq!(next_page(&second), None);

    // A viewer reads a device's page but is offered no change.
    let (status, device) = page_as(&server, &vera, "/ui/products/hub/devices/hub-00").await;
    assert_eq!(status, StatusCode::OK);
    // Its page (the top bar's logout form aside).
    let main = device.split("<main").nth(1).unwrap();
    assert!(main.contains("lab") && !main.contains("data-api"), "{main}");

    let (status, bogus) = page_as(&server, &vera, "/ui/devices?product=hub&status=bogus").await;
    assert_eq!(status, StatusCode::OK);
    assert!(bogus.contains("unknown status"), "{bogus}");
    for path in [
        "/ui/products/hub/devices/nobody",
        "/ui/products/nothing/rollouts",
        "/ui/products/hub/rollouts/7",
        "/ui/products/hub/rollouts/seven/chart",
    ] {
        let (status, html) = page_as(&server, &vera, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("main id=\"refused\""), "{path}: {html}");
    }
    for path in ["/ui/tokens", "/ui/users", "/ui/audit"] {
        let (status, _) = page_as(&server, &vera, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}
