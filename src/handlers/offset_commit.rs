//! OffsetCommit (key 8): committed offsets, acknowledged once they are in `__consumer_offsets`.
//! v10 (KIP-848) names topics by id; kafka-protocol 0.18 stops at v9, so `decode` and
//! `encode_request` below handle v10 themselves.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

use super::{compact, HandlerResult, RequestContext};
use crate::group::{code_of, CommitPartition};

pub const VERSIONS: (i16, i16) = (2, 10);

/// The last version kafka-protocol 0.18 can decode and encode for this request.
const CODEC_MAX_VERSION: i16 = 9;

pub async fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic().await;
    let v = ctx.api_version;
    let image = ctx.broker.metadata.image();
    // v10: the name of each topic id. As KafkaApis does, an id we do not know is answered
    // UNKNOWN_TOPIC_ID on each of its partitions and never reaches the coordinator.
    let mut ids: HashMap<String, Uuid> = HashMap::new();
    let mut unknown_ids = Vec::new();
    let mut requested: Vec<(String, Vec<i32>)> = Vec::new();
    let mut topics = Vec::new();
    for t in req.topics {
        let indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let name = if v >= 10 {
            match image.topic_by_id(&t.topic_id) {
                Some(info) => {
                    ids.insert(info.name.clone(), t.topic_id);
                    info.name.clone()
                }
                None => {
                    let code = ResponseError::UnknownTopicId.code();
                    unknown_ids.push(topic(
                        String::new(),
                        t.topic_id,
                        indexes.into_iter().map(|p| (p, code)).collect(),
                    ));
                    continue;
                }
            }
        } else {
            t.name.0.to_string()
        };
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| CommitPartition {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.map(|m| m.to_string()),
                retention_ms: retention_ms(v, req.retention_time_ms),
            })
            .collect();
        requested.push((name.clone(), indexes));
        topics.push((name, partitions));
    }
    let result = ctx
        .broker
        .group
        .commit(
            &req.group_id.0,
            req.generation_id_or_member_epoch,
            &req.member_id,
            req.group_instance_id.as_deref(),
            topics,
        )
        .await;
    let answered: Vec<(String, Vec<(i32, i16)>)> = match result {
        Ok(per_topic) => per_topic
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|(p, r)| (p, code_of(&r))).collect()))
            .collect(),
        Err(e) => requested
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, e.code())).collect()))
            .collect(),
    };
    let mut topics = unknown_ids;
    topics.extend(answered.into_iter().map(|(t, ps)| {
        let id = ids.get(&t).copied().unwrap_or_default();
        topic(t, id, ps)
    }));
    Ok(Some(
        OffsetCommitResponse::default().with_topics(topics).into(),
    ))
}

/// v2-v4 carry `retention_time_ms`; Kafka still honours it (-1: the broker's retention).
fn retention_ms(version: i16, retention_time_ms: i64) -> Option<i64> {
    ((2..=4).contains(&version) && retention_time_ms >= 0).then_some(retention_time_ms)
}

/// A response topic; the encoder writes the name up to v9 and the id from v10.
fn topic(name: String, id: Uuid, partitions: Vec<(i32, i16)>) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic::default()
        .with_name(TopicName(StrBytes::from_string(name)))
        .with_topic_id(id)
        .with_partitions(
            partitions
                .into_iter()
                .map(|(p, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// Decodes a request body. v10 is v9 with each topic's name replaced by its id (a uuid); its
/// partition entries are v9's and decoded by the codec.
pub fn decode(buf: &mut Bytes, version: i16) -> anyhow::Result<RequestKind> {
    if version <= CODEC_MAX_VERSION {
        return RequestKind::decode(ApiKey::OffsetCommit, buf, version);
    }
    let group_id = GroupId(compact::string(buf)?);
    let generation = compact::int32(buf)?;
    let member_id = compact::string(buf)?;
    let group_instance_id = compact::nullable_string(buf)?;
    let topics = compact::array(buf, |b| {
        let topic_id = compact::uuid(b)?;
        let partitions = compact::array(b, |b| {
            OffsetCommitRequestPartition::decode(b, CODEC_MAX_VERSION)
        })?;
        Ok(OffsetCommitRequestTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions)
            .with_unknown_tagged_fields(compact::tagged_fields(b)?))
    })?;
    let tags = compact::tagged_fields(buf)?;
    Ok(RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(group_id)
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(member_id)
            .with_group_instance_id(group_instance_id)
            .with_topics(topics)
            .with_unknown_tagged_fields(tags),
    ))
}

/// Encodes a request body at `version` (client side: tests and tools), v10 included.
pub fn encode_request(
    req: &OffsetCommitRequest,
    version: i16,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    if version <= CODEC_MAX_VERSION {
        return req.encode(out, version);
    }
    compact::put_string(out, &req.group_id.0)?;
    out.put_i32(req.generation_id_or_member_epoch);
    compact::put_string(out, &req.member_id)?;
    compact::put_nullable_string(out, req.group_instance_id.as_deref())?;
    compact::put_length(out, Some(req.topics.len()))?;
    for t in &req.topics {
        out.put_slice(t.topic_id.as_bytes());
        compact::put_length(out, Some(t.partitions.len()))?;
        for p in &t.partitions {
            p.encode(out, CODEC_MAX_VERSION)?;
        }
        compact::put_tagged_fields(out, &t.unknown_tagged_fields);
    }
    compact::put_tagged_fields(out, &req.unknown_tagged_fields);
    Ok(())
}
