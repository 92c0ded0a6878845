//! A TCP proxy that cuts one connection in the middle of a transfer, as a flaky link would: the
//! first connection to carry `after` bytes in the chosen direction gets exactly that many through,
//! then both of its sides are closed. Every other connection (the retries) passes untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which way the cut connection was carrying the bytes that are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the target: an upload or a push.
    Upload,
    /// From the target to the client: a download.
    Download,
}

/// A running proxy; it stops with the test's runtime.
pub struct CuttingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    /// Forwards connections on a free loopback port to `target`.
    pub async fn start(target: SocketAddr, direction: Direction, after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (count, once) = (accepted.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(forward(client, target, direction, after, once.clone()));
            }
        });
        CuttingProxy {
            addr,
            accepted,
            cut,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the proxy accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Whether the cut happened.
    pub fn has_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

async fn forward(
    client: TcpStream,
    target: SocketAddr,
    direction: Direction,
    after: usize,
    cut: Arc<AtomicBool>,
) {
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let up = async {
        match direction {
            Direction::Upload => pump(&mut from_client, &mut to_upstream, after, &cut).await,
            Direction::Download => pass(&mut from_client, &mut to_upstream).await,
        }
    };
    let down = async {
        match direction {
            Direction::Upload => pass(&mut from_upstream, &mut to_client).await,
            Direction::Download => pump(&mut from_upstream, &mut to_client, after, &cut).await,
        }
    };
    // Whichever way ends (a cut, or a side closing) ends the connection: the halves are dropped
    // together, closing both sockets.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn pass(from: &mut (impl AsyncRead + Unpin), to: &mut (impl AsyncWrite + Unpin)) {
    tokio::io::copy(from, to).await.ok();
}

/// Copies until `after` bytes have passed, then stops (unless another connection was cut).
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    after: usize,
    cut: &AtomicBool,
) {
    let mut carried = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if carried + n >= after && !cut.swap(true, Ordering::SeqCst) {
            to.write_all(&buf[..after - carried]).await.ok();
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        carried += n;
    }
}
