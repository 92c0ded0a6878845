//! Files and directories only otter's own user can read: the data directory and what otter
//! writes under it (database, blobs, upload staging, secrets) hold firmware, tokens and device
//! data, so they are created `0700` (directories) and `0600` (files) whatever the umask says.
//! Elsewhere than on Unix the platform's defaults apply.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the directories otter creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files otter creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents, each readable by the owner only (existing ones keep
/// their mode).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path)
}

/// [`create_dir_all`] off the async executor's threads.
pub async fn create_dir_all_async(path: &Path) -> io::Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || create_dir_all(&path))
        .await
        .map_err(io::Error::other)?
}

/// Options that create a file readable by the owner only (an existing file keeps its mode);
/// add what to open it for.
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Creates (or empties) `path` for writing, readable by the owner only.
pub async fn create_file(path: &Path) -> io::Result<tokio::fs::File> {
    let mut options = file_options();
    options.write(true).create(true).truncate(true);
    tokio::fs::OpenOptions::from(options).open(path).await
}

/// The mode of `path` when others than its owner may read, write or enter it (`None` when only
/// the owner may, or off Unix).
pub fn loose_mode(path: &Path) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}
