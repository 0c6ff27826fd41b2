//! Typed errors of the log store: batch validation errors and log errors.

/// Errors found while validating client-supplied record batches. The server maps each variant to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// CRC mismatch, or truncated / length-inconsistent data -> CORRUPT_MESSAGE (2).
    #[error("corrupt batch: {0}")]
    Corrupt(String),
    /// Structurally valid framing but invalid content -> INVALID_RECORD (87).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// magic != 2 -> UNSUPPORTED_FOR_MESSAGE_FORMAT (43).
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    /// One batch larger than max.message.bytes -> MESSAGE_TOO_LARGE (10).
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    /// A CreateTime timestamp outside message.timestamp.{before,after}.max.ms -> INVALID_TIMESTAMP (32).
    #[error("{0}")]
    InvalidTimestamp(String),
}

/// Errors of the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("invalid config {0}")]
    InvalidConfig(String),
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Producer(#[from] super::producer_state::ProducerError),
    #[error("cannot encode records: {0}")]
    Encode(String),
    /// A replica's batches do not chain onto its log: they start below its end offset or their offsets
    /// do not increase (Kafka's `UnexpectedAppendOffsetException` / `InvalidRecordException`).
    #[error("batches at offset {first} do not chain onto the log ending at {end}: {why}")]
    NotChained { first: i64, end: i64, why: String },
}
