//! Kafka's own `__transaction_state` record formats, encoded by hand as `group/records.rs` does for
//! the offsets topic: key = int16 version 0 + TransactionLogKey{TransactionalId}; value = int16
//! version + TransactionLogValue (v0 classic; v1 flexible: compact strings and arrays, tagged fields
//! PreviousProducerId 0, NextProducerId 1, ClientTransactionVersion 2). A tombstone is the key alone.
//! Kafka writes v0 unless `transaction.version` ≥ 1 is finalized, which this broker does not
//! advertise; both versions decode.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::TxnState;

/// TransactionLogValue as stored: what a transactional id's last durable transition left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 tagged field 0 (-1 when absent).
    pub previous_producer_id: i64,
    /// v1 tagged field 1 (-1 when absent).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Topic and partition ids, topics in the order written. Null in Kafka's records while Empty.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// v1 tagged field 2 (0 when absent).
    pub client_transaction_version: i16,
}

/// A record that does not decode as one of Kafka's transaction-log formats.
#[derive(Debug, thiserror::Error)]
#[error("undecodable __transaction_state record: {0}")]
pub struct RecordError(String);

fn err<T>(why: impl Into<String>) -> Result<T, RecordError> {
    Err(RecordError(why.into()))
}

/// The key of `transactional_id`'s records.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_str(&mut buf, transactional_id);
    buf.freeze()
}

/// The transactional id of a key; `None` for a key version this broker does not know (Kafka skips
/// unknown record types on load too).
pub fn decode_key(mut buf: Bytes) -> Result<Option<String>, RecordError> {
    let version = get_i16(&mut buf)?;
    if version != 0 {
        return Ok(None);
    }
    get_str(&mut buf).map(Some)
}

impl TxnLogValue {
    /// Encodes at `version` 0 or 1 (anything above 1 is written as 1).
    pub fn encode(&self, version: i16) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        let flexible = version >= 1;
        buf.put_i16(if flexible { 1 } else { 0 });
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.timeout_ms);
        buf.put_i8(self.state.code());
        // Kafka writes a null array for an Empty transaction, a (possibly empty) array otherwise.
        let null = self.state == TxnState::Empty && self.partitions.is_empty();
        if flexible {
            if null {
                put_uvarint(&mut buf, 0);
            } else {
                put_uvarint(&mut buf, self.partitions.len() as u64 + 1);
                for (topic, ids) in &self.partitions {
                    put_compact_str(&mut buf, topic);
                    put_uvarint(&mut buf, ids.len() as u64 + 1);
                    ids.iter().for_each(|p| buf.put_i32(*p));
                    put_uvarint(&mut buf, 0);
                }
            }
        } else if null {
            buf.put_i32(-1);
        } else {
            buf.put_i32(self.partitions.len() as i32);
            for (topic, ids) in &self.partitions {
                put_str(&mut buf, topic);
                buf.put_i32(ids.len() as i32);
                ids.iter().for_each(|p| buf.put_i32(*p));
            }
        }
        buf.put_i64(self.last_update_ms);
        buf.put_i64(self.start_ms);
        if flexible {
            let mut tags: Vec<(u64, BytesMut)> = Vec::new();
            if self.previous_producer_id != -1 {
                let mut b = BytesMut::new();
                b.put_i64(self.previous_producer_id);
                tags.push((0, b));
            }
            if self.next_producer_id != -1 {
                let mut b = BytesMut::new();
                b.put_i64(self.next_producer_id);
                tags.push((1, b));
            }
            if self.client_transaction_version != 0 {
                let mut b = BytesMut::new();
                b.put_i16(self.client_transaction_version);
                tags.push((2, b));
            }
            put_uvarint(&mut buf, tags.len() as u64);
            for (tag, body) in tags {
                put_uvarint(&mut buf, tag);
                put_uvarint(&mut buf, body.len() as u64);
                buf.put_slice(&body);
            }
        }
        buf.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<TxnLogValue, RecordError> {
        let version = get_i16(&mut buf)?;
        if !(0..=1).contains(&version) {
            return err(format!("unknown TransactionLogValue version {version}"));
        }
        let flexible = version >= 1;
        let producer_id = get_i64(&mut buf)?;
        let producer_epoch = get_i16(&mut buf)?;
        let timeout_ms = get_i32(&mut buf)?;
        let code = get_i8(&mut buf)?;
        let state = TxnState::from_code(code)
            .ok_or_else(|| RecordError(format!("unknown transaction status {code}")))?;
        let count = if flexible {
            get_uvarint(&mut buf)? as i64 - 1
        } else {
            get_i32(&mut buf)? as i64
        };
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            let topic = if flexible {
                get_compact_str(&mut buf)?
            } else {
                get_str(&mut buf)?
            };
            let n = if flexible {
                get_uvarint(&mut buf)? as i64 - 1
            } else {
                get_i32(&mut buf)? as i64
            };
            if n < 0 || n as usize > buf.remaining() / 4 {
                return err("bad partition id count");
            }
            let ids = (0..n).map(|_| buf.get_i32()).collect();
            if flexible {
                skip_tags(&mut buf)?;
            }
            partitions.push((topic, ids));
        }
        let last_update_ms = get_i64(&mut buf)?;
        let start_ms = get_i64(&mut buf)?;
        let mut value = TxnLogValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
            client_transaction_version: 0,
        };
        if flexible {
            let tags = get_uvarint(&mut buf)?;
            for _ in 0..tags {
                let tag = get_uvarint(&mut buf)?;
                let len = get_uvarint(&mut buf)? as usize;
                need(&buf, len)?;
                let mut body = buf.split_to(len);
                match tag {
                    0 => value.previous_producer_id = get_i64(&mut body)?,
                    1 => value.next_producer_id = get_i64(&mut body)?,
                    2 => value.client_transaction_version = get_i16(&mut body)?,
                    _ => {}
                }
            }
        }
        Ok(value)
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    let n = s.len().min(i16::MAX as usize);
    buf.put_i16(n as i16);
    buf.put_slice(&s.as_bytes()[..n]);
}

