//! Waiting for a condition with a deadline, never for a fixed time: a sleep long enough on a
//! busy CI machine is needlessly slow everywhere else, and one too short makes a test flaky.
//!
//! The probe returns `Ok(value)` once the condition holds and `Err(state)` while it does not;
//! when the deadline passes, the panic names what was awaited and the last state seen.

use std::time::{Duration, Instant};

/// How long to wait between two probes.
const POLL: Duration = Duration::from_millis(25);

/// How long [`eventually`] waits for asynchronous effects (sighting queue, janitor, idle timers).
pub const PATIENCE: Duration = Duration::from_secs(5);

/// [`wait_until_async`] for at most [`PATIENCE`].
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    wait_until_async(PATIENCE, what, probe).await
}

/// Calls `probe` until it returns `Ok`, for at most `within`; panics with the last `Err`.
#[track_caller]
pub fn wait_until<T>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Deadline::after(within);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => deadline.check(what, &last),
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for an async probe, sleeping on the tokio timer between probes.
pub async fn wait_until_async<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Deadline::after(within);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => deadline.check(what, &last),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The one place both waits give up.
struct Deadline {
    at: Instant,
    within: Duration,
}

impl Deadline {
    fn after(within: Duration) -> Self {
        Deadline {
            at: Instant::now() + within,
            within,
        }
    }

    /// Panics once the deadline has passed.
    #[track_caller]
    fn check(&self, what: &str, last: &str) {
        if Instant::now() >= self.at {
            panic!(
                "{what}: not the case after {:?} (last: {last})",
                self.within
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = wait_until(Duration::from_secs(5), "three calls", || {
            calls += 1;
            if calls == 3 {
                Ok(calls)
            } else {
                Err(format!("{calls} calls"))
            }
        });
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "never: not the case after 50ms (last: still no)")]
    fn panics_with_the_last_state_after_the_deadline() {
        wait_until(Duration::from_millis(50), "never", || -> Result<(), _> {
            Err("still no".to_owned())
        });
    }

    #[tokio::test]
    async fn the_async_wait_returns_the_value_too() {
        let mut calls = 0;
        let value = wait_until_async(Duration::from_secs(5), "two calls", async || {
            calls += 1;
            if calls == 2 {
                Ok(calls)
            } else {
                Err(String::new())
            }
        })
        .await;
        assert_eq!(value, 2);
    }
}
