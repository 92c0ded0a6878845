//! The signed documents: a product's root of trust, release manifests, and check responses.
//! Each travels in a [`Envelope`] with its own payload type, so one can never pass for another.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::dsse::{Envelope, Role};
use super::keys::PublicKey;
use super::{SigningError, unix};

pub const ROOT_TYPE: &str = "application/vnd.otter.root+json;v=1";
pub const MANIFEST_TYPE: &str = "application/vnd.otter.release+json;v=1";
pub const RESPONSE_TYPE: &str = "application/vnd.otter.check+json;v=1";

/// The keys of each role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// Signs root documents (offline keys).
    pub root: Role,
    /// Signs release manifests (offline keys).
    pub release: Role,
    /// Signs check responses (the server's key).
    pub online: Role,
}

/// A product's root of trust, version `version` of a chain in which each version is signed by
/// the root keys of the one before and by its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub product: String,
    pub version: u32,
    /// RFC 3339.
    pub issued: String,
    /// RFC 3339.
    pub expires: String,
    /// Keys by id (hex SHA-256 of the raw public key).
    pub keys: BTreeMap<String, PublicKey>,
    pub roles: Roles,
}

fn parse<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, SigningError> {
    serde_json::from_slice(bytes).map_err(|e| SigningError::Malformed {
        what,
        why: e.to_string(),
    })
}

impl Root {
    /// Checks the document on its own: each role has distinct keys listed in `keys`, under
    /// their own ids, and a threshold it can meet.
    pub fn validate(&self) -> Result<(), SigningError> {
        for (id, key) in &self.keys {
            if key.key_id() != *id {
                return Err(SigningError::Mismatch(format!(
                    "key {id} is listed under an id that is not its own"
                )));
            }
        }
        for (name, role) in [
            ("root", &self.roles.root),
            ("release", &self.roles.release),
            ("online", &self.roles.online),
        ] {
            let distinct: BTreeSet<&String> = role.keyids.iter().collect();
            if distinct.len() != role.keyids.len() {
                return Err(SigningError::Mismatch(format!(
                    "role {name} lists a key twice"
                )));
            }
            if let Some(missing) = role.keyids.iter().find(|id| !self.keys.contains_key(*id)) {
                return Err(SigningError::Mismatch(format!(
                    "role {name} names key {missing}, which the root does not list"
                )));
            }
            if role.threshold == 0 || role.threshold as usize > role.keyids.len() {
                return Err(SigningError::Mismatch(format!(
                    "role {name} has threshold {} with {} keys",
                    role.threshold,
                    role.keyids.len()
                )));
            }
        }
        unix("root issued", &self.issued)?;
        unix("root expires", &self.expires)?;
        Ok(())
    }

    /// Opens the first root of a chain: version 1, signed by its own root keys.
    pub fn open_first(envelope: &Envelope) -> Result<Root, SigningError> {
        let unverified: Root = parse("root", &envelope.payload_bytes()?)?;
        unverified.validate()?;
        if unverified.version != 1 {
            return Err(SigningError::RootVersion {
                have: 0,
                got: unverified.version,
            });
        }
        envelope.verify(ROOT_TYPE, &unverified.keys, "root", &unverified.roles.root)?;
        Ok(unverified)
    }

    /// Opens the next root: exactly version + 1, for the same product, issued while this one
    /// was valid, and signed by the root threshold of this root *and* of its own.
    pub fn open_next(&self, envelope: &Envelope) -> Result<Root, SigningError> {
        let payload = envelope.verify(ROOT_TYPE, &self.keys, "root", &self.roles.root)?;
        let next: Root = parse("root", &payload)?;
        next.validate()?;
        if next.version != self.version + 1 {
            return Err(SigningError::RootVersion {
                have: self.version,
                got: next.version,
            });
        }
        if next.product != self.product {
            return Err(SigningError::Mismatch(format!(
                "root {} is for {:?}, not {:?}",
                next.version, next.product, self.product
            )));
        }
        if unix("root issued", &next.issued)? > unix("root expires", &self.expires)? {
            return Err(SigningError::IssuedAfterExpiry {
                version: next.version,
            });
        }
        envelope.verify(ROOT_TYPE, &next.keys, "root", &next.roles.root)?;
        Ok(next)
    }

