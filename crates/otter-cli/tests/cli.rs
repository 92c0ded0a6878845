//! End-to-end tests of the `otter` binary: `otter serve` runs as a child process (the testkit's
//! harness), and the admin commands run against it as further child processes, exactly as a
//! user would.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use otter_testkit::serve::{Serve, command};
use otter_testkit::{wait_until, wait_until_async};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OTTER: &str = env!("CARGO_BIN_EXE_otter");
/// How long a sighting, written in the background, may take to show.
const SIGHTING: Duration = Duration::from_secs(10);

/// `otter serve --data <data>`.
fn serve(data: &Path) -> Serve {
    Serve::start(OTTER, data)
}

/// Runs an admin command against `server`, authenticated by the token file in its data
/// directory (what a user on the server's machine does).
fn admin(server: &Serve, args: &[&str]) -> Run {
    otter(
        args,
        &[
            ("OTTER_SERVER", server.url()),
            ("OTTER_DATA", path(server.data_dir())),
        ],
    )
}

/// [`admin`] with `input` on the command's stdin (a pipe, not a terminal).
fn admin_with_input(server: &Serve, args: &[&str], input: &str) -> Run {
    use std::io::Write as _;
    let mut child = command(OTTER)
        .args(args)
        .env("OTTER_SERVER", server.url())
        .env("OTTER_DATA", path(server.data_dir()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run otter");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().expect("otter's output");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    }
}

/// The result of one `otter` run, with its output decoded.
struct Run {
    args: Vec<String>,
    output: Output,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    #[track_caller]
    fn ok(self) -> String {
        assert!(
            self.output.status.success(),
            "otter {:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.args,
            self.output.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts exit status 1 and an `error: …` on stderr; returns stderr.
    #[track_caller]
    fn fails(self) -> String {
        assert_eq!(
            self.output.status.code(),
            Some(1),
            "otter {:?} should have failed:\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.starts_with("error: "),
            "otter {:?}: stderr: {}",
            self.args,
            self.stderr
        );
        self.stderr
    }
}

/// Runs `otter <args>` with only the given OTTER_* variables set, in a directory without an
/// `otter-data`, so nothing from the developer's environment leaks in.
fn otter(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let output = command(OTTER)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run otter");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A file of `size` random bytes; returns its path and hex SHA-256.
fn random_file(dir: &Path, name: &str, size: usize) -> (PathBuf, String) {
    let mut bytes = vec![0u8; size];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    let file = dir.join(name);
    std::fs::write(&file, &bytes).unwrap();
    (file, hex::encode(Sha256::digest(&bytes)))
}

/// A port on which nothing listens (bound, then released).
/// A port nothing listens on, below the kernel's ephemeral range (32768 and up by default): a
/// port the kernel hands out (a server bound to port 0, a client's source port) can be taken by
/// another test before the otter under test binds it, and a client knocking on such a port
/// can even connect to itself (TCP simultaneous open), as if the server were up already.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let start = RandomState::new().hash_one(std::process::id());
    (0..1000u64)
        .map(|i| 20_000 + ((start.wrapping_add(i * 7_919)) % 12_000) as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port between 20000 and 32000")
}

#[test]
fn first_start_creates_the_token_once_and_the_cli_finds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = serve(&data);

    // The token is printed before the server listens, but the reader thread may lag behind.
    let token_line = |stdout: &str| {
        stdout
            .split_inclusive('\n')
            .find(|line| line.trim_start().starts_with("otter_") && line.ends_with('\n'))
            .map(|line| line.trim().to_owned())
    };
    let token = wait_until(Duration::from_secs(5), "the token on stdout", || {
        let stdout = server.stdout();
        token_line(&stdout).ok_or(stdout)
    });
    let stdout = server.stdout();
    assert!(stdout.contains("admin-token"), "{stdout}");
    let file = data.join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "admin-token has mode {mode:o}");
    }

    // No --token: the CLI reads $OTTER_DATA/admin-token.
    let out = admin(
        &server,
        &["product", "create", "sensor", "--scheme", "lexical"],
    )
    .ok();
    assert_eq!(out, "created product sensor (version scheme lexical)\n");
    // Without the file (and no token otherwise), the server refuses and the CLI says what to do.
    let elsewhere = tmp.path().join("elsewhere");
    let err = otter(
        &["product", "list"],
        &[
            ("OTTER_SERVER", server.url()),
            ("OTTER_DATA", path(&elsewhere)),
        ],
    )
    .fails();
    assert!(err.contains("(unauthorized)"), "{err}");
    assert!(err.contains("no admin token was given"), "{err}");
    // The token works as --token and OTTER_TOKEN too.
    otter(
        &[
            "product",
            "list",
            "--server",
            server.url(),
            "--token",
            &token,
        ],
        &[],
    )
    .ok();
    otter(
        &["product", "list"],
        &[("OTTER_SERVER", server.url()), ("OTTER_TOKEN", &token)],
    )
    .ok();
    let status = server.terminate();
    assert!(status.success(), "{status}");

    // The second start finds the token and prints nothing; the old token still works.
    let mut server = serve(&data);
    let listed = admin(&server, &["product", "list"]).ok();
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(listed.contains("sensor"), "{listed}");
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(server.stdout(), "", "second start printed on stdout");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
}

#[tokio::test]
async fn publish_check_yank_and_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let otter = |args: &[&str]| admin(&server, args);

    let out = otter(&["product", "create", "demo", "--scheme", "semver"]).ok();
    assert_eq!(out, "created product demo (version scheme semver)\n");

    const SIZE: usize = 3 * 1024 * 1024;
    let (file, sha256) = random_file(tmp.path(), "fw.bin", SIZE);
    let out = otter(&[
        "release",
        "publish",
        "demo",
        path(&file),
        "--version",
        "1.0.0",
        "--title",
        "T",
        "--channel",
        "stable",
    ])
    .ok();
    assert_eq!(
        out,
        format!("published demo 1.0.0 on stable: sha256 {sha256}, 3.00 MiB ({SIZE} bytes)\n")
    );

    let table = otter(&["release", "list", "demo"]).ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("VERSION"), "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..3], ["1.0.0", "stable", "-"], "{table}");
    assert!(lines[1].contains(&sha256[..12]), "{table}");
    assert!(lines[1].ends_with(" T"), "{table}");

    let json: Value = serde_json::from_str(&otter(&["release", "list", "demo", "--json"]).ok())
        .expect("--json prints JSON");
    let releases = json.as_array().expect("a JSON array");
    assert_eq!(releases.len(), 1, "{json}");
    assert_eq!(releases[0]["version"], "1.0.0");
    assert_eq!(releases[0]["title"], "T");
    assert_eq!(releases[0]["channels"], serde_json::json!(["stable"]));
    assert_eq!(releases[0]["artifact"]["sha256"], sha256.as_str());
    assert_eq!(releases[0]["artifact"]["size"], SIZE);
    assert_eq!(releases[0]["yanked"], false);
    // Times are RFC 3339 UTC, like releaseDate, as the server sent them.
    let created = releases[0]["createdAt"]
        .as_str()
        .expect("createdAt as text");
    assert!(created.ends_with('Z'), "{created}");
    otter_core::model::parse_rfc3339("createdAt", created).unwrap();

    // A device on 0.9.0 is offered 1.0.0, and the offered URL serves the published bytes.
    let http = reqwest::Client::new();
    let check = format!("{}/api/v1/products/demo/check", server.url());
    let answer: Value = http
        .get(format!("{check}?current=0.9.0&device=d1"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["hasUpdate"], true, "{answer}");
    let manifest = &answer["manifest"];
    assert_eq!(manifest["version"], "1.0.0", "{answer}");
    assert_eq!(manifest["sha256"], sha256.as_str(), "{answer}");
    assert_eq!(manifest["size"], SIZE, "{answer}");
    assert_eq!(manifest["title"], "T", "{answer}");
    let url = manifest["url"].as_str().expect("manifest url");
    assert!(url.starts_with(server.url()), "{url}");
    let body = http
        .get(url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(Sha256::digest(&body)), sha256);

    // The sighting is written in the background: poll for it, bounded.
    let devices = wait_until(SIGHTING, "device d1 is listed", || {
        let out = otter(&["device", "list", "demo", "--json"]).ok();
        let devices: Value = serde_json::from_str(&out).unwrap();
        match devices.as_array().unwrap().is_empty() {
            true => Err(out),
            false => Ok(devices),
        }
    });
    assert_eq!(devices[0]["id"], "d1", "{devices}");
    assert_eq!(devices[0]["currentVersion"], "0.9.0", "{devices}");
    assert_eq!(devices[0]["channel"], "stable", "{devices}");
    let table = otter(&["device", "list", "demo"]).ok();
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("d1 "), "{table}");

    // The device reports the install; `report list` shows it.
    let status = http
        .post(format!("{}/api/v1/products/demo/reports", server.url()))
        .json(&serde_json::json!({"device": "d1", "version": "1.0.0", "state": "installed"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let table = otter(&["report", "list", "demo", "--device", "d1"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1..], ["d1", "1.0.0", "installed", "-"], "{table}");
    let other = otter(&["report", "list", "demo", "--device", "d2"]);
    assert_eq!(other.stderr, "no reports\n");
    assert_eq!(other.ok(), "");

    // Yanked: no longer offered, and flagged in the list.
    let out = otter(&["release", "yank", "demo", "1.0.0"]).ok();
    assert_eq!(out, "yanked demo 1.0.0: it will not be offered again\n");
    let answer: Value = http
        .get(format!("{check}?current=0.9.0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"hasUpdate": false}));
    let table = otter(&["release", "list", "demo"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["1.0.0", "stable", "yanked"], "{table}");
}

#[test]
fn errors_exit_non_zero_with_the_servers_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let otter_at = |args: &[&str]| admin(&server, args);
    otter_at(&["product", "create", "demo"]).ok();
    let (file, sha256) = random_file(tmp.path(), "fw.bin", 10_000);
    let publish = |version: &str| {
        otter_at(&[
            "release",
            "publish",
            "demo",
            path(&file),
            "--version",
            version,
        ])
    };
    publish("1.0.0").ok();

    // Versions are never reused, yanked or not.
    let err = publish("1.0.0").fails();
    assert!(err.contains("never reused"), "{err}");
    assert!(err.contains("(version_exists)"), "{err}");
    otter_at(&["release", "yank", "demo", "1.0.0"]).ok();
    let err = publish("1.0.0").fails();
    assert!(err.contains("(version_exists)"), "{err}");
    // The same bytes under a new version are fine (the image is stored once).
    let out = publish("1.0.1").ok();
    assert!(out.contains(&sha256), "{out}");

    // Refused before any upload: a version that is not semver.
    let err = publish("one").fails();
    assert!(err.contains("(invalid_version)"), "{err}");

    // Unknown product or release.
    let err = otter_at(&["release", "list", "nope"]).fails();
    assert!(err.contains("(product_not_found)"), "{err}");
    assert!(err.contains("nope"), "{err}");
    let err = otter_at(&[
        "release",
        "publish",
        "nope",
        path(&file),
        "--version",
        "1.0.0",
    ])
    .fails();
    assert!(err.contains("(product_not_found)"), "{err}");
    let err = otter_at(&["release", "deprecate", "demo", "9.9.9"]).fails();
    assert!(err.contains("9.9.9"), "{err}");

    // A product that exists already.
    let err = otter_at(&["product", "create", "demo"]).fails();
    assert!(err.contains("(product_exists)"), "{err}");

    // A wrong token: 401 with the server's message (and no hint, since a token was given).
    let err = otter(
        &[
            "product",
            "list",
            "--server",
            server.url(),
            "--token",
            "nope",
        ],
        &[],
    )
    .fails();
    assert_eq!(err, "error: the admin token is not valid (unauthorized)\n");

    // No server at all: the message names where we tried.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let err = otter(&["product", "list", "--server", &url, "--token", "t"], &[]).fails();
    assert!(
        err.contains(&format!("could not reach the otter server at {url}/")),
        "{err}"
    );

    // A malformed server URL is refused before any request.
    let err = otter(&["product", "list", "--server", "localhost:8080"], &[]).fails();
    assert!(err.contains("invalid server URL"), "{err}");
}

#[test]
fn environment_overrides_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("from-file");
    // The file names a port that is taken, so only the environment's address can work.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = tmp.path().join("otter.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{}\"\ndata = \"{}\"\n",
            taken.local_addr().unwrap(),
            path(&data)
        ),
    )
    .unwrap();

    let server = Serve::builder(OTTER)
        .args(["--config", path(&config)])
        .env("OTTER_LISTEN", "127.0.0.1:0")
        .start();
    let port: u16 = server.url().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, taken.local_addr().unwrap().port());
    // The file still supplies what the environment does not: the data directory.
    assert_eq!(server.data_dir(), data);
    assert!(data.join("admin-token").exists());
    admin(&server, &["product", "list"]).ok();
    drop(server);

    // Without the override, the file's taken address is used and the failure is explained.
    let out = command(OTTER)
        .args(["serve", "--config", path(&config)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let addr = taken.local_addr().unwrap().to_string();
    assert!(
        stderr.contains(&format!("error: listening on {addr}")),
        "{stderr}"
    );
}

/// One setting of each kind (size, duration, path, secret) from the file, the environment and
/// flags at once: the environment beats the file, and flags beat both.
#[test]
fn flags_beat_the_environment_which_beats_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| path(&tmp.path().join(name)).to_owned();
    let config = tmp.path().join("otter.toml");
    std::fs::write(
        &config,
        format!(
            "max_upload = \"1MiB\"\nupload_ttl = \"1h\"\ndata = \"{}\"\nadmin_token = \"file-token-0123456789abcdef0123456789\"\n",
            dir("file-data")
        ),
    )
    .unwrap();
    let env_data = dir("env-data");
    let env = [
        ("OTTER_MAX_UPLOAD", "2MiB"),
        ("OTTER_UPLOAD_TTL", "2h"),
        ("OTTER_DATA", env_data.as_str()),
        ("OTTER_ADMIN_TOKEN", "env-token-0123456789abcdef0123456789"),
        // The resolved settings are logged (secrets hidden) at debug level.
        ("RUST_LOG", "info,otter::serve=debug"),
    ];
    let flag_data = dir("flag-data");
    let flags = [
        "--max-upload",
        "3MiB",
        "--upload-ttl",
        "3h",
        "--data",
        &flag_data,
        "--admin-token",
        "flag-token-0123456789abcdef0123456789",
    ];
    let cases = [
        (
            &[][..],
            "max_upload: 2097152",
            "upload_ttl: 7200s",
            &env_data,
            "env-token-0123456789abcdef0123456789",
            "file-token-0123456789abcdef0123456789",
        ),
        (
            &flags[..],
            "max_upload: 3145728",
            "upload_ttl: 10800s",
            &flag_data,
            "flag-token-0123456789abcdef0123456789",
            "env-token-0123456789abcdef0123456789",
        ),
    ];
    for (extra, size, ttl, data, token, beaten) in cases {
        let mut args = vec!["--config", path(&config), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = Serve::builder(OTTER)
            .args(&args)
            .envs(env)
            .current_dir(tmp.path())
            .start();
        let log = server.log();
        for shown in [size, ttl, &format!("data_dir: {data:?}")] {
            assert!(log.contains(shown), "{shown} not in {log}");
        }
        assert!(!log.contains(token), "a secret in the log: {log}");
        let list = |token: &str| {
            let args = [
                "product",
                "list",
                "--server",
                server.url(),
                "--token",
                token,
            ];
            otter(&args, &[])
        };
        list(token).ok();
        list(beaten).fails();
        assert!(
            Path::new(data).join(".lock").exists(),
            "{data} is the data directory"
        );
    }
}

/// A configured admin token shorter than 32 characters stops `otter serve` before it creates
/// anything, and the error says what is wrong without showing the token.
#[test]
fn a_short_admin_token_is_refused_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = KillOnDrop(
        command(OTTER)
            .args(["serve", "--listen", "127.0.0.1:0", "--data", path(&data)])
            .args(["--admin-token", "short-SECRET"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn otter serve"),
    );
    let status = wait_until(Duration::from_secs(30), "otter serve exits", || {
        server
            .0
            .try_wait()
            .unwrap()
            .ok_or_else(|| "running".to_owned())
    });
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("has 12 characters"), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
}

/// The admin token can come from a file named by `OTTER_ADMIN_TOKEN_FILE` (or
/// `--admin-token-file`), so it shows neither in `ps` nor in the environment; a data directory
/// others can read gets a warning.
#[test]
fn the_admin_token_can_come_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "token-from-a-file-0123456789abcdef";
    let token_file = tmp.path().join("admin-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Serve::builder(OTTER)
        .data(&data)
        .env("OTTER_ADMIN_TOKEN_FILE", &token_file)
        .start();
    let log = server.log();
    assert!(
        log.contains("the data directory is open to other users") && log.contains("755"),
        "{log}"
    );
    assert!(!log.contains(token), "{log}");
    otter(
        &[
            "product",
            "list",
            "--server",
            server.url(),
            "--token",
            token,
        ],
        &[],
    )
    .ok();
    assert!(
        !data.join("admin-token").exists(),
        "a configured token is not written"
    );
}

/// A process killed when dropped, so a failing test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `otter serve & otter product create …`: whoever can connect finds the admin token file,
/// because otter listens only once it has written it.
#[test]
fn a_client_that_can_connect_finds_the_admin_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Our own port number, so we can knock before the server says where it listens (the one
    // test that cannot let the server pick its port).
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = KillOnDrop(
        command(OTTER)
            .args(["serve", "--listen", &addr, "--data", path(&data)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn otter serve"),
    );
    wait_until(
        Duration::from_secs(30),
        "otter serve accepts connections",
        || {
            let exited = server.0.try_wait().unwrap();
            assert!(exited.is_none(), "otter serve exited: {exited:?}");
            std::net::TcpStream::connect(&addr)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
    let token = std::fs::read_to_string(data.join("admin-token"))
        .expect("the token file exists as soon as the port accepts connections");
    let url = format!("http://{addr}");
    let args = [
        "product",
        "create",
        "demo",
        "--server",
        &url,
        "--token",
        token.trim(),
    ];
    otter(&args, &[]).ok();
}

/// Colours are for terminals: a log going to a pipe (a file, journald, a collector) is plain.
#[test]
fn a_log_into_a_pipe_has_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::builder(OTTER)
        .data(tmp.path().join("data"))
        // What a developer's shell has: colours would be on, were stderr a terminal.
        .env("NO_COLOR", "")
        .env("TERM", "xterm-256color")
        .start();
    let log = server.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains("\u{1b}["), "colour codes in {log:?}");
}

#[test]
fn sigterm_stops_cleanly_and_data_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = serve(&data);
    admin(&server, &["product", "create", "demo"]).ok();
    let (file, sha256) = random_file(tmp.path(), "fw.bin", 4096);
    admin(
        &server,
        &[
            "release",
            "publish",
            "demo",
            path(&file),
            "--version",
            "2.1.0",
        ],
    )
    .ok();

    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = server.log();
    assert!(log.contains("otter stopped"), "{log}");
    drop(server);

    let server = serve(&data);
    let products = admin(&server, &["product", "list"]).ok();
    assert!(
        products.lines().any(|l| l.starts_with("demo ")),
        "{products}"
    );
    let releases = admin(&server, &["release", "list", "demo"]).ok();
    let row = releases.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("2.1.0 "), "{releases}");
    assert!(row.contains(&sha256[..12]), "{releases}");
}

#[test]
fn help_names_the_commands_and_flags() {
    let help = otter(&["--help"], &[]).ok();
    for word in [
        "serve", "product", "release", "device", "report", "apikey", "iotawatt", "token", "audit",
        "rollout",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let help = otter(&["release", "publish", "--help"], &[]).ok();
    for flag in [
        "--version",
        "--channel",
        "--title",
        "--summary",
        "--min-source-version",
        "--mandatory",
        "--notes-url",
        "--release-date",
        "--server",
        "--token",
    ] {
        assert!(help.contains(flag), "publish --help lacks {flag}: {help}");
    }
    let help = otter(&["serve", "--help"], &[]).ok();
    for flag in ["--listen", "--data", "--config", "OTTER_LISTEN"] {
        assert!(help.contains(flag), "serve --help lacks {flag}: {help}");
    }
    // A typo is a usage error (exit 2), not a crash.
    let run = otter(&["relase", "list"], &[]);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr);
}

/// Tokens with roles and the audit log from the command line: the first-start token is the
/// bootstrap admin, a publisher publishes but may not create products, a revoked token is
/// refused, and `otter audit` shows who did what.
#[test]
fn tokens_roles_and_the_audit_log_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("otter-data");
    let server = serve(&data);
    let tokens = admin(&server, &["token", "list"]).ok();
    let generated: Vec<&str> = tokens.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(generated[..2], ["generated", "admin"], "{tokens}");

    let run = admin(
        &server,
        &[
            "token",
            "create",
            "ci",
            "--role",
            "publisher",
            "--expires",
            "90d",
        ],
    );
    assert!(
        run.stderr.contains("publisher token ci (expires "),
        "{}",
        run.stderr
    );
    let ci = run.ok().trim().to_owned();
    assert!(ci.starts_with("otter_"), "only the token on stdout: {ci:?}");
    let as_ci = |args: &[&str]| {
        otter(
            args,
            &[("OTTER_SERVER", server.url()), ("OTTER_TOKEN", ci.as_str())],
        )
    };
    admin(&server, &["product", "create", "demo"]).ok();
    let (file, _) = random_file(tmp.path(), "fw.bin", 4096);
    as_ci(&[
        "release",
        "publish",
        "demo",
        path(&file),
        "--version",
        "1.0.0",
    ])
    .ok();
    let err = as_ci(&["product", "create", "other"]).fails();
    assert_eq!(
        err,
        "error: this endpoint needs the admin role; the token \"ci\" has publisher (forbidden)\n"
    );
    let err = as_ci(&["audit"]).fails();
    assert!(err.contains("needs the admin role"), "{err}");

    let log = admin(&server, &["audit", "--actor", "ci", "--since", "1h"]).ok();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{log}");
    let publishes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("release.publish"))
        .collect();
    assert_eq!(publishes.len(), 1, "{log}");
    assert!(publishes[0].contains("ci (publisher)"), "{log}");
    assert!(publishes[0].contains("demo/1.0.0"), "{log}");
    let json: Value = serde_json::from_str(
        &admin(&server, &["audit", "--action", "token.create", "--json"]).ok(),
    )
    .unwrap();
    assert_eq!(json[0]["target"], "ci");
    assert_eq!(json[0]["actor"], "generated");

    let out = admin(&server, &["token", "revoke", "ci"]).ok();
    assert_eq!(out, "revoked token ci\n");
    let err = as_ci(&["release", "list", "demo"]).fails();
    assert_eq!(
        err,
        "error: the admin token has been revoked (unauthorized)\n"
    );
    let listed = admin(&server, &["token", "list"]).ok();
    let row = listed.lines().find(|l| l.starts_with("ci ")).unwrap();
    assert_eq!(
        row.split_whitespace().count(),
        6,
        "revoked, with a time: {listed}"
    );
    let err = admin(&server, &["token", "create", "x", "--role", "root"]);
    assert_eq!(err.output.status.code(), Some(2), "{}", err.stderr);
}

/// `otter user`: create with the password on stdin, list, passwd and disable, checked by
/// logging in over HTTP as the web UI does.
#[tokio::test]
async fn users_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("otter-data"));
    let http = reqwest::Client::new();
    let login = async |name: &str, password: &str| {
        http.post(format!("{}/api/v1/session", server.url()))
            .json(&serde_json::json!({"name": name, "password": password}))
            .send()
            .await
            .unwrap()
            .status()
    };
    let first = "correct horse battery staple";
    let out = admin_with_input(
        &server,
        &["user", "create", "ann", "--role", "publisher"],
        &format!("{first}\n"),
    )
    .ok();
    assert_eq!(out, "created publisher user ann\n");
    assert_eq!(login("ann", first).await, reqwest::StatusCode::OK);
    let err = admin_with_input(
        &server,
        &["user", "create", "bob", "--role", "viewer"],
        "short\n",
    )
    .fails();
    assert!(err.contains("(weak_password)"), "{err}");
    let err = admin_with_input(&server, &["user", "create", "bob", "--role", "viewer"], "").fails();
    assert!(err.contains("no password on stdin"), "{err}");

    let list = admin(&server, &["user", "list"]).ok();
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "ROLE", "DISABLED", "CREATED", "LAST", "LOGIN"]
    );
    assert_eq!(rows[1][..3], ["ann", "publisher", "no"], "{list}");
    assert_ne!(rows[1][4], "-", "the login is listed: {list}");

    let second = "another long passphrase";
    admin_with_input(&server, &["user", "passwd", "ann"], &format!("{second}\n")).ok();
    assert_eq!(login("ann", first).await, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(login("ann", second).await, reqwest::StatusCode::OK);

    let out = admin(&server, &["user", "disable", "ann"]).ok();
    assert!(out.starts_with("disabled ann"), "{out}");
    assert_eq!(
        login("ann", second).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    let json: Value =
        serde_json::from_str(&admin(&server, &["user", "list", "--json"]).ok()).unwrap();
    assert_eq!(json[0]["disabled"], true, "{json}");
    admin(&server, &["user", "enable", "ann"]).ok();
    assert_eq!(login("ann", second).await, reqwest::StatusCode::OK);
    let err = admin(&server, &["user", "disable", "nobody"]).fails();
    assert!(err.contains("(user_not_found)"), "{err}");
}

/// Device API keys and auto-update from the command line, with a THiNX device checking in.
#[tokio::test]
async fn device_list_tag_pin_and_admission_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let otter = |args: &[&str]| admin(&server, args);
    otter(&["product", "create", "demo"]).ok();
    for (version, size) in [("1.0.0", 1000), ("1.1.0", 1001)] {
        let (file, _) = random_file(tmp.path(), &format!("{version}.bin"), size);
        otter(&[
            "release",
            "publish",
            "demo",
            path(&file),
            "--version",
            version,
        ])
        .ok();
    }
    let http = reqwest::Client::new();
    let check = async |device: &str| {
        let url = format!(
            "{}/api/v1/products/demo/check?device={device}&current=1.1.0",
            server.url()
        );
        let resp = http.get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (
            status,
            body["manifest"]["version"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(check("d1").await, (200, None));
    assert_eq!(check("d2").await, (200, None));
    wait_until(SIGHTING, "both devices are listed", || {
        let out = otter(&["device", "list", "demo", "--json"]).ok();
        let devices: Value = serde_json::from_str(&out).unwrap();
        (devices.as_array().unwrap().len() == 2)
            .then_some(())
            .ok_or(out)
    });

    // Tag one device; a tagging of everyone must say so.
    let out = otter(&["device", "tag", "demo", "canary", "d1"]).ok();
    assert_eq!(out, "tagged 1 device(s) of demo canary\n");
    let err = otter(&["device", "tag", "demo", "canary"]).fails();
    assert!(err.contains("--all"), "{err}");
    let out = otter(&["device", "tag", "demo", "wave-1", "--version", "1.1.0"]).ok();
    assert_eq!(out, "tagged 2 device(s) of demo wave-1\n");
    let listed: Value =
        serde_json::from_str(&otter(&["device", "list", "demo", "--tag", "canary", "--json"]).ok())
            .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], "d1");
    assert_eq!(listed[0]["tags"], serde_json::json!(["canary", "wave-1"]));
    assert_eq!(listed[0]["protocol"], "native");

    // Pinned to the older release: offered it, and the table shows the pin and the tags.
    let out = otter(&["device", "pin", "demo", "d1", "1.0.0"]).ok();
    assert_eq!(out, "demo d1: pinned to 1.0.0\n");
    assert_eq!(check("d1").await, (200, Some("1.0.0".to_owned())));
    let table = otter(&["device", "list", "demo", "--tag", "canary"]).ok();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..7],
        [
            "ID", "CHANNEL", "VERSION", "HASH", "TAGS", "PINNED", "PROTOCOL"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["d1", "stable"], "{table}");
    assert_eq!(row[4..7], ["canary,wave-1", "1.0.0", "native"], "{table}");
    let shown: Value =
        serde_json::from_str(&otter(&["device", "show", "demo", "d1"]).ok()).unwrap();
    assert_eq!(
        (&shown["id"], &shown["pinnedVersion"], &shown["rollouts"]),
        (
            &serde_json::json!("d1"),
            &serde_json::json!("1.0.0"),
            &serde_json::json!([])
        ),
        "{shown}"
    );
    let err = otter(&["device", "pin", "demo", "d1", "9.9.9"]).fails();
    assert!(err.contains("release_not_found"), "{err}");
    otter(&["device", "unpin", "demo", "d1"]).ok();
    assert_eq!(check("d1").await, (200, None));

    // Denied, d2 is refused; the product stays open to others.
    otter(&["device", "deny", "demo", "d2"]).ok();
    assert_eq!(check("d2").await.0, 403);
    assert_eq!(check("d3").await.0, 200);
    let out = otter(&["product", "admission", "demo", "allowlist"]).ok();
    assert_eq!(out, "admission: allowlist\nallowed:   -\ndenied:    d2\n");
    assert_eq!(check("d3").await.0, 403);
    otter(&["device", "allow", "demo", "d3"]).ok();
    assert_eq!(check("d3").await.0, 200);
    let out = otter(&["device", "delete", "demo", "d1"]).ok();
    assert_eq!(out, "deleted device d1 of demo\n");
}

