//! A throwaway S3-compatible server: moto in server mode on a free loopback port, started once
//! per test process, with a fresh bucket for every [`start`].
//!
//! moto comes from PyPI (`pip install 'moto[server]'`); `.ci/run` installs it into a venv and puts
//! it on `PATH`. `OTTER_MOTO_SERVER` names the `moto_server` executable when it is elsewhere.
//! moto accepts any credentials and does not check request signatures, so buckets are created and
//! listed here with plain unsigned HTTP (std only, no client library).
//!
//! No static destructor runs when a test process exits, so a watchdog shell started next to moto
//! kills it once the test process is gone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Region every test bucket is in.
pub const REGION: &str = "us-east-1";
/// Credentials for the test server (moto accepts any).
pub const ACCESS_KEY_ID: &str = "otter-test";
pub const SECRET_ACCESS_KEY: &str = "otter-test-secret";

/// How long moto may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(60);

/// A fresh, empty bucket on the process's moto server.
#[derive(Debug, Clone)]
pub struct TempS3 {
    /// `http://127.0.0.1:<port>`: what `OTTER_S3_ENDPOINT` would be set to.
    pub endpoint: String,
    pub bucket: String,
    addr: SocketAddr,
}

impl TempS3 {
    /// `s3://<bucket>/<prefix>` (just the bucket for an empty prefix).
    pub fn url(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{prefix}", self.bucket)
        }
    }

    /// object_store settings (`AmazonS3ConfigKey` names) for credentials and region, as the AWS
    /// environment variables would give them; the endpoint goes separately.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_access_key_id", ACCESS_KEY_ID),
            ("aws_secret_access_key", SECRET_ACCESS_KEY),
            ("aws_region", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Every key in the bucket that starts with `prefix`, sorted (at most 1000).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let path = format!("/{}?list-type=2&prefix={prefix}", self.bucket);
        let (status, body) = request(self.addr, "GET", &path).expect("list the test bucket");
        assert_eq!(
            status,
            200,
            "listing {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let body = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// An object's bytes, or `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = format!("/{}/{key}", self.bucket);
        match request(self.addr, "GET", &path).expect("read from the test bucket") {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("GET {path}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }
}

/// A new bucket on the moto server (started on first use), or `None` after a SKIP line when moto
/// is not installed (a panic under `CI=true`).
pub fn start() -> Option<TempS3> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    let moto = match MOTO.get_or_init(Moto::launch) {
        Ok(moto) => moto,
        Err(why) => return crate::unavailable("s3 (moto)", why),
    };
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let bucket = format!(
        "otter-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match request(moto.addr, "PUT", &format!("/{bucket}")) {
        Ok((200, _)) => {}
        Ok((status, body)) => panic!(
            "moto refused to create bucket {bucket}: {status} {}",
            String::from_utf8_lossy(&body)
        ),
        Err(e) => panic!("moto at {} does not answer: {e}", moto.addr),
    }
    Some(TempS3 {
        endpoint: format!("http://{}", moto.addr),
        bucket,
        addr: moto.addr,
    })
}

/// The process's moto server. The child handle is kept so the process is never reaped early;
/// the watchdog ends it.
struct Moto {
    addr: SocketAddr,
    _child: Child,
}

impl Moto {
    fn launch() -> Result<Moto, String> {
        let program = std::env::var_os("OTTER_MOTO_SERVER")
            .map(PathBuf::from)
            .or_else(|| crate::find_on_path("moto_server"))
            .ok_or_else(|| {
                "moto_server is not on PATH and OTTER_MOTO_SERVER is not set \
                 (python3 -m venv VENV && VENV/bin/pip install 'moto[server]'; put VENV/bin on PATH)"
                    .to_owned()
            })?;
        // A port taken between probing and moto binding it makes moto exit: try again.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_launch(&program) {
                Ok(moto) => return Ok(moto),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn try_launch(program: &PathBuf) -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log =
            std::env::temp_dir().join(format!("otter-moto-{}-{port}.log", std::process::id()));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let spawned = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                std::fs::remove_file(&log).ok();
                return Err(format!("starting {}: {e}", program.display()));
            }
        };
        // Ends moto once this test process is gone (checked every second).
        let watchdog = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {moto} 2>/dev/null; rm -f '{log}'",
            me = std::process::id(),
            moto = child.id(),
            log = log.display(),
        );
        if let Err(e) = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            child.kill().ok();
            child.wait().ok();
            std::fs::remove_file(&log).ok();
            return Err(format!("starting the moto watchdog: {e}"));
        }
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = output
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(format!("moto_server exited ({status}):\n{tail}"));
            }
            if request(addr, "GET", "/").is_ok() {
                return Ok(Moto {
                    addr,
                    _child: child,
                });
            }
            if Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                return Err(format!(
                    "moto_server did not answer on {addr} within {STARTUP:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP/1.0 request without a body (so the answer is never chunked) and with a dummy
/// signature; returns the status and body.
fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // moto checks no signature, but answers anonymous reads of private objects with 403.
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{REGION}/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete HTTP answer"))?;
    let status = String::from_utf8_lossy(&answer[..head_end])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))?;
    Ok((status, answer[head_end + 4..].to_vec()))
}
