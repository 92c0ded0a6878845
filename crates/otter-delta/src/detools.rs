//! detools *sequential* patches with the bsdiff algorithm and heatshrink compression: what
//! `detools create_patch -c heatshrink` writes and the detools C library (inside ESP-IDF's
//! `esp_delta_ota`) applies while streaming.
//!
//! Layout (detools 0.53, `create.py`/`apply.py`): one header byte (bit 7 zero, bits 6–4 the
//! patch type, 0 = sequential; bits 3–0 the compression, 4 = heatshrink), the target's length as
//! a detools size, then one heatshrink stream: its first byte holds (window − 4, lookahead − 3)
//! as two nibbles, the rest decompresses to
//!
//! ```text
//! size(0)                        no data-format section
//! repeat until the target is complete:
//!   size(n)  n diff bytes        added to the next n base bytes
//!   size(m)  m extra bytes       copied as they are
//!   size(s)                      a seek in the base, may be negative
//! ```
//!
//! A detools size: the first byte holds a continuation bit, a sign bit and six bits of the
//! magnitude; each next byte a continuation bit and seven more bits, least significant first.
//! An empty target has nothing after its length.
//!
//! The controls are those of a BSDIFF40 patch made by `qbsdiff`, re-encoded: the two formats
//! share the bsdiff algorithm and differ only in how they store its output.

use std::io::{self, Read};

use crate::heatshrink;
#[cfg(feature = "create")]
use crate::heatshrink::{LOOKAHEAD_SZ2, WINDOW_SZ2};
use crate::{DeltaError, Output, read_n};

const PATCH_TYPE_SEQUENTIAL: u8 = 0;
const COMPRESSION_HEATSHRINK: u8 = 4;

fn corrupt(what: impl Into<String>) -> DeltaError {
    DeltaError::Corrupt(format!("detools patch: {}", what.into()))
}

/// Appends `value` as a detools size.
#[cfg(feature = "create")]
fn pack_size(value: i64, out: &mut impl io::Write) -> io::Result<()> {
    let mut magnitude = value.unsigned_abs();
    let sign = if value < 0 { 0x40 } else { 0 };
    let mut byte = sign | (magnitude & 0x3f) as u8;
    magnitude >>= 6;
    while magnitude > 0 {
        out.write_all(&[byte | 0x80])?;
        byte = (magnitude & 0x7f) as u8;
        magnitude >>= 7;
    }
    out.write_all(&[byte])
}

