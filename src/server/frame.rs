//! Kafka framing: a 4-byte big-endian size followed by that many bytes, bounded before allocation.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a connection's byte stream can no longer be read as frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative or above the limit of {limit} bytes")]
    BadSize { size: i64, limit: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How much buffer a read may add at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Reads size-prefixed frames from a buffered stream.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    limit: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limit: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            limit,
        }
    }

    /// True when a whole further frame is already buffered: the caller can keep going before flushing.
    pub fn has_buffered_frame(&self) -> bool {
        self.buf.len() >= 4 && {
            let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            size >= 0 && self.buf.len() >= 4 + size as usize
        }
    }

    /// The next frame's payload, or `None` at a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        while self.buf.len() < 4 {
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        // Checked before reserving anything: a hostile size must not become an allocation.
        if size < 0 || size as u32 > self.limit {
            return Err(FrameError::BadSize {
                size: size as i64,
                limit: self.limit,
            });
        }
        let total = 4 + size as usize;
        while self.buf.len() < total {
            // Grow with the bytes that actually arrive, never by the declared size alone: a client
            // that sends a large size and then nothing must not pin that much memory.
            let missing = total - self.buf.len();
            self.buf.reserve(missing.min(READ_CHUNK));
            if self.fill().await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(size as usize)))
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        self.inner.read_buf(&mut self.buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_pipelined_frames_and_rejects_oversized() {
        let mut data = Vec::new();
        for payload in [&b"abc"[..], &b""[..], &b"hello"[..]] {
            data.extend_from_slice(&(payload.len() as i32).to_be_bytes());
            data.extend_from_slice(payload);
        }
        let mut r = FrameReader::new(&data[..], 16);
        assert_eq!(&r.read_frame().await.unwrap().unwrap()[..], b"abc");
        assert!(r.has_buffered_frame());
        assert_eq!(&r.read_frame().await.unwrap().unwrap()[..], b"");
        assert_eq!(&r.read_frame().await.unwrap().unwrap()[..], b"hello");
        assert!(r.read_frame().await.unwrap().is_none());

        let big = 17i32.to_be_bytes();
        let mut r = FrameReader::new(&big[..], 16);
        assert!(matches!(
            r.read_frame().await,
            Err(FrameError::BadSize { size: 17, .. })
        ));
        let neg = (-1i32).to_be_bytes();
        let mut r = FrameReader::new(&neg[..], 16);
        assert!(matches!(
            r.read_frame().await,
            Err(FrameError::BadSize { .. })
        ));
        let torn = [0u8, 0, 0, 5, b'a'];
        let mut r = FrameReader::new(&torn[..], 16);
        assert!(matches!(r.read_frame().await, Err(FrameError::Truncated)));
    }
}
