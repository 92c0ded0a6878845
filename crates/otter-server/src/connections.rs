//! otter's accept loop, with what `axum::serve` lacks for a server facing a fleet: a cap on the
//! connections served at once (`--max-connections`), accept errors that back off instead of
//! spinning, and a watchdog per connection that cuts a client which sends no complete request
//! headers within `--header-timeout`, stays idle between requests past `--idle-timeout`, or sends
//! a request body or reads a response slower than `--min-rate` over `--min-rate-window`.
//!
//! Each connection is served by [`crate::http1`] until a request needs hyper, which then serves
//! the rest of it (bodies, upgrades, HTTP/2).
//!
//! A client cut for sending its request head too slowly gets a 408 in otter's JSON format, and
//! hyper's own answers to heads it cannot parse are replaced by JSON ones ([`crate::unparsed`]).
//!
//! The watchdog only blames the client for time the server spent waiting on it: a handler
//! waiting for request body bytes, or a response write the socket would not take. A slow
//! database or bucket behind a request never cuts it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response, Version};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use otter_app::settings::Settings;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::router::Lane;
use crate::workers::Workers;

/// The connection settings of [`Settings`], with 0 (off) turned into `None`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    header_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// The fewest bytes a client must move per window while the server waits on it, and the
    /// window.
    min_rate: Option<(u64, Duration)>,
    max_connections: usize,
}

impl Limits {
    pub(crate) fn new(settings: &Settings) -> Self {
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        let window = settings.min_rate_window;
        let per_window =
            u64::try_from(u128::from(settings.min_rate).saturating_mul(window.as_millis()) / 1000)
                .unwrap_or(u64::MAX);
        Limits {
            header_timeout: on(settings.header_timeout),
            idle_timeout: on(settings.idle_timeout),
            min_rate: (per_window > 0).then_some((per_window, window)),
            max_connections: settings.max_connections as usize,
        }
    }

    /// How often a watchdog looks at its connection: a quarter of the shortest deadline, so a
    /// connection is cut soon after it misses one, but no more than once a second per
    /// connection at the defaults.
    fn tick(&self) -> Duration {
        [
            self.header_timeout,
            self.idle_timeout,
            self.min_rate.map(|(_, window)| window),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(1), |shortest| {
            (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
        })
    }
}

/// Serves `router` (and `lane`) on `listener`, each connection on one of `workers`, until
/// `shutdown` resolves; then stops accepting, closes idle connections and waits for the others
/// to finish their requests (the caller bounds that wait).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    lane: Option<Lane>,
    workers: &Workers,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // `true` once shutting down; every connection holds a receiver until it ends.
    let (stopping, stop) = watch::channel(false);
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut full = Throttle::default();
    let mut failing = Throttle::default();
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(e) => {
                let delay = backoff.next();
                if let Some(held_back) = failing.hit() {
                    tracing::warn!(error = %e, retry_in = ?delay, held_back, "accepting a connection failed");
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        // Closed at once rather than left in the backlog: the client learns now, and its
        // descriptor is not held while it waits for nothing.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("otter_connections_refused_total").increment(1);
            if let Some(held_back) = full.hit() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    held_back,
                    "connection limit reached: closing new connections (--max-connections)"
                );
            }
            continue;
        };
        // Responses go out whole as soon as they are written: Nagle's algorithm would hold the
        // tail of a download (or a check answer behind it) until the device acknowledges.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (router, lane, builder) = (router.clone(), lane.clone(), builder.clone());
        let mut stop = stop.clone();
        workers.spawn(tcp, move |tcp| async move {
            let _slot = slot;
            let activity = Arc::new(Activity::default());
            let io = Metered {
                io: tcp,
                activity: activity.clone(),
                replacing: None,
                unread: Bytes::new(),
            };
            let conn = connection(io, router, lane, builder, activity.clone(), remote, &mut stop);
            tokio::pin!(conn);
            tokio::select! {
                () = &mut conn => {},
                missed = watchdog(&activity, limits) => {
                    metrics::counter!("otter_connections_cut_total", "deadline" => missed).increment(1);
                    tracing::debug!(missed, "closing a connection that missed a deadline");
                    if activity.answer_timeout.load(Relaxed) {
                        // The connection is waiting to read the rest of the head: its next read
                        // writes the 408 and ends the connection.
                        let _ = tokio::time::timeout(Duration::from_secs(1), &mut conn).await;
                    }
                }
            }
        });
    }
    drop(listener);
    drop(stop);
    let _ = stopping.send(true);
    stopping.closed().await;
}

