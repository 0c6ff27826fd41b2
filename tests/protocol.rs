//! Protocol-level tests against the real `vltava` binary: the advertised API table, every advertised
//! version of every API, Kafka error codes for bad input, pipelining, and durability across SIGKILL.

mod common;

use bytes::Bytes;
use common::{batch, create_topic, name, topic_id, BrokerProcess, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

fn produce(
    c: &mut Client,
    version: i16,
    topic: &str,
    id: Uuid,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> Option<produce_response::PartitionProduceResponse> {
    let td = TopicProduceData::default()
        .with_name(if version < 13 {
            name(topic)
        } else {
            TopicName::default()
        })
        .with_topic_id(if version >= 13 { id } else { Uuid::nil() })
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records))]);
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    match c.request(ApiKey::Produce, version, req) {
        Some(ResponseKind::Produce(mut r)) => {
            Some(r.responses.remove(0).partition_responses.remove(0))
        }
        None => None,
        other => panic!("{other:?}"),
    }
}

fn fetch_request(
    version: i16,
    topic: &str,
    id: Uuid,
    offset: i64,
    max_wait_ms: i32,
) -> FetchRequest {
    let ft = FetchTopic::default()
        .with_topic(if version < 13 {
            name(topic)
        } else {
            TopicName::default()
        })
        .with_topic_id(if version >= 13 { id } else { Uuid::nil() })
        .with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)]);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![ft])
}

fn fetch(
    c: &mut Client,
    version: i16,
    topic: &str,
    id: Uuid,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let req = fetch_request(version, topic, id, offset, max_wait_ms);
    match c.request(ApiKey::Fetch, version, req) {
        Some(ResponseKind::Fetch(mut r)) => {
            assert_eq!(r.error_code, 0);
            r.responses.remove(0).partitions.remove(0)
        }
        other => panic!("Fetch v{version}: {other:?}"),
    }
}

fn fetched_values(data: &fetch_response::PartitionData) -> Vec<(i64, String)> {
    let mut bytes = data.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for r in set.records {
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn list_offset(
    c: &mut Client,
    version: i16,
    topic: &str,
    timestamp: i64,
) -> list_offsets_response::ListOffsetsPartitionResponse {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    match c.request(ApiKey::ListOffsets, version, req) {
        Some(ResponseKind::ListOffsets(mut r)) => r.topics.remove(0).partitions.remove(0),
        other => panic!("ListOffsets v{version}: {other:?}"),
    }
}

#[test]
fn api_versions_advertises_exactly_the_dispatch_table() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let expected: Vec<(i16, i16, i16)> = vltava::handlers::APIS
        .iter()
        .map(|a| (a.key as i16, a.min_version, a.max_version))
        .collect();
    for version in 0..=4 {
        let Some(ResponseKind::ApiVersions(r)) =
            c.request(ApiKey::ApiVersions, version, ApiVersionsRequest::default())
        else {
            panic!("ApiVersions v{version}")
        };
        assert_eq!(r.error_code, 0);
        let got: Vec<(i16, i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(got, expected, "ApiVersions v{version}");
        // Every advertised range must be one the codec can speak.
        for (key, min, max) in &got {
            let range = ApiKey::try_from(*key).unwrap().valid_versions();
            assert!(range.min <= *min && *max <= range.max, "api {key}");
        }
    }

    // A future ApiVersions version: v0-shaped answer with UNSUPPORTED_VERSION and, as Kafka answers
    // it (KIP-511), ApiVersions' own range only: the client retries within it.
    let mut raw = c.encode_request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default().into(),
    );
    raw[2..4].copy_from_slice(&99i16.to_be_bytes());
    c.send_frame(&raw);
    let mut frame = c.read_frame().expect("answer to ApiVersions v99");
    let _header =
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap();
    let r = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0)
        .unwrap();
    assert_eq!(r.error_code, 35);
    let listed: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(listed, vec![(ApiKey::ApiVersions as i16, 0, 4)]);

    // Versions outside a handler's range, and APIs we do not serve, close the connection as Kafka does.
    for api in vltava::handlers::APIS
        .iter()
        .filter(|a| a.key != ApiKey::ApiVersions)
    {
        let mut c = broker.connect();
        let raw = c.encode_request(ApiKey::Metadata, 1, &MetadataRequest::default().into());
        let mut raw = raw.to_vec();
        raw[0..2].copy_from_slice(&(api.key as i16).to_be_bytes());
        raw[2..4].copy_from_slice(&(api.max_version + 1).to_be_bytes());
        c.send_frame(&raw);
        assert!(
            c.read_frame().is_none(),
            "{:?} v{} must close the connection",
            api.key,
            api.max_version + 1
        );
    }
    let served: Vec<i16> = expected.iter().map(|e| e.0).collect();
    for key in ApiKey::iter().filter(|k| !served.contains(&(*k as i16))) {
        let mut c = broker.connect();
        let mut raw = c
            .encode_request(ApiKey::Metadata, 1, &MetadataRequest::default().into())
            .to_vec();
        raw[0..2].copy_from_slice(&(key as i16).to_be_bytes());
        raw[2..4].copy_from_slice(&key.valid_versions().min.to_be_bytes());
        c.send_frame(&raw);
        assert!(
            c.read_frame().is_none(),
            "unserved {key:?} must close the connection"
        );
    }
}

