//! heatshrink: the LZSS variant detools (and so `esp_delta_ota`) decompresses on the device with a
//! window of 2^W bytes and back-references of at most 2^L bytes, in a few hundred bytes of RAM.
//!
//! The bit stream, most significant bit first: `1` + 8 bits is a literal byte; `0` + W bits
//! (distance − 1) + L bits (length − 1) copies `length` bytes from `distance` bytes back, one at
//! a time, so a copy may overlap its own output (a run). The window starts as zeros, so the first
//! bytes may refer to them. The last byte is padded with zero bits, too few to form a symbol.
//! No end marker: the stream ends with its input.

use std::io::{self, Read};

/// What detools writes by default (`create_patch -c heatshrink`: window 2^8, lookahead 2^7)
/// and what `esp_delta_ota`'s detools build decompresses.
#[cfg(feature = "create")]
pub(crate) const WINDOW_SZ2: u8 = 8;
#[cfg(feature = "create")]
pub(crate) const LOOKAHEAD_SZ2: u8 = 7;

/// Builds a heatshrink stream: bytes are collected with [`io::Write`], compressed by
/// [`Encoder::finish`] (the encoder needs the whole input to look ahead, and so does detools'
/// own compressor in effect: it compresses at flush).
#[cfg(feature = "create")]
pub(crate) struct Encoder {
    /// 2^W zero bytes (the decoder's initial window), then the input.
    buf: Vec<u8>,
}

#[cfg(feature = "create")]
impl Encoder {
    pub fn new() -> Self {
        Encoder {
            buf: vec![0; 1 << WINDOW_SZ2],
        }
    }

    /// The compressed stream: greedy longest matches, found through hash chains over the
    /// window (two-byte keys: a back-reference costs 1 + W + L = 16 bits, a literal 9, so only
    /// matches of two bytes or more pay).
    pub fn finish(self) -> Vec<u8> {
        const MIN_MATCH: usize = 2;
        let window = 1usize << WINDOW_SZ2;
        let max_len = 1usize << LOOKAHEAD_SZ2;
        let buf = &self.buf;
        let key = |i: usize| usize::from(buf[i]) << 8 | usize::from(buf[i + 1]);
        // head[key]: the latest position with that two-byte key (+1, 0 = none); prev[p % window]:
        // the position before p with the same key (+1). A slot is reused only once its position
        // has left the window, where the search stops anyway.
        let mut head = vec![0usize; 1 << 16];
        let mut prev = vec![0usize; window];
        let insert = |i: usize, head: &mut [usize], prev: &mut [usize]| {
            if i + 1 < buf.len() {
                let k = key(i);
                prev[i % window] = head[k];
                head[k] = i + 1;
            }
        };
        for i in 0..window {
            insert(i, &mut head, &mut prev);
        }
        let mut bits = BitWriter::default();
        let mut i = window;
        while i < buf.len() {
            let limit = max_len.min(buf.len() - i);
            let (mut best_len, mut best_dist) = (0, 0);
            if limit >= MIN_MATCH {
                let mut candidate = head[key(i)];
                while candidate != 0 {
                    let j = candidate - 1;
                    if i - j > window {
                        break;
                    }
                    let len = buf[j..]
                        .iter()
                        .zip(&buf[i..i + limit])
                        .take_while(|(a, b)| a == b)
                        .count();
                    if len > best_len {
                        (best_len, best_dist) = (len, i - j);
                        if len == limit {
                            break;
                        }
                    }
                    candidate = prev[j % window];
                }
            }
            if best_len >= MIN_MATCH {
                bits.push(0, 1);
                bits.push(best_dist as u32 - 1, WINDOW_SZ2);
                bits.push(best_len as u32 - 1, LOOKAHEAD_SZ2);
            } else {
                best_len = 1;
                bits.push(1, 1);
                bits.push(u32::from(buf[i]), 8);
            }
            for p in i..i + best_len {
                insert(p, &mut head, &mut prev);
            }
            i += best_len;
        }
        bits.finish()
    }
}

#[cfg(feature = "create")]
impl io::Write for Encoder {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bits, most significant first, into bytes; the last byte padded with zeros.
#[cfg(feature = "create")]
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    len: u8,
}

