//! `otter serve`: loads the settings (defaults < config file < environment < flags, all
//! declared by [`Settings`]), sets up logging, and runs the server until a signal stops it.

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use otter_app::settings::{LogFormat, SettingsArgs};
use otter_server::{Bootstrap, Server};
use tokio::net::TcpSocket;

/// Run the otter server.
///
/// With no flags, otter listens on 127.0.0.1:8080 and keeps everything under ./otter-data
/// (SQLite database, firmware blobs). On first start it creates an admin token, prints it once
/// and saves it to ./otter-data/admin-token (mode 0600), where the admin commands find it.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    otter serve\n  \
    otter serve --listen 0.0.0.0:8080 --public-url https://ota.example.com\n  \
    OTTER_DATA=/var/lib/otter otter serve --log-format json\n  \
    otter serve --config /etc/otter.toml\n  \
    OTTER_DATABASE_URL=postgres://otter@db/otter otter serve --blob-url s3://firmware/otter\n  \
    OTTER_S3_ENDPOINT=http://minio:9000 otter serve --blob-url s3://firmware")]
pub struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal: escape codes would litter files, journald and
    // the pipes of log collectors. NO_COLOR is honoured as tracing-subscriber does by default.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Binds `addr` without listening: the port is taken (so a busy one fails before anything is
/// created or printed) but no connection is accepted yet.
fn reserve(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart need not wait for the old connections' TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The listen backlog: room for a fleet that connects at once (after an outage, on a release
/// notification) while otter accepts. The kernel caps it at `net.core.somaxconn` (4096 on
/// Linux since 5.4).
const BACKLOG: u32 = 4096;

/// Resolves when the process gets Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings.load()?;
    init_logging(settings.log_format);
    tracing::debug!(?settings, "settings");
    let data_dir = settings.data_dir.clone();
    let listen = settings.listen;
    // Reachable from other machines, download URLs would be built from whatever `Host` a
    // client sends.
    if settings.public_url.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(%listen, "no --public-url: download URLs follow each request's Host \
            header; set --public-url to the address devices use");
    }
    let socket = reserve(listen).with_context(|| format!("listening on {listen}"))?;
    let metrics_socket = match settings.metrics_listen {
        Some(addr) => {
            Some(reserve(addr).with_context(|| format!("listening for metrics on {addr}"))?)
        }
        None => None,
    };
    let mut server = Server::open(settings)
        .await
        .with_context(|| format!("starting otter with data directory {}", data_dir.display()))?;
    if let Bootstrap::Generated { token, path } = &server.bootstrap {
        println!(
            "otter: created an admin token (shown once; saved to {}):",
            path.display()
        );
        println!("\n    {token}\n");
    }
    // Listen only now that the admin token file exists: a client that can connect (say, the
    // `otter product create` right after `otter serve &`) always finds it.
    let listener = socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %data_dir.display(), "otter listening on http://{addr}");
    if let Some(metrics) = metrics_socket {
        let metrics = metrics.listen(BACKLOG).context("listening for metrics")?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics on their own listener");
        server = server.with_metrics_listener(metrics);
    }
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("otter stopped");
    Ok(())
}