#[test]
fn every_advertised_version_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let api = |key: ApiKey| vltava::handlers::lookup(key as i16).unwrap();

    let ct = api(ApiKey::CreateTopics);
    for v in ct.min_version..=ct.max_version {
        let r = create_topic(
            &mut c,
            v,
            &format!("ct-v{v}"),
            2,
            &[("retention.ms", "1000000")],
        );
        assert_eq!(
            r.topics[0].error_code, 0,
            "CreateTopics v{v}: {:?}",
            r.topics[0].error_message
        );
        if v >= 5 {
            assert_eq!(r.topics[0].num_partitions, 2);
            let configs = r.topics[0].configs.as_ref().unwrap();
            let retention = configs
                .iter()
                .find(|c| c.name.as_str() == "retention.ms")
                .unwrap();
            assert_eq!(retention.value.as_ref().unwrap().as_str(), "1000000");
        }
        let again = create_topic(&mut c, v, &format!("ct-v{v}"), 2, &[]);
        assert_eq!(
            again.topics[0].error_code, 36,
            "TOPIC_ALREADY_EXISTS at v{v}"
        );
    }

    let md = api(ApiKey::Metadata);
    for v in md.min_version..=md.max_version {
        let topic = format!("md-v{v}");
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(&topic)))
            ]))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(v >= 8)
            .with_include_cluster_authorized_operations((8..=10).contains(&v));
        let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, v, req) else {
            panic!("Metadata v{v}")
        };
        assert_eq!(m.brokers.len(), 1);
        assert_eq!(
            m.brokers[0].port.to_string(),
            broker.addr.rsplit(':').next().unwrap()
        );
        assert_eq!(m.topics.len(), 1, "v{v}");
        assert_eq!(m.topics[0].error_code, 0, "auto-created at v{v}");
        assert_eq!(m.topics[0].partitions.len(), 1, "num.partitions default");
        assert_eq!(m.topics[0].partitions[0].leader_id.0, 1);
        if v >= 2 {
            assert_eq!(m.cluster_id.as_ref().map(|s| s.len()), Some(22));
        }
    }

    let pr = api(ApiKey::Produce);
    let fe = api(ApiKey::Fetch);
    let lo = api(ApiKey::ListOffsets);
    let id = topic_id(&mut c, "md-v1");
    let mut expected = Vec::new();
    for v in pr.min_version..=pr.max_version {
        let values = [format!("a{v}"), format!("b{v}")];
        let r = produce(
            &mut c,
            v,
            "md-v1",
            id,
            0,
            batch(&[&values[0], &values[1]]),
            -1,
        )
        .unwrap();
        assert_eq!(r.error_code, 0, "Produce v{v}: {:?}", r.error_message);
        assert_eq!(r.base_offset, expected.len() as i64, "Produce v{v}");
        for val in values {
            expected.push((expected.len() as i64, val));
        }
    }
    for v in fe.min_version..=fe.max_version {
        let data = fetch(&mut c, v, "md-v1", id, 0, 0);
        assert_eq!(data.error_code, 0, "Fetch v{v}");
        assert_eq!(data.high_watermark, expected.len() as i64);
        assert_eq!(fetched_values(&data), expected, "Fetch v{v}");
        // An offset inside a batch returns that whole batch; the client skips the earlier record.
        let data = fetch(&mut c, v, "md-v1", id, 1, 0);
        assert_eq!(
            fetched_values(&data)[0].0,
            0,
            "Fetch v{v} at an offset inside a batch"
        );
        let data = fetch(&mut c, v, "md-v1", id, expected.len() as i64 + 5, 0);
        assert_eq!(data.error_code, 1, "OFFSET_OUT_OF_RANGE at v{v}");
    }
    for v in lo.min_version..=lo.max_version {
        assert_eq!(
            list_offset(&mut c, v, "md-v1", -2).offset,
            0,
            "earliest v{v}"
        );
        assert_eq!(
            list_offset(&mut c, v, "md-v1", -1).offset,
            expected.len() as i64,
            "latest v{v}"
        );
        // Every batch holds two records stamped ...000 and ...001: the answer is the first record
        // at or after the timestamp (offset 1, inside the first batch), not the batch's first offset.
        let r = list_offset(&mut c, v, "md-v1", 1_700_000_000_001);
        assert_eq!(
            (r.offset, r.timestamp),
            (1, 1_700_000_000_001),
            "by timestamp v{v}"
        );
        if v >= 7 {
            let r = list_offset(&mut c, v, "md-v1", -3);
            assert_eq!(
                (r.offset, r.timestamp),
                (1, 1_700_000_000_001),
                "max timestamp v{v}"
            );
        }
    }

    let dt = api(ApiKey::DeleteTopics);
    for v in dt.min_version..=dt.max_version {
        let topic = format!(
            "ct-v{}",
            ct.min_version + (v - dt.min_version).min(ct.max_version - ct.min_version)
        );
        let req = if v >= 6 {
            let id = topic_id(&mut c, &topic);
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        };
        let Some(ResponseKind::DeleteTopics(r)) = c.request(ApiKey::DeleteTopics, v, req.clone())
        else {
            panic!()
        };
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v} {topic}");
        let Some(ResponseKind::DeleteTopics(r)) = c.request(ApiKey::DeleteTopics, v, req) else {
            panic!()
        };
        let unknown = if v >= 6 { 100 } else { 3 };
        assert_eq!(r.responses[0].error_code, unknown, "second delete at v{v}");
        assert!(
            !dir.path().join(format!("{topic}-0")).exists(),
            "data of {topic} removed"
        );
    }
}