#[tokio::test]
async fn apikeys_and_auto_update_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("otter-data");
    let server = serve(&data);
    admin(&server, &["product", "create", "lamp"]).ok();
    let key = admin(&server, &["apikey", "create", "lamp", "--label", "factory"]).ok();
    let key = key.trim();
    assert_eq!(key.len(), 64, "only the key on stdout: {key:?}");
    let listed = admin(&server, &["apikey", "list", "lamp"]).ok();
    assert!(listed.contains("factory"), "{listed}");
    assert!(
        !listed.contains(key),
        "the key is never shown again: {listed}"
    );
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let client = reqwest::Client::new();
    let register = || {
        client
            .post(format!("{}/device/register", server.url()))
            .header("authentication", key)
            .json(&serde_json::json!({"registration": {"mac": "5C:CF:7F:00:00:01", "version": "1.0.0"}}))
            .send()
    };
    let answer: Value = register().await.unwrap().json().await.unwrap();
    let udid = answer["registration"]["udid"].as_str().unwrap().to_owned();
    // The check-in's sighting is written in the background.
    let set = wait_until(SIGHTING, "device set finds the device", || {
        let run = admin(
            &server,
            &["device", "set", "lamp", &udid, "--auto-update", "on"],
        );
        match run.output.status.success() {
            true => Ok(run.stdout),
            false => Err(run.stderr),
        }
    });
    assert!(set.contains("auto-update on"), "{set}");
    let devices = admin(&server, &["device", "list", "lamp", "--json"]).ok();
    assert!(devices.contains("\"autoUpdate\":true"), "{devices}");
    let unknown = admin(
        &server,
        &["device", "set", "lamp", "nobody", "--auto-update", "off"],
    )
    .fails();
    assert!(unknown.contains("never seen"), "{unknown}");

    admin(&server, &["apikey", "revoke", "lamp", &id]).ok();
    assert_eq!(
        register().await.unwrap().status(),
        reqwest::StatusCode::UNAUTHORIZED
    );
}

