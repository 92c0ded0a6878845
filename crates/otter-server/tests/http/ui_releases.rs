//! The web UI's products, releases, dashboard and signing pages in a real headless Chromium:
//! create a product, upload through the resumable upload API (resuming a cut chunk), publish
//! with the form's checks, yank with confirmation; what a viewer may not do; the dashboard's
//! version chart; roots and expiring signatures; a release's delta patches.

use fantoccini::Locator;
use otter_core::signing::documents::ROOT_TYPE;
use otter_testkit::browser::Browser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, firmware, sha256_hex};
use crate::deltas::{built, set_policy};
use crate::signing::{publish_release_signed, root_doc, seal, signed_product};
use crate::ui::signed_in;

const DAY: i64 = 86_400;

/// Writes `bytes` to a file named `name` in a new temporary directory, for a file input.
fn image_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path.display().to_string())
}

/// Chooses `path` in the product page's file input and waits until the upload is finalized.
/// (The drop zone hands a dropped file to the same function as the file input; WebDriver
/// cannot drive a drag-and-drop of a file from outside the page reliably, so the tests use the
/// input.)
async fn upload_through_the_page(browser: &Browser, path: &str) {
    browser
        .wait_for("[data-upload] input[type=file]")
        .await
        .send_keys(path)
        .await
        .unwrap();
    browser
        .wait_until(
            "the upload reaches 100 % and the publish form appears",
            "const p = document.querySelector('[data-upload] progress'); \
             return p.value === p.max && !document.querySelector('form[name=publish]').hidden",
        )
        .await;
}

