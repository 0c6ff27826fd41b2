//! Whole v2 record batches written with kafka-protocol's encoder: for the records the broker writes
//! itself (`__consumer_offsets`), and for tests and the fuzz driver. Client batches never pass here.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
};

use super::error::LogError;

/// A record of no producer: `offset` within its batch, created at `timestamp`. Producer fields
/// can be set with struct update syntax.
pub fn plain_record(
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder keeps records in one batch while offset - sequence is constant; a base
        // sequence of -1 for records of no producer.
        sequence: offset as i32 - 1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes `records` as v2 batches compressed with `compression` (one batch when their
/// `offset - sequence` is constant).
pub fn encode_batch(records: &[Record], compression: Compression) -> Result<BytesMut, LogError> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| LogError::Encode(e.to_string()))?;
    Ok(buf)
}
