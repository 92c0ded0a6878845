//! The agent's persistent state: which slot works, what waits for its first boot, a download
//! to resume, and (for signed products) the newest trusted root. It lives in
//! `--state DIR/state.json`, written atomically (temporary file, fsync, rename), so a power cut
//! at any point leaves the previous state or the next one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The agent's persistent state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// 0 = A, 1 = B: the slot that booted and works.
    pub(crate) active: usize,
    pub(crate) version: String,
    pub(crate) sha256: Option<String>,
    /// The running image's length, for a slot larger than its image (a block device): a patch
    /// applies to the image, not the slot.
    #[serde(default)]
    pub(crate) size: Option<u64>,
    /// An image written to the other slot, waiting for its first healthy boot.
    pub(crate) pending: Option<Pending>,
    /// A download in progress (for resuming).
    pub(crate) download: Option<Download>,
    /// A release that rolled back on this device: not tried again (a newer one is).
    #[serde(default)]
    pub(crate) held_back: Option<String>,
    /// Signed products: the newest verified root (envelope), counter and trusted time.
    pub(crate) root: Option<String>,
    /// SHA-256 of the pinned `--root` file the stored root was reached from: another pinned
    /// root (new firmware with another chain) starts over from that one.
    #[serde(default)]
    pub(crate) root_pin: Option<String>,
    pub(crate) security_counter: u32,
    pub(crate) trusted_time: i64,
}

/// An image in the inactive slot, waiting for its first healthy boot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) slot: usize,
    pub(crate) version: String,
    pub(crate) sha256: String,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    pub(crate) security_counter: u32,
    pub(crate) failed_boots: u32,
}

/// The image a download in progress is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Download {
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// How slots 0 and 1 are named to people and hooks.
pub(crate) const SLOT_NAMES: [&str; 2] = ["A", "B"];
/// How the agent names an image pushed over the LAN, which comes without a version.
pub(crate) const PUSHED: &str = "pushed-";

impl State {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub(crate) fn load(dir: &Path, initial_version: &str) -> anyhow::Result<State> {
        match std::fs::read(Self::path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("the agent state is unreadable"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                version: initial_version.to_owned(),
                ..State::default()
            }),
            Err(e) => Err(e).context("reading the agent state"),
        }
    }

    /// Writes the state atomically: a crash leaves the old or the new file, never half.
    pub(crate) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("state.json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}
