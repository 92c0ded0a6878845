//! Binary patches between two firmware images, in the formats devices already apply:
//!
//! - [`Format::EspDeltaOta`]: what ESP-IDF's `esp_delta_ota` component applies: a 64-byte
//!   header naming the base image by its validation hash ([`esp_validation_hash`]), then a
//!   detools sequential patch (bsdiff algorithm, heatshrink compression),
//! - [`Format::Bsdiff`]: classic BSDIFF40, as Debian's `bspatch` applies it,
//! - [`Format::Zstd`]: one zstd frame compressed with the base image as reference prefix, as
//!   `zstd -d --patch-from=BASE` applies it.
//!
//! Everything happens in memory, without I/O: the caller reads the images and stores the patch.
//! [`create`] (feature `create`, on by default) makes patches; [`apply`] applies them and never
//! produces more than the caller's `max_len` bytes, whatever the patch claims, so a hostile or
//! corrupt patch cannot exhaust a device's memory.

mod bsdiff40;
mod detools;
mod esp;
mod heatshrink;
mod zstd_patch;

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use esp::esp_validation_hash;

/// A patch format. Spelled `esp-delta-ota`, `bsdiff`, `zstd` by serde, `Display` and `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// ESP-IDF `esp_delta_ota`: 64-byte header + detools sequential/bsdiff/heatshrink patch.
    EspDeltaOta,
    /// BSDIFF40 (bzip2-compressed control, diff and extra blocks).
    Bsdiff,
    /// A zstd frame with the base image as reference prefix.
    Zstd,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 3] = [Format::EspDeltaOta, Format::Bsdiff, Format::Zstd];

    /// The format's name as the API and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::EspDeltaOta => "esp-delta-ota",
            Format::Bsdiff => "bsdiff",
            Format::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delta format {0:?} (expected esp-delta-ota, bsdiff or zstd)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Why a patch could not be made or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// `esp-delta-ota` needs ESP app images (and [`esp_validation_hash`] an ESP app image).
    #[error("not an ESP app image: {0}")]
    NotEspImage(String),
    /// The patch is not well-formed for its format, or does not fit the base it is applied to.
    #[error("corrupt patch: {0}")]
    Corrupt(String),
    /// The patch was made from another base image than the one it is applied to.
    #[error("the patch was made for another base image")]
    WrongBase,
    /// Applying the patch would produce more than the allowed number of bytes.
    #[error("the patched image would be larger than {max_len} bytes")]
    TooLarge {
        /// The limit the caller gave.
        max_len: u64,
    },
    /// An image is too large for the format's encoder.
    #[error("image too large for {format}: {len} bytes (at most {limit})")]
    ImageTooLarge {
        /// The format asked for.
        format: Format,
        /// The image's length.
        len: u64,
        /// The largest image the encoder takes.
        limit: u64,
    },
}

/// Makes a patch that turns `base` into `target`.
///
/// `EspDeltaOta` refuses a base or target that is not an ESP app image
/// ([`DeltaError::NotEspImage`]).
#[cfg(feature = "create")]
pub fn create(format: Format, base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    match format {
        Format::EspDeltaOta => esp::create_delta_ota(base, target),
        Format::Bsdiff => bsdiff40::create(base, target),
        Format::Zstd => zstd_patch::create(base, target),
    }
}

/// Applies `patch` to `base`; refuses output longer than `max_len` (a hostile patch must not
/// exhaust memory).
pub fn apply(
    format: Format,
    base: &[u8],
    patch: &[u8],
    max_len: u64,
) -> Result<Vec<u8>, DeltaError> {
    match format {
        Format::EspDeltaOta => esp::apply_delta_ota(base, patch, max_len),
        Format::Bsdiff => bsdiff40::apply(base, patch, max_len),
        Format::Zstd => zstd_patch::apply(base, patch, max_len),
    }
}

/// The bytes a patch produces, never more than `max_len` of them.
struct Output {
    bytes: Vec<u8>,
    max_len: u64,
}

impl Output {
    /// An empty output; `expected` (what the patch announces) only sizes the first allocation,
    /// and only up to `max_len`.
    fn new(expected: u64, max_len: u64) -> Self {
        let capacity = expected.min(max_len).min(usize::MAX as u64) as usize;
        Output {
            bytes: Vec::with_capacity(capacity),
            max_len,
        }
    }

    /// Room for `n` more bytes, or [`DeltaError::TooLarge`].
    fn ensure_room(&self, n: u64) -> Result<(), DeltaError> {
        if (self.bytes.len() as u64).saturating_add(n) > self.max_len {
            return Err(DeltaError::TooLarge {
                max_len: self.max_len,
            });
        }
        Ok(())
    }
}

/// Appends exactly `n` bytes of `r` to `out` (the caller has bounded `n`).
fn read_n(r: &mut impl Read, n: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
    let got = r.take(n).read_to_end(out)?;
    if (got as u64) < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the stream ends early",
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "create"))]
mod tests;
