//! otter's pure domain: no I/O lives here.
//!
//! - [`version`]: version schemes and their ordering,
//! - [`model`]: products, artifacts, releases, devices and update reports as the API and store see them,
//! - [`decision`]: which release (if any) a device should be offered,
//! - [`deltas`]: delta update policies and the patches built between releases,
//! - [`digest`]: the SHA-256 / SHA-1 / MD5 triple computed over every artifact,
//! - [`access`]: which devices may use a product (ota-backend's firewall),
//! - [`ott`]: one-time download tokens (THiNX),
//! - [`rollout`]: staged rollouts: stage membership and the thresholds that advance or pause them,
//! - [`iotawatt`]: IotaWatt's signed release blobs,
//! - [`formats`]: native firmware signature formats (ESP8266 trailer, ESP-IDF Secure Boot v2,
//!   minisign, IotaWatt) made and checked byte-for-byte as the vendor tools do,
//! - [`signing`]: keys, DSSE envelopes, roots of trust, release manifests, signed check responses
//!   and the device-side checks,
//! - [`schedule`]: maintenance windows and poll hints,
//! - [`units`]: sizes and durations as flags and config files spell them.

pub mod access;
pub mod decision;
pub mod deltas;
pub mod digest;
pub mod formats;
pub mod iotawatt;
pub mod model;
pub mod ott;
pub mod rollout;
pub mod schedule;
pub mod signing;
pub mod units;
pub mod version;

pub use decision::{Current, Decision, DecisionError, Lineup, ReleaseFacts};

/// A `HashMap` with a fast hasher, for the maps a device's check looks things up in by keys it
/// does not choose the set of (channels, versions, product names): SipHash, the standard
/// hasher, was about a tenth of a check's instructions. Still seeded at random per map.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub use version::{Scheme, Version, VersionError};