/// Reads a detools size.
fn unpack_size(input: &mut impl Read) -> Result<i64, DeltaError> {
    let mut next = || {
        let mut b = [0u8];
        input
            .read_exact(&mut b)
            .map(|()| b[0])
            .map_err(|_| corrupt("ends inside a size"))
    };
    let first = next()?;
    let mut magnitude = u128::from(first & 0x3f);
    let mut byte = first;
    let mut shift = 6;
    while byte & 0x80 != 0 {
        byte = next()?;
        if shift > 63 {
            return Err(corrupt("a size beyond 2^63"));
        }
        magnitude |= u128::from(byte & 0x7f) << shift;
        shift += 7;
    }
    let magnitude = i64::try_from(magnitude).map_err(|_| corrupt("a size beyond 2^63"))?;
    Ok(if first & 0x40 != 0 {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(feature = "create")]
pub(crate) fn create(base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    use std::io::Write;

    let mut patch = vec![PATCH_TYPE_SEQUENTIAL << 4 | COMPRESSION_HEATSHRINK];
    let write = |r: io::Result<()>| r.map_err(|e| corrupt(e.to_string()));
    write(pack_size(target.len() as i64, &mut patch))?;
    if target.is_empty() {
        return Ok(patch);
    }
    let bsdiff = crate::bsdiff40::create(base, target)?;
    let mut controls = crate::bsdiff40::Patch::parse(&bsdiff)?;
    let mut body = heatshrink::Encoder::new();
    write(pack_size(0, &mut body))?;
    let mut bytes = Vec::new();
    crate::bsdiff40::for_each_control(&mut controls, |controls, c, _| {
        bytes.clear();
        controls.read_diff(c.diff, &mut bytes)?;
        write(pack_size(c.diff as i64, &mut body))?;
        write(body.write_all(&bytes))?;
        bytes.clear();
        controls.read_extra(c.extra, &mut bytes)?;
        write(pack_size(c.extra as i64, &mut body))?;
        write(body.write_all(&bytes))?;
        write(pack_size(c.seek, &mut body))
    })?;
    // Freed before compressing: the body and its compressed stream are what remain.
    drop(bsdiff);
    patch.push((WINDOW_SZ2 - 4) << 4 | (LOOKAHEAD_SZ2 - 3));
    patch.extend_from_slice(&body.finish());
    Ok(patch)
}

pub(crate) fn apply(base: &[u8], patch: &[u8], max_len: u64) -> Result<Vec<u8>, DeltaError> {
    let (&header, mut rest) = patch.split_first().ok_or_else(|| corrupt("empty"))?;
    let (patch_type, compression) = (header >> 4, header & 0x0f);
    if patch_type != PATCH_TYPE_SEQUENTIAL {
        return Err(corrupt(format!(
            "patch type {patch_type}, not sequential (0)"
        )));
    }
    if compression != COMPRESSION_HEATSHRINK {
        return Err(corrupt(format!(
            "compression {compression}, not heatshrink (4)"
        )));
    }
    let to_len =
        u64::try_from(unpack_size(&mut rest)?).map_err(|_| corrupt("a negative target length"))?;
    let mut out = Output::new(to_len, max_len);
    out.ensure_room(to_len)?;
    if to_len == 0 {
        return match rest.is_empty() {
            true => Ok(out.bytes),
            false => Err(corrupt("data after an empty target")),
        };
    }
    let (&params, stream) = rest.split_first().ok_or_else(|| corrupt("no data"))?;
    let (window_sz2, lookahead_sz2) = ((params >> 4) + 4, (params & 0x0f) + 3);
    if window_sz2 > 15 || lookahead_sz2 >= window_sz2 {
        return Err(corrupt(format!(
            "heatshrink window 2^{window_sz2}, lookahead 2^{lookahead_sz2}"
        )));
    }
    let mut body = heatshrink::Decoder::new(stream, window_sz2, lookahead_sz2);
    if unpack_size(&mut body)? != 0 {
        return Err(corrupt("a data-format section (not supported)"));
    }
    let mut from = 0i64;
    let read_err = |e: io::Error| corrupt(e.to_string());
    while (out.bytes.len() as u64) < to_len {
        let left = to_len - out.bytes.len() as u64;
        let diff = bounded_size(&mut body, left, "diff")?;
        let start = out.bytes.len();
        read_n(&mut body, diff, &mut out.bytes).map_err(read_err)?;
        let base_bytes = usize::try_from(from)
            .ok()
            .and_then(|from| base.get(from..from.checked_add(diff as usize)?))
            .ok_or_else(|| corrupt("diff data reaches outside the base"))?;
        for (byte, b) in out.bytes[start..].iter_mut().zip(base_bytes) {
            *byte = byte.wrapping_add(*b);
        }
        from += diff as i64;
        let extra = bounded_size(&mut body, to_len - out.bytes.len() as u64, "extra")?;
        read_n(&mut body, extra, &mut out.bytes).map_err(read_err)?;
        from = from
            .checked_add(unpack_size(&mut body)?)
            .ok_or_else(|| corrupt("a seek overflows"))?;
    }
    let mut after = [0u8];
    match body.read(&mut after).map_err(read_err)? {
        0 => Ok(out.bytes),
        _ => Err(corrupt("data after the target's end")),
    }
}

/// A diff or extra length, refused when it runs past the target's announced length.
fn bounded_size(body: &mut impl Read, left: u64, what: &str) -> Result<u64, DeltaError> {
    u64::try_from(unpack_size(body)?)
        .ok()
        .filter(|&n| n <= left)
        .ok_or_else(|| corrupt(format!("{what} data runs past the target's length")))
}

#[cfg(all(test, feature = "create"))]
mod tests {
    use super::*;

    /// The bytes detools' own `pack_size` writes for the same values.
    #[test]
    fn sizes_are_packed_as_detools_packs_them() {
        let cases: [(i64, &[u8]); 9] = [
            (0, &[0x00]),
            (63, &[0x3f]),
            (64, &[0x80, 0x01]),
            (-1, &[0x41]),
            (-64, &[0xc0, 0x01]),
            (8191, &[0xbf, 0x7f]),
            (-8192, &[0xc0, 0x80, 0x01]),
            (1 << 40, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x40]),
            (
                -(1 << 62),
                &[0xc0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            ),
        ];
        for (value, packed) in cases {
            let mut out = Vec::new();
            pack_size(value, &mut out).unwrap();
            assert_eq!(out, packed, "{value}");
            assert_eq!(unpack_size(&mut &packed[..]).unwrap(), value);
        }
    }
}
