//! The real `otter serve` as a child process, the one way every test crate starts it.
//!
//! The server binds `127.0.0.1:0` itself and the harness reads the address it really got (and
//! the data directory it really uses) from its own `otter listening on …` log line. Binding a
//! free port in the test, releasing it and passing the number on is a race: another process
//! may take the port in between. The log line is written once the listener is bound and the
//! data directory (with its admin token) is set up, so when [`Builder::start`] returns, the
//! server accepts connections and the token file exists.
//!
//! ```no_run
//! use otter_testkit::serve::{Serve, command};
//! # let data = std::path::Path::new("/tmp/data");
//! // In a test crate of otter-cli: `env!("CARGO_BIN_EXE_otter")`.
//! let otter = "target/debug/otter";
//! let server = Serve::start(otter, data);
//! let out = command(otter)
//!     .args(["product", "list"])
//!     .envs(server.admin_env())
//!     .output()
//!     .unwrap();
//! assert!(out.status.success());
//! ```

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wait_until;

/// How long a server may take to start listening (a cold debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// What the server logs once it listens: `otter listening on http://ADDR … data=DIR`.
const LISTENING: &str = "otter listening on ";

/// `otter` (the binary at `program`) with none of the runner's `OTTER_*` settings, colours
/// off, no stdin, in the temporary directory (so no `./otter-data` is picked up): what a test
/// runs for a CLI command, and what [`Serve`] runs for the server.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTTER_") {
            command.env_remove(name);
        }
    }
    command
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    command
}

/// How to start `otter serve`: [`Serve::builder`], then [`Builder::start`].
///
/// The server listens on `127.0.0.1:0` (through `OTTER_LISTEN`, so a `--listen` argument or an
/// `OTTER_LISTEN` given with [`Builder::env`] wins) and logs at `info` (`RUST_LOG`, likewise).
#[must_use]
pub struct Builder {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    admin_token: Option<String>,
}

impl Builder {
    /// `--data DIR`. Without it the server takes its data directory from its configuration.
    pub fn data(self, dir: impl AsRef<Path>) -> Self {
        self.arg("--data").arg(dir.as_ref())
    }

    /// `--admin-token TOKEN`; [`Serve::admin_token`] then returns it.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self.arg("--admin-token").arg(token)
    }

    /// One more argument after `otter serve`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments after `otter serve`.
    pub fn args<I: IntoIterator<Item: AsRef<OsStr>>>(self, args: I) -> Self {
        args.into_iter().fold(self, Builder::arg)
    }

    /// An environment variable for the server.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let pair = (name.as_ref().to_owned(), value.as_ref().to_owned());
        self.envs.push(pair);
        self
    }

    /// Environment variables for the server.
    pub fn envs<I, K, V>(self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        envs.into_iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// The server's working directory (default: the temporary directory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts the server and returns once it listens. Panics, with everything the server
    /// printed, when it exits first or does not listen within 30 s.
    pub fn start(self) -> Serve {
        let mut serve = command(&self.program);
        serve
            .arg("serve")
            .args(&self.args)
            .env("OTTER_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .envs(self.envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &self.cwd {
            serve.current_dir(cwd);
        }
        let mut child = serve.spawn().expect("spawn otter serve");

        let stdout = Arc::new(Mutex::new(String::new()));
        let log = Arc::new(Mutex::new(String::new()));
        let (found_tx, found_rx) = mpsc::channel();
        let readers = vec![
            drain(child.stdout.take().unwrap(), stdout.clone(), |_| {}),
            // Keep reading after the listening line, so the server never blocks on a full pipe.
            drain(child.stderr.take().unwrap(), log.clone(), move |line| {
                if let Some(found) = listening(line) {
                    found_tx.send(found).ok();
                }
            }),
        ];
        let mut server = Serve {
            child,
            program: self.program,
            url: String::new(),
            data: PathBuf::new(),
            admin_token: self.admin_token,
            stdout,
            log,
            readers,
        };
        // The log reader drops the sender at EOF, so a server that exits is noticed at once.
        match found_rx.recv_timeout(START_TIMEOUT) {
            Ok((url, data)) => {
                server.url = url;
                server.data = data;
                server
            }
            Err(err) => {
                server.kill();
                panic!(
                    "otter serve did not start listening ({err}; {:?});\nlog:\n{}\nstdout:\n{}",
                    server.child.try_wait(),
                    server.log(),
                    server.stdout()
                );
            }
        }
    }
}

