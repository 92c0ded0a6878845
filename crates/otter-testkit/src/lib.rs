//! Real services for otter's tests, started on loopback in temporary directories, and the
//! waiting and skipping rules every test follows.
//!
//! A test asks for a service and gets `None` when its binaries are missing on this machine,
//! after a clear `SKIP` line on stderr. Under `CI=true` a missing service fails the test instead:
//! CI installs everything, so a skip there would hide a broken setup.
//!
//! Beside the services, the helpers every test crate needs: [`serve`] runs the real `otter
//! serve`, [`wait`] for a condition with a deadline, [`process`] to watch a child process's output, [`proxy`] to cut a connection
//! mid-transfer, [`relay`] to play the man in the middle, [`http`] to check answers, [`images`] for firmware bytes, and [`browser`]: a headless
//! Chromium for the web UI.

pub mod browser;
pub mod http;
pub mod images;
pub mod mosquitto;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod relay;
pub mod s3;
pub mod serve;
pub mod wait;

use std::io::Write;
use std::path::PathBuf;

pub use wait::{eventually, wait_until, wait_until_async};

/// Reports a service that cannot be started: SKIP locally, a panic under `CI=true`.
///
/// The line goes straight to the process's stderr handle: the test harness captures only what
/// `eprintln!` prints, and shows it only for failing tests, so a skip in a passing run would
/// otherwise be invisible and look like a pass.
pub fn unavailable<T>(service: &str, why: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} is required under CI=true but unavailable: {why}");
    }
    let line = format!("SKIP {service}: {why}\n");
    std::io::stderr().lock().write_all(line.as_bytes()).ok();
    None
}

/// The first `name` in a `PATH` directory.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `program` with `args` in `dir` and returns what it printed (stdout, then stderr);
/// panics with that output unless it succeeds. For the independent tools tests check otter
/// against.
pub fn run_tool(dir: &std::path::Path, program: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program:?} {args:?} failed:\n{text}");
    text
}

/// A command-line tool from the environment variable `env` (when given and set) or `PATH`, or
/// `None` after a SKIP line.
pub fn tool(name: &str, env: Option<&str>) -> Option<PathBuf> {
    env.and_then(std::env::var_os)
        .map(PathBuf::from)
        .or_else(|| find_on_path(name))
        .or_else(|| unavailable(name, "not installed"))
}
