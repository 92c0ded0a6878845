//! The MQTT packet reader (`otter-mqtt`), on what a broker sends: packets read one after
//! another until the stream fails, PUBLISH packets taken apart. Memory follows the bytes that
//! arrived, not the length a packet header claims: the reader is never offered a buffer larger
//! than the input (plus a small allowance).
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use otter_fuzz::block_on;
use tokio::io::{AsyncRead, ReadBuf};

/// A reader over the input that remembers the largest buffer it was asked to fill.
struct Watched<'a> {
    data: &'a [u8],
    largest: usize,
}

impl AsyncRead for Watched<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.largest = self.largest.max(buf.remaining());
        let mut data = self.data;
        let poll = Pin::new(&mut data).poll_read(cx, buf);
        self.data = data;
        poll
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = Watched { data, largest: 0 };
    block_on(async {
        while let Ok((kind, body)) = otter_mqtt::read_packet(&mut reader).await {
            assert!(body.len() < data.len());
            if kind >> 4 == 3
                && let Some((topic, payload)) = otter_mqtt::parse_publish(kind, &body)
            {
                assert!(topic.len() + payload.len() <= body.len());
            }
        }
    });
    assert!(
        reader.largest <= 2 * data.len() + 64 * 1024,
        "a {}-byte stream was offered a {}-byte buffer",
        data.len(),
        reader.largest
    );
});
