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

    /// The compressed stream: longest matches found through hash chains over the window
    /// (two-byte keys: a back-reference costs 1 + W + L = 16 bits, a literal 9, so only matches
    /// of two bytes or more pay), with one step of lazy evaluation: a match is put off by a
    /// literal when the next position has a longer one.
    pub fn finish(self) -> Vec<u8> {
        let window = 1usize << WINDOW_SZ2;
        let mut matcher = Matcher::new(&self.buf);
        let mut bits = BitWriter::default();
        let mut i = window;
        let mut next = None;
        while i < self.buf.len() {
            let (len, dist) = next.take().unwrap_or_else(|| matcher.longest(i));
            // (A literal and a longer match beat this match: detools' own heatshrink encoder,
            // greedy, makes patches about 2-3 % larger.)
            if len >= MIN_MATCH && len < matcher.limit(i) {
                let later = matcher.longest(i + 1);
                if later.0 > len {
                    bits.push(1, 1);
                    bits.push(u32::from(self.buf[i]), 8);
                    next = Some(later);
                    i += 1;
                    continue;
                }
            }
            if len >= MIN_MATCH {
                bits.push(0, 1);
                bits.push(dist as u32 - 1, WINDOW_SZ2);
                bits.push(len as u32 - 1, LOOKAHEAD_SZ2);
                i += len;
            } else {
                bits.push(1, 1);
                bits.push(u32::from(self.buf[i]), 8);
                i += 1;
            }
        }
        bits.finish()
    }
}

/// A back-reference shorter than this costs more than the literals it replaces.
#[cfg(feature = "create")]
const MIN_MATCH: usize = 2;

/// Finds the longest match for a position among the 2^W before it.
#[cfg(feature = "create")]
struct Matcher<'a> {
    buf: &'a [u8],
    /// The latest position with a two-byte key, plus one (0: none).
    head: Vec<usize>,
    /// For position p (at p % window): the previous position with p's key, plus one. A slot is
    /// reused only once its position has left the window, where a search stops anyway.
    prev: Vec<usize>,
    /// Positions below this are in the chains.
    inserted: usize,
}

#[cfg(feature = "create")]
impl<'a> Matcher<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Matcher {
            buf,
            head: vec![0; 1 << 16],
            prev: vec![0; 1 << WINDOW_SZ2],
            inserted: 0,
        }
    }

    fn key(&self, i: usize) -> usize {
        usize::from(self.buf[i]) << 8 | usize::from(self.buf[i + 1])
    }

    /// The longest back-reference possible at `i`.
    fn limit(&self, i: usize) -> usize {
        (1usize << LOOKAHEAD_SZ2).min(self.buf.len() - i)
    }

    /// (length, distance) of the longest match at `i` (length 0: none).
    fn longest(&mut self, i: usize) -> (usize, usize) {
        let window = 1usize << WINDOW_SZ2;
        while self.inserted < i {
            let p = self.inserted;
            let k = self.key(p);
            self.prev[p % window] = self.head[k];
            self.head[k] = p + 1;
            self.inserted += 1;
        }
        let limit = self.limit(i);
        let mut best = (0, 0);
        if limit < MIN_MATCH {
            return best;
        }
        let mut candidate = self.head[self.key(i)];
        while candidate != 0 {
            let j = candidate - 1;
            if i - j > window {
                break;
            }
            let len = self.buf[j..]
                .iter()
                .zip(&self.buf[i..i + limit])
                .take_while(|(a, b)| a == b)
                .count();
            if len > best.0 {
                best = (len, i - j);
                if len == limit {
                    break;
                }
            }
            candidate = self.prev[j % window];
        }
        best
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

    /// The bit layout against the reference implementation (heatshrink 0.4 through PyPI
    /// heatshrink2, as detools calls it: window 8, lookahead 7): for inputs where lazy matching
    /// changes nothing, it writes these bytes, and they decompress to the input.
    #[test]
    fn streams_match_the_reference_encoder_bit_for_bit() {
        let mut zeros_then_abc = vec![0; 1000];
        zeros_then_abc.extend_from_slice(b"abcabcabc");
        let cases: [(&[u8], &str); 3] = [
            (
                &zeros_then_abc,
                "007f007f007f007f007f007f007f0067b0d8ac6020a0",
            ),
            (b"ab", "b0d880"),
            (b"", ""),
        ];
        for (input, reference) in cases {
            assert_eq!(hex(&compress(input)), reference);
            let reference: Vec<u8> = (0..reference.len() / 2)
                .map(|i| u8::from_str_radix(&reference[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            assert_eq!(decompress(&reference), input);
        }
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
