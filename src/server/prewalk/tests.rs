//! Schema tests: coverage of `APIS`, agreement with kafka-protocol's codec, and the known crashers.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, Message, StrBytes, VersionRange};

use super::gen::{self, put_uvarint};
use super::schema::schemas;
use super::*;
use crate::handlers::APIS;

/// The consumer-group APIs that are being added, and InitProducerId, must have schemas over the whole
/// range kafka-protocol can decode (so an `APIS` row for them cannot outrun the schemas).
fn also_covered() -> Vec<(ApiKey, VersionRange)> {
    use kafka_protocol::messages::*;
    vec![
        (ApiKey::FindCoordinator, FindCoordinatorRequest::VERSIONS),
        (ApiKey::JoinGroup, JoinGroupRequest::VERSIONS),
        (ApiKey::SyncGroup, SyncGroupRequest::VERSIONS),
        (ApiKey::Heartbeat, HeartbeatRequest::VERSIONS),
        (ApiKey::LeaveGroup, LeaveGroupRequest::VERSIONS),
        (ApiKey::OffsetCommit, OffsetCommitRequest::VERSIONS),
        (ApiKey::OffsetFetch, OffsetFetchRequest::VERSIONS),
        (ApiKey::DescribeGroups, DescribeGroupsRequest::VERSIONS),
        (ApiKey::ListGroups, ListGroupsRequest::VERSIONS),
        (ApiKey::DeleteGroups, DeleteGroupsRequest::VERSIONS),
        (ApiKey::OffsetDelete, OffsetDeleteRequest::VERSIONS),
        (ApiKey::InitProducerId, InitProducerIdRequest::VERSIONS),
    ]
}

#[test]
fn every_served_version_has_a_schema() {
    let s = schemas().unwrap();
    for api in APIS {
        for v in api.min_version..=api.max_version {
            assert!(
                s.get(api.key as i16, v).is_some(),
                "{:?} v{v} is in APIS but has no request schema (src/server/prewalk/requests.schema)",
                api.key
            );
        }
    }
    for (key, range) in also_covered() {
        for v in range.min..=range.max {
            assert!(s.get(key as i16, v).is_some(), "{key:?} v{v} has no schema");
        }
    }
}

fn header(key: ApiKey, version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("prewalk-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf
}

/// Decodes as dispatch does: through the API table's decoder (which covers versions kafka-protocol
/// lacks, e.g. InitProducerId v6, OffsetCommit and OffsetFetch v10), or the codec for APIs not in the table.
fn decode(key: ApiKey, buf: &mut bytes::Bytes, version: i16) -> anyhow::Result<RequestKind> {
    match crate::handlers::lookup(key as i16) {
        Some(api) if api.supports(version) => (api.decode)(buf, version),
        _ => RequestKind::decode(key, buf, version),
    }
}

/// The client-side encoding, with our own for the versions the codec lacks.
fn encode(req: &RequestKind, out: &mut BytesMut, version: i16) {
    match req {
        RequestKind::InitProducerId(r) => {
            crate::handlers::init_producer_id::encode_request(r, version, out).unwrap()
        }
        RequestKind::OffsetCommit(r) => {
            crate::handlers::offset_commit::encode_request(r, version, out).unwrap()
        }
        RequestKind::OffsetFetch(r) => {
            crate::handlers::offset_fetch::encode_request(r, version, out).unwrap()
        }
        other => other.encode(out, version).unwrap(),
    }
}

/// For every API and version: bodies generated from the schema (non-empty arrays, nulls, known and
/// unknown tagged fields) must decode with kafka-protocol consuming exactly their bytes; re-encoded by
/// kafka-protocol's client encoder, the frame must walk to exactly its length.
#[test]
fn schemas_agree_with_the_codec() {
    let s = schemas().unwrap();
    let mut cases = 0;
    for api in &s.apis {
        let key = ApiKey::try_from(api.key).unwrap();
        for version in api.versions.0..=api.versions.1 {
            for seed in 0..40u64 {
                let body = gen::body(api, version, seed);
                let body = body.freeze();
                let hv = key.request_header_version(version);

                let mut generated = header(key, version);
                generated.put_slice(&body);
                let walked = prewalk(&generated, api.key, version, hv)
                    .unwrap_or_else(|e| panic!("{key:?} v{version} seed {seed}: {e}"));
                assert_eq!(walked.consumed, generated.len());

                let mut b = body.clone();
                let decoded = decode(key, &mut b, version).unwrap_or_else(|e| {
                    panic!("{key:?} v{version} seed {seed}: codec rejects schema bytes {body:?}: {e:#}")
                });
                assert!(
                    b.is_empty(),
                    "{key:?} v{version} seed {seed}: codec left {} bytes",
                    b.len()
                );

                let mut frame = header(key, version);
                encode(&decoded, &mut frame, version);
                let walked = prewalk(&frame, api.key, version, hv)
                    .unwrap_or_else(|e| panic!("{key:?} v{version} seed {seed} re-encoded: {e}"));
                assert_eq!(
                    walked.consumed,
                    frame.len(),
                    "{key:?} v{version} seed {seed}"
                );
                assert!(walked.decoded_estimate <= cost::budget(frame.len()));
                cases += 1;
            }
        }
    }
    assert!(cases > 4000, "{cases}");
}

#[test]
fn struct_estimates_cover_the_decoded_types() {
    use kafka_protocol::messages::*;
    let s = schemas().unwrap();
    let mem = |key: i16, name: &str| {
        s.apis
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.structs.iter().find(|st| st.name == name))
            .map(|st| st.mem)
            .unwrap()
    };
    let checks: &[(i16, &str, usize)] = &[
        (0, "ProduceRequest", size_of::<ProduceRequest>()),
        (
            0,
            "TopicProduceData",
            size_of::<produce_request::TopicProduceData>(),
        ),
        (
            0,
            "PartitionProduceData",
            size_of::<produce_request::PartitionProduceData>(),
        ),
        (1, "FetchRequest", size_of::<FetchRequest>()),
        (1, "FetchTopic", size_of::<fetch_request::FetchTopic>()),
        (
            1,
            "FetchPartition",
            size_of::<fetch_request::FetchPartition>(),
        ),
        (
            3,
            "MetadataRequestTopic",
            size_of::<metadata_request::MetadataRequestTopic>(),
        ),
        (
            19,
            "CreatableTopic",
            size_of::<create_topics_request::CreatableTopic>(),
        ),
        (
            19,
            "CreatableTopicConfig",
            size_of::<create_topics_request::CreatableTopicConfig>(),
        ),
        (
            8,
            "OffsetCommitRequestPartition",
            size_of::<offset_commit_request::OffsetCommitRequestPartition>(),
        ),
        (
            20,
            "DeleteTopicState",
            size_of::<delete_topics_request::DeleteTopicState>(),
        ),
    ];
    for (key, name, real) in checks {
        assert!(
            mem(*key, name) >= *real,
            "{name}: estimate {} < size_of {real}",
            mem(*key, name)
        );
    }
}

