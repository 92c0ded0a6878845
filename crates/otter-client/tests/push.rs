//! `otter push` against otter's own push receiver (`otter_agent::receiver`) on a free loopback
//! port, sometimes behind a proxy that cuts the connection in the middle of the upload.
//!
//! The arguments are parsed as the binary parses them, so these tests need no subprocess and
//! run the same code `otter push` runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::future::BoxFuture;
use otter_agent::receiver::{InstallError, Installer, Received, Receiver, ReceiverConfig, router};
use otter_client::push::PushArgs;
use otter_testkit::images::sha256_hex;
use otter_testkit::proxy::{CuttingProxy, Direction};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TOKEN: &str = "device-secret";

/// `otter push …` as the binary parses it.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    push: PushArgs,
}

async fn otter_push(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("otter-push").chain(args.iter().copied());
    Cli::try_parse_from(argv)?.push.run().await
}

struct Forward(mpsc::UnboundedSender<Received>);

impl Installer for Forward {
    fn install(&self, image: Received) -> BoxFuture<'_, Result<(), InstallError>> {
        Box::pin(async move { self.0.send(image).map_err(|e| e.to_string().into()) })
    }

    fn mark_valid(&self) -> BoxFuture<'_, Result<(), InstallError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A receiver on a free port, its staging file and what it installed.
struct Device {
    addr: SocketAddr,
    staging: PathBuf,
    installed: mpsc::UnboundedReceiver<Received>,
    dir: tempfile::TempDir,
}

impl Device {
    async fn start() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("slot-b.img");
        let mut config = ReceiverConfig::new(&staging, 1 << 20);
        config.token = Some(TOKEN.to_owned());
        let (tx, installed) = mpsc::unbounded_channel();
        let app = router(Arc::new(Receiver::new(config, Arc::new(Forward(tx)))));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Device {
            addr,
            staging,
            installed,
            dir,
        }
    }

    /// Writes an image of `len` bytes next to the staging file; returns its path and bytes.
    fn image(&self, len: usize) -> (String, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + i / 977) as u8).collect();
        let path = self.dir.path().join("firmware.bin");
        std::fs::write(&path, &bytes).unwrap();
        (path.to_str().unwrap().to_owned(), bytes)
    }

    async fn status(&self) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}/ota/status", self.addr))
            .header("x-ota-token", TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn next_installed(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.installed.recv())
            .await
            .expect("an image is installed within 5 s")
            .expect("the receiver is alive")
    }

    fn staged(&self) -> Vec<u8> {
        std::fs::read(&self.staging).unwrap()
    }
}

#[tokio::test]
async fn pushes_and_resumes_after_a_cut_connection() {
    let mut device = Device::start().await;
    let (file, image) = device.image(50_000);
    // Past begin and a few chunks, in the middle of one.
    let proxy = CuttingProxy::start(device.addr, Direction::Upload, 15_000).await;
    otter_push(&[
        &format!("http://{}", proxy.addr()),
        &file,
        "--token",
        TOKEN,
        "--chunk",
        "4096",
    ])
    .await
    .unwrap();

    assert!(
        proxy.has_cut() && proxy.connections() >= 2,
        "the cut happened"
    );
    assert_eq!(device.staged(), image);
    let installed = device.next_installed().await;
    assert_eq!(installed.sha256, sha256_hex(&image));
    assert!(installed.set_boot && !installed.reboot);
    // One session throughout: the push resumed rather than starting over.
    let status = device.status().await;
    assert_eq!(status["last_result"]["session_id"], 1);
    assert_eq!(status["last_result"]["written_bytes"], 50_000);
}

#[tokio::test]
async fn the_documented_variant_starts_over_after_a_cut() {
    let mut device = Device::start().await;
    let (file, image) = device.image(30_000);
    let proxy = CuttingProxy::start(device.addr, Direction::Upload, 12_000).await;
    otter_push(&[
        &format!("http://{}/", proxy.addr()),
        &file,
        "--token",
        TOKEN,
        "--protocol",
        "viper-doc",
        "--chunk",
        "5000",
        "--no-set-boot",
        "--reboot",
    ])
    .await
    .unwrap();

    assert!(proxy.has_cut(), "the cut happened");
    assert_eq!(device.staged(), image);
    let installed = device.next_installed().await;
    assert_eq!(installed.sha256, sha256_hex(&image));
    assert!(!installed.set_boot && installed.reboot);
    assert_eq!(device.status().await["last_result"]["session_id"], 2);
}

#[tokio::test]
async fn failures_read_as_the_device_says() {
    let device = Device::start().await;
    let (file, _) = device.image(1_000);
    let url = format!("http://{}", device.addr);

    let err = otter_push(&[&url, &file, "--token", "wrong"])
        .await
        .unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "the device refused: invalid ota token (HTTP 401)"
    );

    // Another push holds the device's one session.
    let begun = reqwest::Client::new()
        .post(format!("{url}/ota/begin"))
        .header("x-ota-token", TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(begun.status().is_success());
    let err = otter_push(&[&url, &file, "--token", TOKEN])
        .await
        .unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "another push is in progress on the device; --force replaces it: \
         the device refused: ota session already active (HTTP 409)"
    );
    otter_push(&[&url, &file, "--token", TOKEN, "--force"])
        .await
        .unwrap();
}