    /// Refuses a root that has expired at `now`.
    pub fn check_fresh(&self, now: i64) -> Result<(), SigningError> {
        fresh("root", &self.expires, now)
    }
}

fn fresh(what: &'static str, expires: &str, now: i64) -> Result<(), SigningError> {
    if now >= unix(what, expires)? {
        return Err(SigningError::Expired {
            what,
            expires: expires.to_owned(),
        });
    }
    Ok(())
}

/// What a manifest says about the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub length: u64,
    pub sha256: String,
    /// The image's own signature format (`raw`, `esp8266-rsa`, `esp-idf-sbv2`, …).
    #[serde(default = "raw")]
    pub format: String,
}

fn raw() -> String {
    "raw".to_owned()
}

/// A release, as its publisher signed it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub product: String,
    pub version: String,
    pub channel: String,
    /// Further channels the release may be offered on (a release published on several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Hardware the image is for; empty means any.
    #[serde(default)]
    pub hw_ids: Vec<String>,
    /// Never lower than that of an earlier release: devices refuse to go back below it.
    pub security_counter: u32,
    pub artifact: ArtifactRef,
    pub issued: String,
    pub expires: String,
    /// The root version the signer worked from.
    pub root_version: u32,
}

impl ReleaseManifest {
    /// Whether the release was signed for devices on `channel`.
    pub fn is_for_channel(&self, channel: &str) -> bool {
        self.channel == channel || self.channels.iter().any(|c| c == channel)
    }

    /// Opens a manifest signed by `root`'s release threshold and not expired at `now`; returns
    /// it with its payload bytes (what check responses pin by hash).
    pub fn open(
        envelope: &Envelope,
        root: &Root,
        now: i64,
    ) -> Result<(Self, Vec<u8>), SigningError> {
        let payload = envelope.verify(MANIFEST_TYPE, &root.keys, "release", &root.roles.release)?;
        let manifest: ReleaseManifest = parse("release manifest", &payload)?;
        fresh("release manifest", &manifest.expires, now)?;
        unix("release manifest issued", &manifest.issued)?;
        Ok((manifest, payload))
    }
}

/// What the server tells a device, signed with its online key and bound to the device's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResponse {
    pub product: String,
    pub device: String,
    /// The device's nonce, echoed.
    pub nonce: String,
    /// What the device said it runs (`current`), echoed; absent when it said nothing. With
    /// `device` and `channel` it binds the answer to the whole request, so a relay that
    /// changes the question gets an answer the device refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The channel the answer was decided for, echoed.
    #[serde(default)]
    pub channel: String,
    pub server_time: String,
    pub expires: String,
    /// The newest root the server knows: a device behind it walks the chain first.
    pub root_version: u32,
    /// `install` or `none`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SHA-256 of the release manifest's payload bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// Why the offered release is older than `current`, when it is: `yanked` (what the device
    /// runs was withdrawn) or `pinned` (an operator pinned the device to the offered release).
    /// A device refuses an older release without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade: Option<String>,
}

impl CheckResponse {
    /// Opens a response signed by `root`'s online threshold.
    pub fn open(envelope: &Envelope, root: &Root) -> Result<Self, SigningError> {
        let payload = envelope.verify(RESPONSE_TYPE, &root.keys, "online", &root.roles.online)?;
        parse("check response", &payload)
    }

    /// Refuses a response that has expired at `now`.
    pub fn check_fresh(&self, now: i64) -> Result<(), SigningError> {
        fresh("check response", &self.expires, now)
    }
}
