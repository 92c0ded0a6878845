//! The settings' layers, parsed in-process (flags and files; the environment is read by clap
//! alone, and `otter-cli`'s tests set it for a real `otter serve`).

use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: SettingsArgs,
}

/// `otter serve <args>`'s settings, or the error as `otter` would print it.
fn load(args: &[&str]) -> Result<Settings, String> {
    let argv = std::iter::once("otter").chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    cli.settings.load().map_err(|e| e.to_string())
}

/// Writes a config file into `dir`; returns its path.
fn config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("otter.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn defaults_without_anything() {
    let s = load(&[]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("otter-data"));
    assert_eq!(s.max_upload, 2 << 30);
    assert_eq!(s.download_cache, 256 << 20);
    assert_eq!(s.upload_ttl, Duration::from_secs(86_400));
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    assert_eq!(s.header_timeout, Duration::from_secs(30));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
    assert_eq!(
        (s.min_rate, s.min_rate_window),
        (256, Duration::from_secs(30))
    );
    assert_eq!(s.max_connections, 4096);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(s.connection_threads(), cpus);
    assert_eq!(
        load(&["--connection-threads", "0"])
            .unwrap()
            .connection_threads(),
        0
    );
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(format!("{s:?}"), format!("{:?}", Settings::default()));
}

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        "listen = \"127.0.0.1:9000\"\npublic_url = \"https://ota.example.com/\"\n\
         max_upload = \"10MiB\"\nupload_ttl = \"2h\"\ndata = \"/srv/file\"\n\
         admin_token = \"from-file\"\ndownload_cache = 0\n",
    );
    let s = load(&["--config", &path]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(s.public_url.as_deref(), Some("https://ota.example.com"));
    assert_eq!(s.max_upload, 10 << 20);
    assert_eq!(s.upload_ttl, Duration::from_secs(7200));
    assert_eq!(s.data_dir, PathBuf::from("/srv/file"));
    assert_eq!(
        s.admin_token.as_ref().map(Secret::expose),
        Some("from-file")
    );
    assert_eq!(s.download_cache, 0, "a TOML number works like a string");
    // One setting of each kind: size, duration, path, secret; and an address.
    let s = load(&[
        "--config",
        &path,
        "--listen",
        "127.0.0.1:9001",
        "--max-upload",
        "1GiB",
        "--upload-ttl",
        "3h",
        "--data",
        "/srv/flag",
        "--admin-token",
        "from-flag",
    ])
    .unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(s.max_upload, 1 << 30);
    assert_eq!(s.upload_ttl, Duration::from_secs(3 * 3600));
    assert_eq!(s.data_dir, PathBuf::from("/srv/flag"));
    assert_eq!(
        s.admin_token.as_ref().map(Secret::expose),
        Some("from-flag")
    );
    assert_eq!(
        s.public_url.as_deref(),
        Some("https://ota.example.com"),
        "what no flag gives still comes from the file"
    );
}

#[test]
fn bad_settings_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&["--config", &config(&dir, "lisen = \"x\"\n")]).unwrap_err();
    assert!(err.contains("unknown key `lisen`"), "{err}");
    let err = load(&["--config", &config(&dir, "config = \"other.toml\"\n")]).unwrap_err();
    assert!(err.contains("unknown key `config`"), "{err}");
    // A bad value in the file names the file and the key, even when a flag overrides it.
    let path = config(&dir, "max_upload = \"12parsecs\"\n");
    for args in [
        vec!["--config", &path],
        vec!["--config", &path, "--max-upload", "1MiB"],
    ] {
        let err = load(&args).unwrap_err();
        assert!(err.contains(&path), "{err}");
        assert!(
            err.contains("max_upload: invalid value '12parsecs'"),
            "{err}"
        );
    }
    let err = load(&["--config", &config(&dir, "listen = [1]\n")]).unwrap_err();
    assert!(err.contains("listen: expected a string"), "{err}");
    let err = load(&["--config", "/nonexistent/otter.toml"]).unwrap_err();
    assert!(err.contains("config file /nonexistent/otter.toml"), "{err}");
    assert!(load(&["--public-url", "ota.example.com"]).is_err());
    assert!(load(&["--max-upload", "12parsecs"]).is_err());
    assert!(load(&["--default-product", "no spaces"]).is_err());
}

#[test]
fn blob_storage_and_download_mode() {
    let s = load(&[]).unwrap();
    assert_eq!(s.blob_url, None);
    assert_eq!(s.download_mode, None, "chosen by the blob store at startup");
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        "blob_url = \"s3://firmware/otter\"\ns3_endpoint = \"http://minio:9000\"\n\
         download_mode = \"proxy\"\n",
    );
    let s = load(&["--config", &path]).unwrap();
    assert_eq!(s.blob_url.as_deref(), Some("s3://firmware/otter"));
    assert_eq!(s.s3().endpoint.as_deref(), Some("http://minio:9000"));
    assert_eq!(s.download_mode, Some(DownloadMode::Proxy));
    let s = load(&[
        "--config",
        &path,
        "--blob-url",
        "file:///var/lib/otter/blobs",
        "--download-mode",
        "redirect",
    ])
    .unwrap();
    assert_eq!(s.blob_url.as_deref(), Some("file:///var/lib/otter/blobs"));
    assert_eq!(s.download_mode, Some(DownloadMode::Redirect));
    let err = load(&["--blob-url", "ftp://x/y"]).unwrap_err();
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    assert!(load(&["--blob-url", "s3://"]).is_err());
    assert!(load(&["--download-mode", "teleport"]).is_err());
}

