//! A throwaway MQTT broker: Mosquitto on a free loopback port, one per [`start`], which a test
//! can stop and start again on the same port (a broker restart). Without persistence, so a
//! restart loses every retained message, as a crashed broker would.
//!
//! Messages are read with `mosquitto_sub`, a real MQTT client (Debian: `mosquitto-clients`).
//! `OTTER_MOSQUITTO` names the broker executable when it is neither on `PATH` nor in
//! `/usr/sbin`. A watchdog shell ends the broker if the test process dies without dropping it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the broker may take to accept connections.
const STARTUP: Duration = Duration::from_secs(10);

/// A running (or stopped) broker.
pub struct Broker {
    pub port: u16,
    /// The TLS listener, for brokers from [`start_tls`].
    pub tls: Option<TlsListener>,
    program: PathBuf,
    subscriber: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

/// A TLS listener with a certificate for `127.0.0.1` from a throwaway CA.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub port: u16,
    /// The CA certificate (PEM) a client must trust.
    pub ca_file: PathBuf,
}

/// Starts a broker, or returns `None` (after a SKIP line; a panic under `CI=true`) when
/// Mosquitto is not installed.
pub fn start() -> Option<Broker> {
    start_with(false)
}

/// Like [`start`], with a second, TLS listener ([`Broker::tls`]); certificates are made with
/// the `openssl` command.
pub fn start_tls() -> Option<Broker> {
    start_with(true)
}

fn start_with(tls: bool) -> Option<Broker> {
    let find = |name: &str, fallback: &str| {
        crate::find_on_path(name).or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
    };
    let Some(program) = std::env::var_os("OTTER_MOSQUITTO")
        .map(PathBuf::from)
        .or_else(|| find("mosquitto", "/usr/sbin/mosquitto"))
    else {
        return crate::unavailable(
            "mosquitto",
            "mosquitto is not installed (apt-get install mosquitto)",
        );
    };
    let Some(subscriber) = find("mosquitto_sub", "/usr/bin/mosquitto_sub") else {
        return crate::unavailable(
            "mosquitto",
            "mosquitto_sub is not installed (apt-get install mosquitto-clients)",
        );
    };
    let mut last = String::new();
    for _ in 0..3 {
        match Broker::launch(&program, &subscriber, tls) {
            Ok(broker) => return Some(broker),
            Err(why) => last = why,
        }
    }
    crate::unavailable("mosquitto", &last)
}

impl Broker {
    fn launch(program: &Path, subscriber: &Path, tls: bool) -> Result<Broker, String> {
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| format!("no free port: {e}"))
        };
        let port = free_port()?;
        let base =
            std::env::temp_dir().join(format!("otter-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        // As root, Mosquitto drops to its own user unless told otherwise.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let mut text = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n{}listener {port} 127.0.0.1\n",
            if as_root { "user root\n" } else { "" }
        );
        let tls = if tls {
            let listener = TlsListener {
                port: free_port()?,
                ca_file: base.join("ca.pem"),
            };
            make_certificates(&base)?;
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                listener.port,
                listener.ca_file.display(),
                base.join("server.pem").display(),
                base.join("server.key").display(),
            ));
            Some(listener)
        } else {
            None
        };
        let config = base.join("mosquitto.conf");
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut broker = Broker {
            port,
            tls,
            program: program.to_owned(),
            subscriber: subscriber.to_owned(),
            config,
            child: None,
        };
        broker.run()?;
        Ok(broker)
    }

    /// Starts the broker process on this broker's port and waits until it accepts connections.
    fn run(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut child = Command::new(&self.program)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.program.display()))?;
        let watchdog = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {broker} 2>/dev/null",
            me = std::process::id(),
            broker = child.id(),
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the mosquitto watchdog: {e}"))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("mosquitto exited at startup ({status})"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                return Err(format!(
                    "mosquitto did not listen on {addr} within {STARTUP:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `mqtt://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://127.0.0.1:<tls port>` (brokers from [`start_tls`]).
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|t| format!("mqtts://127.0.0.1:{}", t.port))
    }

    /// Kills the broker (its retained messages are gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.run() {
                Ok(()) => return,
                // The port may linger for a moment after the old process is gone.
                Err(e) if Instant::now() > deadline => panic!("restarting mosquitto: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A client that reads retained messages; it can move to another thread.
    pub fn reader(&self) -> Reader {
        Reader {
            subscriber: self.subscriber.clone(),
            port: self.port,
        }
    }
}

/// Reads retained messages with `mosquitto_sub`.
#[derive(Debug, Clone)]
pub struct Reader {
    subscriber: PathBuf,
    port: u16,
}

impl Reader {
    /// The retained message of `topic`, read by a fresh `mosquitto_sub` within about a second;
    /// `None` when the topic has none. Blocks: call it from `spawn_blocking` in async tests.
    pub fn retained(&self, topic: &str) -> Option<String> {
        let output = Command::new(&self.subscriber)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-C", "1", "-W", "1"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("running mosquitto_sub");
        output.status.success().then(|| {
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned()
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.config.parent() {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running openssl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=otter test CA",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])
}
