//! A real, headless Chromium driven over W3C WebDriver (`chromedriver` and [`fantoccini`]), for
//! the web UI's tests.
//!
//! [`Browser::start`] runs `chromedriver --port=0` (it prints the port it bound), opens a
//! session with Chromium in `--headless=new` mode (`--no-sandbox`: CI runs as root) and a
//! desktop-sized window. Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages (`OTTER_CHROMIUM` and `OTTER_CHROMEDRIVER` name others); when
//! either is missing the test prints `SKIP chromium: …` locally and fails under `CI=true`.
//!
//! [`Browser::screenshots`] saves the current page at desktop and phone width under
//! `target/ui-screenshots/`, for people to look at: tests assert on the page, never on pixels.

use std::ops::Deref;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::process::Watched;
use crate::{find_on_path, unavailable};

/// The desktop window every test starts with.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// A phone held upright (an iPhone 12–15's CSS width).
pub const PHONE: (u32, u32) = (390, 844);

/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// Browsers a test process runs at once. Each Chromium takes a core or so to start and to
/// render; started all at once by a test binary running its tests in parallel, on a small CI
/// machine, they time out starting (`DevToolsActivePort file doesn't exist`) or waiting.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A headless Chromium session; the browser and its driver end when it is dropped.
pub struct Browser {
    client: Client,
    /// chromedriver, in a process group of its own with Chromium (see [`Drop`]).
    driver: Watched,
    /// One of [`SLOTS`], given back on drop.
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for Browser {
    /// Ends chromedriver and every Chromium process it started. Killing chromedriver alone
    /// would leave Chromium running (a few hundred MB each) whenever a test fails before
    /// closing its session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .ok();
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A program from its environment variable, `PATH`, or Debian's path for it.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    names.iter().find_map(|name| {
        find_on_path(name).or_else(|| {
            let debian = Path::new("/usr/bin").join(name);
            debian.is_file().then_some(debian)
        })
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or `None` after a SKIP line when either is
    /// not installed.
    pub async fn start() -> Option<Browser> {
        let Some(chromium) = program("OTTER_CHROMIUM", &["chromium", "chromium-browser"]) else {
            return unavailable(
                "chromium",
                "not installed (Debian: apt-get install chromium)",
            );
        };
        let Some(driver) = program("OTTER_CHROMEDRIVER", &["chromedriver"]) else {
            return unavailable(
                "chromium",
                "chromedriver not installed (Debian: apt-get install chromium-driver)",
            );
        };
        let slot = SLOTS
            .acquire()
            .await
            .expect("the browser slots are never closed");
        // With `--port=0`, chromedriver sometimes picks a port another one (a test running in
        // parallel) binds first and exits ("bind() failed"): start it again.
        let (driver, port) = (1..=3)
            .find_map(|attempt| {
                let mut command = Command::new(&driver);
                // Its own process group, which Chromium joins: dropping the browser ends the
                // whole group, so a test that panics leaves no Chromium behind.
                command.arg("--port=0").process_group(0);
                let watched = Watched::spawn(command);
                let port: Option<u16> = watched.find_line(PATIENCE, |line| {
                    line.split_once("started successfully on port ")
                        .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse().ok())
                });
                match port {
                    Some(port) => Some((watched, port)),
                    None if attempt < 3 && watched.output().contains("bind() failed") => None,
                    None => panic!(
                        "chromedriver's port: not printed within {PATIENCE:?}; output:\n{}",
                        watched.output()
                    ),
                }
            })
            .expect("chromedriver started within three attempts");
        let (width, height) = DESKTOP;
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "start a Chromium session: {e}\nchromedriver:\n{}",
                    driver.output()
                )
            });
        Some(Browser {
            client,
            driver,
            _slot: slot,
        })
    }

    /// The first element matching the CSS `selector`, waiting for it to appear.
    pub async fn wait_for(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector:?} did not appear within {PATIENCE:?}: {e}"))
    }

    /// Waits until `script` (the body of a function, e.g. `return document.title === "x"`)
    /// returns `true`; `what` names the condition in the failure.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.client.execute(script, vec![]).await;
            if matches!(value, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let url = self.client.current_url().await.ok();
                panic!("{what}: not true within {PATIENCE:?} (last answer {value:?}, at {url:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field matching the CSS `selector`, replacing what it held.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.wait_for(selector).await;
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    /// Clicks the button that says `label`.
    pub async fn press(&self, label: &str) {
        self.client
            .find(Locator::XPath(&format!(
                "//button[normalize-space()='{label}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no button {label:?}: {e}"))
            .click()
            .await
            .expect("click the button");
    }

    /// The visible text of the page's `<main>`.
    pub async fn main_text(&self) -> String {
        self.wait_for("main")
            .await
            .text()
            .await
            .expect("the text of <main>")
    }

    /// Saves the page as `target/ui-screenshots/{name}-desktop.png` and `{name}-phone.png`,
    /// then restores the desktop window.
    pub async fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
        for (label, (width, height)) in [("phone", PHONE), ("desktop", DESKTOP)] {
            self.client
                .set_window_size(width, height)
                .await
                .expect("resize the window");
            let png = self.client.screenshot().await.expect("take a screenshot");
            let path = dir.join(format!("{name}-{label}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}

/// `target/ui-screenshots`, found from the test binary's own path
/// (`target/<profile>/deps/<test>`), so it holds with any `CARGO_TARGET_DIR`.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives under target/<profile>/deps");
    target.join("ui-screenshots")
}
