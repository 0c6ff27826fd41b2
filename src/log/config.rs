//! Log configuration (Kafka topic-level settings) and its parsing from Kafka config names.

use std::str::FromStr;
use std::time::Duration;

use super::error::LogError;

/// When appended data is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Leave it to the OS page cache (Kafka's default); segments are still fsynced when rolled.
    Os,
    /// fsync before every append returns.
    Always,
    /// fsync from `append` once this much time passed since the last flush.
    Interval(Duration),
}

impl FromStr for FlushPolicy {
    type Err = LogError;

    /// Parses `os`, `always` or `interval:<ms>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LogError::InvalidConfig(format!("flush policy {s:?}"));
        match s.trim() {
            "os" => Ok(FlushPolicy::Os),
            "always" => Ok(FlushPolicy::Always),
            other => {
                let ms = other.strip_prefix("interval:").ok_or_else(bad)?;
                let ms: u64 = ms.trim().parse().map_err(|_| bad())?;
                Ok(FlushPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// Kafka's message.timestamp.type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Per-partition log settings, defaults as in Kafka.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: i64,
    /// retention.ms; -1 = forever
    pub retention_ms: i64,
    /// retention.bytes; -1 = unlimited
    pub retention_bytes: i64,
    /// index.interval.bytes
    pub index_interval_bytes: u32,
    /// segment.index.bytes: max size of one index file; the segment rolls when its index is full.
    pub segment_index_bytes: u32,
    /// max.message.bytes: max size of one batch.
    pub max_message_bytes: u32,
    pub flush: FlushPolicy,
    /// message.timestamp.type
    pub timestamp_type: TimestampType,
    /// message.timestamp.before.max.ms (KIP-937): CreateTime records older than this are refused.
    pub timestamp_before_max_ms: i64,
    /// message.timestamp.after.max.ms (KIP-937): CreateTime records this far ahead are refused.
    pub timestamp_after_max_ms: i64,
    /// producer.id.expiration.ms (a broker setting in Kafka, no topic-level name): idempotent-producer state is
    /// dropped this long after the producer's last batch, even if its batches are still in the log.
    pub producer_id_expiration_ms: i64,
    /// cleanup.policy contains `delete`: retention.ms and retention.bytes delete old segments.
    pub cleanup_delete: bool,
    /// cleanup.policy contains `compact`: the cleaner keeps only the latest record of each key.
    pub cleanup_compact: bool,
    /// delete.retention.ms: a tombstone (null value) stays readable at least this long after it was written.
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a segment this old is cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// min.cleanable.dirty.ratio: clean when this share of the cleanable bytes was never cleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// min.insync.replicas: not the log's own concern, carried here because it is resolved like every
    /// other topic config (topic override over broker default); the partition layer enforces it.
    pub min_insync_replicas: i32,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            flush: FlushPolicy::Os,
            timestamp_type: TimestampType::CreateTime,
            producer_id_expiration_ms: DAY_MS,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 60 * 60 * 1000,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            min_insync_replicas: 1,
        }
    }
}

fn parse<T: FromStr>(key: &str, value: &str) -> Result<T, LogError> {
    value
        .trim()
        .parse()
        .map_err(|_| LogError::InvalidConfig(key.to_string()))
}

fn check(ok: bool, key: &str) -> Result<(), LogError> {
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidConfig(key.to_string()))
    }
}

impl LogConfig {
    /// Apply Kafka topic config overrides by their Kafka names. Unknown keys are ignored; bad values give
    /// `LogError::InvalidConfig(key)`. Ranges follow Kafka's validators.
    pub fn with_overrides<'a>(
        &self,
        kv: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogConfig, LogError> {
        let mut c = self.clone();
        for (key, value) in kv {
            match key {
                "segment.bytes" => {
                    let v: u64 = parse(key, value)?;
                    // Positions in the offset index are u32 and Kafka caps segments at Int.MaxValue.
                    check((14..=i32::MAX as u64).contains(&v), key)?;
                    c.segment_bytes = v;
                }
                "segment.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 1, key)?;
                    c.segment_ms = v;
                }
                "retention.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= -1, key)?;
                    c.retention_ms = v;
                }
                "retention.bytes" => c.retention_bytes = parse(key, value)?,
                "index.interval.bytes" => c.index_interval_bytes = parse(key, value)?,
                "segment.index.bytes" => {
                    let v: u32 = parse(key, value)?;
                    check(v >= 4, key)?;
                    c.segment_index_bytes = v;
                }
                "max.message.bytes" => c.max_message_bytes = parse(key, value)?,
                "message.timestamp.before.max.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 0, key)?;
                    c.timestamp_before_max_ms = v;
                }
                "message.timestamp.after.max.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 0, key)?;
                    c.timestamp_after_max_ms = v;
                }
                "message.timestamp.type" => {
                    c.timestamp_type = match value.trim() {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(LogError::InvalidConfig(key.to_string())),
                    }
                }
                "cleanup.policy" => {
                    let policies: Vec<&str> = value.split(',').map(str::trim).collect();
                    check(
                        policies.iter().all(|p| matches!(*p, "delete" | "compact")),
                        key,
                    )?;
                    c.cleanup_delete = policies.contains(&"delete");
                    c.cleanup_compact = policies.contains(&"compact");
                }
                "delete.retention.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 0, key)?;
                    c.delete_retention_ms = v;
                }
                "min.compaction.lag.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 0, key)?;
                    c.min_compaction_lag_ms = v;
                }
                "max.compaction.lag.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 1, key)?;
                    c.max_compaction_lag_ms = v;
                }
                "min.cleanable.dirty.ratio" => {
                    let v: f64 = parse(key, value)?;
                    check((0.0..=1.0).contains(&v), key)?;
                    c.min_cleanable_dirty_ratio = v;
                }
                "min.insync.replicas" => {
                    let v: i32 = parse(key, value)?;
                    check(v >= 1, key)?;
                    c.min_insync_replicas = v;
                }
                "flush.ms" => {
                    let v: i64 = parse(key, value)?;
                    check(v >= 0, key)?;
                    // Kafka's default flush.ms is Long.MAX_VALUE, i.e. leave flushing to the OS.
                    c.flush = match v {
                        0 => FlushPolicy::Always,
                        i64::MAX => FlushPolicy::Os,
                        ms => FlushPolicy::Interval(Duration::from_millis(ms as u64)),
                    };
                }
                _ => {}
            }
        }
        Ok(c)
    }
}
