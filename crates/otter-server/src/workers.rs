//! The threads connections are served on (`--connection-threads`): each runs a single-threaded
//! tokio runtime with its own event loop, accepts connections on the shared listening socket
//! and serves each for its whole life, as nginx's worker processes do.
//!
//! Why not tokio's shared multi-threaded scheduler: with 1,000 busy keep-alive connections it
//! served them unevenly. The connections made ready by one poll of the event loop go into a
//! worker's run queue, which holds 256; the rest wait in the global queue, which a worker looks
//! at only every few dozen tasks, so some checks waited several times as long as the median
//! (p99 37–48 ms, median 9–12 ms; nginx on the same machine: 23–28 ms and 13–15 ms). A thread
//! with a runtime of its own serves what its event loop made ready in the order it became
//! ready: p99 19–27 ms, and a connection's task never moves between cores.
//!
//! Everything else (background work, the sighting writer, the metrics listener) stays on the
//! shared runtime. A handler's `tokio::spawn` runs on its connection's thread, and a socket a
//! handler opens (a PostgreSQL connection the pool adds, an S3 connection) is driven by that
//! thread's event loop wherever it is used later: so the server keeps its threads until it
//! has shut down completely, database closed.

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Connection threads; none means connections are served on the runtime that accepts them.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropped with the pool: each thread then leaves its runtime, which drops the connections
    /// it still serves.
    _stop: watch::Sender<()>,
}

impl Workers {
    /// Starts `count` threads (0: none). A thread that cannot be started is logged and left
    /// out: its share goes to the others, or to the accepting runtime if none started.
    pub(crate) fn start(count: usize) -> Self {
        let (stop, _) = watch::channel(());
        let mut handles = Vec::with_capacity(count);
        for n in 0..count {
            let stopped = stop.subscribe();
            match start_thread(n, stopped) {
                Ok(handle) => handles.push(handle),
                Err(e) => tracing::warn!(error = %e, "could not start a connection thread"),
            }
        }
        Workers {
            handles,
            _stop: stop,
        }
    }

    /// Runs `accept` with `listener` on every thread, each with its own handle on the listening
    /// socket in its own event loop (on the runtime this is called from if there are no
    /// threads). The kernel wakes the threads' loops for a new connection and one accepts it,
    /// so a connection is served where it was accepted: moving it to another thread's loop
    /// cost a fifth of the checks of clients that connect once per check.
    pub(crate) fn listen<F, Fut>(&self, listener: TcpListener, accept: F) -> Vec<JoinHandle<()>>
    where
        F: Fn(TcpListener) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            return vec![tokio::spawn(accept(listener))];
        }
        let listener = match listener.into_std() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "could not share the listening socket with the connection threads");
                return Vec::new();
            }
        };
        let accept = Arc::new(accept);
        let mut loops = Vec::with_capacity(self.handles.len());
        for handle in &self.handles {
            let shared = match listener.try_clone() {
                Ok(shared) => shared,
                Err(e) => {
                    tracing::warn!(error = %e, "could not share the listening socket with a connection thread");
                    continue;
                }
            };
            let accept = accept.clone();
            loops.push(handle.spawn(async move {
                match TcpListener::from_std(shared) {
                    Ok(listener) => accept(listener).await,
                    Err(e) => tracing::warn!(error = %e, "a connection thread could not listen"),
                }
            }));
        }
        loops
    }
}

/// Thread `n`, running a runtime of its own until `stopped`'s sender is dropped.
fn start_thread(n: usize, mut stopped: watch::Receiver<()>) -> io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("otter-conn-{n}"))
        .spawn(move || {
            runtime.block_on(async move { while stopped.changed().await.is_ok() {} });
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepts on `workers` and answers each connection with the name of the thread that
    /// served it; returns the names three clients read.
    async fn served_by(workers: &Workers) -> Vec<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loops = workers.listen(listener, |listener| async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let name = std::thread::current().name().unwrap_or("").to_owned();
                tcp.write_all(name.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(loops.len(), workers.handles.len().max(1));
        let mut names = Vec::new();
        for _ in 0..3 {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut name = String::new();
            client.read_to_string(&mut name).await.unwrap();
            names.push(name);
        }
        loops.iter().for_each(JoinHandle::abort);
        names
    }

    /// Connections are accepted and served on the connection threads; without any, on the
    /// runtime that listens.
    #[tokio::test]
    async fn connections_are_served_on_the_threads() {
        for name in served_by(&Workers::start(2)).await {
            assert!(
                ["otter-conn-0", "otter-conn-1"].contains(&name.as_str()),
                "{name}"
            );
        }
        let here = std::thread::current().name().unwrap_or("").to_owned();
        assert_eq!(
            served_by(&Workers::start(0)).await,
            [here.clone(), here.clone(), here]
        );
    }
}
