//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` in a temporary directory,
//! listening on a free loopback port, with trust authentication for the `postgres` superuser.
//!
//! One cluster serves the whole test process (it starts on the first [`start`]); every test
//! takes its own empty database from it with [`TempPostgres::fresh_database_url`], so tests
//! stay independent and may run in parallel.
//!
//! The cluster outlives every test but not the process: a small watchdog shell (its own process
//! group, so Ctrl-C does not take it down first) waits for the test process to end, however it
//! ends, then stops the cluster (`pg_ctl -m immediate`) and removes the directory.
//!
//! Binaries come from `PATH` or `/usr/lib/postgresql/<version>/bin` (Debian's layout), newest
//! version first. Running as root, the cluster runs as the `postgres` user via `runuser`, since
//! PostgreSQL refuses to run as root.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The superuser the cluster is created with (trust authentication, loopback only).
const SUPERUSER: &str = "postgres";

/// A running test cluster (a cheap handle; the cluster itself lives as long as the process).
#[derive(Debug, Clone)]
pub struct TempPostgres {
    port: u16,
    psql: PathBuf,
    dir: PathBuf,
}

/// The test process's cluster, started by the first [`start`] call.
///
/// `None` (after a SKIP line; a panic under `CI=true`) when PostgreSQL is not installed. Panics
/// when it is installed but the cluster does not start: that is a broken setup, not a skip.
pub fn start() -> Option<TempPostgres> {
    static CLUSTER: OnceLock<State> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        State::Running(cluster) => Some(cluster.handle.clone()),
        State::Unavailable(why) => crate::unavailable("postgres", why),
        State::Failed(failure) => panic!("starting a test PostgreSQL cluster failed: {failure}"),
    }
}

/// What the first [`start`] found.
enum State {
    Running(Cluster),
    /// The binaries are missing: a skip.
    Unavailable(String),
    /// The binaries are there but the cluster did not start.
    Failed(String),
}

impl TempPostgres {
    /// Creates a new, empty database and returns its URL
    /// (`postgres://postgres@127.0.0.1:<port>/otter_test_<n>`).
    pub fn fresh_database_url(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!("otter_test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Same as [`TempPostgres::fresh_database_url`].
    pub fn url_for_new_database(&self) -> String {
        self.fresh_database_url()
    }

    /// The URL of an existing database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory `data`, server log `log`, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `sql` in `database` with `psql` and returns what it printed (unaligned, tuples
    /// only: one row a line, `|` between columns); panics with psql's message if it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let output = Command::new(&self.psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                database,
            ])
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.psql.display()));
        assert!(
            output.status.success(),
            "psql {sql:?} on {database} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The process-wide cluster and what keeps its watchdog waiting.
struct Cluster {
    handle: TempPostgres,
    /// The write end of the watchdog's stdin, never written and never closed by hand: the
    /// kernel closes it when this process ends, and the watchdog's `read` returns.
    _watchdog: ChildStdin,
}

/// PostgreSQL's server binaries, and how to run them.
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
    /// Prefix for running server binaries: `runuser -u postgres --` as root, nothing otherwise.
    run_as: Vec<OsString>,
}

