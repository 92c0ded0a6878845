//! Delta updates as the API and store see them: a product's policy (which patches otter builds)
//! and the patches themselves, from a base release to a target release. The patch formats live
//! in the `otter-delta` crate; here a format is its name (`esp-delta-ota`, `bsdiff`, `zstd`).

use serde::{Deserialize, Serialize};

/// Which patches otter builds for a product's releases (none without a policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeltaPolicy {
    /// The patch format: `esp-delta-ota`, `bsdiff` or `zstd`.
    pub format: String,
    /// Patches from this many earlier releases on the new release's channels (newest first);
    /// [`DeltaPolicy::DEFAULT_FROM_LAST`] when neither this nor `fromVersion` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_last: Option<u32>,
    /// A patch from this one release only, instead of `fromLast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// A patch is kept only when it is smaller than this share of the full image, in percent.
    #[serde(default = "DeltaPolicy::default_max_share")]
    pub max_share_percent: u32,
}

impl DeltaPolicy {
    /// How many earlier releases patches start from when the policy names none.
    pub const DEFAULT_FROM_LAST: u32 = 3;
    /// The most earlier releases a policy may name: each one is a build after every publish.
    pub const MAX_FROM_LAST: u32 = 20;
    /// The share of the full image a patch must stay under when the policy names none.
    pub const DEFAULT_MAX_SHARE: u32 = 50;

    fn default_max_share() -> u32 {
        Self::DEFAULT_MAX_SHARE
    }

    /// The policy with its defaults filled in, or what is wrong with it.
    pub fn normalized(mut self) -> Result<Self, String> {
        if self.from_last.is_some() && self.from_version.is_some() {
            return Err("give fromLast or fromVersion, not both".to_owned());
        }
        if self.from_version.is_none() {
            let n = self.from_last.unwrap_or(Self::DEFAULT_FROM_LAST);
            if !(1..=Self::MAX_FROM_LAST).contains(&n) {
                return Err(format!(
                    "fromLast must be 1-{}, not {n}",
                    Self::MAX_FROM_LAST
                ));
            }
            self.from_last = Some(n);
        }
        if !(1..=99).contains(&self.max_share_percent) {
            return Err(format!(
                "maxSharePercent must be 1-99, not {}",
                self.max_share_percent
            ));
        }
        Ok(self)
    }
}

/// Where one patch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeltaState {
    /// Waiting for the builder.
    Pending,
    /// Being built now.
    Building,
    /// Built, stored and offered to devices on its base.
    Ready,
    /// Built but not kept: not smaller than the policy's share of the image.
    Skipped,
    /// Could not be built (the message says why).
    Failed,
}

impl DeltaState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaState::Pending => "pending",
            DeltaState::Building => "building",
            DeltaState::Ready => "ready",
            DeltaState::Skipped => "skipped",
            DeltaState::Failed => "failed",
        }
    }

    /// Whether the builder is done with it (ready, skipped or failed).
    pub fn is_final(self) -> bool {
        !matches!(self, DeltaState::Pending | DeltaState::Building)
    }
}

impl std::str::FromStr for DeltaState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => DeltaState::Pending,
            "building" => DeltaState::Building,
            "ready" => DeltaState::Ready,
            "skipped" => DeltaState::Skipped,
            "failed" => DeltaState::Failed,
            other => return Err(format!("unknown delta state {other:?}")),
        })
    }
}

/// A patch from release `from` to release `to` of a product, in one format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    pub product: String,
    /// The base release's version (what the device runs).
    pub from: String,
    /// The target release's version.
    pub to: String,
    pub format: String,
    pub state: DeltaState,
    /// The patch's length in bytes, once built.
    pub size: Option<u64>,
    /// The patch's SHA-256 (hex), once built: it is downloaded from `/dl/{sha256}`.
    pub sha256: Option<String>,
    /// Why it was skipped or failed.
    pub message: Option<String>,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
}
