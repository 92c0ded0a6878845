//! Waiting for a condition with a deadline, instead of sleeping and hoping: the probe runs until
//! it succeeds, and a timeout panics with what the probe last saw.

use std::time::{Duration, Instant};

/// How long [`eventually`] waits for asynchronous effects (sighting queue, janitor, idle timers).
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How often a probe runs again: often enough that tests do not idle, rarely enough not to spin.
const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Ok`, for at most [`PATIENCE`]; panics with the last `Err`.
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    eventually_within(PATIENCE, what, probe).await
}

/// [`eventually`] with another bound.
pub async fn eventually_within<T>(
    patience: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not the case after {patience:?} (last: {last})")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`eventually_within`] for tests without a runtime (driving child processes).
pub fn wait_until<T>(
    patience: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not the case after {patience:?} (last: {last})")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}