/// The value of the form field matching `selector`.
async fn value_of(browser: &Browser, selector: &str) -> String {
    browser
        .wait_for(selector)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// How many elements match `selector` on the page.
async fn count(browser: &Browser, selector: &str) -> usize {
    browser
        .find_all(Locator::Css(selector))
        .await
        .unwrap()
        .len()
}

/// An admin creates a product, uploads an image, is stopped by the browser on a 61-character
/// title before anything is sent, publishes, finds the release listed, and yanks it after
/// confirming: the page shows it yanked and devices are no longer offered it.
#[tokio::test]
async fn a_release_is_uploaded_published_and_yanked_in_the_browser() {
    let server = TestServer::start().await;
    let Some(browser) = signed_in(&server, "admin").await else {
        return;
    };
    browser.goto(&server.url("/ui/products")).await.unwrap();
    browser.wait_for("form[name=create-product]").await;
    browser
        .fill("form[name=create-product] input[name=name]", "door-sensor")
        .await;
    browser.press("Create product").await;
    browser.wait_for("main#product").await;
    assert!(browser.main_text().await.contains("No releases yet"));

    let image = firmware(7, 300_000);
    let (_dir, path) = image_file("door-sensor-1.0.0.bin", &image);
    upload_through_the_page(&browser, &path).await;
    let status = browser
        .wait_for(".upload-status")
        .await
        .text()
        .await
        .unwrap();
    assert!(status.starts_with("100 %"), "{status}");
    assert_eq!(
        value_of(&browser, "form[name=publish] input[name=artifact]").await,
        sha256_hex(&image)
    );

    // A title one character over the contract's limit: refused in the page, nothing sent.
    let field = |name: &str| format!("form[name=publish] [name={name}]");
    browser.fill(&field("version"), "1.0.0").await;
    browser.fill(&field("title"), &"t".repeat(61)).await;
    browser.press("Publish release").await;
    let refusal = browser
        .wait_for("form[name=publish] [name=title] + .field-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(refusal.contains("At most 60 characters"), "{refusal}");
    browser.screenshots("publish").await;
    let sent = browser
        .execute(
            "return performance.getEntriesByType('resource')\
             .filter(e => e.name.includes('/releases')).length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(sent, json!(0), "the refused form sent a request");
    let nothing = server
        .admin(Method::GET, "/api/v1/products/door-sensor/releases/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);

    browser.fill(&field("title"), "Door sensor 1.0").await;
    browser.fill(&field("summary"), "First release.").await;
    browser.press("Publish release").await;
    browser.wait_for("main#release").await;
    let page = browser.main_text().await;
    assert!(page.contains("door-sensor 1.0.0"), "{page}");
    assert!(page.contains("Door sensor 1.0"), "{page}");
    assert!(page.contains(&sha256_hex(&image)), "{page}");
    assert!(page.contains("300000 bytes"), "{page}");
    browser.screenshots("release").await;

    browser
        .goto(&server.url("/ui/products/door-sensor"))
        .await
        .unwrap();
    let row = browser
        .wait_for("#releases tr[data-version='1.0.0']")
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("stable"), "{row}");
    browser.screenshots("product").await;
    browser.goto(&server.url("/ui/products")).await.unwrap();
    browser.wait_for("main#products").await;
    assert!(browser.main_text().await.contains("door-sensor"));
    browser.screenshots("products").await;

    // Yank, confirming in the page.
    let device = "current=0.9.0&device=d1";
    assert_eq!(
        server.offered("door-sensor", device).await.as_deref(),
        Some("1.0.0")
    );
    browser
        .goto(&server.url("/ui/products/door-sensor/releases/1.0.0"))
        .await
        .unwrap();
    let yank = "//form[button[text()='Yank release']]";
    browser
        .wait_for("main#release form[data-confirm] button")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(
        server.offered("door-sensor", device).await.as_deref(),
        Some("1.0.0"),
        "yanked before the confirmation"
    );
    browser
        .find(Locator::XPath(&format!(
            "{yank}//div[@class='confirm']/button[text()='Confirm']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the release shows as yanked",
            "return !!document.querySelector('#flags')?.textContent.includes('yanked') \
             && !document.querySelector('main#release form[data-confirm]')",
        )
        .await;
    assert_eq!(server.offered("door-sensor", device).await, None);
}

/// A viewer gets no create-product form, no upload or publish form and no flag buttons; the
/// publish API behind the hidden form answers 403 to the viewer's own page.
#[tokio::test]
async fn a_viewer_sees_no_publish_form_and_the_api_refuses_it() {
    let server = TestServer::start().await;
    server.create_product("door-sensor", "semver").await;
    let release = server.release("door-sensor", "1.0.0", json!({})).await;
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    browser.goto(&server.url("/ui/products")).await.unwrap();
    browser.wait_for("main#products").await;
    assert_eq!(count(&browser, "form[name=create-product]").await, 0);
    browser
        .goto(&server.url("/ui/products/door-sensor"))
        .await
        .unwrap();
    browser.wait_for("#releases tr[data-version='1.0.0']").await;
    assert_eq!(
        count(&browser, "form[name=publish], [data-upload]").await,
        0
    );
    browser
        .goto(&server.url("/ui/products/door-sensor/releases/1.0.0"))
        .await
        .unwrap();
    browser.wait_for("main#release").await;
    assert_eq!(count(&browser, "main form[data-api]").await, 0);
    // What does not exist is a 404 page, not an error.
    for (path, says) in [
        ("/ui/products/nope", "no product named \"nope\""),
        (
            "/ui/products/door-sensor/releases/9.9.9",
            "door-sensor has no release 9.9.9",
        ),
    ] {
        browser.goto(&server.url(path)).await.unwrap();
        let text = browser.wait_for("main#refused").await.text().await.unwrap();
        assert!(
            text.contains("Not Found") && text.contains(says),
            "{path}: {text}"
        );
    }

    let status = browser
        .execute(
            "return fetch('/api/v1/products/door-sensor/releases', {method: 'POST', \
             credentials: 'same-origin', headers: {'content-type': 'application/json'}, \
             body: JSON.stringify({version: '2.0.0', artifact: arguments[0]})}) \
             .then(r => r.status)",
            vec![release["artifact"]["sha256"].clone()],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
}

/// A chunk cut off half-way (the page's connection drops after the server took half of it) is
/// resumed from the server's offset, not from zero, and the artifact is the file, byte for
/// byte; without `crypto.subtle` the page computes the SHA-256 itself.
#[tokio::test]
async fn a_cut_chunk_resumes_from_the_servers_offset() {
    let server = TestServer::start().await;
    server.create_product("door-sensor", "semver").await;
    let Some(browser) = signed_in(&server, "publisher").await else {
        return;
    };
    browser
        .goto(&server.url("/ui/products/door-sensor"))
        .await
        .unwrap();
    browser.wait_for("[data-upload]").await;
    // 64 KiB chunks; the second PUT sends half its chunk, then fails as a dropped connection.
    // And no `crypto.subtle`, as on a page served over plain HTTP from another machine: the
    // page hashes the file in script (the server checks that hash at finalize).
    let no_subtle = browser
        .execute(
            "Object.defineProperty(window.crypto, 'subtle', {value: undefined});
             document.querySelector('[data-upload]').dataset.chunk = '65536';
             window.putOffsets = [];
             const real = window.fetch;
             window.fetch = async (url, init) => {
               if (init && init.method === 'PUT') {
                 const offset = Number(new URL(url, location.href).searchParams.get('offset'));
                 window.putOffsets.push(offset);
                 if (window.putOffsets.length === 2) {
                   await real(url, {...init, body: init.body.slice(0, init.body.size / 2)});
                   throw new TypeError('Failed to fetch');
                 }
               }
               return real(url, init);
             };
             return window.crypto.subtle === undefined;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(no_subtle, json!(true));
    let image = firmware(9, 200_000);
    let (_dir, path) = image_file("big.bin", &image);
    upload_through_the_page(&browser, &path).await;
    let offsets = browser
        .execute("return window.putOffsets", vec![])
        .await
        .unwrap();
    assert_eq!(offsets, json!([0, 65536, 98304, 163840]));
    let sha = sha256_hex(&image);
    assert_eq!(
        value_of(&browser, "form[name=publish] input[name=artifact]").await,
        sha
    );
    let artifact = server.get_json(&format!("/api/v1/artifacts/{sha}")).await;
    assert_eq!(artifact["size"], json!(200_000));
}

/// After devices check in and one reports a failure, the dashboard shows the fleet seen today,
/// a chart of its versions, the failure and the rollout under way with its stage.
#[tokio::test]
async fn the_dashboard_charts_the_fleets_versions() {
    let server = TestServer::start().await;
    server.create_product("door-sensor", "semver").await;
    server.release("door-sensor", "1.0.0", json!({})).await;
    server.release("door-sensor", "1.1.0", json!({})).await;
    for (device, version) in [
        ("a1", "1.0.0"),
        ("a2", "1.0.0"),
        ("a3", "1.0.0"),
        ("b1", "1.1.0"),
        ("b2", "1.1.0"),
    ] {
        server
            .check("door-sensor", &format!("current={version}&device={device}"))
            .await;
    }
    let report = server
        .anon(Method::POST, "/api/v1/products/door-sensor/reports")
        .json(&json!({"device": "a1", "version": "1.1.0", "state": "failed"}))
        .send()
        .await
        .unwrap();
    assert!(report.status().is_success());
    server.release("door-sensor", "1.2.0", json!({})).await;
    let rollout = server
        .admin(Method::POST, "/api/v1/products/door-sensor/rollouts")
        .json(&json!({"version": "1.2.0", "stages": [{"percent": 10}, {"percent": 100}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(rollout.status(), StatusCode::CREATED);
    let rollout: Value = rollout.json().await.unwrap();
    eventually("the five devices are recorded", async || {
        let page = server
            .get_json("/api/v1/products/door-sensor/devices?limit=10")
            .await;
        match page["items"].as_array().map(Vec::len) {
            Some(5) => Ok(()),
            other => Err(format!("{other:?} devices")),
        }
    })
    .await;
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    let card = browser
        .wait_for("section.card[data-product='door-sensor']")
        .await;
    let text = card.text().await.unwrap();
    assert!(text.contains("5\nseen today"), "{text}");
    assert!(text.contains("failed a1 1.1.0"), "{text}");
    assert!(
        text.contains("1.2.0 on stable: stage 1 of 2 running"),
        "{text}"
    );
    let link = format!(
        "section.card a[href='/ui/products/door-sensor/rollouts/{}']",
        rollout["id"]
    );
    browser.wait_for(&link).await;
    let chart: Value = browser
        .execute(
            "return [...document.querySelectorAll('svg.chart text')].map(t => t.textContent)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chart, json!(["1.0.0", "3", "1.1.0", "2"]));
    browser.screenshots("dashboard").await;
}

/// The signing page lists a product's roots and a manifest about to expire; an admin adds the
/// next root with the page's form; the release page says which key and root signed it.
#[tokio::test]
async fn the_signing_page_shows_roots_and_expiring_signatures() {
    let (server, owner, _) = signed_product().await;
    let image = firmware(5, 10_000);
    publish_release_signed(&server, &owner, "1.0.0", 1, &image, 10 * DAY).await;
    let Some(browser) = signed_in(&server, "admin").await else {
        return;
    };
    browser.goto(&server.url("/ui/signing")).await.unwrap();
    let expiring = browser
        .wait_for("table#expiring")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        expiring.contains("door release manifest 1.0.0"),
        "{expiring}"
    );

    let now = otter_store::now();
    let doc2 = root_doc(&owner, 2, &[&owner.root], now, now + 400 * DAY);
    let root2 = seal(ROOT_TYPE, &doc2, &[&owner.root]);
    browser
        .wait_for("section[data-product='door'] details summary")
        .await
        .click()
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelector('form[name=add-root] textarea').value = arguments[0]; \
             return true",
            vec![json!(serde_json::to_string(&root2).unwrap())],
        )
        .await
        .unwrap();
    browser.press("Add root").await;
    browser
        .wait_until(
            "root version 2 is listed",
            "return !!document.querySelector(\"section[data-product='door'] tbody tr td\") \
             && document.querySelector(\"section[data-product='door'] tbody tr td\")\
             .textContent === '2'",
        )
        .await;
    browser.screenshots("signing").await;

    browser
        .goto(&server.url("/ui/products/door/releases/1.0.0"))
        .await
        .unwrap();
    let signature = browser.wait_for("#signature").await.text().await.unwrap();
    let release_key = owner.release.public_key().key_id();
    assert!(
        signature.contains(&format!(
            "signed by release key {} of root version 2",
            &release_key[..16]
        )),
        "{signature}"
    );
}

/// A release's page lists the delta patches built to it: from which base, in which format, and
/// their size as a share of the full image.
#[tokio::test]
async fn a_release_page_lists_its_delta_patches() {
    let server = TestServer::start().await;
    server.create_product("door", "semver").await;
    let base = firmware(6, 200_000);
    let mut next = base.clone();
    next[1_000..1_007].copy_from_slice(b"v1.1.0\0");
    for (version, image) in [("1.0.0", &base), ("1.1.0", &next)] {
        let sha = server.upload(image).await;
        server.publish("door", version, &sha, json!({})).await;
    }
    set_policy(&server, "door", json!({"format": "bsdiff"})).await;
    built(&server, "door", "1.1.0").await;
    let Some(browser) = signed_in(&server, "viewer").await else {
        return;
    };
    browser
        .goto(&server.url("/ui/products/door/releases/1.1.0"))
        .await
        .unwrap();
    let row = browser
        .wait_for("table#deltas tbody tr")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        row.starts_with("1.0.0 bsdiff ready") && row.contains(" bytes (0."),
        "{row}"
    );
}