/// The IotaWatt story from the command line: a key, a signed blob, a product that checks it, and
/// what the device then fetches.
#[tokio::test]
async fn iotawatt_keygen_pack_verify_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = dir.join("release.key");
    let printed = otter(&["iotawatt", "keygen", "--out", path(&key)], &[]).ok();
    assert!(
        printed.starts_with("const uint8_t publicKey[32] PROGMEM = {"),
        "{printed}"
    );
    let public = std::fs::read_to_string(dir.join("release.key.pub")).unwrap();
    assert_eq!(public.trim().len(), 64);
    // The key is private, and not overwritten by accident.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = otter(&["iotawatt", "keygen", "--out", path(&key)], &[]).fails();
    assert!(again.contains("--force"), "{again}");

    let (firmware, _) = random_file(dir, "firmware.bin", 250_000);
    std::fs::write(dir.join("tables.txt"), "{}").unwrap();
    let blob = dir.join("02_08_04.bin");
    let fw_spec = format!("{}=iotawatt.bin", path(&firmware));
    otter(
        &[
            "iotawatt",
            "pack",
            "--version",
            "02_08_04",
            "--key",
            path(&key),
            &fw_spec,
            path(&dir.join("tables.txt")),
            "-o",
            path(&blob),
        ],
        &[],
    )
    .ok();
    let pub_path = dir.join("release.key.pub");
    // The same blob through an external signer (OpenSSL holding the key): byte-identical, as
    // Ed25519 signatures are deterministic.
    let tbs = dir.join("blob.tbs");
    let external = dir.join("external.bin");
    let pack_args = |extra: &[&str], out: &Path| {
        let mut args = vec!["iotawatt", "pack", "--version", "02_08_04"];
        args.extend_from_slice(extra);
        let owned = [fw_spec.clone(), path(&dir.join("tables.txt")).to_owned()];
        let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        args.extend(owned);
        args.extend(["-o".to_owned(), path(out).to_owned()]);
        args
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        otter(&refs, &[]).ok()
    };
    run(pack_args(&["--to-be-signed", path(&tbs)], &external));
    let status = Command::new("openssl")
        .args([
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            path(&key),
            "-in",
            path(&tbs),
            "-out",
        ])
        .arg(dir.join("blob.sig"))
        .status()
        .expect("openssl");
    assert!(status.success());
    let sig = dir.join("blob.sig");
    run(pack_args(
        &["--signature", path(&sig), "--pubkey", path(&pub_path)],
        &external,
    ));
    assert_eq!(
        std::fs::read(&external).unwrap(),
        std::fs::read(&blob).unwrap()
    );
    let verified = otter(
        &[
            "iotawatt",
            "verify",
            "--pubkey",
            path(&pub_path),
            path(&blob),
        ],
        &[],
    )
    .ok();
    assert!(
        verified.contains("release 02_08_04, signature OK"),
        "{verified}"
    );
    assert!(
        verified.contains("iotawatt.bin") && verified.contains("tables.txt"),
        "{verified}"
    );
    // One flipped byte: refused, exit 1.
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 0x40;
    let tampered = dir.join("tampered.bin");
    std::fs::write(&tampered, &bytes).unwrap();
    let refused = otter(
        &[
            "iotawatt",
            "verify",
            "--pubkey",
            public.trim(),
            path(&tampered),
        ],
        &[],
    )
    .fails();
    assert!(refused.contains("does not verify"), "{refused}");
    let out = dir.join("out");
    otter(
        &[
            "iotawatt",
            "unpack",
            path(&blob),
            "-d",
            path(&out),
            "--pubkey",
            path(&pub_path),
        ],
        &[],
    )
    .ok();
    assert_eq!(
        std::fs::read(out.join("iotawatt.bin")).unwrap(),
        std::fs::read(&firmware).unwrap()
    );

    // On a server: the product checks blobs with the key; the device gets what was published.
    let data = dir.join("otter-data");
    let server = serve(&data);
    admin(
        &server,
        &["iotawatt", "setup", "meter", "--pubkey", path(&pub_path)],
    )
    .ok();
    let refused = admin(
        &server,
        &[
            "release",
            "publish",
            "meter",
            path(&tampered),
            "--version",
            "02_08_04",
            "--channel",
            "MAJOR",
        ],
    )
    .fails();
    assert!(
        refused.contains("invalid_signature") || refused.contains("signature"),
        "{refused}"
    );
    admin(
        &server,
        &[
            "release",
            "publish",
            "meter",
            path(&blob),
            "--version",
            "02_08_04",
            "--channel",
            "MAJOR",
        ],
    )
    .ok();
    let client = reqwest::Client::new();
    let versions: Value = client
        .get(format!(
            "{}/iotawatt/meter/firmware/versions.json",
            server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["classes"]["MAJOR"], "02_08_04");
    let served = client
        .get(format!(
            "{}/iotawatt/meter/firmware/bin/02_08_04.bin",
            server.url()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&served[..], &std::fs::read(&blob).unwrap()[..]);
}

/// Signed releases from the command line: keys, a root signed by two keys (one through an
/// "external signer", played by OpenSSL), a signed release manifest, and publishing with it.
#[tokio::test]
async fn keys_root_and_signed_release_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("otter-data");
    let server = serve(&data);
    admin(&server, &["product", "create", "door"]).ok();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();

    let root_a = otter(&["keys", "generate", "--out", &p("root-a")], &[]).ok();
    assert_eq!(root_a.trim().len(), 64, "prints the key id: {root_a}");
    otter(&["keys", "generate", "--out", &p("root-b")], &[]).ok();
    otter(
        &[
            "keys",
            "generate",
            "--algorithm",
            "p256",
            "--out",
            &p("release"),
        ],
        &[],
    )
    .ok();
    let shown = otter(&["keys", "show", &p("release.pub")], &[]).ok();
    assert!(shown.contains("algorithm: p256"), "{shown}");
    let online = admin(&server, &["online-key"]).ok();
    std::fs::write(dir.join("online.pub"), &online).unwrap();

    otter(
        &[
            "root",
            "init",
            "door",
            "--root-key",
            &p("root-a.pub"),
            "--root-key",
            &p("root-b.pub"),
            "--root-threshold",
            "2",
            "--release-key",
            &p("release.pub"),
            "--online-key",
            &p("online.pub"),
            "-o",
            &p("root-1.json"),
        ],
        &[],
    )
    .ok();
    // Not yet signed by the threshold: refused by the server.
    let refused = admin(&server, &["root", "upload", "door", &p("root-1.json")]).fails();
    assert!(
        refused.contains("invalid_root") || refused.contains("signatures"),
        "{refused}"
    );
    otter(
        &[
            "envelope",
            "sign",
            &p("root-1.json"),
            "--key",
            &p("root-a.key"),
        ],
        &[],
    )
    .ok();
    // root-b through an external signer: otter writes the bytes, OpenSSL signs them.
    otter(
        &[
            "envelope",
            "sign",
            &p("root-1.json"),
            "--to-be-signed",
            &p("tbs.bin"),
        ],
        &[],
    )
    .ok();
    // (openssl comes with ca-certificates, which CI installs.)
    let signed = Command::new("openssl")
        .args([
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            &p("root-b.key"),
            "-in",
            &p("tbs.bin"),
            "-out",
            &p("tbs.sig"),
        ])
        .status()
        .expect("openssl");
    assert!(signed.success());
    otter(
        &[
            "envelope",
            "sign",
            &p("root-1.json"),
            "--signature",
            &p("tbs.sig"),
            "--pubkey",
            &p("root-b.pub"),
        ],
        &[],
    )
    .ok();
    let uploaded = admin(&server, &["root", "upload", "door", &p("root-1.json")]).ok();
    assert!(uploaded.contains("root 1 is live"), "{uploaded}");

    let (image, _) = random_file(dir, "door-1.0.0.bin", 40_000);
    // Unsigned: refused now that door has a root.
    let unsigned = admin(
        &server,
        &[
            "release",
            "publish",
            "door",
            path(&image),
            "--version",
            "1.0.0",
        ],
    )
    .fails();
    assert!(unsigned.contains("signature_required"), "{unsigned}");
    otter(
        &[
            "release",
            "sign",
            "door",
            path(&image),
            "--version",
            "1.0.0",
            "--counter",
            "1",
            "--hw-id",
            "esp32-c3",
            "--key",
            &p("release.key"),
            "-o",
            &p("manifest.json"),
        ],
        &[],
    )
    .ok();
    admin(
        &server,
        &[
            "release",
            "publish",
            "door",
            path(&image),
            "--version",
            "1.0.0",
            "--signature",
            &p("manifest.json"),
        ],
    )
    .ok();
    // A device asking with a nonce gets a response signed by the key the root lists.
    let answer: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/products/door/check?current=0.9.0&nonce=0123456789abcdef0123456789abcdef",
            server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["manifest"]["version"], "1.0.0");
    assert!(
        answer["signedResponse"]["signatures"][0]["keyid"].is_string(),
        "{answer}"
    );
    assert!(answer["releaseManifest"]["payload"].is_string(), "{answer}");
}

