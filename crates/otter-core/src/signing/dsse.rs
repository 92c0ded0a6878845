//! DSSE envelopes (the Dead Simple Signing Envelope of in-toto and Sigstore): a payload, its
//! type, and signatures over `PAE(type, payload)` =
//! `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`. Signing the exact bytes means
//! no canonical JSON is needed: a verifier checks the bytes, then parses them.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::SigningError;
use super::keys::{PrivateKey, PublicKey};

/// Which keys may sign, and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    /// Base64.
    pub sig: String,
}

/// A signed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The bytes a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An unsigned envelope around `payload`.
    pub fn new(payload_type: &str, payload: &[u8]) -> Self {
        Envelope {
            payload_type: payload_type.to_owned(),
            payload: b64().encode(payload),
            signatures: Vec::new(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, SigningError> {
        serde_json::from_slice(bytes).map_err(|e| SigningError::Malformed {
            what: "envelope",
            why: e.to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>, SigningError> {
        b64()
            .decode(&self.payload)
            .map_err(|_| SigningError::Malformed {
                what: "envelope",
                why: "the payload is not base64".into(),
            })
    }

    /// What a signer (a key here, or an HSM/KMS elsewhere) must sign.
    pub fn to_be_signed(&self) -> Result<Vec<u8>, SigningError> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// Signs with `key` and adds the signature.
    pub fn sign(&mut self, key: &PrivateKey) -> Result<(), SigningError> {
        let sig = key.sign(&self.to_be_signed()?)?;
        self.attach(&key.public_key(), &sig)
    }

    /// Adds a signature made elsewhere, after checking it.
    pub fn attach(&mut self, key: &PublicKey, signature: &[u8]) -> Result<(), SigningError> {
        if !key.verify(&self.to_be_signed()?, signature) {
            return Err(SigningError::Mismatch(format!(
                "the signature does not verify with key {}",
                key.key_id()
            )));
        }
        let keyid = key.key_id();
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature {
            keyid,
            sig: b64().encode(signature),
        });
        Ok(())
    }

    /// Checks that at least `role.threshold` distinct keys of `role` signed (a key counts once
    /// however often it appears), and returns the payload.
    pub fn verify(
        &self,
        payload_type: &str,
        keys: &BTreeMap<String, PublicKey>,
        role_name: &'static str,
        role: &Role,
    ) -> Result<Vec<u8>, SigningError> {
        if self.payload_type != payload_type {
            return Err(SigningError::Mismatch(format!(
                "expected a {payload_type} document, got {}",
                self.payload_type
            )));
        }
        let message = self.to_be_signed()?;
        let mut valid = BTreeSet::new();
        for signature in &self.signatures {
            if !role.keyids.contains(&signature.keyid) || valid.contains(&signature.keyid) {
                continue;
            }
            let Some(key) = keys.get(&signature.keyid) else {
                continue;
            };
            let Ok(sig) = b64().decode(&signature.sig) else {
                continue;
            };
            // The id must be the key's own: a root cannot list a key under a foreign id.
            if key.key_id() == signature.keyid && key.verify(&message, &sig) {
                valid.insert(signature.keyid.clone());
            }
        }
        if role.threshold == 0 || valid.len() < role.threshold as usize {
            return Err(SigningError::Threshold {
                role: role_name,
                valid: valid.len(),
                threshold: role.threshold,
            });
        }
        self.payload_bytes()
    }
}