#[test]
fn bad_produce_input_gets_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "small", 1, &[("max.message.bytes", "200")]).topics[0].error_code,
        0
    );
    assert_eq!(
        create_topic(&mut c, 7, "bad name!", 1, &[]).topics[0].error_code,
        17
    );
    assert_eq!(
        create_topic(&mut c, 7, "cfg", 1, &[("no.such.config", "1")]).topics[0].error_code,
        40
    );
    assert_eq!(
        create_topic(&mut c, 7, "zero", 0, &[]).topics[0].error_code,
        37
    );
    let mut rf3 = CreatableTopic::default()
        .with_name(name("rf3"))
        .with_num_partitions(1)
        .with_replication_factor(3);
    rf3.configs = vec![];
    let Some(ResponseKind::CreateTopics(r)) = c.request(
        ApiKey::CreateTopics,
        7,
        CreateTopicsRequest::default().with_topics(vec![rf3]),
    ) else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 38, "INVALID_REPLICATION_FACTOR");

    let good = batch(&["x"]);
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let r = produce(&mut c, 9, "small", Uuid::nil(), 0, Bytes::from(bad_crc), 1).unwrap();
    assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE");
    let big = "y".repeat(300);
    let r = produce(&mut c, 9, "small", Uuid::nil(), 0, batch(&[&big]), 1).unwrap();
    assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE");
    let r = produce(&mut c, 9, "nope", Uuid::nil(), 0, good.clone(), 1).unwrap();
    assert_eq!(r.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r = produce(&mut c, 9, "small", Uuid::nil(), 7, good.clone(), 1).unwrap();
    assert_eq!(r.error_code, 3, "unknown partition");
    let r = produce(&mut c, 9, "small", Uuid::nil(), 0, good.clone(), 2).unwrap();
    assert_eq!(r.error_code, 21, "INVALID_REQUIRED_ACKS");
    let r = produce(
        &mut c,
        9,
        "small",
        Uuid::nil(),
        0,
        good.slice(..good.len() - 3),
        1,
    )
    .unwrap();
    assert_eq!(r.error_code, 2, "truncated batch is corrupt");
    // Nothing above was written: the next good batch lands at offset 0.
    let r = produce(&mut c, 9, "small", Uuid::nil(), 0, good, 1).unwrap();
    assert_eq!((r.error_code, r.base_offset), (0, 0));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, 7, "pipe", 1, &[]);
    let mut frames = Vec::new();
    for i in 0..20 {
        let td = TopicProduceData::default()
            .with_name(name("pipe"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[&format!("p{i}")])))]);
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![td]);
        frames.push(c.encode_request(ApiKey::Produce, 9, &req.into()));
    }
    let first_correlation =
        i32::from_be_bytes([frames[0][4], frames[0][5], frames[0][6], frames[0][7]]);
    for f in &frames {
        c.send_frame(f);
    }
    for i in 0..20 {
        let mut frame = c.read_frame().unwrap();
        let h = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
            &mut frame,
            ApiKey::Produce.response_header_version(9),
        )
        .unwrap();
        assert_eq!(h.correlation_id, first_correlation + i);
        let r = <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 9)
            .unwrap();
        assert_eq!(r.responses[0].partition_responses[0].base_offset, i as i64);
    }
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    for payload in [
        &b""[..],
        b"\x00",
        b"\x00\x03",
        b"\x00\x03\x00",
        b"\x00\x03\x00\x0c\x00\x00",
    ] {
        let mut c = broker.connect();
        c.send_frame(payload);
        assert!(
            c.read_frame().is_none(),
            "{payload:?} must close the connection"
        );
    }
    // A size above socket.request.max.bytes, and a negative size.
    for size in [i32::MAX, -1] {
        let mut c = broker.connect();
        std::io::Write::write_all(&mut c.stream_clone(), &size.to_be_bytes()).unwrap();
        assert!(
            c.read_frame().is_none(),
            "frame size {size} must close the connection"
        );
    }
    let mut c = broker.connect();
    assert!(
        c.request(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
            .is_some(),
        "broker still serves"
    );
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let mut c = broker.connect();
    create_topic(&mut c, 7, "durable", 1, &[("segment.bytes", "1024")]);
    let mut expected = Vec::new();
    for i in 0..50 {
        let v = format!("value-{i}");
        let r = produce(&mut c, 9, "durable", Uuid::nil(), 0, batch(&[&v]), -1).unwrap();
        assert_eq!(r.error_code, 0);
        expected.push((r.base_offset, v));
    }
    broker.kill();
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let mut c = broker.connect();
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let data = fetch(&mut c, 12, "durable", Uuid::nil(), got.len() as i64, 0);
        assert_eq!(data.error_code, 0);
        let values = fetched_values(&data);
        assert!(
            !values.is_empty(),
            "records missing after restart at offset {}",
            got.len()
        );
        let next = got.len() as i64;
        got.extend(values.into_iter().filter(|(o, _)| *o >= next));
    }
    assert_eq!(got, expected);
    let r = produce(&mut c, 9, "durable", Uuid::nil(), 0, batch(&["after"]), -1).unwrap();
    assert_eq!(r.base_offset, 50, "appends continue after recovery");
}