/// A running `otter serve`, killed when dropped.
pub struct Serve {
    child: Child,
    /// The `otter` binary, for admin commands against this server.
    program: PathBuf,
    url: String,
    data: PathBuf,
    admin_token: Option<String>,
    stdout: Arc<Mutex<String>>,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Serve {
    /// A builder for `otter serve` run from the binary at `otter`
    /// (`env!("CARGO_BIN_EXE_otter")`).
    pub fn builder(otter: impl AsRef<Path>) -> Builder {
        Builder {
            program: otter.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            admin_token: None,
        }
    }

    /// `otter serve --data DATA`, started.
    pub fn start(otter: impl AsRef<Path>, data: impl AsRef<Path>) -> Serve {
        Serve::builder(otter).data(data).start()
    }

    /// The server's process id, for looking at (or limiting) the process itself.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory the server uses, as it logged it.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The admin token: the one given to [`Builder::admin_token`], else the one the server
    /// keeps in `admin-token` in its data directory.
    pub fn admin_token(&self) -> String {
        self.admin_token.clone().unwrap_or_else(|| {
            let file = self.data.join("admin-token");
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
                .trim()
                .to_owned()
        })
    }

    /// `OTTER_SERVER` and `OTTER_TOKEN` for an admin command against this server.
    pub fn admin_env(&self) -> [(&'static str, String); 2] {
        [
            ("OTTER_SERVER", self.url.clone()),
            ("OTTER_TOKEN", self.admin_token()),
        ]
    }

    /// `otter <args>` as this server's admin (the same binary); returns what it printed to
    /// stdout, and panics with its stderr unless it succeeds.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = command(&self.program)
            .args(args)
            .envs(self.admin_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "otter {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the server has logged (stderr) so far, without colour codes.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Everything the server has printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (at most 15 s) for the server to exit; afterwards [`Serve::log`]
    /// and [`Serve::stdout`] hold everything it printed.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let status = wait_until(STOP_TIMEOUT, "otter serve exits after SIGTERM", || {
            self.child
                .try_wait()
                .unwrap()
                .ok_or_else(|| format!("still running; log:\n{}", self.log.lock().unwrap()))
        });
        self.join_readers();
        status
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost machine would.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        self.join_readers();
    }

    /// The process is gone, so its pipes are at EOF and the readers finish.
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Reads `pipe` line by line into `sink` on a thread, showing each line to `inspect` first.
fn drain(
    pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    mut inspect: impl FnMut(&str) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let line = strip_ansi(&line);
            inspect(&line);
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    })
}

/// The URL and data directory in `… otter listening on http://127.0.0.1:PORT … data=DIR`. A
/// server told to listen on every interface (`0.0.0.0`, for tests of what that changes) is
/// reached on loopback too.
fn listening(line: &str) -> Option<(String, PathBuf)> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let url = rest.split_whitespace().next()?;
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .or_else(|| url.strip_prefix("http://0.0.0.0:"))?;
    port.parse::<u16>().ok().filter(|&p| p != 0)?;
    // `data` is the line's last field, so a path with spaces survives.
    let data = &rest[rest.find(" data=")? + " data=".len()..];
    Some((format!("http://127.0.0.1:{port}"), PathBuf::from(data)))
}

/// Removes ANSI escape sequences (`ESC [ … letter`), in case colours are on after all.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_url_and_the_data_directory() {
        let line = "2026-12-06T00:00:00.000000Z  \u{1b}[32m INFO\u{1b}[0m otter_cli::serve: \
                    otter listening on http://127.0.0.1:41234 addr=127.0.0.1:41234 \
                    data=/tmp/a b/data";
        assert_eq!(
            listening(&strip_ansi(line)),
            Some((
                "http://127.0.0.1:41234".to_owned(),
                PathBuf::from("/tmp/a b/data")
            ))
        );
        let unbound = "otter listening on http://127.0.0.1:0 addr=127.0.0.1:0 data=/d";
        assert_eq!(listening(unbound), None);
        assert_eq!(listening("otter stopped"), None);
    }
}