/// The one rule that keeps the four ways to set something in step: each flag `--some-thing`
/// is the file key `some_thing` and the variable `OTTER_SOME_THING` (ota-backend's own
/// `OTA_SECRET` and `OTA_SECRET_FILE` excepted), and its default is the same whichever way it
/// is spelt.
#[test]
fn every_flag_is_a_file_key_and_an_environment_variable_with_the_same_default() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = format!("{:?}", Settings::default());
    let cmd = Settings::augment_args(Command::new("otter"));
    // On a copy: rendering adds `--help` to the command.
    let help = cmd.clone().render_long_help().to_string();
    let mut seen = 0;
    for arg in cmd.get_arguments() {
        let long = arg.get_long().expect("every setting is a flag");
        let key = arg.get_id().as_str();
        assert_eq!(key, long.replace('-', "_"), "the file key of --{long}");
        let env = arg.get_env().and_then(|e| e.to_str());
        let expected = match key {
            "ota_secret" => "OTA_SECRET".to_owned(),
            "ota_secret_file" => "OTA_SECRET_FILE".to_owned(),
            _ => format!("OTTER_{}", key.to_ascii_uppercase()),
        };
        assert_eq!(env, Some(expected.as_str()), "the variable of --{long}");
        assert!(help.contains(&format!("[env: {expected}")), "{help}");
        match arg.get_default_values() {
            [default] => {
                let default = default.to_str().unwrap();
                assert!(help.contains(&format!("[default: {default}]")), "{help}");
                let file = config(&dir, &format!("{key} = \"{default}\"\n"));
                let from_file = load(&["--config", &file]).unwrap();
                assert_eq!(format!("{from_file:?}"), defaults, "{key} = {default:?}");
                let from_flag = load(&[&format!("--{long}={default}")]).unwrap();
                assert_eq!(format!("{from_flag:?}"), defaults, "--{long}={default}");
            }
            [] => {
                // No default: the file still knows the key (whether "x" is a good value is
                // the value's business).
                let file = config(&dir, &format!("{key} = \"x\"\n"));
                if let Err(e) = load(&["--config", &file]) {
                    assert!(!e.contains("unknown key"), "{e}");
                }
            }
            several => panic!("--{long} has several defaults: {several:?}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 36, "every setting was checked");
}

#[test]
fn secrets_never_print() {
    let s = load(&[
        "--admin-token",
        "tok-AAAA-long-enough-for-an-admin-token",
        "--ota-secret",
        "sec-BBBB",
        "--database-url",
        "postgres://otter:pw-CCCC@db.example.com/otter",
        "--mqtt-url",
        "mqtts://otter:pw-DDDD@broker.example.com",
    ])
    .unwrap();
    let s = Settings {
        s3_options: vec![("aws_secret_access_key".into(), "key-EEEE".into())],
        ..s
    };
    let shown = format!("{s:?} {s:#?}");
    for secret in ["AAAA", "BBBB", "CCCC", "DDDD", "EEEE"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // What is not secret in a URL still helps whoever reads the log.
    assert!(
        shown.contains("postgres://otter:***@db.example.com/otter"),
        "{shown}"
    );
    assert!(
        shown.contains("mqtts://otter:***@broker.example.com"),
        "{shown}"
    );
    let token = s.admin_token.as_ref().unwrap();
    assert_eq!(token.to_string(), "***");
    assert_eq!(token.expose(), "tok-AAAA-long-enough-for-an-admin-token");
    assert_eq!(
        s.database_url.as_ref().map(Secret::expose),
        Some("postgres://otter:pw-CCCC@db.example.com/otter")
    );
    assert_eq!(s.s3().options[0].1, "key-EEEE");
}

#[test]
fn an_empty_ota_secret_is_none() {
    assert!(load(&["--ota-secret="]).unwrap().ota_secret.is_none());
    assert!(load(&["--ota-secret=s"]).unwrap().ota_secret.is_some());
}

/// `--admin-token-file`, `--ota-secret-file` and `--database-url-file` keep secrets out of `ps`:
/// each reads the first line of its file, as a flag or a file key; giving a secret both ways is
/// refused.
#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let token = write("token", "tok-AAAA-from-a-file-0123456789abcdef\n");
    let secret = write("secret", "sec-BBBB\n");
    let url = write("url", "postgres://otter:pw-CCCC@db.example.com/otter\n");
    let s = load(&[
        "--admin-token-file",
        &token,
        "--ota-secret-file",
        &secret,
        "--database-url-file",
        &url,
    ])
    .unwrap();
    assert_eq!(
        s.admin_token.as_ref().map(Secret::expose),
        Some("tok-AAAA-from-a-file-0123456789abcdef")
    );
    assert_eq!(s.ota_secret.as_ref().map(Secret::expose), Some("sec-BBBB"));
    assert_eq!(
        s.database_url.as_ref().map(Secret::expose),
        Some("postgres://otter:pw-CCCC@db.example.com/otter")
    );
    let shown = format!("{s:?}");
    for hidden in ["AAAA", "BBBB", "CCCC"] {
        assert!(!shown.contains(hidden), "{hidden} in {shown}");
    }

    let file = config(&dir, &format!("ota_secret_file = \"{secret}\"\n"));
    let s = load(&["--config", &file]).unwrap();
    assert_eq!(s.ota_secret.as_ref().map(Secret::expose), Some("sec-BBBB"));

    let err = load(&["--ota-secret", "x", "--ota-secret-file", &secret]).unwrap_err();
    assert!(err.contains("not both"), "{err}");
    let err = load(&["--admin-token-file", "/nonexistent/token"]).unwrap_err();
    assert!(
        err.starts_with("--admin-token-file /nonexistent/token: "),
        "{err}"
    );
}
