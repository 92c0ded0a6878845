//! Debian's SWUpdate (suricatta, its hawkBit DDI client) run headless against a real `otter
//! serve` on loopback: a signed `.swu` made here (a `cpio -H crc` archive, `sw-description`
//! signed with `openssl cms`), the `rawfile` handler writing into a temporary file, `-H
//! board:rev` matching the `.swu`'s `hardware-compatibility`. A full cycle (poll,
//! deploymentBase, configData, feedback, download, install, and the success reported after its
//! "reboot" with `-c 2`), then the cancel of an open action whose release was yanked.
//!
//! The token comes from `otter device token`. SWUpdate, OpenSSL or cpio missing: SKIP locally,
//! a failure under `CI=true`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use otter_testkit::http::parse_raw_response;
use otter_testkit::process::Watched;
use otter_testkit::serve::Serve;
use otter_testkit::{run_tool, tool, wait_until};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OTTER: &str = env!("CARGO_BIN_EXE_otter");
const TOKEN: &str = "swupdate-test-token-0123456789abcdef012345";
/// How long SWUpdate may take to do what the test waits for (it polls every second here).
const PATIENCE: Duration = Duration::from_secs(30);

/// `GET path` with `authorization`, answered as JSON.
fn get(server: &Serve, path: &str, authorization: &str) -> Value {
    let addr = server.url().trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let response = parse_raw_response(&answer);
    assert_eq!(response.status, 200, "GET {path}");
    response.json()
}

struct Tools {
    swupdate: PathBuf,
    openssl: PathBuf,
    cpio: PathBuf,
}

/// A `.swu` in `dir` named `name` that writes `payload` to `target` with the rawfile handler:
/// `sw-description` signed with `key.pem`/`cert.pem`, then the archive in `-H crc` format.
fn swu(tools: &Tools, dir: &Path, name: &str, payload: &[u8], target: &Path) -> PathBuf {
    let work = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("payload.bin"), payload).unwrap();
    let description = format!(
        "software =\n{{\n    version = \"{name}\";\n    hardware-compatibility = [ \"1.0\" ];\n    \
         files: (\n        {{\n            filename = \"payload.bin\";\n            \
         path = \"{}\";\n            type = \"rawfile\";\n            sha256 = \"{}\";\n        \
         }}\n    );\n}}\n",
        target.display(),
        hex::encode(Sha256::digest(payload))
    );
    std::fs::write(work.join("sw-description"), description).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    run_tool(
        &work,
        &tools.openssl,
        &[
            "cms",
            "-sign",
            "-in",
            "sw-description",
            "-out",
            "sw-description.sig",
            "-signer",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
            "-outform",
            "DER",
            "-nosmimecap",
            "-binary",
        ],
    );
    // sw-description first, then its signature, then the images.
    let mut cpio = Command::new(&tools.cpio)
        .args(["-o", "-H", "crc", "--quiet"])
        .current_dir(&work)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cpio.stdin
        .take()
        .unwrap()
        .write_all(b"sw-description\nsw-description.sig\npayload.bin\n")
        .unwrap();
    let out = cpio.wait_with_output().unwrap();
    assert!(out.status.success(), "cpio");
    let file = dir.join(format!("{name}.swu"));
    std::fs::write(&file, out.stdout).unwrap();
    file
}

/// SWUpdate with suricatta polling `server` as `device` (its own temporary files in `dir`);
/// `extra` suricatta arguments.
fn suricatta(tools: &Tools, server: &Serve, dir: &Path, token: &str, extra: &str) -> Watched {
    let config = dir.join("swupdate.cfg");
    // Without `identify` SWUpdate never sends configData.
    std::fs::write(
        &config,
        "globals : { verbose = true; loglevel = 6; };\n\
         identify : ( { name = \"board\"; value = \"otter-test\"; } );\n",
    )
    .unwrap();
    let mut command = Command::new(&tools.swupdate);
    command
        .arg("-f")
        .arg(&config)
        .arg("-k")
        .arg(dir.join("cert.pem"))
        .args(["-H", "board:1.0", "-u"])
        .arg(format!(
            "-t DEFAULT -u {} -i dev1 -k {token} -p 1 {extra}",
            server.url()
        ))
        // Its IPC sockets and temporary files: here, not in the shared /tmp.
        .env("TMPDIR", dir);
    Watched::spawn(command)
}

