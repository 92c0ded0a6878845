//! Device-side verification: what firmware (or `otter agent`) does before it installs anything.
//! No I/O and no clock: the caller passes the time it has (an RTC, or 0 without one), and
//! [`TrustState::trusted_time`] only moves forward with signed server times.
//!
//! The order matters and follows TUF/Uptane: walk the root chain first, then check the signed
//! response to this request's nonce, then the manifest it pins, then the bytes.

use aws_lc_rs::digest::{Context, SHA256, digest};

use super::SigningError;
use super::documents::{CheckResponse, ReleaseManifest, Root};
use super::dsse::Envelope;

/// How far past its own clock a device lets a signed server time move its trusted time: clock
/// skew, not more, so a stolen online key cannot push the device into refusing genuine answers
/// as expired.
pub const MAX_CLOCK_SKEW: i64 = 5 * 60;

/// How far one signed answer may move the trusted time of a device without a clock (a day: the
/// lifetime of an answer). A stolen online key can then freeze such a device only one day per
/// check-in it answers, and a device that lags catches up a day per check-in.
pub const MAX_TIME_STEP: i64 = 24 * 60 * 60;

/// The check-in a signed response must answer: everything the device sent.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    pub nonce: &'a str,
    pub device: &'a str,
    /// What it said it runs; `None` when it did not say.
    pub current: Option<&'a str>,
    pub channel: &'a str,
}

/// What a device keeps between updates.
#[derive(Debug, Clone)]
pub struct TrustState {
    /// The newest root it has verified (version 1 is pinned in the firmware).
    pub root: Root,
    /// The security counter of what it runs; it never installs below it.
    pub security_counter: u32,
    /// The latest time it can trust: its own clock or a signed server time, whichever is later.
    pub trusted_time: i64,
}

impl TrustState {
    pub fn new(pinned: Root, security_counter: u32) -> Self {
        TrustState {
            root: pinned,
            security_counter,
            trusted_time: 0,
        }
    }

    /// Moves to root `N + 1` (fetched as `/root/{N+1}.json`).
    pub fn update_root(&mut self, envelope: &Envelope) -> Result<(), SigningError> {
        self.root = self.root.open_next(envelope)?;
        Ok(())
    }

    /// Checks the signed answer to `request`: the online keys of the newest root, the request
    /// echoed (nonce, device, what it runs, channel), expiry, and a root no newer than the one
    /// the device has walked to. On success the signed server time advances `trusted_time`,
    /// never past `now` plus [`MAX_CLOCK_SKEW`] (or, without a clock, by more than
    /// [`MAX_TIME_STEP`]). `now` is the device's clock (0 if it has none).
    pub fn check_response(
        &mut self,
        envelope: &Envelope,
        request: &CheckRequest<'_>,
        now: i64,
    ) -> Result<CheckResponse, SigningError> {
        let at = now.max(self.trusted_time);
        self.root.check_fresh(at)?;
        let response = CheckResponse::open(envelope, &self.root)?;
        if response.nonce != request.nonce {
            return Err(SigningError::Nonce);
        }
        response.check_fresh(at)?;
        let echoed = [
            ("product", response.product == self.root.product),
            ("device", response.device == request.device),
            (
                "current version",
                response.current.as_deref() == request.current,
            ),
            ("channel", response.channel == request.channel),
        ];
        if let Some((what, _)) = echoed.iter().find(|(_, same)| !same) {
            return Err(SigningError::Mismatch(format!(
                "the response answers another request (its {what} is not the one asked)"
            )));
        }
        if response.root_version > self.root.version {
            return Err(SigningError::RootVersion {
                have: self.root.version,
                got: response.root_version,
            });
        }
        let server_time = super::unix("server time", &response.server_time)?;
        let ceiling = if now > 0 {
            now + MAX_CLOCK_SKEW
        } else {
            let root_issued = super::unix("root issued", &self.root.issued)?;
            self.trusted_time.max(root_issued) + MAX_TIME_STEP
        };
        self.trusted_time = self.trusted_time.max(server_time.min(ceiling));
        Ok(response)
    }

