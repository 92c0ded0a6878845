//! Signed releases: keys, DSSE envelopes, and the documents otter signs or checks (see
//! `docs/signing.md` for the design this follows).
//!
//! - [`keys`]: Ed25519 and ECDSA P-256 keys, key ids, PEM;
//! - [`dsse`]: the envelope every document travels in: signatures cover the exact payload
//!   bytes (never re-serialised JSON), so a device verifies before it parses;
//! - [`documents`]: the per-product root of trust (roles `root`, `release`, `online` with keys
//!   and thresholds, versioned, expiring), release manifests (signed offline), and check
//!   responses (signed online, bound to the device's nonce);
//! - [`device`]: what a device does with them: walk the root chain, check a response, a
//!   manifest and the artifact stream. No I/O; the agent and the tests use it.

pub mod device;
pub mod documents;
pub mod dsse;
pub mod keys;

/// Why something signed was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("key: {0}")]
    Key(String),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    #[error("{role} signatures: {valid} valid of the {threshold} required")]
    Threshold {
        role: &'static str,
        valid: usize,
        threshold: u32,
    },
    #[error("{what} expired at {expires}")]
    Expired { what: &'static str, expires: String },
    #[error(
        "root version {got} does not follow version {have} (each root must be exactly the next)"
    )]
    RootVersion { have: u32, got: u32 },
    #[error("root {version} was issued after its predecessor expired")]
    IssuedAfterExpiry { version: u32 },
    #[error("the response does not answer this request (nonce mismatch)")]
    Nonce,
    #[error("security counter {got} is lower than {have}: a rollback")]
    Rollback { have: u32, got: u32 },
    #[error("{0}")]
    Mismatch(String),
    #[error("the artifact is longer than the {0} bytes the manifest allows")]
    TooLong(u64),
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn unix(what: &'static str, rfc3339: &str) -> Result<i64, SigningError> {
    crate::model::parse_rfc3339(what, rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| SigningError::Malformed {
            what,
            why: e.to_string(),
        })
}