#[test]
fn swupdate_installs_through_ddi_and_obeys_a_cancel() {
    let (Some(swupdate), Some(openssl), Some(cpio)) = (
        tool("swupdate", Some("OTTER_SWUPDATE")),
        tool("openssl", None),
        tool("cpio", None),
    ) else {
        return;
    };
    let tools = Tools {
        swupdate,
        openssl,
        cpio,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // SWUpdate checks the signer's certificate for the email-protection purpose.
    run_tool(
        dir,
        &tools.openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=otter-test",
            "-days",
            "2",
            "-addext",
            "extendedKeyUsage=emailProtection",
        ],
    );
    let server = Serve::builder(OTTER)
        .data(dir.join("server"))
        .admin_token(TOKEN)
        .start();
    server.admin(&["product", "create", "gw", "--scheme", "semver"]);
    // SWUpdate waits as long as the poll answer says, whatever its own -p.
    server.admin(&[
        "product",
        "poll-hint",
        "gw",
        "--every",
        "1s",
        "--jitter",
        "0",
    ]);
    let target = dir.join("installed.bin");
    let first: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let image = swu(&tools, dir, "1.1.0", &first, &target);
    server.admin(&[
        "release",
        "publish",
        "gw",
        "--version",
        "1.1.0",
        image.to_str().unwrap(),
    ]);
    let token = server
        .admin(&["device", "token", "gw", "dev1"])
        .trim()
        .to_owned();
    let admin_auth = format!("Bearer {TOKEN}");
    let reports = || {
        get(
            &server,
            "/api/v1/products/gw/reports?device=dev1",
            &admin_auth,
        )["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["state"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    // The update: installed, then waiting for its "reboot".
    let run1 = suricatta(&tools, &server, dir, &token, "");
    run1.wait_for_line("SWUpdate installs the update", PATIENCE, |line| {
        line.contains("Update successful, executing post-update actions")
            .then_some(())
    });
    drop(run1);
    assert_eq!(std::fs::read(&target).unwrap(), first);
    assert!(
        reports().iter().all(|s| s == "downloading"),
        "{:?}",
        reports()
    );
    let device = get(&server, "/api/v1/products/gw/devices/dev1", &admin_auth);
    assert_eq!(device["attributes"]["board"], "otter-test", "{device}");
    // After the "reboot", -c 2 reports success: the device runs 1.1.0.
    let run2 = suricatta(&tools, &server, dir, &token, "-c 2");
    wait_until(PATIENCE, "SWUpdate reports the update installed", || {
        let states = reports();
        if states.first().map(String::as_str) == Some("installed") {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    });
    drop(run2);
    let ddi_auth = format!("TargetToken {token}");
    let poll = || get(&server, "/DEFAULT/controller/v1/dev1", &ddi_auth);
    assert!(poll()["_links"].get("deploymentBase").is_none());

    // A cancel: an action opened for 1.2.0, then the release yanked before SWUpdate came by.
    let second: Vec<u8> = first.iter().map(|b| b ^ 0x5a).collect();
    let image = swu(&tools, dir, "1.2.0", &second, &target);
    server.admin(&[
        "release",
        "publish",
        "gw",
        "--version",
        "1.2.0",
        image.to_str().unwrap(),
    ]);
    assert!(poll()["_links"].get("deploymentBase").is_some());
    server.admin(&["release", "yank", "gw", "1.2.0"]);
    assert!(poll()["_links"].get("cancelAction").is_some());
    let run3 = suricatta(&tools, &server, dir, &token, "");
    wait_until(PATIENCE, "SWUpdate acknowledges the cancel", || {
        let links = poll()["_links"].clone();
        match links.get("cancelAction") {
            None => Ok(()),
            Some(_) => Err(links.to_string()),
        }
    });
    assert!(run3.output().contains("Cancel action available"));
    assert!(poll()["_links"].get("deploymentBase").is_none());
    assert_eq!(
        std::fs::read(&target).unwrap(),
        first,
        "1.2.0 never installed"
    );
}
