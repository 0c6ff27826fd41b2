//! Kafka's own `__consumer_offsets` record formats, encoded by hand (kafka-protocol 0.18 does not ship
//! them): OffsetCommitKey v1 / OffsetCommitValue v3 and GroupMetadataKey v2 / GroupMetadataValue v3,
//! exactly as Kafka's coordinator writes them (big-endian, int16-length strings, -1 for null, int32-length
//! bytes and arrays). A tombstone is a record with the key and no value. Decoding accepts the older
//! value versions Kafka wrote too (OffsetCommitValue v0-v3, GroupMetadataValue v0-v3).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A record key on the offsets topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// OffsetCommitValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// An explicit expiry (OffsetCommit v2-v4 `retention_time_ms`); kept in format version 1.
    pub expire_timestamp: Option<i64>,
}

/// One member inside GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// A record that does not decode as one of Kafka's offsets-topic formats.
#[derive(Debug, thiserror::Error)]
#[error("undecodable __consumer_offsets record: {0}")]
pub struct RecordError(String);

fn err<T>(why: &str) -> Result<T, RecordError> {
    Err(RecordError(why.to_string()))
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

fn need(buf: &Bytes, n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        return err("truncated");
    }
    Ok(())
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

fn get_opt_str(buf: &mut Bytes) -> Result<Option<String>, RecordError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    need(buf, len as usize)?;
    let raw = buf.split_to(len as usize);
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| RecordError("string is not UTF-8".into()))
}

fn get_str(buf: &mut Bytes) -> Result<String, RecordError> {
    get_opt_str(buf)?.ok_or_else(|| RecordError("null string".into()))
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, RecordError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(buf, len as usize)?;
    Ok(buf.split_to(len as usize))
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(1);
                put_str(&mut buf, group);
                put_str(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(2);
                put_str(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// `Ok(None)` for key versions this broker does not use (Kafka's share-group and transaction keys).
    pub fn decode(mut buf: Bytes) -> Result<Option<RecordKey>, RecordError> {
        match get_i16(&mut buf)? {
            0 | 1 => Ok(Some(RecordKey::Offset {
                group: get_str(&mut buf)?,
                topic: get_str(&mut buf)?,
                partition: get_i32(&mut buf)?,
            })),
            2 => Ok(Some(RecordKey::Group {
                group: get_str(&mut buf)?,
            })),
            _ => Ok(None),
        }
    }
}

impl OffsetValue {
    /// Version 3, or version 1 when there is an explicit expiry, as Kafka writes them (version 1 has
    /// no leader epoch).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        if let Some(expire) = self.expire_timestamp {
            buf.put_i16(1);
            buf.put_i64(self.offset);
            put_str(&mut buf, &self.metadata);
            buf.put_i64(self.commit_timestamp);
            buf.put_i64(expire);
            return buf.freeze();
        }
        buf.put_i16(3);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_str(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<OffsetValue, RecordError> {
        let version = get_i16(&mut buf)?;
        if !(0..=3).contains(&version) {
            return err("unknown OffsetCommitValue version");
        }
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = get_str(&mut buf)?;
        let commit_timestamp = get_i64(&mut buf)?;
        let expire_timestamp = if version == 1 {
            Some(get_i64(&mut buf)?)
        } else {
            None
        };
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(3);
        put_str(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_opt_str(&mut buf, self.protocol.as_deref());
        put_opt_str(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut buf, &m.member_id);
            put_opt_str(&mut buf, m.group_instance_id.as_deref());
            put_str(&mut buf, &m.client_id);
            put_str(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<GroupValue, RecordError> {
        let version = get_i16(&mut buf)?;
        if !(0..=3).contains(&version) {
            return err("unknown GroupMetadataValue version");
        }
        let protocol_type = get_str(&mut buf)?;
        let generation = get_i32(&mut buf)?;
        let protocol = get_opt_str(&mut buf)?;
        let leader = get_opt_str(&mut buf)?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
        let count = get_i32(&mut buf)?.max(0);
        let mut members = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let member_id = get_str(&mut buf)?;
            let group_instance_id = if version >= 3 {
                get_opt_str(&mut buf)?
            } else {
                None
            };
            let client_id = get_str(&mut buf)?;
            let client_host = get_str(&mut buf)?;
            // v0 has no rebalance timeout; Kafka uses the session timeout then.
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut buf)? } else { -1 };
            let session_timeout_ms = get_i32(&mut buf)?;
            let subscription = get_bytes(&mut buf)?;
            let assignment = get_bytes(&mut buf)?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka uses to place a group on a partition.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `Utils.abs(groupId.hashCode) % n`; its `abs` maps i32::MIN to 0.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let keys = [
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
            },
            RecordKey::Group { group: "g".into() },
        ];
        for k in keys {
            assert_eq!(RecordKey::decode(k.encode()).unwrap(), Some(k));
        }
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: None,
        };
        assert_eq!(OffsetValue::decode(v.encode()).unwrap(), v);
        let explicit = OffsetValue {
            leader_epoch: -1,
            expire_timestamp: Some(1_700_000_060_000),
            ..v
        };
        let encoded = explicit.encode();
        assert_eq!(&encoded[..2], &1i16.to_be_bytes(), "format version 1");
        assert_eq!(OffsetValue::decode(encoded).unwrap(), explicit);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            current_state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
    }

    #[test]
    fn offset_commit_key_matches_kafkas_bytes() {
        // OffsetCommitKey v1 {group "g", topic "t", partition 1} as Kafka's generated serializer writes it.
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        };
        assert_eq!(
            &k.encode()[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1][..]
        );
        assert!(OffsetValue::decode(Bytes::from_static(&[0, 3, 0])).is_err());
    }

    #[test]
    fn partitioning_matches_java_string_hashcode() {
        // "hello".hashCode() == 99162322 in Java; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(java_string_hash(""), 0);
        // "a-negative" style hashes take the absolute value, not the masked value.
        let neg = "zzzzzzzzzz";
        let h = java_string_hash(neg);
        assert!(h < 0);
        assert_eq!(partition_for(neg, 50), h.abs() % 50);
    }
}
