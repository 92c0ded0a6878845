//! Local files the CLI sends or signs: hashed while streaming (a multi-GiB image never sits in
//! memory), with a progress bar on terminals.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// A file with its length and lowercase hex SHA-256.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// A byte progress bar on stderr, or a hidden one when stderr is not a terminal (logs and CI
/// output should not fill with redraws).
pub fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg:>9} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    ProgressBar::new(0).with_style(style)
}

/// Reads `path` through SHA-256, advancing `progress`.
pub fn hash_blocking(path: &Path, progress: &ProgressBar) -> anyhow::Result<LocalFile> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    progress.set_message("hashing");
    progress.set_length(size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1024 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.inc(n as u64);
    }
    Ok(LocalFile {
        path: path.to_owned(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// [`hash_blocking`] on a blocking thread.
pub async fn hash_file(path: &Path, progress: &ProgressBar) -> anyhow::Result<LocalFile> {
    let (path, progress) = (path.to_owned(), progress.clone());
    tokio::task::spawn_blocking(move || hash_blocking(&path, &progress)).await?
}