#[cfg(feature = "create")]
impl BitWriter {
    fn push(&mut self, value: u32, bits: u8) {
        self.acc = self.acc << bits | value;
        self.len += bits;
        while self.len >= 8 {
            self.len -= 8;
            self.out.push((self.acc >> self.len) as u8);
        }
        self.acc &= (1 << self.len) - 1;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push((self.acc << (8 - self.len)) as u8);
        }
        self.out
    }
}

/// Decompresses a heatshrink stream as a [`Read`]er, a symbol at a time: the output is never
/// held whole, so a stream that expands a lot costs time proportional to what is read, not memory.
pub(crate) struct Decoder<'a> {
    input: &'a [u8],
    /// The next bit to read, counted from the start of `input`.
    bit: usize,
    window: Vec<u8>,
    lookahead_sz2: u8,
    window_sz2: u8,
    /// Bytes written so far (the window position is this modulo its size).
    written: usize,
    /// A back-reference still being copied: (distance, bytes left).
    pending: (usize, usize),
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8], window_sz2: u8, lookahead_sz2: u8) -> Self {
        Decoder {
            input,
            bit: 0,
            window: vec![0; 1 << window_sz2],
            window_sz2,
            lookahead_sz2,
            written: 0,
            pending: (0, 0),
        }
    }

    /// The next `n` bits (n ≤ 16), or `None` when the input has fewer left (padding).
    fn bits(&mut self, n: u8) -> Option<usize> {
        if self.bit + usize::from(n) > self.input.len() * 8 {
            return None;
        }
        let mut value = 0;
        for _ in 0..n {
            let byte = self.input[self.bit / 8];
            value = value << 1 | usize::from(byte >> (7 - self.bit % 8) & 1);
            self.bit += 1;
        }
        Some(value)
    }

    fn emit(&mut self, byte: u8) -> u8 {
        let mask = self.window.len() - 1;
        self.window[self.written & mask] = byte;
        self.written += 1;
        byte
    }

    /// The next output byte, or `None` at the end of the stream.
    fn next_byte(&mut self) -> Option<u8> {
        if self.pending.1 == 0 {
            match self.bits(1)? {
                1 => {
                    let literal = self.bits(8)? as u8;
                    return Some(self.emit(literal));
                }
                _ => {
                    let distance = self.bits(self.window_sz2)? + 1;
                    let len = self.bits(self.lookahead_sz2)? + 1;
                    self.pending = (distance, len);
                }
            }
        }
        let (distance, left) = self.pending;
        self.pending.1 = left - 1;
        let mask = self.window.len() - 1;
        let byte = self.window[self.written.wrapping_sub(distance) & mask];
        Some(self.emit(byte))
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            let Some(byte) = self.next_byte() else { break };
            out[n] = byte;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(all(test, feature = "create"))]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new();
        e.write_all(data).unwrap();
        e.finish()
    }

    fn decompress(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Decoder::new(stream, WINDOW_SZ2, LOOKAHEAD_SZ2)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The bytes the reference implementation (heatshrink 0.4 through PyPI heatshrink2, as
    /// detools calls it with window 8, lookahead 7) writes for the same inputs.
    #[test]
    fn streams_match_the_reference_encoder_bit_for_bit() {
        let mut zeros_then_abc = vec![0; 1000];
        zeros_then_abc.extend_from_slice(b"abcabcabc");
        assert_eq!(
            hex(&compress(&zeros_then_abc)),
            "007f007f007f007f007f007f007f0067b0d8ac6020a0"
        );
        assert_eq!(hex(&compress(b"ab")), "b0d880");
        assert_eq!(compress(b""), b"");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    proptest::proptest! {
        #[test]
        fn decompress_of_compress_is_the_input(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            runs in proptest::collection::vec((0..2000usize, 0..300usize, 0..4u8), 0..5),
        ) {
            // Runs and repeats, where back-references (and overlapping ones) happen.
            let mut data = data;
            for (at, len, byte) in runs {
                let at = at.min(data.len());
                data.splice(at..at, std::iter::repeat_n(byte, len));
            }
            proptest::prop_assert_eq!(decompress(&compress(&data)), data);
        }
    }
}