#[test]
fn acks_zero_produce_gets_no_response() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, 7, "fire", 1, &[]);
    let td = TopicProduceData::default()
        .with_name(name("fire"))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(&["x"])))]);
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let raw = c.encode_request(ApiKey::Produce, 9, &req.into());
    c.send_frame(&raw);
    // The next frame on the wire must answer the next request, not the acks=0 produce.
    let Some(ResponseKind::ApiVersions(_)) =
        c.request(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
    else {
        panic!("expected the ApiVersions answer")
    };
    assert_eq!(
        list_offset(&mut c, 7, "fire", -1).offset,
        1,
        "the acks=0 record was written"
    );
}

#[test]
fn long_poll_fetch_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, 7, "poll", 1, &[]);
    // Empty partition, min_bytes 1, max_wait 60 s: the client's 20 s read timeout fails the test
    // unless the produce below wakes the fetch.
    // The produce may reach the broker before or after the fetch parks; both must end with the data.
    let mut p = broker.connect();
    let req = fetch_request(12, "poll", Uuid::nil(), 0, 60_000);
    let raw = c.encode_request(ApiKey::Fetch, 12, &req.into());
    c.send_frame(&raw);
    let r = produce(&mut p, 9, "poll", Uuid::nil(), 0, batch(&["woke"]), 1).unwrap();
    assert_eq!(r.error_code, 0);
    let mut frame = c
        .read_frame()
        .expect("long poll answered after the produce");
    let _ = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
        &mut frame,
        ApiKey::Fetch.response_header_version(12),
    )
    .unwrap();
    let mut f =
        <FetchResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 12).unwrap();
    let data = f.responses.remove(0).partitions.remove(0);
    assert_eq!(fetched_values(&data), vec![(0, "woke".to_string())]);

    // With nothing arriving, the fetch answers empty at max_wait.
    let empty = fetch(&mut c, 12, "poll", Uuid::nil(), 1, 50);
    assert_eq!(
        (empty.error_code, empty.records.map(|r| r.len())),
        (0, Some(0))
    );
}

