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
    program: PathBuf,
    subscriber: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

/// Starts a broker, or returns `None` (after a SKIP line; a panic under `CI=true`) when
/// Mosquitto is not installed.
pub fn start() -> Option<Broker> {
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
        match Broker::launch(&program, &subscriber) {
            Ok(broker) => return Some(broker),
            Err(why) => last = why,
        }
    }
    crate::unavailable("mosquitto", &last)
}

impl Broker {
    fn launch(program: &Path, subscriber: &Path) -> Result<Broker, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let config = std::env::temp_dir().join(format!(
            "otter-mosquitto-{}-{port}.conf",
            std::process::id()
        ));
        // As root, Mosquitto drops to its own user unless told otherwise.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{}",
            if as_root { "user root\n" } else { "" }
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut broker = Broker {
            port,
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
        std::fs::remove_file(&self.config).ok();
    }
}
