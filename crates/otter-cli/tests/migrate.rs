//! `otter migrate`, and `otter serve` on a PostgreSQL database before and after it, driven as a
//! user would: the `otter` binary as a child process.

use std::path::Path;
use std::process::{Command, Output};

use otter_testkit::serve::Serve;

const OTTER: &str = env!("CARGO_BIN_EXE_otter");
/// A password for test URLs (the test cluster trusts loopback, so any password works); it must
/// never appear in what otter prints.
const PASSWORD: &str = "hunter2";

fn otter(cwd: &Path) -> Command {
    let mut command = otter_testkit::serve::command(OTTER);
    command.current_dir(cwd);
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

    // Not migrated: serve exits at once and says what to do, without the password.
    let output = otter(dir.path())
        .args(["serve", "--data", data, "--database-url", &url])
        .env("OTTER_LISTEN", "127.0.0.1:0")
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

    // Migrated: serve starts (the harness panics, with the log, if it does not).
    let mut server = Serve::builder(OTTER)
        .data(data)
        .env("OTTER_DATABASE_URL", &url)
        .start();
    server.kill();
    let log = server.log();
    assert!(!log.contains(PASSWORD), "{log}");

    let again = migrate(dir.path(), &["--database-url", &url, "--data", data], &[]);
    assert!(again.contains("nothing to apply"), "{again}");
}