/// `otter sign` / `otter verify` for every format, with keys made by OpenSSL and a signature
/// made by OpenSSL as the external signer; minisign's own tool checks otter's `.minisig`.
#[test]
fn sign_and_verify_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (image, _) = random_file(dir, "fw.bin", 70_000);
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa.pem",
    ]);
    openssl(&["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.pem",
    ]);
    openssl(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
    otter(&["keys", "generate", "--out", &p("ed")], &[]).ok();

    for (format, key, public) in [
        ("esp8266-rsa", "rsa.pem", "rsa.pub"),
        ("esp-idf-sbv2", "ec.pem", "ec.pub"),
    ] {
        let out = p(&format!("{format}.bin"));
        otter(
            &[
                "sign",
                path(&image),
                "--format",
                format,
                "--key",
                &p(key),
                "-o",
                &out,
            ],
            &[],
        )
        .ok();
        let ok = otter(
            &["verify", &out, "--format", format, "--pubkey", &p(public)],
            &[],
        )
        .ok();
        assert!(ok.contains("OK"), "{ok}");
        let mut bytes = std::fs::read(&out).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&out, bytes).unwrap();
        otter(
            &["verify", &out, "--format", format, "--pubkey", &p(public)],
            &[],
        )
        .fails();
    }
    // External signer: otter writes the padded image, OpenSSL signs it, otter attaches.
    otter(
        &[
            "sign",
            path(&image),
            "--format",
            "esp-idf-sbv2",
            "--to-be-signed",
            &p("tbs"),
        ],
        &[],
    )
    .ok();
    openssl(&[
        "dgst", "-sha256", "-sign", "ec.pem", "-out", "tbs.sig", "tbs",
    ]);
    otter(
        &[
            "sign",
            path(&image),
            "--format",
            "esp-idf-sbv2",
            "--signature",
            &p("tbs.sig"),
            "--pubkey",
            &p("ec.pub"),
            "-o",
            &p("ext.bin"),
        ],
        &[],
    )
    .ok();
    otter(
        &[
            "verify",
            &p("ext.bin"),
            "--format",
            "esp-idf-sbv2",
            "--pubkey",
            &p("ec.pub"),
        ],
        &[],
    )
    .ok();

    otter(
        &[
            "sign",
            path(&image),
            "--format",
            "minisign",
            "--key",
            &p("ed.key"),
            "--version",
            "2.0.0",
        ],
        &[],
    )
    .ok();
    let ok = otter(
        &[
            "verify",
            path(&image),
            "--format",
            "minisign",
            "--pubkey",
            &p("ed.pub"),
        ],
        &[],
    )
    .ok();
    assert!(ok.contains("version:2.0.0"), "{ok}");
    // minisign's own public key file, from the public or the private key: `minisign -V` takes it
    // and checks otter's signature.
    let shown = otter(&["keys", "show", &p("ed.pub"), "--format", "minisign"], &[]).ok();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with("untrusted comment: minisign public key "),
        "{shown}"
    );
    let from_private = ["keys", "show", &p("ed.key"), "--format", "minisign"];
    assert_eq!(otter(&from_private, &[]).ok(), shown);
    std::fs::write(p("ed.minisign.pub"), &shown).unwrap();
    if let Some(minisign) = otter_testkit::tool("minisign", None) {
        let verify = |file: &str| {
            Command::new(&minisign)
                .args(["-Vm", file, "-p", &p("ed.minisign.pub")])
                .output()
                .expect("run minisign")
        };
        let out = verify(path(&image));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("version:2.0.0"), "{stdout}");
        // The same signature does not pass for other bytes.
        let other = p("other.bin");
        std::fs::write(&other, b"other bytes").unwrap();
        std::fs::copy(
            format!("{}.minisig", path(&image)),
            format!("{other}.minisig"),
        )
        .unwrap();
        assert!(!verify(&other).status.success());
    }
    let p256 = otter(&["keys", "show", &p("ec.pub"), "--format", "minisign"], &[]).fails();
    assert!(p256.contains("minisign keys are Ed25519"), "{p256}");
    // Raw: the binarySignature of the manifest contract.
    otter(
        &[
            "keys",
            "generate",
            "--algorithm",
            "p256",
            "--out",
            &p("rel"),
        ],
        &[],
    )
    .ok();
    otter(&["sign", path(&image), "--key", &p("rel.key")], &[]).ok();
    otter(&["verify", path(&image), "--pubkey", &p("rel.pub")], &[]).ok();
    let wrong = otter(
        &[
            "verify",
            path(&image),
            "--pubkey",
            &p("ed.pub"),
            "--signature",
            &format!("{}.sig", path(&image)),
        ],
        &[],
    )
    .fails();
    assert!(wrong.contains("does not verify"), "{wrong}");
}