/// Serves one connection: [`crate::http1`] first, then hyper if a request needs it. Once `stop`
/// turns `true`, idle connections close and busy ones close after their current request.
async fn connection(
    mut io: Metered,
    router: Router,
    lane: Option<Lane>,
    builder: auto::Builder<TokioExecutor>,
    activity: Arc<Activity>,
    remote: std::net::SocketAddr,
    stop: &mut watch::Receiver<bool>,
) {
    let unread =
        match crate::http1::serve(&mut io, &router, lane.as_ref(), &activity, remote, stop).await {
            Ok(Some(unread)) => unread.freeze(),
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "connection ended with an error");
                return;
            }
        };
    io.unread = unread;
    let io = TokioIo::new(io);
    let conn = builder.serve_connection_with_upgrades(io, service(router, activity, remote));
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping(stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Resolves once the server is shutting down (or has gone).
pub(crate) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// What a connection's watchdog needs to know, updated by its socket and its requests.
#[derive(Default)]
pub(crate) struct Activity {
    read: AtomicU64,
    written: AtomicU64,
    /// Requests started and not yet answered in full.
    busy: AtomicU64,
    /// Requests started plus requests finished: a change starts a new phase.
    changes: AtomicU64,
    /// A handler is waiting for request body bytes.
    body_waiting: AtomicBool,
    /// The request being served over HTTP/1 by hyper has body bytes its handler did not read.
    body_unread: AtomicBool,
    /// The socket would not take the response bytes written to it.
    write_waiting: AtomicBool,
    /// The connection speaks HTTP/2 (its first bytes were the preface).
    http2: AtomicBool,
    /// Cut for a request head sent too slowly: the next read writes a 408 and fails.
    answer_timeout: AtomicBool,
}

/// Resolves when the connection has missed a deadline, naming it: `header`, `idle`,
/// `body_rate` (a request body sent too slowly) or `response_rate` (a response read too slowly).
async fn watchdog(activity: &Activity, limits: Limits) -> &'static str {
    let mut tick = tokio::time::interval(limits.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = 0;
    // Since when the connection has had nothing to do: the end of its last request, or the
    // last byte of a response still being flushed.
    let mut idle_since = Instant::now();
    // When the request being received began: the connection's start for the first one (a
    // client that connects and says nothing misses the header deadline), else its first byte.
    let mut head_since = Some(idle_since);
    let (mut read, mut written) = (0, 0);
    // Bytes read when the current phase began: more since means a request head has started.
    let mut read_at_phase = 0;
    // The rate window's start and the bytes moved before it.
    let mut window = (idle_since, 0);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let (last_read, last_written) = (read, written);
        read = activity.read.load(Relaxed);
        written = activity.written.load(Relaxed);
        let moved = read + written;
        let current = activity.changes.load(Relaxed);
        if current != changes {
            changes = current;
            read_at_phase = read;
            idle_since = now;
            head_since = None;
            window = (now, moved);
            continue;
        }
        if activity.busy.load(Relaxed) > 0 {
            let Some((per_window, length)) = limits.min_rate else {
                continue;
            };
            if now - window.0 >= length {
                if moved - window.1 < per_window {
                    if activity.body_waiting.load(Relaxed) {
                        return "body_rate";
                    }
                    if activity.write_waiting.load(Relaxed) {
                        return "response_rate";
                    }
                }
                window = (now, moved);
            }
            continue;
        }
        if written > last_written {
            idle_since = now;
        }
        if head_since.is_none() && read > last_read {
            head_since = Some(now);
        }
        match head_since {
            Some(since) => {
                if limits
                    .header_timeout
                    .is_some_and(|limit| now - since >= limit)
                {
                    // A 408 only for a head begun over HTTP/1 with no answer still going out:
                    // a connection that never spoke, or sits idle between requests, is closed
                    // without one (a client could take it for the answer to its next request).
                    let answer = read > read_at_phase
                        && !activity.http2.load(Relaxed)
                        && !activity.write_waiting.load(Relaxed);
                    activity.answer_timeout.store(answer, Relaxed);
                    return "header";
                }
            }
            None => {
                if limits
                    .idle_timeout
                    .is_some_and(|limit| now - idle_since >= limit)
                {
                    return "idle";
                }
            }
        }
    }
}

/// The router as a hyper service whose requests tell `activity` when they start, when their
/// handler waits for body bytes, and when their response has been handed over in full; each
/// request carries the client's address (`ConnectInfo`), as `axum::serve` would give it.
fn service(
    router: Router,
    activity: Arc<Activity>,
    remote: std::net::SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Answering>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::start(activity.clone());
        let http1 = request.version() <= Version::HTTP_11;
        let unread = http1 && !http_body::Body::is_end_stream(request.body());
        activity.body_unread.store(unread, Relaxed);
        let activity = activity.clone();
        let mut request = request.map(|body| {
            let activity = activity.clone();
            Body::new(Sending { body, activity })
        });
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(remote));
        let answer = tower_service::Service::call(&mut router.clone(), request);
        async move {
            let mut response = answer.await?;
            // hyper closes a connection whose request body was not read to its end (an upload
            // refused early): say so, or the client reuses it and its next request fails.
            if activity.body_unread.load(Relaxed) {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            // Not boxed once more as a `Body`: one allocation per request fewer.
            Ok(response.map(|body| Answering { body, _busy: busy }))
        }
    })
}

