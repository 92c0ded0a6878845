//! `otter migrate`, and `otter serve` on a PostgreSQL database before and after it, driven as a
//! user would: the `otter` binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const OTTER: &str = env!("CARGO_BIN_EXE_otter");
/// Settings that would leak in from the environment of whoever runs the tests.
const OTTER_ENV: &[&str] = &[
    "OTTER_CONFIG",
    "OTTER_LISTEN",
    "OTTER_DATA",
    "OTTER_DATABASE_URL",
    "OTTER_ADMIN_TOKEN",
    "OTTER_LOG_FORMAT",
];
/// A password for test URLs (the test cluster trusts loopback, so any password works); it must
/// never appear in what otter prints.
const PASSWORD: &str = "hunter2";

fn otter(cwd: &Path) -> Command {
    let mut command = Command::new(OTTER);
    command.current_dir(cwd).env("NO_COLOR", "1");
    for name in OTTER_ENV {
        command.env_remove(name);
    }
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `otter migrate <args>`, which must succeed; returns its stdout.
fn migrate(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = otter(cwd)
        .arg("migrate")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "otter migrate {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    stdout
}

#[test]
fn migrate_creates_the_default_sqlite_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = migrate(dir.path(), &["--data", data.to_str().unwrap()], &[]);
    let shown = format!("database: sqlite://{}", data.join("otter.db").display());
    assert!(first.contains(&shown), "{first}");
    assert!(first.contains("applied 0001 init"), "{first}");
    assert!(first.contains("the schema is current"), "{first}");
    assert!(data.join("otter.db").is_file());
    // OTTER_DATA works like --data, and a second run has nothing to do.
    let again = migrate(dir.path(), &[], &[("OTTER_DATA", data.to_str().unwrap())]);
    assert!(again.contains("nothing to apply"), "{again}");

    let help = otter(dir.path()).arg("--help").output().unwrap();
    let (help, _) = text(&help);
    assert!(help.contains("migrate"), "{help}");
}

#[test]
fn serve_refuses_an_unmigrated_postgres_database_until_otter_migrate() {
    let Some(pg) = otter_testkit::postgres::start() else {
        return;
    };
    let url =
        pg.fresh_database_url()
            .replacen("://postgres@", &format!("://postgres:{PASSWORD}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let serve_args = ["serve", "--listen", "127.0.0.1:0", "--data", data];

    // Not migrated: serve exits at once and says what to do, without the password.
    let output = otter(dir.path())
        .args(serve_args)
        .args(["--database-url", &url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("run `otter migrate`"), "{stderr}");
    assert!(
        stderr.contains(&format!("postgres:***@127.0.0.1:{}", pg.port())),
        "{stderr}"
    );
    assert!(
        !stderr.contains(PASSWORD) && !stdout.contains(PASSWORD),
        "{stderr}"
    );

    let applied = migrate(dir.path(), &[], &[("OTTER_DATABASE_URL", &url)]);
    assert!(applied.contains("postgres:***@"), "{applied}");
    assert!(applied.contains("applied 0001 init"), "{applied}");
    assert!(
        applied.contains("applied 0002 catalog versions"),
        "{applied}"
    );

    // Migrated: serve starts.
    let mut child = otter(dir.path())
        .args(serve_args)
        .env("OTTER_DATABASE_URL", &url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("otter listening on") {
                tx.send(()).ok();
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let started = rx.recv_timeout(Duration::from_secs(20));
    child.kill().ok();
    child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(started.is_ok(), "otter serve did not start:\n{log}");
    assert!(!log.contains(PASSWORD), "{log}");

    let again = migrate(dir.path(), &["--database-url", &url, "--data", data], &[]);
    assert!(again.contains("nothing to apply"), "{again}");
}
