//! OffsetFetch (key 9): committed offsets of one group (v1-7) or several (v8+); -1 where none.
//! `require_stable` (v7+): a partition a transaction holds an offset of is answered
//! UNSTABLE_OFFSET_COMMIT (per partition, as Kafka does); the client retries.
//! v10 (KIP-848) names topics by id; kafka-protocol 0.18 decodes requests up to v9, so `decode`
//! and `encode_request` below handle v10 themselves.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use super::{compact, HandlerResult, RequestContext};
use crate::cluster::MetadataImage;
use crate::group::{Committed, GroupError, StableOffsets};

pub const VERSIONS: (i16, i16) = (1, 10);

/// The last version kafka-protocol 0.18 can decode and encode for this request.
const CODEC_MAX_VERSION: i16 = 9;

fn values(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

/// A partition's answer: its committed offset, or (-1 and) its error code.
fn answer(r: Result<Option<Committed>, GroupError>) -> ((i64, i32, String), i16) {
    match r {
        Ok(c) => (values(c), 0),
        Err(e) => (values(None), e.code()),
    }
}

pub async fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> HandlerResult {
    let v = ctx.api_version;
    if v >= 8 {
        let image = ctx.broker.metadata.image();
        let stable = req.require_stable;
        let groups = req
            .groups
            .into_iter()
            .map(|g| fetch_group(&ctx, &image, g, stable))
            .collect();
        return Ok(Some(
            OffsetFetchResponse::default().with_groups(groups).into(),
        ));
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let stable = v >= 7 && req.require_stable;
    let (code, fetched) = split(ctx.broker.group.fetch_offsets_stable(
        &req.group_id.0,
        topics,
        stable,
    ));
    let topics = fetched
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, c)| {
                            let ((offset, epoch, meta), partition_code) = answer(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
                                .with_metadata(Some(StrBytes::from_string(meta)))
                                // v1 has no top-level error: the group error goes on each partition.
                                .with_error_code(if v < 2 { code } else { partition_code })
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if v >= 2 {
        response = response.with_error_code(code);
    }
    Ok(Some(response.into()))
}

/// One group of a v8+ request. From v10 topics come and go by id: an id we do not know is answered
/// UNKNOWN_TOPIC_ID on each partition asked for, and a fetch of every topic leaves out offsets of
/// topics that no longer exist (they have no id to be named by).
fn fetch_group(
    ctx: &RequestContext,
    image: &MetadataImage,
    g: OffsetFetchRequestGroup,
    require_stable: bool,
) -> OffsetFetchResponseGroup {
    let by_id = ctx.api_version >= 10;
    let mut unknown_ids = Vec::new();
    let topics = g.topics.map(|ts| {
        ts.into_iter()
            .filter_map(|t| {
                if !by_id {
                    return Some((t.name.0.to_string(), t.partition_indexes));
                }
                match image.topic_by_id(&t.topic_id) {
                    Some(info) => Some((info.name.clone(), t.partition_indexes)),
                    None => {
                        let code = ResponseError::UnknownTopicId.code();
                        let ps = t
                            .partition_indexes
                            .into_iter()
                            .map(|p| (p, values(None), code));
                        unknown_ids.push(response_topic(String::new(), t.topic_id, ps));
                        None
                    }
                }
            })
            .collect()
    });
    let (code, fetched) = split(ctx.broker.group.fetch_offsets_stable(
        &g.group_id.0,
        topics,
        require_stable,
    ));
    let mut topics: Vec<OffsetFetchResponseTopics> = fetched
        .into_iter()
        .filter_map(|(t, ps)| {
            let id = image.topics.get(&t).map(|info| info.id);
            if by_id && id.is_none() {
                return None;
            }
            let ps = ps.into_iter().map(|(p, c)| {
                let (values, code) = answer(c);
                (p, values, code)
            });
            Some(response_topic(t, id.unwrap_or_default(), ps))
        })
        .collect();
    if code == 0 {
        topics.extend(unknown_ids);
    }
    OffsetFetchResponseGroup::default()
        .with_group_id(g.group_id)
        .with_topics(topics)
        .with_error_code(code)
}

/// A v8+ response topic; the encoder writes the name in v8-9 and the id from v10.
fn response_topic(
    name: String,
    id: Uuid,
    partitions: impl Iterator<Item = (i32, (i64, i32, String), i16)>,
) -> OffsetFetchResponseTopics {
    OffsetFetchResponseTopics::default()
        .with_name(TopicName(StrBytes::from_string(name)))
        .with_topic_id(id)
        .with_partitions(
            partitions
                .map(|(p, (offset, epoch, meta), code)| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(StrBytes::from_string(meta)))
                        .with_error_code(code)
                })
                .collect(),
        )
}

fn split(result: Result<StableOffsets, GroupError>) -> (i16, StableOffsets) {
    match result {
        Ok(f) => (0, f),
        Err(e) => (e.code(), Vec::new()),
    }
}

/// Decodes a request body. v10 is v9 with each topic's name replaced by its id (a uuid).
pub fn decode(buf: &mut Bytes, version: i16) -> anyhow::Result<RequestKind> {
    if version <= CODEC_MAX_VERSION {
        return RequestKind::decode(ApiKey::OffsetFetch, buf, version);
    }
    let groups = compact::array(buf, |b| {
        let group_id = GroupId(compact::string(b)?);
        let member_id = compact::nullable_string(b)?;
        let member_epoch = compact::int32(b)?;
        let topics = compact::nullable_array(b, |b| {
            let topic_id = compact::uuid(b)?;
            let partition_indexes = compact::array(b, compact::int32)?;
            Ok(OffsetFetchRequestTopics::default()
                .with_topic_id(topic_id)
                .with_partition_indexes(partition_indexes)
                .with_unknown_tagged_fields(compact::tagged_fields(b)?))
        })?;
        Ok(OffsetFetchRequestGroup::default()
            .with_group_id(group_id)
            .with_member_id(member_id)
            .with_member_epoch(member_epoch)
            .with_topics(topics)
            .with_unknown_tagged_fields(compact::tagged_fields(b)?))
    })?;
    let require_stable = compact::boolean(buf)?;
    let tags = compact::tagged_fields(buf)?;
    Ok(RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_groups(groups)
            .with_require_stable(require_stable)
            .with_unknown_tagged_fields(tags),
    ))
}

/// Encodes a request body at `version` (client side: tests and tools), v10 included.
pub fn encode_request(
    req: &OffsetFetchRequest,
    version: i16,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    if version <= CODEC_MAX_VERSION {
        return req.encode(out, version);
    }
    compact::put_length(out, Some(req.groups.len()))?;
    for g in &req.groups {
        compact::put_string(out, &g.group_id.0)?;
        compact::put_nullable_string(out, g.member_id.as_deref())?;
        out.put_i32(g.member_epoch);
        compact::put_length(out, g.topics.as_ref().map(Vec::len))?;
        for t in g.topics.iter().flatten() {
            out.put_slice(t.topic_id.as_bytes());
            compact::put_length(out, Some(t.partition_indexes.len()))?;
            for p in &t.partition_indexes {
                out.put_i32(*p);
            }
            compact::put_tagged_fields(out, &t.unknown_tagged_fields);
        }
        compact::put_tagged_fields(out, &g.unknown_tagged_fields);
    }
    out.put_u8(req.require_stable as u8);
    compact::put_tagged_fields(out, &req.unknown_tagged_fields);
    Ok(())
}
