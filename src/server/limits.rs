//! Limits that keep hostile or broken clients from exhausting the broker, named after Kafka's settings.
//!
//! What each bounds:
//! - memory per request: `socket.request.max.bytes` caps a frame before anything is allocated, the
//!   frame buffer grows only as bytes arrive, and the pre-walk (`super::prewalk`) caps what a frame
//!   may decode into at 16× its size plus 1 MiB;
//! - memory across connections: `queued.max.request.bytes` bounds the bytes of all frames being read
//!   or handled; a connection whose next frame does not fit waits, reading nothing;
//! - requests in flight: a connection has one request in its handler at a time, as Kafka mutes a
//!   channel while its request is processed; beyond it at most one further frame and 64 KiB are
//!   buffered, and nothing more is read (TCP back-pressure) until the response is written. A client
//!   that does not read its responses blocks the broker's write, which gives up after
//!   `connections.max.idle.ms`;
//! - connections: `max.connections` in total (further clients wait in the accept backlog) and
//!   `max.connections.per.ip` (further connections from that address are closed at once);
//! - time: `connections.max.idle.ms` between requests, and `frame_read_timeout_ms` from a frame's first
//!   byte to its last (slowloris);
//! - partitions: `max_partitions` in the cluster (KIP-578's proposed `max.partitions`), so one
//!   CreateTopics or auto-creating Metadata request cannot ask for billions of partition logs;
//! - record batches: produce checks each batch's header, CRC and (uncompressed) record framing, and
//!   fetch reads only headers; the one place that looks inside a compressed batch
//!   (ListOffsets by timestamp) goes through `log::decompress_bounded`, which refuses a bomb at its
//!   limit instead of inflating it (never kafka-protocol's `RecordBatchDecoder`, which does not bound).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// The `[limits]` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `max.connections.per.ip` (Kafka's default: unlimited, 2147483647)
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection with no request for this long (or whose response cannot
    /// be written for this long) is closed.
    pub connections_max_idle_ms: u64,
    /// No Kafka equivalent: a frame must arrive completely within this long of its first byte.
    pub frame_read_timeout_ms: u64,
    /// KIP-578's proposed `max.partitions`: the most partitions the cluster will hold.
    pub max_partitions: usize,
    /// `queued.max.request.bytes`: request bytes being read or handled across all connections; a
    /// connection waits (reads nothing) until its frame fits. Kafka's default is unlimited.
    pub queued_max_request_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            frame_read_timeout_ms: 60_000,
            max_partitions: 100_000,
            queued_max_request_bytes: 512 << 20,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "limits.max_connections_per_ip",
                self.max_connections_per_ip as u64,
            ),
            (
                "limits.connections_max_idle_ms",
                self.connections_max_idle_ms,
            ),
            ("limits.frame_read_timeout_ms", self.frame_read_timeout_ms),
            ("limits.max_partitions", self.max_partitions as u64),
            (
                "limits.queued_max_request_bytes",
                u64::from(self.queued_max_request_bytes),
            ),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(ConfigError::Invalid(format!("{name} must be >= 1"))),
            None => Ok(()),
        }
    }

    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.connections_max_idle_ms)
    }

    pub fn frame_read_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_read_timeout_ms)
    }
}

/// Open connections per client address.
#[derive(Clone, Default)]
pub struct PerIp {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Holds one connection's place in `PerIp` until dropped.
pub struct IpSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for one more connection from `ip`, or `None` if it already has `max`.
    pub fn try_acquire(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: self.counts.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_counted_and_released() {
        let per_ip = PerIp::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = per_ip.try_acquire(a, 2).unwrap();
        let _s2 = per_ip.try_acquire(a, 2).unwrap();
        assert!(per_ip.try_acquire(a, 2).is_none());
        assert!(per_ip.try_acquire(b, 2).is_some());
        drop(s1);
        assert!(per_ip.try_acquire(a, 2).is_some());
    }

    #[test]
    fn zero_limits_are_rejected() {
        let l = Limits {
            frame_read_timeout_ms: 0,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
        Limits::default().validate().unwrap();
    }
}
