//! Kafka framing: a 4-byte big-endian size followed by that many bytes, bounded before allocation.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Why a connection's byte stream can no longer be read as frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative or above the limit of {limit} bytes")]
    BadSize { size: i64, limit: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("no request for {0:?} (connections.max.idle.ms)")]
    Idle(Duration),
    #[error("frame incomplete {timeout:?} after its first byte: {received} bytes received")]
    Stalled { timeout: Duration, received: usize },
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
    /// Longest wait for the first byte of a frame (`connections.max.idle.ms`).
    idle: Option<Duration>,
    /// Longest time from a frame's first byte to its last.
    frame_timeout: Option<Duration>,
    /// Bytes of frames being read or handled across all connections (`queued.max.request.bytes`).
    pool: Option<(Arc<Semaphore>, u32)>,
    /// This connection's share of the pool: the last frame's size, until the next frame is read.
    held: Option<OwnedSemaphorePermit>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limit: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            limit,
            idle: None,
            frame_timeout: None,
            pool: None,
            held: None,
        }
    }

    /// Draws every frame's size from `pool` (of `total` bytes) before reading it, and holds it until
    /// the next frame is asked for, i.e. until the request has been handled. A frame bigger than the
    /// whole pool waits for all of it.
    pub fn with_memory_pool(mut self, pool: Arc<Semaphore>, total: u32) -> Self {
        self.pool = Some((pool, total));
        self
    }

    /// Gives up on a client that sends nothing for `idle`, or takes longer than `frame` to send one frame.
    pub fn with_timeouts(mut self, idle: Duration, frame: Duration) -> Self {
        self.idle = Some(idle);
        self.frame_timeout = Some(frame);
        self
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
        // The previous request has been handled: its bytes go back to the pool.
        self.held = None;
        let mut clock = Clock {
            idle_deadline: self.idle.map(|d| Instant::now() + d),
            started: (!self.buf.is_empty()).then(Instant::now),
        };
        while self.buf.len() < 4 {
            if self.fill(&mut clock).await? == 0 {
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
        if let Some((pool, total)) = &self.pool {
            // Waiting here reads nothing more from this client: back-pressure, as Kafka mutes a
            // channel when its memory pool is exhausted. The frame's clock restarts afterwards.
            let want = (size as u32).min(*total);
            let permit = pool
                .clone()
                .acquire_many_owned(want)
                .await
                .map_err(|_| std::io::Error::other("request memory pool closed"))?;
            self.held = Some(permit);
            clock.started = Some(Instant::now());
        }
        let total = 4 + size as usize;
        while self.buf.len() < total {
            // Grow with the bytes that actually arrive, never by the declared size alone: a client
            // that sends a large size and then nothing must not pin that much memory.
            let missing = total - self.buf.len();
            self.buf.reserve(missing.min(READ_CHUNK));
            if self.fill(&mut clock).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(size as usize)))
    }

    async fn fill(&mut self, clock: &mut Clock) -> Result<usize, FrameError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        let deadline = match (clock.started, self.frame_timeout) {
            (Some(start), Some(t)) => Some(start + t),
            (None, _) => clock.idle_deadline,
            (Some(_), None) => None,
        };
        let read = self.inner.read_buf(&mut self.buf);
        let n = match deadline {
            None => read.await?,
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(r) => r?,
                Err(_) if clock.started.is_some() => {
                    return Err(FrameError::Stalled {
                        timeout: self.frame_timeout.unwrap_or_default(),
                        received: self.buf.len(),
                    })
                }
                Err(_) => return Err(FrameError::Idle(self.idle.unwrap_or_default())),
            },
        };
        if clock.started.is_none() && !self.buf.is_empty() {
            clock.started = Some(Instant::now());
        }
        Ok(n)
    }
}

/// Deadlines of one `read_frame` call.
struct Clock {
    idle_deadline: Option<Instant>,
    /// When the frame's first byte was buffered.
    started: Option<Instant>,
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

    #[tokio::test]
    async fn frames_wait_for_the_memory_pool() {
        let pool = Arc::new(Semaphore::new(10));
        let mut data = Vec::new();
        for payload in [&b"12345678"[..], &b"123456789012"[..]] {
            data.extend_from_slice(&(payload.len() as i32).to_be_bytes());
            data.extend_from_slice(payload);
        }
        let mut a = FrameReader::new(&data[..], 64).with_memory_pool(pool.clone(), 10);
        let mut b = FrameReader::new(&data[..], 64).with_memory_pool(pool.clone(), 10);
        // A holds 8 of 10 bytes while its frame is handled.
        assert_eq!(&a.read_frame().await.unwrap().unwrap()[..], b"12345678");
        assert_eq!(pool.available_permits(), 2);
        // B's 8-byte frame must wait until A asks for its next frame.
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.read_frame()).await;
        assert!(waiting.is_err(), "B read a frame the pool has no room for");
        // A's next frame (12 bytes, more than the pool) takes the whole pool once A's first is released.
        assert_eq!(&a.read_frame().await.unwrap().unwrap()[..], b"123456789012");
        assert_eq!(pool.available_permits(), 0);
        assert!(a.read_frame().await.unwrap().is_none());
        assert_eq!(pool.available_permits(), 10);
        assert_eq!(&b.read_frame().await.unwrap().unwrap()[..], b"12345678");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_stalled_clients_time_out() {
        let idle = Duration::from_secs(600);
        let frame = Duration::from_secs(30);
        // Nothing at all: idle after connections.max.idle.ms.
        let (_client, server) = tokio::io::duplex(1024);
        let mut r = FrameReader::new(server, 1024).with_timeouts(idle, frame);
        let started = Instant::now();
        assert!(matches!(r.read_frame().await, Err(FrameError::Idle(_))));
        assert_eq!(started.elapsed(), idle);

        // A size, then a byte now and then (slowloris): dropped frame_timeout after the first byte,
        // however often bytes trickle in.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut r = FrameReader::new(server, 1024).with_timeouts(idle, frame);
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&100i32.to_be_bytes()).await.unwrap();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if client.write_all(b"x").await.is_err() {
                    break;
                }
            }
        });
        let result = r.read_frame().await;
        assert!(
            matches!(result, Err(FrameError::Stalled { .. })),
            "{result:?}"
        );
        assert_eq!(started.elapsed(), frame);
        drop(r);
        trickle.await.unwrap();
    }
}