/// The scale-out story end to end: two `otter serve` processes on one PostgreSQL and one S3
/// bucket. A release published through node A is offered and downloaded through node B; node B
/// dies (SIGKILL) mid-download and the device finishes from node A with a Range request.
#[tokio::test]
async fn two_nodes_share_postgres_and_s3_and_survive_losing_one() {
    let Some(pg) = otter_testkit::postgres::start() else {
        return;
    };
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let database = pg.fresh_database_url();
    otter(&["migrate", "--database-url", &database], &[]).ok();

    let tmp = tempfile::tempdir().unwrap();
    let token = "two-node-token-0123456789abcdef0123456789";
    let blob_url = s3.url("firmware");
    let envs = [
        ("OTTER_S3_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", otter_testkit::s3::ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            otter_testkit::s3::SECRET_ACCESS_KEY,
        ),
        ("AWS_REGION", otter_testkit::s3::REGION),
        ("OTTER_DOWNLOAD_MODE", "proxy"),
    ];
    let node = |name: &str| {
        Serve::builder(OTTER)
            .data(tmp.path().join(name))
            .args(["--database-url", &database, "--blob-url", &blob_url])
            .admin_token(token)
            .envs(envs)
            .start()
    };
    let a = node("a");
    let mut b = node("b");

    // Publish through node A (larger than the download cache takes, so B streams from S3).
    let (file, sha) = random_file(tmp.path(), "fw.bin", 48 << 20);
    let admin = |server: &Serve, args: &[&str]| {
        otter(
            args,
            &[("OTTER_SERVER", server.url()), ("OTTER_TOKEN", token)],
        )
    };
    admin(&a, &["product", "create", "door"]).ok();
    admin(
        &a,
        &[
            "release",
            "publish",
            "door",
            path(&file),
            "--version",
            "1.0.0",
        ],
    )
    .ok();

    // Node B offers it within a second.
    let client = reqwest::Client::new();
    let check = format!("{}/api/v1/products/door/check?current=0.9.0", b.url());
    let manifest = wait_until_async(
        Duration::from_secs(2),
        "node B offers the release",
        async || {
            let resp = client.get(&check).send().await.unwrap();
            let status = resp.status();
            let answer: Value = resp.json().await.unwrap_or_default();
            match status == reqwest::StatusCode::OK && answer["hasUpdate"] == true {
                true => Ok(answer["manifest"].clone()),
                false => Err(format!("{status} {answer}")),
            }
        },
    )
    .await;
    assert_eq!(manifest["sha256"], sha.as_str());
    let url = manifest["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(b.url()), "{url} is served by node B");

    // Download from node B, and kill it part-way.
    let mut resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let mut received = Vec::new();
    while received.len() < (4 << 20) {
        let chunk = resp.chunk().await.unwrap().expect("more bytes from node B");
        received.extend_from_slice(&chunk);
    }
    b.kill();
    while let Ok(Some(chunk)) = resp.chunk().await {
        received.extend_from_slice(&chunk);
    }
    assert!(
        received.len() < 48 << 20,
        "node B died before sending everything"
    );

    // The device resumes from node A where it stopped.
    let rest_url = url.replace(b.url(), a.url());
    let rest = client
        .get(&rest_url)
        .header("Range", format!("bytes={}-", received.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    received.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(received.len(), 48 << 20);
    assert_eq!(hex::encode(Sha256::digest(&received)), sha);
    drop(a);
}

/// `otter migrate-data` moves a single-machine installation (SQLite + files) to PostgreSQL + S3,
/// and a server started on the copy offers, serves and remembers the same things.
#[tokio::test]
async fn migrate_data_moves_sqlite_and_files_to_postgres_and_s3() {
    let Some(pg) = otter_testkit::postgres::start() else {
        return;
    };
    let Some(s3) = otter_testkit::s3::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("otter-data");
    let mut source = serve(&data);
    admin(&source, &["product", "create", "door"]).ok();
    let (v1, _) = random_file(tmp.path(), "v1.bin", 100_000);
    let (v2, sha2) = random_file(tmp.path(), "v2.bin", 200_000);
    admin(
        &source,
        &[
            "release",
            "publish",
            "door",
            path(&v1),
            "--version",
            "1.0.0",
        ],
    )
    .ok();
    admin(
        &source,
        &[
            "release",
            "publish",
            "door",
            path(&v2),
            "--version",
            "1.1.0",
        ],
    )
    .ok();
    admin(
        &source,
        &[
            "product",
            "window",
            "door",
            "beta",
            "--slot",
            "sat 22:00-04:00",
        ],
    )
    .ok();
    admin(&source, &["product", "poll-hint", "door", "--every", "2h"]).ok();
    let ddi_token = admin(&source, &["device", "token", "door", "ddi-1"]).ok();
    admin(&source, &["product", "ddi", "door", "--anonymous", "on"]).ok();
    admin(
        &source,
        &["product", "set-delta", "door", "--format", "zstd"],
    )
    .ok();
    let client = reqwest::Client::new();
    client
        .get(format!(
            "{}/api/v1/products/door/check?current=1.0.0&device=d1",
            source.url()
        ))
        .send()
        .await
        .unwrap();
    let report = client
        .post(format!("{}/api/v1/products/door/reports", source.url()))
        .json(&serde_json::json!({"device": "d2", "version": "1.1.0", "state": "installed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), reqwest::StatusCode::CREATED);
    // An ota-backend firmware: its key and firewall must come along.
    let firmware: Value = client
        .post(format!("{}/v1/create", source.url()))
        .bearer_auth(source.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (fw_id, fw_key) = (
        firmware["id"].as_str().unwrap(),
        firmware["key"].as_str().unwrap(),
    );
    let allowed = client
        .post(format!("{}/v1/firewall/allow", source.url()))
        .header("x-ota-firmware-id", fw_id)
        .header("x-ota-firmware-key", fw_key)
        .json(&serde_json::json!({"device_id": "dev-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), reqwest::StatusCode::OK);
    // A signed product: its root and release signature must come along.
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    admin(&source, &["product", "create", "signed"]).ok();
    otter(&["keys", "generate", "--out", &p("root")], &[]).ok();
    otter(&["keys", "generate", "--out", &p("rel")], &[]).ok();
    std::fs::write(p("online.pub"), admin(&source, &["online-key"]).ok()).unwrap();
    otter(
        &[
            "root",
            "init",
            "signed",
            "--root-key",
            &p("root.pub"),
            "--release-key",
            &p("rel.pub"),
            "--online-key",
            &p("online.pub"),
            "-o",
            &p("root-1.json"),
        ],
        &[],
    )
    .ok();
    otter(
        &[
            "envelope",
            "sign",
            &p("root-1.json"),
            "--key",
            &p("root.key"),
        ],
        &[],
    )
    .ok();
    admin(&source, &["root", "upload", "signed", &p("root-1.json")]).ok();
    otter(
        &[
            "release",
            "sign",
            "signed",
            path(&v1),
            "--version",
            "1.0.0",
            "--counter",
            "1",
            "--key",
            &p("rel.key"),
            "-o",
            &p("m.json"),
        ],
        &[],
    )
    .ok();
    admin(
        &source,
        &[
            "release",
            "publish",
            "signed",
            path(&v1),
            "--version",
            "1.0.0",
            "--signature",
            &p("m.json"),
        ],
    )
    .ok();
    let source_root = client
        .get(format!(
            "{}/api/v1/products/signed/root/1.json",
            source.url()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A user, logged in once: the account is copied, the session is not.
    let password = "correct horse battery staple";
    admin_with_input(
        &source,
        &["user", "create", "ann", "--role", "viewer"],
        &format!("{password}\n"),
    )
    .ok();
    let login = async |url: &str| {
        client
            .post(format!("{url}/api/v1/session"))
            .json(&serde_json::json!({"name": "ann", "password": password}))
            .send()
            .await
            .unwrap()
    };
    let session = login(source.url()).await;
    assert_eq!(session.status(), reqwest::StatusCode::OK);
    let cookie = session.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let status = source.terminate();
    assert!(status.success());

    let database = pg.fresh_database_url();
    let blob_url = s3.url("moved");
    let envs = [
        ("OTTER_S3_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", otter_testkit::s3::ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            otter_testkit::s3::SECRET_ACCESS_KEY,
        ),
        ("AWS_REGION", otter_testkit::s3::REGION),
    ];
    let copied = otter(
        &[
            "migrate-data",
            "--from-data",
            path(&data),
            "--to-database-url",
            &database,
            "--to-blob-url",
            &blob_url,
        ],
        &envs,
    )
    .ok();
    assert!(
        copied.contains("copied 3 products, 3 releases, 2 artifacts"),
        "{copied}"
    );
    assert!(copied.contains("2 devices, 1 reports"), "{copied}");
    assert!(copied.contains(", 1 users"), "{copied}");
    // Copying again into the same destination is refused, not duplicated.
    let again = otter(
        &[
            "migrate-data",
            "--from-data",
            path(&data),
            "--to-database-url",
            &database,
            "--to-blob-url",
            &blob_url,
        ],
        &envs,
    )
    .fails();
    assert!(again.contains("already has products"), "{again}");

    // A server on the copy: the old admin token still works, and everything is there.
    let dest = Serve::builder(OTTER)
        .data(tmp.path().join("dest"))
        .args(["--database-url", &database, "--blob-url", &blob_url])
        .envs(envs)
        .env("OTTER_DOWNLOAD_MODE", "proxy")
        .start();
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let admin = |args: &[&str]| {
        otter(
            args,
            &[("OTTER_SERVER", dest.url()), ("OTTER_TOKEN", token.trim())],
        )
        .ok()
    };
    assert_eq!(login(dest.url()).await.status(), reqwest::StatusCode::OK);
    let old_session = client
        .get(format!("{}/api/v1/session", dest.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(old_session.status(), reqwest::StatusCode::UNAUTHORIZED);
    let listed: Value =
        serde_json::from_str(&admin(&["release", "list", "door", "--json"])).unwrap();
    let versions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"], "newest first, as before");
    let answer: Value = client
        .get(format!(
            "{}/api/v1/products/door/check?current=1.0.0",
            dest.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["manifest"]["sha256"], sha2.as_str());
    assert!(
        answer["nextCheckSeconds"].is_u64(),
        "the poll hint came along: {answer}"
    );
    let windows = admin(&["product", "windows", "door"]);
    assert!(windows.contains("sat 22:00-04:00"), "{windows}");
    // hawkBit DDI: the device's token still opens it, and the options came along.
    let polled = client
        .get(format!("{}/DEFAULT/controller/v1/ddi-1", dest.url()))
        .header("authorization", format!("TargetToken {}", ddi_token.trim()))
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), reqwest::StatusCode::OK);
    assert!(admin(&["product", "ddi", "door"]).contains("anonymous DDI on"));
    let policy = admin(&["product", "set-delta", "door"]);
    assert!(
        policy.contains("zstd patches"),
        "the delta policy came along: {policy}"
    );
    let bytes = client
        .get(answer["manifest"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha2);
    let devices = admin(&["device", "list", "door", "--json"]);
    assert!(
        devices.contains("\"d1\"") && devices.contains("\"d2\""),
        "{devices}"
    );
    let reports = admin(&["report", "list", "door", "--json"]);
    assert!(reports.contains("installed"), "{reports}");
    // The firmware's device is still let in (nothing uploaded yet, rather than unauthorised),
    // and its key still opens it.
    let checked = client
        .get(format!("{}/v1/check", dest.url()))
        .header("x-ota-firmware-id", fw_id)
        .header("x-ota-device-id", "dev-9")
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), reqwest::StatusCode::NOT_FOUND);
    let allowed = client
        .post(format!("{}/v1/firewall/allow", dest.url()))
        .header("x-ota-firmware-id", fw_id)
        .header("x-ota-firmware-key", fw_key)
        .json(&serde_json::json!({"device_id": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), reqwest::StatusCode::OK);
    // The signed product: same root, and its release still carries its signed manifest.
    let root = client
        .get(format!("{}/api/v1/products/signed/root/1.json", dest.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(root, source_root);
    let answer: Value = client
        .get(format!(
            "{}/api/v1/products/signed/check?current=0.1.0&nonce=00112233445566778899aabbccddeeff",
            dest.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["releaseManifest"]["payload"].is_string(), "{answer}");
}

/// Past `--max-connections`, a new connection is closed at once and the log says why; a slot
/// that frees up serves again.
#[test]
fn past_max_connections_new_connections_are_closed_and_logged() {
    use std::io::Write;
    use std::net::TcpStream;

    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::builder(OTTER)
        .data(tmp.path().join("data"))
        .args(["--max-connections", "2"])
        .start();
    let addr = server.url().trim_start_matches("http://").to_owned();
    // Two connections that say nothing hold both slots (their header deadline is 30 s); the
    // server accepts in order, so the third is the one past the cap.
    let held: Vec<_> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut third = TcpStream::connect(&addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    match third.read(&mut [0; 1]) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection past the cap is closed at once, got {other:?}"),
    }
    wait_until(Duration::from_secs(10), "the cap in the log", || {
        let log = server.log();
        if log.contains("connection limit reached: closing new connections (--max-connections)")
            && log.contains("max_connections=2")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    drop(held);
    let answer = wait_until(Duration::from_secs(10), "a freed slot serving", || {
        let mut stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: otter\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        if answer.starts_with("HTTP/1.1 200") {
            Ok(answer)
        } else {
            Err(format!("answered {answer:?}"))
        }
    });
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}

/// A server other machines can reach, without `--public-url`, says to set one; a wrong admin
/// token is logged with the address it came from.
#[test]
fn a_missing_public_url_and_a_wrong_admin_token_are_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::builder(OTTER)
        .data(tmp.path().join("data"))
        .env("OTTER_LISTEN", "0.0.0.0:0")
        .start();
    assert!(server.log().contains("no --public-url"), "{}", server.log());

    let addr = server.url().strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /api/v1/products HTTP/1.1\r\nHost: otter\r\nAuthorization: Bearer wrong\r\n\
          Connection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    wait_until(
        Duration::from_secs(5),
        "the failed login in the log",
        || {
            let log = server.log();
            log.lines()
                .find(|l| l.contains("admin authentication failed"))
                .filter(|l| l.contains("remote=127.0.0.1:") && l.contains("failures=1"))
                .map(drop)
                .ok_or(log.clone())
        },
    );
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at its closing parenthesis;
    // utime and stime are the 14th and 15th fields, in clock ticks (USER_HZ: 100 on Linux).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Out of file descriptors (more connections than `ulimit -n` allows), accepting fails with
/// `EMFILE` until a connection closes. The server must neither spin on the failing accept nor
/// flood its log, and must serve again as soon as descriptors are free.
#[test]
fn running_out_of_descriptors_backs_off_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::builder(OTTER)
        .data(tmp.path())
        .args(["--max-connections", "100000"])
        .start();
    let pid = server.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = format!("--nofile={0}:{0}", open + 16);
    let prlimit = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .expect("prlimit (util-linux)");
    assert!(prlimit.success());

    let addr = server.url().trim_start_matches("http://").to_owned();
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    wait_until(
        Duration::from_secs(10),
        "accept fails for want of descriptors",
        || {
            let log = server.log();
            log.contains("accepting a connection failed")
                .then_some(())
                .ok_or(log)
        },
    );
    // A failing accept retried at once would keep a core busy for the whole window.
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - before;
    assert!(
        used < Duration::from_millis(500),
        "spent {used:?} of CPU in 2 s"
    );
    let warnings = server
        .log()
        .matches("accepting a connection failed")
        .count();
    assert!(
        warnings <= 3,
        "{warnings} warnings in the log:\n{}",
        server.log()
    );

    drop(idle);
    wait_until(Duration::from_secs(10), "the server answers again", || {
        let mut stream = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        std::io::Write::write_all(
            &mut stream,
            b"GET /healthz HTTP/1.1\r\nHost: otter\r\nConnection: close\r\n\r\n",
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok();
        answer
            .starts_with("HTTP/1.1 200")
            .then_some(())
            .ok_or(answer)
    });
}

/// Keys, roots and manifests are small documents: a file the size of a disk image given by
/// mistake (or by an attacker) is refused before it is read into memory and parsed.
#[test]
fn metadata_files_are_capped_before_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("root-1.json");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    for args in [
        vec!["keys", "show", path(&big)],
        vec!["root", "next", path(&big), "-o", "/dev/null"],
    ] {
        let run = otter(&args, &[]);
        assert!(!run.output.status.success(), "{args:?}");
        assert!(
            run.stderr.contains("larger than 1048576 bytes"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn maintenance_windows_and_poll_hints_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(tmp.path());
    admin(&server, &["product", "create", "door"]).ok();
    let set = admin(
        &server,
        &[
            "product",
            "window",
            "door",
            "stable",
            "--timezone",
            "Europe/Berlin",
            "--slot",
            "daily 00:00-24:00",
        ],
    )
    .ok();
    assert!(set.contains("open now"), "{set}");
    let listed = admin(&server, &["product", "windows", "door"]).ok();
    assert!(
        listed.contains("CHANNEL") && listed.contains("Europe/Berlin"),
        "{listed}"
    );
    assert!(
        listed.contains("daily 00:00-24:00") && listed.contains("yes"),
        "{listed}"
    );
    let refused = admin(
        &server,
        &[
            "product",
            "window",
            "door",
            "stable",
            "--slot",
            "someday 01:00-02:00",
        ],
    )
    .fails();
    assert!(refused.contains("unknown day"), "{refused}");
    admin(
        &server,
        &["product", "window", "door", "stable", "--remove"],
    )
    .ok();
    let none = admin(&server, &["product", "windows", "door"]);
    assert!(none.stderr.contains("no windows"), "{}", none.stderr);

    let hint = admin(&server, &["product", "poll-hint", "door", "--every", "6h"]).ok();
    assert!(hint.contains("after 21600 s ± 10 %"), "{hint}");
    let shown = admin(&server, &["product", "poll-hint", "door"]).ok();
    assert_eq!(shown, hint);
    let removed = admin(&server, &["product", "poll-hint", "door", "--remove"]).ok();
    assert!(removed.contains("no poll hint"), "{removed}");
}

/// A staged rollout steered from the command line: created before the release is published,
/// shown with its per-stage counts, paused (and why), advanced to the end.
#[tokio::test]
async fn rollouts_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let otter = |args: &[&str]| admin(&server, args);
    otter(&["product", "create", "door", "--scheme", "semver"]).ok();
    let (v1, _) = random_file(tmp.path(), "v1.bin", 4096);
    otter(&[
        "release",
        "publish",
        "door",
        path(&v1),
        "--version",
        "1.0.0",
    ])
    .ok();
    let out = otter(&[
        "rollout",
        "create",
        "door",
        "2.0.0",
        "--stage",
        "tag=canary",
        "--stage",
        "50%",
        "--stage",
        "100%",
        "--max-concurrent",
        "5",
        "--pause-failures",
        "3",
    ])
    .ok();
    assert!(
        out.starts_with("rollout 1 of door 2.0.0 on stable: running, stage 1 of 3"),
        "{out}"
    );
    assert!(out.contains("updating now: 0 (cap 5)"), "{out}");
    let (v2, _) = random_file(tmp.path(), "v2.bin", 4096);
    otter(&[
        "release",
        "publish",
        "door",
        path(&v2),
        "--version",
        "2.0.0",
    ])
    .ok();
    let stderr = otter(&["rollout", "create", "door", "2.0.0", "--stage", "5%"]).fails();
    assert!(stderr.contains("rollout that is not over"), "{stderr}");

    otter(&["rollout", "advance", "door", "1"]).ok();
    // A device let into the 50 % stage shows up in its counts.
    let http = reqwest::Client::new();
    let check = format!("{}/api/v1/products/door/check", server.url());
    let mut offered = 0;
    for i in 0..20 {
        let answer: Value = http
            .get(format!("{check}?current=1.0.0&device=unit-{i}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        offered += usize::from(answer["hasUpdate"] == true);
    }
    assert!(offered > 0);
    let out = otter(&["rollout", "pause", "door", "1"]).ok();
    assert!(out.contains(": paused, stage 2 of 3"), "{out}");
    assert!(out.contains("why: paused by hand"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("STAGE"))
        .expect(&out);
    let stage2: Vec<&str> = lines[header + 2].split_whitespace().collect();
    assert_eq!(stage2[..3], ["2*", "50%", &offered.to_string()], "{out}");
    let list = otter(&["rollout", "list", "door"]).ok();
    assert!(list.lines().nth(1).unwrap().starts_with("1 "), "{list}");
    otter(&["rollout", "resume", "door", "1"]).ok();
    otter(&["rollout", "advance", "door", "1"]).ok();
    let out = otter(&["rollout", "advance", "door", "1"]).ok();
    assert!(out.contains(": completed, stage 3 of 3"), "{out}");
    let out = otter(&["rollout", "retry-failed", "door", "1"]).fails();
    assert!(out.contains("completed"), "{out}");
}

/// A rollout across two `otter serve` processes on one PostgreSQL: checks split between the
/// nodes let exactly the cap in, and failures reported through either node add up to the
/// automatic pause.
#[tokio::test]
async fn a_rollout_holds_across_two_serve_processes_on_postgres() {
    let Some(pg) = otter_testkit::postgres::start() else {
        return;
    };
    let database = pg.fresh_database_url();
    otter(&["migrate", "--database-url", &database], &[]).ok();
    let tmp = tempfile::tempdir().unwrap();
    let token = "rollout-node-token-0123456789abcdef012345";
    let node = |name: &str| {
        Serve::builder(OTTER)
            .data(tmp.path().join(name))
            .args(["--database-url", &database])
            .admin_token(token)
            .start()
    };
    let (a, b) = (node("a"), node("b"));
    let admin = |server: &Serve, args: &[&str]| {
        otter(
            args,
            &[("OTTER_SERVER", server.url()), ("OTTER_TOKEN", token)],
        )
        .ok()
    };
    admin(&a, &["product", "create", "door"]);
    let (v1, _) = random_file(tmp.path(), "v1.bin", 4096);
    admin(
        &a,
        &[
            "release",
            "publish",
            "door",
            path(&v1),
            "--version",
            "1.0.0",
        ],
    );
    let create = [
        "rollout",
        "create",
        "door",
        "2.0.0",
        "--stage",
        "100%",
        "--max-concurrent",
        "5",
        "--pause-failures",
        "3",
    ];
    admin(&a, &create);
    let (v2, _) = random_file(tmp.path(), "v2.bin", 4096);
    admin(
        &a,
        &[
            "release",
            "publish",
            "door",
            path(&v2),
            "--version",
            "2.0.0",
        ],
    );

    let http = reqwest::Client::new();
    let check = |node: &Serve, device: &str, current: &str| {
        let url = format!(
            "{}/api/v1/products/door/check?device={device}&current={current}",
            node.url()
        );
        let http = http.clone();
        async move {
            let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(resp.status().to_string());
            }
            let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(answer["manifest"]["version"].as_str().map(str::to_owned))
        }
    };
    // Node B knows the product (a device on the release takes no slot).
    wait_until_async(
        Duration::from_secs(10),
        "node B knows the product",
        async || check(&b, "probe", "2.0.0").await,
    )
    .await;
    let nodes = [&a, &b];
    let devices: Vec<String> = (0..60).map(|i| format!("unit-{i:02}")).collect();
    // All at once, each on its own task.
    let mut pending = tokio::task::JoinSet::new();
    for (i, d) in devices.iter().enumerate() {
        let asked = check(nodes[i % 2], d, "1.0.0");
        let d = d.clone();
        pending.spawn(async move { (d, asked.await) });
    }
    let mut answers = std::collections::HashMap::new();
    while let Some(joined) = pending.join_next().await {
        let (d, answer) = joined.unwrap();
        answers.insert(d, answer);
    }
    let answers: Vec<_> = devices.iter().map(|d| answers.remove(d).unwrap()).collect();
    let admitted: Vec<&String> = devices
        .iter()
        .zip(&answers)
        .filter(|(_, o)| o.as_ref().unwrap().as_deref() == Some("2.0.0"))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(admitted.len(), 5, "the cap holds across processes");
    for (i, d) in admitted.iter().take(3).enumerate() {
        let report = format!("{}/api/v1/products/door/reports", nodes[i % 2].url());
        let body = serde_json::json!({"device": d, "version": "2.0.0", "state": "failed"});
        let resp = http.post(report).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let shown = admin(&b, &["rollout", "show", "door", "1"]);
    assert!(shown.contains(": paused, stage 1 of 1"), "{shown}");
    assert!(
        shown.contains("why: paused automatically: 3 devices failed"),
        "{shown}"
    );
    assert!(shown.contains("updating now: 2 (cap 5)"), "{shown}");
}

#[tokio::test]
async fn ddi_tokens_options_and_the_attribute_filter_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    admin(&server, &["product", "create", "gw"]).ok();
    let is_token = |t: &str| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
    let token = admin(&server, &["device", "token", "gw", "gw-1"]).ok();
    let token = token.trim();
    assert!(is_token(token), "only the token on stdout: {token:?}");
    let gateway = admin(&server, &["product", "ddi", "gw", "--gateway-token"]).ok();
    assert!(is_token(gateway.trim()), "{gateway:?}");
    assert_eq!(
        admin(&server, &["product", "ddi", "gw"]).ok(),
        "gw: anonymous DDI off, token downloads off\n"
    );
    assert_eq!(
        admin(&server, &["product", "ddi", "gw", "--anonymous", "on"]).ok(),
        "gw: anonymous DDI on, token downloads off\n"
    );

    // What the controller says about itself filters the device list.
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/DEFAULT/controller/v1/gw-1/configData",
            server.url()
        ))
        .header("authorization", format!("TargetToken {token}"))
        .json(&serde_json::json!({"mode": null, "data": {"board": "rev2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let listed = |attribute: &str| {
        let out = admin(
            &server,
            &["device", "list", "gw", "--attribute", attribute, "--json"],
        )
        .ok();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(listed("board:rev2")[0]["id"], "gw-1");
    assert_eq!(listed("board:rev3"), serde_json::json!([]));
}

/// Delta updates from the command line: a policy set, two releases published, the patch waited
/// for and listed, and the policy turned off.
#[test]
fn delta_policy_and_patches_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let otter = |args: &[&str]| admin(&server, args);
    otter(&["product", "create", "door", "--scheme", "semver"]).ok();
    assert!(
        otter(&["product", "set-delta", "door"])
            .ok()
            .contains("delta updates off")
    );
    let set = otter(&[
        "product",
        "set-delta",
        "door",
        "--format",
        "zstd",
        "--from-last",
        "2",
    ])
    .ok();
    assert!(
        set.contains("zstd patches from the last 2 releases, kept under 50 % of the image"),
        "{set}"
    );
    let refused = otter(&["product", "set-delta", "door", "--format", "xdelta"]).fails();
    assert!(refused.contains("unknown delta format"), "{refused}");

    // Two builds of one image that differ in a few bytes.
    let (v1, _) = random_file(tmp.path(), "v1.bin", 64 * 1024);
    let mut image = std::fs::read(&v1).unwrap();
    image[100..107].copy_from_slice(b"v1.1.0!");
    let v2 = tmp.path().join("v2.bin");
    std::fs::write(&v2, &image).unwrap();
    for (file, version) in [(&v1, "1.0.0"), (&v2, "1.1.0")] {
        otter(&[
            "release",
            "publish",
            "door",
            path(file),
            "--version",
            version,
        ])
        .ok();
    }
    let shown = otter(&[
        "release",
        "deltas",
        "door",
        "1.1.0",
        "--wait",
        "--timeout",
        "60s",
    ])
    .ok();
    assert!(shown.contains("1 of 1 patches done"), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.starts_with("1.0.0"))
        .unwrap_or_else(|| panic!("a row for the patch from 1.0.0: {shown}"));
    assert!(row.contains("zstd") && row.contains("ready"), "{row}");
    let json: Value =
        serde_json::from_str(&otter(&["release", "deltas", "door", "1.1.0", "--json"]).ok())
            .unwrap();
    assert_eq!(json["deltas"][0]["state"], "ready", "{json}");

    assert!(
        otter(&["product", "set-delta", "door", "--off"])
            .ok()
            .contains("delta updates off")
    );
}
