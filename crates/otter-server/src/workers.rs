//! The threads connections are served on (`--connection-threads`): each runs a single-threaded
//! tokio runtime with its own event loop, and takes accepted connections in turn for their
//! whole life, as nginx's worker processes do.
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
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Connection threads; none means connections are served on the runtime that accepts them.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
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
            next: AtomicUsize::new(0),
            _stop: stop,
        }
    }

    /// Serves `tcp` with `serve` on the next thread in turn, its socket moved to that thread's
    /// event loop.
    pub(crate) fn spawn<F, Fut>(&self, tcp: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(serve(tcp));
            return;
        }
        let handle = &self.handles[self.next.fetch_add(1, Relaxed) % self.handles.len()];
        // A socket is registered with the event loop of the runtime that made it: this one
        // leaves the accepting runtime's and joins the thread's.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(error = %e, "could not hand a connection to its thread");
                return;
            }
        };
        handle.spawn(async move {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => serve(tcp).await,
                Err(e) => tracing::debug!(error = %e, "could not hand a connection to its thread"),
            }
        });
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

    /// Connections go to the threads in turn, and are served there.
    #[tokio::test]
    async fn connections_are_served_on_the_threads_in_turn() {
        let workers = Workers::start(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut names = Vec::new();
        for _ in 0..3 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            workers.spawn(tcp, |mut tcp| async move {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                tcp.write_all(name.as_bytes()).await.unwrap();
            });
            let mut name = String::new();
            client.read_to_string(&mut name).await.unwrap();
            names.push(name);
        }
        assert_eq!(names, ["otter-conn-0", "otter-conn-1", "otter-conn-0"]);
    }
}
