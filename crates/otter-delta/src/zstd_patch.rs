//! zstd patches: one zstd frame whose reference prefix is the base image, so matches reach back
//! into the base (what `zstd --patch-from=BASE` makes and `zstd -d --patch-from=BASE` applies).
//!
//! The frame records the target's length and a content checksum, so applying it to another base
//! fails the checksum instead of yielding a wrong image silently (the caller still checks the
//! full image's SHA-256).

use std::io::Read;

use crate::{DeltaError, Output};

/// zstd's largest window (`ZSTD_WINDOWLOG_MAX`: 31 on 64-bit targets, 30 on 32-bit ones).
const MAX_WINDOW_LOG: u32 = if cfg!(target_pointer_width = "64") {
    31
} else {
    30
};
/// zstd's smallest window (`ZSTD_WINDOWLOG_ABSOLUTEMIN`).
const MIN_WINDOW_LOG: u32 = 10;

/// The window (as a power of two) that lets the end of the target still see the start of the
/// base: the prefix and the frame share one window.
fn window_log(base_len: u64, target_len: u64) -> u32 {
    let span = base_len.saturating_add(target_len).max(1);
    (u64::BITS - (span - 1).leading_zeros()).clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

fn corrupt(e: std::io::Error) -> DeltaError {
    DeltaError::Corrupt(format!("zstd: {e}"))
}

#[cfg(feature = "create")]
pub(crate) fn create(base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    /// zstd's level 19: the strongest non-"ultra" level, what `zstd -19 --patch-from` uses.
    const LEVEL: i32 = 19;
    let (base_len, target_len) = (base.len() as u64, target.len() as u64);
    if base_len.saturating_add(target_len) > 1 << MAX_WINDOW_LOG {
        return Err(DeltaError::ImageTooLarge {
            format: crate::Format::Zstd,
            len: base_len.max(target_len),
            limit: (1 << MAX_WINDOW_LOG) / 2,
        });
    }
    let run = || -> std::io::Result<Vec<u8>> {
        let mut encoder = zstd::stream::Encoder::with_ref_prefix(Vec::new(), LEVEL, base)?;
        encoder.window_log(window_log(base_len, target_len))?;
        // Long-distance matching finds the base's copies however far back they are (as the
        // zstd CLI turns it on for --patch-from).
        encoder.long_distance_matching(true)?;
        encoder.set_pledged_src_size(Some(target_len))?;
        encoder.include_checksum(true)?;
        encoder.include_contentsize(true)?;
        std::io::Write::write_all(&mut encoder, target)?;
        encoder.finish()
    };
    run().map_err(|e| DeltaError::Corrupt(format!("zstd encoder: {e}")))
}

pub(crate) fn apply(base: &[u8], patch: &[u8], max_len: u64) -> Result<Vec<u8>, DeltaError> {
    let mut decoder = zstd::stream::Decoder::with_ref_prefix(patch, base).map_err(corrupt)?;
    // The decoder allocates the window the frame asks for: never more than the base plus what
    // the caller accepts, so a frame claiming a huge window is refused before it allocates.
    decoder
        .window_log_max(window_log(base.len() as u64, max_len))
        .map_err(corrupt)?;
    let mut out = Output::new(0, max_len);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = decoder.read(&mut chunk).map_err(corrupt)?;
        if n == 0 {
            return Ok(out.bytes);
        }
        out.ensure_room(n as u64)?;
        out.bytes.extend_from_slice(&chunk[..n]);
    }
}
