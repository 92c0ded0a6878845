//! Real services for otter's tests, started on loopback in temporary directories.
//!
//! A test asks for a service and gets `None` when its binaries are missing on this machine,
//! after a clear `SKIP` line on stderr. Under `CI=true` a missing service fails the test instead:
//! CI installs everything, so a skip there would hide a broken setup.
//!
//! Beside the services, the helpers every test crate needs: [`wait`] for a condition with a
//! deadline, [`process`] to watch a child process's output, [`proxy`] to cut a connection
//! mid-transfer, [`http`] to check answers, and [`images`] for firmware bytes.

pub mod http;
pub mod images;
pub mod mosquitto;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod s3;
pub mod wait;

/// Reports a service that cannot be started: SKIP locally, a panic under `CI=true`.
pub fn unavailable<T>(service: &str, why: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} is required under CI=true but unavailable: {why}");
    }
    eprintln!("SKIP {service}: {why}");
    None
}

/// The first `name` in a `PATH` directory.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
