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

    /// Checks the signed answer to a check-in that sent `nonce`; on success the signed server
    /// time advances `trusted_time`. `now` is the device's clock (0 if it has none).
    pub fn check_response(
        &mut self,
        envelope: &Envelope,
        nonce: &str,
        now: i64,
    ) -> Result<CheckResponse, SigningError> {
        let now = now.max(self.trusted_time);
        self.root.check_fresh(now)?;
        let response = CheckResponse::open(envelope, &self.root)?;
        if response.nonce != nonce {
            return Err(SigningError::Nonce);
        }
        response.check_fresh(now)?;
        if response.product != self.root.product {
            return Err(SigningError::Mismatch(
                "the response is for another product".into(),
            ));
        }
        let server_time = super::unix("server time", &response.server_time)?;
        self.trusted_time = self.trusted_time.max(server_time);
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
        if manifest.product != self.root.product
            || Some(&manifest.version) != response.version.as_ref()
        {
            return Err(SigningError::Mismatch(
                "the manifest is for another release".into(),
            ));
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
        Ok(manifest)
    }

    /// Records an installed release: its counter becomes the floor.
    pub fn installed(&mut self, manifest: &ReleaseManifest) {
        self.security_counter = self.security_counter.max(manifest.security_counter);
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