impl Binaries {
    fn find() -> Result<Binaries, String> {
        let Some(bin) = server_bin_dir() else {
            return Err(
                "initdb/pg_ctl not found in PATH or /usr/lib/postgresql/*/bin \
                 (Debian: apt-get install postgresql)"
                    .to_owned(),
            );
        };
        let psql = [bin.join("psql")]
            .into_iter()
            .chain(in_path("psql"))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("psql not found next to {} or in PATH", bin.display()))?;
        let run_as = if is_root() {
            let runuser = in_path("runuser")
                .find(|p| p.is_file())
                .ok_or("running as root needs runuser to start PostgreSQL as another user")?;
            let known = Command::new("id")
                .args(["-u", SUPERUSER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !known {
                return Err(format!(
                    "running as root needs a {SUPERUSER:?} system user to run PostgreSQL as"
                ));
            }
            vec![
                runuser.into_os_string(),
                "-u".into(),
                SUPERUSER.into(),
                "--".into(),
            ]
        } else {
            Vec::new()
        };
        Ok(Binaries {
            initdb: bin.join("initdb"),
            pg_ctl: bin.join("pg_ctl"),
            psql,
            run_as,
        })
    }

    /// A command running server binary `program`, as the postgres user when we are root.
    fn server_command(&self, program: &Path, dir: &Path) -> Command {
        let mut command = match self.run_as.split_first() {
            Some((runuser, args)) => {
                let mut c = Command::new(runuser);
                c.args(args).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The postgres user may not be allowed into the test's working directory.
        command.current_dir(dir).stdin(Stdio::null());
        command
    }
}

impl Cluster {
    fn start() -> State {
        match Binaries::find() {
            Ok(bins) => Cluster::start_with(bins).unwrap_or_else(State::Failed),
            Err(why) => State::Unavailable(why),
        }
    }

    fn start_with(bins: Binaries) -> Result<State, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("otter-pg-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // From here on the watchdog removes the directory, even if starting fails below.
        let watchdog = spawn_watchdog(&bins, &dir)?;
        if !bins.run_as.is_empty() {
            run(Command::new("chown").arg(SUPERUSER).arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        let initdb = |locale: &[&str]| {
            run(
                bins.server_command(&bins.initdb, &dir)
                    .arg("-D")
                    .arg(&data)
                    .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync"])
                    .args(locale),
                "initdb",
            )
        };
        // Sort text like a typical production server (ICU en-US: "a" < "B"), not byte-wise, so
        // tests see what a schema without explicit collations would do. ICU as the default
        // provider needs PostgreSQL 15 built with ICU; otherwise plain C.
        initdb(&["--locale=C", "--locale-provider=icu", "--icu-locale=en-US"])
            .or_else(|_| initdb(&["--locale=C"]))?;
        // A port may be taken between finding it free and the server binding it: try again.
        let mut failure = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
            let options = format!(
                "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections=200 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.display()
            );
            let started = run(
                bins.server_command(&bins.pg_ctl, &dir)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.join("log"))
                    .args(["-w", "-t", "60", "-o", &options, "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(()) => {
                    return Ok(State::Running(Cluster {
                        handle: TempPostgres {
                            port,
                            psql: bins.psql,
                            dir,
                        },
                        _watchdog: watchdog,
                    }));
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                    failure = format!("{e}\nserver log:\n{log}");
                }
            }
        }
        Err(failure)
    }
}

/// Starts the shell that stops the cluster and removes `dir` once this process has ended.
fn spawn_watchdog(bins: &Binaries, dir: &Path) -> Result<ChildStdin, String> {
    // `read` returns at end of input: when this process, the only holder of the pipe's write
    // end, exits. `$@` is the pg_ctl command (behind runuser as root).
    let script = r#"dir=$1; shift
read -r _ignored
"$@" -D "$dir/data" -m immediate stop >/dev/null 2>&1
rm -rf "$dir""#;
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "otter-pg-watchdog"])
        .arg(dir)
        .args(&bins.run_as)
        .arg(&bins.pg_ctl)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to the tests must not kill it before it cleans up.
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting the cleanup watchdog: {e}"))?;
    let stdin = child.stdin.take().ok_or("watchdog without stdin")?;
    Ok(stdin)
}

/// Runs `command` to completion; its output becomes the error when it fails.
fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut message = format!("{what} failed ({})", output.status);
    for stream in [&output.stdout, &output.stderr] {
        if !stream.is_empty() {
            let _ = write!(message, "\n{}", String::from_utf8_lossy(stream).trim_end());
        }
    }
    Err(message)
}

/// The directory holding `initdb` and `pg_ctl`: from `PATH` (symlinks resolved, so Debian's
/// `/usr/local/bin` links lead to the real directory with `psql`), else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_bin_dir() -> Option<PathBuf> {
    let from_path = in_path("initdb")
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter_map(|p| p.parent().map(Path::to_path_buf));
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    from_path
        .chain(versions.into_iter().map(|(_, dir)| dir))
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// `name` in each `PATH` directory (whether it exists or not).
fn in_path(name: &str) -> impl Iterator<Item = PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let name = name.to_owned();
    dirs.into_iter().map(move |dir| dir.join(&name))
}

fn is_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0"),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Set in the child process of [`the_cluster_is_gone_once_the_process_ends`].
    const HELPER: &str = "OTTER_TESTKIT_PG_HELPER";

    #[test]
    fn every_database_is_new_and_separate() {
        let Some(pg) = start() else { return };
        let (a, b) = (pg.fresh_database_url(), pg.url_for_new_database());
        assert_ne!(a, b);
        let name = |url: &str| url.rsplit('/').next().unwrap().to_owned();
        pg.psql(&name(&a), "CREATE TABLE t (x TEXT)");
        pg.psql(&name(&a), "INSERT INTO t VALUES ('a'), ('B')");
        assert_eq!(pg.psql(&name(&a), "SELECT count(*) FROM t"), "2\n");
        let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
        assert_eq!(pg.psql(&name(&b), tables), "0\n");
        assert!(a.starts_with(&format!("postgres://postgres@127.0.0.1:{}/", pg.port())));
        // The same cluster for the whole process.
        assert_eq!(start().unwrap().port(), pg.port());
        let _ = writeln!(
            std::io::stderr(),
            "test cluster sorts 'a', 'B' as {:?} (en-US when ICU is available, else C)",
            pg.psql(&name(&a), "SELECT string_agg(x, ',' ORDER BY x) FROM t")
        );
    }

    /// Starts the cluster in a child test process, lets that process end, and checks that the
    /// watchdog stopped the server and removed its directory.
    #[test]
    fn the_cluster_is_gone_once_the_process_ends() {
        if std::env::var_os(HELPER).is_some() {
            // The child: start, report, exit (without stopping anything).
            if let Some(pg) = start() {
                println!("cluster {} {}", pg.port(), pg.dir().display());
            }
            return;
        }
        if start().is_none() {
            return;
        }
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "postgres::tests::the_cluster_is_gone_once_the_process_ends",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("cluster ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no cluster line in {stdout}"));
        let (port, dir) = line.split_once(' ').unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let listening =
                std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap())).is_ok();
            if !listening && !Path::new(dir).exists() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child's cluster on port {port} ({dir}) outlived it (listening: {listening})"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