/// A request in progress, from its headers until its response body is done (or dropped).
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    pub(crate) fn start(activity: Arc<Activity>) -> Self {
        activity.body_waiting.store(false, Relaxed);
        activity.busy.fetch_add(1, Relaxed);
        activity.changes.fetch_add(1, Relaxed);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Relaxed);
        self.0.changes.fetch_add(1, Relaxed);
    }
}

/// A request body that notes whether its handler is waiting for the client.
struct Sending {
    body: Incoming,
    activity: Arc<Activity>,
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        self.activity
            .body_waiting
            .store(polled.is_pending(), Relaxed);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.activity.body_unread.store(false, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that ends its request's [`Busy`] when hyper drops it, having sent it all
/// (or given up).
struct Answering {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket, counting the bytes that pass and noting when a write must wait; it
/// also writes the answers of [`crate::unparsed`].
pub(crate) struct Metered {
    io: TcpStream,
    activity: Arc<Activity>,
    /// A JSON answer going out in place of hyper's own, and how much of it was sent.
    replacing: Option<(Bytes, usize)>,
    /// Bytes [`crate::http1`] read and handed on with the connection, read again first.
    unread: Bytes,
}

impl Metered {
    /// Sends the answer in [`Metered::replacing`]; once it is all out, reports hyper's `len`
    /// bytes as written.
    fn poll_replace(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        while let Some((answer, sent)) = self.replacing.take() {
            if sent == answer.len() {
                break;
            }
            let polled = Pin::new(&mut self.io).poll_write(cx, &answer[sent..]);
            self.wrote(&polled);
            match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.replacing = Some((answer, sent + n)),
                Poll::Pending => {
                    self.replacing = Some((answer, sent));
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(len))
    }

    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.activity.written.fetch_add(*n as u64, Relaxed);
                self.activity.write_waiting.store(false, Relaxed);
            }
            Poll::Pending => self.activity.write_waiting.store(true, Relaxed),
            Poll::Ready(Err(_)) => {}
        }
    }

    /// Sends `head`, then `range` of `file` with `sendfile(2)`: the kernel moves the bytes from
    /// the page cache to the socket, with no copy through otter and no buffer held while the
    /// client reads. The head goes with `MSG_MORE`, so it shares its packet with the first
    /// bytes of the file (as nginx's `tcp_nopush`). A file shorter than `range` fails with
    /// `UnexpectedEof`.
    #[cfg(target_os = "linux")]
    pub(crate) async fn send_file(
        &mut self,
        mut head: &[u8],
        file: &std::fs::File,
        mut range: Range<u64>,
    ) -> io::Result<()> {
        use rustix::net::SendFlags;
        /// Most bytes per call: a fast client still lets the thread's other connections run.
        const MOST: u64 = 1024 * 1024;
        while !head.is_empty() {
            let sent = self
                .when_writable(|io| Ok(rustix::net::send(io, head, SendFlags::MORE)?))
                .await?;
            head = &head[sent..];
        }
        while range.start < range.end {
            tokio::task::consume_budget().await;
            let count = (range.end - range.start).min(MOST) as usize;
            let sent = self
                .when_writable(|io| {
                    let mut offset = range.start;
                    Ok(rustix::fs::sendfile(io, file, Some(&mut offset), count)?)
                })
                .await?;
            if sent == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            range.start += sent as u64;
        }
        Ok(())
    }

    /// Runs the non-blocking write `op` on the socket once it takes bytes, counting what it
    /// wrote.
    #[cfg(target_os = "linux")]
    async fn when_writable(
        &mut self,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match self
                .io
                .try_io(tokio::io::Interest::WRITABLE, || op(&self.io))
            {
                Ok(n) => {
                    self.wrote(&Poll::Ready(Ok(n)));
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wrote(&Poll::Pending);
                    self.io.writable().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.activity.answer_timeout.load(Relaxed) {
            // Best effort: a client that sends this slowly may not read either.
            let _ = self.io.try_write(&crate::unparsed::request_timeout());
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if self.activity.read.fetch_add(read as u64, Relaxed) == 0
            && buf.filled()[before..].starts_with(b"PRI ")
        {
            self.activity.http2.store(true, Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            self.replacing = crate::unparsed::answer(buf).map(|answer| (answer, 0));
        }
        if self.replacing.is_some() {
            return self.poll_replace(cx, buf.len());
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's own answer is a head alone: one non-empty slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if self.replacing.is_none() {
                self.replacing = crate::unparsed::answer(only).map(|answer| (answer, 0));
            }
            if self.replacing.is_some() {
                return self.poll_replace(cx, only.len());
            }
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A warning that repeats at most every ten seconds, counting the occurrences it held back.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(10);

    /// Whether to log this occurrence; if so, how many went unlogged since the last one.
    fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < Self::EVERY) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// The wait after a failed accept: 10 ms, doubling up to 1 s, back to 10 ms after a success.
/// Accepting fails mostly for want of file descriptors (`EMFILE`), which only closing
/// connections cures: retrying at once would spin, and a fixed second would leave the listener
/// deaf longer than needed.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    fn next(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (delay * 2).min(Self::MOST);
        delay
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Self::FIRST)
    }
}
