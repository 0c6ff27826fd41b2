//! Response frames as a list of byte chunks, so a Fetch answer's record batches go to the socket
//! from the buffers the log read them into instead of being copied into one frame first.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// A whole response frame, size prefix included, in the order the chunks are to be written.
#[derive(Debug, Default)]
pub struct Frame {
    chunks: Vec<Bytes>,
}

impl Frame {
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }

    /// All chunks in one buffer (tests, and the rare caller that needs one slice).
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [one] => one.clone(),
            chunks => {
                let mut all = BytesMut::with_capacity(self.len());
                for c in chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        }
    }
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Frame {
        Frame { chunks: vec![b] }
    }
}

/// Slices shorter than this are copied: a chunk of its own costs more than copying them.
const SHARE_MIN: usize = 4096;

/// An encoding buffer for kafka-protocol's encoders that, when asked to put a slice lying inside
/// one of `sources` (the records of the response being encoded), keeps a reference to that slice
/// as a chunk of its own instead of copying it. The bytes written are exactly those a `BytesMut`
/// would hold.
pub struct ChunkedBuf {
    /// Chunks already complete, in order.
    sealed: Vec<Bytes>,
    sealed_len: usize,
    tail: BytesMut,
    sources: Vec<Bytes>,
    /// Where the last shared slice was found: encoders visit the sources in order.
    cursor: usize,
}

impl ChunkedBuf {
    pub fn new(sources: Vec<Bytes>) -> ChunkedBuf {
        ChunkedBuf {
            sealed: Vec::new(),
            sealed_len: 0,
            tail: BytesMut::with_capacity(256),
            sources,
            cursor: 0,
        }
    }

    pub fn into_frame(mut self) -> Frame {
        self.seal();
        Frame {
            chunks: self.sealed,
        }
    }

    /// The frame: Kafka's 4-byte size prefix, then what was encoded.
    pub fn into_sized_frame(mut self) -> Result<Frame, std::num::TryFromIntError> {
        self.seal();
        let size = i32::try_from(self.sealed_len)?;
        let mut chunks = Vec::with_capacity(self.sealed.len() + 1);
        chunks.push(Bytes::copy_from_slice(&size.to_be_bytes()));
        chunks.append(&mut self.sealed);
        Ok(Frame { chunks })
    }

    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let done = self.tail.split().freeze();
            self.sealed_len += done.len();
            self.sealed.push(done);
        }
    }

    /// The source holding `src`, as a reference-counted slice of it.
    fn shared(&mut self, src: &[u8]) -> Option<Bytes> {
        let (start, end) = (src.as_ptr() as usize, src.as_ptr() as usize + src.len());
        let n = self.sources.len();
        let cursor = self.cursor;
        let i = (0..n).map(|i| (cursor + i) % n).find(|&i| {
            let s = &self.sources[i];
            let (s_start, s_end) = (s.as_ptr() as usize, s.as_ptr() as usize + s.len());
            s_start <= start && end <= s_end
        })?;
        self.cursor = i;
        Some(self.sources[i].slice_ref(src))
    }

    /// Makes everything one `BytesMut` again, for the (unused by today's encoders) case of an
    /// encoder revisiting bytes before the last shared slice.
    fn flatten(&mut self) {
        if self.sealed.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.sealed_len + self.tail.len());
        for c in self.sealed.drain(..) {
            all.extend_from_slice(&c);
        }
        all.extend_from_slice(&self.tail);
        self.tail = all;
        self.sealed_len = 0;
    }
}

// SAFETY: every method delegates to `tail`, a `BytesMut`, whose implementation upholds the
// trait's contract; `put_slice` either does the same or appends the slice as a sealed chunk.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `tail`'s.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_MIN {
            if let Some(shared) = self.shared(src) {
                self.seal();
                self.sealed_len += shared.len();
                self.sealed.push(shared);
                return;
            }
        }
        self.tail.put_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.sealed_len + self.tail.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.sealed_len {
            self.flatten();
        }
        self.tail.resize(offset - self.sealed_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.sealed_len {
            self.flatten();
        }
        let base = self.sealed_len;
        &mut self.tail[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    #[test]
    fn same_bytes_as_one_buffer_with_the_records_shared() {
        let big = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let records = vec![
            big.slice(0..50_000),
            Bytes::from_static(b"small"),
            Bytes::new(),
            big.slice(50_000..),
        ];
        let r = response(&records);
        for version in 4..=18 {
            let mut plain = BytesMut::new();
            r.encode(&mut plain, version).unwrap();
            let mut chunked = ChunkedBuf::new(records.clone());
            r.encode(&mut chunked, version).unwrap();
            let frame = chunked.into_frame();
            assert_eq!(frame.to_bytes(), plain.freeze(), "v{version}");
            let shared = frame
                .chunks()
                .iter()
                .filter(|c| c.len() == 50_000 && big.as_ptr() as usize <= c.as_ptr() as usize)
                .count();
            assert_eq!(shared, 2, "v{version}: both large record sets referenced");
        }
    }

    #[test]
    fn patching_and_revisiting_bytes_before_a_shared_chunk() {
        let big = Bytes::from(vec![9u8; SHARE_MIN]);
        let mut b = ChunkedBuf::new(vec![big.clone()]);
        b.put_i32(0);
        b.put_slice(&big);
        b.put_u8(1);
        b.range(0..4).copy_from_slice(&[0, 0, 0, 42]);
        assert_eq!(b.offset(), 4 + SHARE_MIN + 1);
        let mut want = vec![0, 0, 0, 42];
        want.extend_from_slice(&big);
        want.push(1);
        let frame = b.into_sized_frame().unwrap().to_bytes();
        assert_eq!(frame[..4], ((4 + SHARE_MIN + 1) as i32).to_be_bytes());
        assert_eq!(frame.slice(4..), Bytes::from(want));
    }

    #[test]
    fn slices_of_unknown_buffers_are_copied() {
        let other = vec![5u8; SHARE_MIN * 2];
        let mut b = ChunkedBuf::new(vec![Bytes::from(vec![1u8; SHARE_MIN])]);
        b.put_slice(&other);
        let frame = b.into_frame();
        assert_eq!(frame.chunks().len(), 1);
        assert_eq!(frame.to_bytes(), Bytes::from(other));
    }
}