fn put_compact_str(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, s.len() as u64 + 1);
    buf.put_slice(s.as_bytes());
}

fn put_uvarint(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn need(buf: &Bytes, n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        return err("truncated");
    }
    Ok(())
}

fn get_i8(buf: &mut Bytes) -> Result<i8, RecordError> {
    need(buf, 1)?;
    Ok(buf.get_i8())
}

fn get_i16(buf: &mut Bytes) -> Result<i16, RecordError> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut Bytes) -> Result<i32, RecordError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Result<i64, RecordError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_uvarint(buf: &mut Bytes) -> Result<u64, RecordError> {
    let mut n = 0u64;
    for shift in (0..35).step_by(7) {
        let b = get_i8(buf)? as u8;
        n |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    err("varint longer than 5 bytes")
}

fn take_utf8(buf: &mut Bytes, len: usize) -> Result<String, RecordError> {
    need(buf, len)?;
    String::from_utf8(buf.split_to(len).to_vec())
        .map_err(|_| RecordError("string is not UTF-8".into()))
}

fn get_str(buf: &mut Bytes) -> Result<String, RecordError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return err("null string");
    }
    take_utf8(buf, len as usize)
}

fn get_compact_str(buf: &mut Bytes) -> Result<String, RecordError> {
    match get_uvarint(buf)? {
        0 => err("null string"),
        n => take_utf8(buf, n as usize - 1),
    }
}