#[test]
fn log_append_time_topics_stamp_batches_with_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let r = create_topic(
        &mut c,
        7,
        "lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    assert_eq!(r.topics[0].error_code, 0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // The client stamps its records in 2023; the broker must replace that with its append time.
    let r = produce(&mut c, 9, "lat", Uuid::nil(), 0, batch(&["a", "b"]), 1).unwrap();
    assert_eq!(r.error_code, 0);
    assert!(
        r.log_append_time_ms >= before,
        "log_append_time_ms {} is the broker's clock",
        r.log_append_time_ms
    );
    let data = fetch(&mut c, 12, "lat", Uuid::nil(), 0, 0);
    let records = data.records.unwrap();
    let header = vltava::log::BatchHeader::parse(&records).unwrap();
    assert_eq!(
        header.timestamp_type(),
        vltava::log::TimestampType::LogAppendTime
    );
    assert_eq!(header.max_timestamp, r.log_append_time_ms);
    // The rewritten batch still carries a valid CRC.
    vltava::log::validate_batches(&records, u32::MAX).unwrap();
    // A CreateTime topic answers -1.
    create_topic(&mut c, 7, "ct", 1, &[]);
    let r = produce(&mut c, 9, "ct", Uuid::nil(), 0, batch(&["a"]), 1).unwrap();
    assert_eq!(r.log_append_time_ms, -1);
}