    /// Checks the manifest a verified response pinned: its hash, release signatures, product,
    /// hardware, expiry and security counter.
    pub fn check_manifest(
        &self,
        envelope: &Envelope,
        response: &CheckResponse,
        hw_id: &str,
    ) -> Result<ReleaseManifest, SigningError> {
        let (manifest, payload) = ReleaseManifest::open(envelope, &self.root, self.trusted_time)?;
        let pinned = response.manifest_sha256.as_deref().unwrap_or_default();
        if hex::encode(digest(&SHA256, &payload)) != pinned {
            return Err(SigningError::Mismatch(
                "the manifest is not the one the response names (mix-and-match)".into(),
            ));
        }
        if Some(&manifest.version) != response.version.as_ref() {
            return Err(SigningError::Mismatch(
                "the manifest is for another release".into(),
            ));
        }
        if is_older(&manifest.version, response.current.as_deref()) && response.downgrade.is_none()
        {
            return Err(SigningError::Mismatch(format!(
                "{} is older than the running {}, and the response gives no reason to go back",
                manifest.version,
                response.current.as_deref().unwrap_or_default()
            )));
        }
        self.check_release(&manifest, &response.channel, hw_id)?;
        Ok(manifest)
    }

    /// Checks the manifest that came with an image pushed over the LAN, where there is no
    /// server and so no signed answer: the release threshold of the newest root the device
    /// has, expiry at `now` (or the trusted time), product, channel, hardware and counter. The
    /// caller then checks the pushed bytes with [`ArtifactCheck`].
    pub fn check_pushed_manifest(
        &self,
        envelope: &Envelope,
        channel: &str,
        hw_id: &str,
        now: i64,
    ) -> Result<ReleaseManifest, SigningError> {
        let at = now.max(self.trusted_time);
        self.root.check_fresh(at)?;
        let (manifest, _) = ReleaseManifest::open(envelope, &self.root, at)?;
        self.check_release(&manifest, channel, hw_id)?;
        Ok(manifest)
    }

    /// What a release must be for this device, however it arrived: for its product, signed for
    /// its channel and hardware, and not below its security counter.
    fn check_release(
        &self,
        manifest: &ReleaseManifest,
        channel: &str,
        hw_id: &str,
    ) -> Result<(), SigningError> {
        if manifest.product != self.root.product {
            return Err(SigningError::Mismatch(
                "the manifest is for another product".into(),
            ));
        }
        if !manifest.is_for_channel(channel) {
            return Err(SigningError::Mismatch(format!(
                "the release is not signed for channel {channel:?}"
            )));
        }
        if !manifest.hw_ids.is_empty() && !manifest.hw_ids.iter().any(|h| h == hw_id) {
            return Err(SigningError::Mismatch(format!(
                "the release is not for hardware {hw_id:?}"
            )));
        }
        if manifest.security_counter < self.security_counter {
            return Err(SigningError::Rollback {
                have: self.security_counter,
                got: manifest.security_counter,
            });
        }
        Ok(())
    }

    /// Records an installed release: its counter becomes the floor.
    pub fn installed(&mut self, manifest: &ReleaseManifest) {
        self.security_counter = self.security_counter.max(manifest.security_counter);
    }
}

/// Whether `offered` is an older semantic version than `current`. Versions of other schemes
/// cannot be ordered without the product's scheme; for them the signed `current` and the
/// security counter are the guard.
fn is_older(offered: &str, current: Option<&str>) -> bool {
    let semver = |v: &str| crate::Version::parse(crate::Scheme::Semver, v).ok();
    match (semver(offered), current.and_then(semver)) {
        (Some(offered), Some(current)) => offered.compare(&current).is_some_and(|o| o.is_lt()),
        _ => false,
    }
}

/// Checks an artifact as it streams in: never more than the manifest's length, and the
/// manifest's SHA-256 at the end.
pub struct ArtifactCheck {
    expected: ReleaseManifestArtifact,
    received: u64,
    hash: Context,
}

struct ReleaseManifestArtifact {
    length: u64,
    sha256: String,
}

impl ArtifactCheck {
    pub fn new(manifest: &ReleaseManifest) -> Self {
        ArtifactCheck {
            expected: ReleaseManifestArtifact {
                length: manifest.artifact.length,
                sha256: manifest.artifact.sha256.to_ascii_lowercase(),
            },
            received: 0,
            hash: Context::new(&SHA256),
        }
    }

    /// Feeds the next bytes; refuses anything past the manifest's length (endless data).
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), SigningError> {
        self.received += chunk.len() as u64;
        if self.received > self.expected.length {
            return Err(SigningError::TooLong(self.expected.length));
        }
        self.hash.update(chunk);
        Ok(())
    }

    /// The whole artifact arrived: length and hash must match.
    pub fn finish(self) -> Result<(), SigningError> {
        if self.received != self.expected.length {
            return Err(SigningError::Mismatch(format!(
                "the artifact is {} bytes, the manifest says {}",
                self.received, self.expected.length
            )));
        }
        if hex::encode(self.hash.finish()) != self.expected.sha256 {
            return Err(SigningError::Mismatch(
                "the artifact's SHA-256 is not the manifest's".into(),
            ));
        }
        Ok(())
    }
}