fn skip_tags(buf: &mut Bytes) -> Result<(), RecordError> {
    for _ in 0..get_uvarint(buf)? {
        get_uvarint(buf)?;
        let len = get_uvarint(buf)? as usize;
        need(buf, len)?;
        buf.advance(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState, partitions: Vec<(String, Vec<i32>)>) -> TxnLogValue {
        TxnLogValue {
            producer_id: 4001,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn keys_round_trip_and_unknown_versions_are_skipped() {
        let key = encode_key("my-txn");
        assert_eq!(&key[..], b"\x00\x00\x00\x06my-txn");
        assert_eq!(decode_key(key).unwrap().as_deref(), Some("my-txn"));
        assert_eq!(
            decode_key(Bytes::from_static(b"\x00\x01\x00\x01a")).unwrap(),
            None
        );
        assert!(decode_key(Bytes::from_static(b"\x00\x00\x00\x05ab")).is_err());
    }

    #[test]
    fn values_round_trip_in_both_versions() {
        let ongoing = value(
            TxnState::Ongoing,
            vec![
                ("a".into(), vec![0, 2]),
                ("__consumer_offsets".into(), vec![17]),
            ],
        );
        let empty = value(TxnState::Empty, vec![]);
        let mut tagged = value(TxnState::CompleteCommit, vec![]);
        tagged.previous_producer_id = 4000;
        tagged.next_producer_id = 4002;
        tagged.client_transaction_version = 2;
        for v in [&ongoing, &empty] {
            for version in [0, 1] {
                assert_eq!(&TxnLogValue::decode(v.encode(version)).unwrap(), v);
            }
        }
        assert_eq!(TxnLogValue::decode(tagged.encode(1)).unwrap(), tagged);
        // v0 has no place for the tagged fields: they decode as their defaults.
        let v0 = TxnLogValue::decode(tagged.encode(0)).unwrap();
        assert_eq!((v0.previous_producer_id, v0.next_producer_id), (-1, -1));
        assert!(TxnLogValue::decode(Bytes::from_static(b"\x00\x02")).is_err());
        assert!(TxnLogValue::decode(ongoing.encode(0).slice(..20)).is_err());
    }

    /// The bytes Kafka's generated TransactionLogValue writes, spelled out field by field from
    /// TransactionLogValue.json: v0 (ProducerId, ProducerEpoch, TransactionTimeoutMs,
    /// TransactionStatus, nullable TransactionPartitions, two timestamps) and v1 (flexible).
    #[test]
    fn decodes_kafka_bytes() {
        let mut v0 = Vec::new();
        v0.extend_from_slice(&0i16.to_be_bytes());
        v0.extend_from_slice(&1000i64.to_be_bytes());
        v0.extend_from_slice(&3i16.to_be_bytes());
        v0.extend_from_slice(&60000i32.to_be_bytes());
        v0.push(2); // PrepareCommit
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&5i16.to_be_bytes());
        v0.extend_from_slice(b"topic");
        v0.extend_from_slice(&2i32.to_be_bytes());
        v0.extend_from_slice(&0i32.to_be_bytes());
        v0.extend_from_slice(&3i32.to_be_bytes());
        v0.extend_from_slice(&111i64.to_be_bytes());
        v0.extend_from_slice(&100i64.to_be_bytes());
        let decoded = TxnLogValue::decode(Bytes::from(v0.clone())).unwrap();
        let mut expect = value(TxnState::PrepareCommit, vec![("topic".into(), vec![0, 3])]);
        (expect.producer_id, expect.producer_epoch) = (1000, 3);
        (expect.last_update_ms, expect.start_ms) = (111, 100);
        assert_eq!(decoded, expect);
        assert_eq!(&expect.encode(0)[..], &v0[..]);

        // v1: compact array (n+1), compact string (len+1), compact int32 array, per-entry tag
        // count 0, then the timestamps and the top-level tags: 0 → PreviousProducerId 999 and
        // 2 → ClientTransactionVersion 1.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1i16.to_be_bytes());
        v1.extend_from_slice(&1000i64.to_be_bytes());
        v1.extend_from_slice(&3i16.to_be_bytes());
        v1.extend_from_slice(&60000i32.to_be_bytes());
        v1.push(2);
        v1.push(2);
        v1.push(6);
        v1.extend_from_slice(b"topic");
        v1.push(3);
        v1.extend_from_slice(&0i32.to_be_bytes());
        v1.extend_from_slice(&3i32.to_be_bytes());
        v1.push(0);
        v1.extend_from_slice(&111i64.to_be_bytes());
        v1.extend_from_slice(&100i64.to_be_bytes());
        v1.extend_from_slice(&[2, 0, 8]);
        v1.extend_from_slice(&999i64.to_be_bytes());
        v1.extend_from_slice(&[2, 2]);
        v1.extend_from_slice(&1i16.to_be_bytes());
        let decoded = TxnLogValue::decode(Bytes::from(v1.clone())).unwrap();
        expect.previous_producer_id = 999;
        expect.client_transaction_version = 1;
        assert_eq!(decoded, expect);
        assert_eq!(&expect.encode(1)[..], &v1[..]);

        // An Empty transaction: v0 writes a null array (-1).
        let empty = value(TxnState::Empty, vec![]).encode(0);
        assert_eq!(&empty[2 + 8 + 2 + 4 + 1..][..4], &(-1i32).to_be_bytes());
    }
}