fn raw_frame(key: i16, version: i16, client_id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(client_id);
    f.extend_from_slice(body);
    f
}

#[test]
fn known_crashers_are_refused() {
    // Metadata v1: no client id (-1), topics array count i32::MAX: the 14-byte request that aborts.
    let f = raw_frame(3, 1, &[0xff, 0xff], &[0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(f.len(), 14);
    assert!(matches!(
        prewalk(&f, 3, 1, 1),
        Err(PrewalkError::TooManyElements { .. })
    ));
    // Flexible: compact array count 2^32-1 as a varint.
    let f = raw_frame(3, 12, &[0xff, 0xff], &[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(prewalk(&f, 3, 12, 2).is_err());
    // Tagged-field count far beyond the bytes.
    let f = raw_frame(18, 3, &[0xff, 0xff], &[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        prewalk(&f, 18, 3, 2),
        Err(PrewalkError::TooManyElements { .. })
    ));
    // Negative string and array lengths.
    let f = raw_frame(3, 1, &[0xff, 0xfe], &[0, 0, 0, 0]);
    assert!(matches!(
        prewalk(&f, 3, 1, 1),
        Err(PrewalkError::BadLength { .. })
    ));
    let f = raw_frame(3, 1, &[0xff, 0xff], &[0xff, 0xff, 0xff, 0xfe]);
    assert!(matches!(
        prewalk(&f, 3, 1, 1),
        Err(PrewalkError::BadLength { .. })
    ));
    // A null where the codec needs a value (Produce v3 topic_data).
    let f = raw_frame(
        0,
        3,
        &[0xff, 0xff],
        &[0xff, 0xff, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    );
    assert!(matches!(
        prewalk(&f, 0, 3, 1),
        Err(PrewalkError::NullNotAllowed { .. })
    ));
    // Every short prefix of a valid request is refused, never a panic.
    let mut full = header(ApiKey::Metadata, 12).to_vec();
    full.extend_from_slice(&[
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'a', 0, 1, 0, 0,
    ]);
    assert!(prewalk(&full, 3, 12, 2).is_ok());
    for n in 0..full.len() {
        assert!(prewalk(&full[..n], 3, 12, 2).is_err(), "prefix {n}");
    }
    // An unknown version has no schema.
    assert!(matches!(
        prewalk(&full, 3, 99, 2),
        Err(PrewalkError::NoSchema { .. })
    ));
}

#[test]
fn cheap_wire_structs_that_decode_big_are_refused() {
    // CreateTopics v5: one topic whose configs array holds 200k three-byte configs (empty name,
    // null value, no tags): 600 KB of wire decoding into ~18 MB of structs.
    let n = 200_000u32;
    let mut body = BytesMut::new();
    put_uvarint(&mut body, 2); // one topic
    put_uvarint(&mut body, 2);
    body.put_u8(b't');
    body.put_i32(1);
    body.put_i16(1);
    put_uvarint(&mut body, 1); // no assignments
    put_uvarint(&mut body, n + 1);
    for _ in 0..n {
        body.put_slice(&[1, 0, 0]);
    }
    body.put_u8(0); // topic tags
    body.put_i32(1000);
    body.put_u8(0);
    body.put_u8(0);
    let mut f = header(ApiKey::CreateTopics, 5);
    f.put_slice(&body);
    assert!(matches!(
        prewalk(&f, 19, 5, 2),
        Err(PrewalkError::TooExpensive { .. })
    ));
}
