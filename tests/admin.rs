//! Admin APIs over the wire against the real binary: DescribeConfigs for topics and the broker,
//! DeleteRecords, CreatePartitions, IncrementalAlterConfigs and AlterConfigs (of topics and of the
//! dynamic broker configs).

mod common;

use common::{create_topic, fetch_partition, produce_one, BrokerProcess, Client};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const POLICY_VIOLATION: i16 = 44;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const MESSAGE_TOO_LARGE: i16 = 10;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn describe(
    c: &mut Client,
    v: i16,
    resources: &[(i8, &str, Option<&[&str]>)],
    synonyms: bool,
) -> Vec<DescribeConfigsResult> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_resources(
            resources
                .iter()
                .map(|(t, n, keys)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(*t)
                        .with_resource_name(s(n))
                        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
                })
                .collect(),
        );
    match c.request(ApiKey::DescribeConfigs, v, req) {
        Some(ResponseKind::DescribeConfigs(r)) => r.results,
        other => panic!("DescribeConfigs v{v}: {other:?}"),
    }
}

/// (value, source, read_only, type) of one config of a result.
fn config(r: &DescribeConfigsResult, name: &str) -> (String, i8, bool, i8) {
    let e = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    let value = e.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
    (value, e.config_source, e.read_only, e.config_type)
}

#[test]
fn describe_configs_reports_topic_overrides_defaults_and_broker_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broker.toml");
    std::fs::write(&cfg, "num_partitions = 3\n[log]\nsegment_bytes = 1048576\n").unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut c = broker.connect();
    let r = create_topic(&mut c, 7, "configured", 1, &[("retention.ms", "1000")]);
    assert_eq!(r.topics[0].error_code, 0);
    // CreateTopics answers the same sources DescribeConfigs reports.
    let created = r.topics[0].configs.as_ref().unwrap();
    let seg = created
        .iter()
        .find(|e| e.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(seg.config_source, SOURCE_STATIC_BROKER);

    let (first, last) = vltava::handlers::lookup(ApiKey::DescribeConfigs as i16)
        .map(|a| (a.min_version, a.max_version))
        .unwrap();
    assert_eq!((first, last), (1, 4));
    for v in first..=last {
        let results = describe(
            &mut c,
            v,
            &[
                (TOPIC, "configured", None),
                (
                    TOPIC,
                    "configured",
                    Some(&["cleanup.policy", "no.such.config"]),
                ),
                (TOPIC, "missing", None),
                (TOPIC, "bad/name", None),
                (BROKER, "1", None),
                (BROKER, "", None),
                (BROKER, "7", None),
            ],
            false,
        );
        assert_eq!(results.len(), 7, "v{v}");
        let all = &results[0];
        assert_eq!(all.error_code, 0);
        assert_eq!(
            (all.resource_type, all.resource_name.as_str()),
            (TOPIC, "configured")
        );
        let (value, source, read_only, ty) = config(all, "retention.ms");
        assert_eq!(
            (value.as_str(), source, read_only),
            ("1000", SOURCE_TOPIC, false),
            "v{v}"
        );
        // ConfigType exists from v3 on.
        assert_eq!(ty, if v >= 3 { TYPE_LONG } else { 0 }, "v{v}");
        let (value, source, _, _) = config(all, "segment.bytes");
        assert_eq!((value.as_str(), source), ("1048576", SOURCE_STATIC_BROKER));
        let (value, source, _, ty) = config(all, "cleanup.policy");
        assert_eq!((value.as_str(), source), ("delete", SOURCE_DEFAULT));
        assert_eq!(ty, if v >= 3 { TYPE_LIST } else { 0 });
        assert!(all.configs.iter().all(|e| e.synonyms.is_empty()));

        let names: Vec<&str> = results[1].configs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["cleanup.policy"], "only the keys asked for");
        assert_eq!(results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(results[3].error_code, INVALID_TOPIC_EXCEPTION);

        let b = &results[4];
        assert_eq!(b.error_code, 0);
        let (value, source, read_only, _) = config(b, "num.partitions");
        assert_eq!(
            (value.as_str(), source, read_only),
            ("3", SOURCE_STATIC_BROKER, true)
        );
        let (value, source, _, _) = config(b, "log.retention.ms");
        assert_eq!((value.as_str(), source), ("604800000", SOURCE_DEFAULT));
        // 0 unless configured, as Kafka's shipped server.properties sets it over its code default.
        let (value, source, _, _) = config(b, "group.initial.rebalance.delay.ms");
        assert_eq!((value.as_str(), source), ("0", SOURCE_STATIC_BROKER));
        let (value, _, _, _) = config(b, "advertised.listeners");
        assert_eq!(value, format!("PLAINTEXT://{}", broker.addr));
        assert_eq!((results[5].error_code, results[5].configs.len()), (0, 0));
        assert_eq!(results[6].error_code, INVALID_REQUEST);
    }

    // Synonyms, most specific first, when asked for.
    let r = describe(
        &mut c,
        4,
        &[(
            TOPIC,
            "configured",
            Some(&["retention.ms", "segment.bytes"]),
        )],
        true,
    );
    let synonyms = |name: &str| -> Vec<(String, i8)> {
        r[0].configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .unwrap()
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect()
    };
    assert_eq!(
        synonyms("retention.ms"),
        [
            ("retention.ms".to_string(), SOURCE_TOPIC),
            ("log.retention.ms".to_string(), SOURCE_DEFAULT)
        ]
    );
    assert_eq!(
        synonyms("segment.bytes"),
        [
            ("log.segment.bytes".to_string(), SOURCE_STATIC_BROKER),
            ("log.segment.bytes".to_string(), SOURCE_DEFAULT)
        ]
    );
}

/// DeleteRecords of one partition per (topic, partition, offset): (low watermark, error) of each.
fn delete_records(c: &mut Client, v: i16, targets: &[(&str, i32, i64)]) -> Vec<(i64, i16)> {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(
            targets
                .iter()
                .map(|(t, p, o)| {
                    DeleteRecordsTopic::default()
                        .with_name(common::name(t))
                        .with_partitions(vec![DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o)])
                })
                .collect(),
        );
    match c.request(ApiKey::DeleteRecords, v, req) {
        Some(ResponseKind::DeleteRecords(r)) => r
            .topics
            .iter()
            .map(|t| (t.partitions[0].low_watermark, t.partitions[0].error_code))
            .collect(),
        other => panic!("DeleteRecords v{v}: {other:?}"),
    }
}

fn earliest(c: &mut Client, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![
                ListOffsetsPartition::default().with_timestamp(-2)
            ])]);
    match c.request(ApiKey::ListOffsets, 7, req) {
        Some(ResponseKind::ListOffsets(r)) => r.topics[0].partitions[0].offset,
        other => panic!("ListOffsets: {other:?}"),
    }
}

#[test]
fn delete_records_moves_the_log_start_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    // Small segments, so deleting records also deletes whole segment files.
    let r = create_topic(&mut c, 7, "trimmed", 1, &[("segment.bytes", "200")]);
    assert_eq!(r.topics[0].error_code, 0);
    let r = create_topic(&mut c, 7, "compacted", 1, &[("cleanup.policy", "compact")]);
    assert_eq!(r.topics[0].error_code, 0);
    for i in 0..20 {
        assert_eq!(produce_one(&mut c, "trimmed", &format!("value-{i}")), i);
    }
    let segments = || common::segment_files(&data.join("trimmed-0"));
    let before = segments();
    assert!(before > 3, "{before} segments");

    for v in 0..=2 {
        let low = 5 + v as i64;
        assert_eq!(
            delete_records(&mut c, v, &[("trimmed", 0, low)]),
            [(low, 0)],
            "v{v}"
        );
        assert_eq!(earliest(&mut c, "trimmed"), low);
    }
    assert!(
        segments() < before,
        "segments wholly below the start are deleted"
    );
    assert_eq!(
        fetch_partition(&mut c, "trimmed", 3).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let p = fetch_partition(&mut c, "trimmed", 7);
    assert_eq!((p.error_code, p.log_start_offset), (0, 7));
    // A lower offset than the current start changes nothing.
    assert_eq!(delete_records(&mut c, 2, &[("trimmed", 0, 2)]), [(7, 0)]);
    assert_eq!(
        delete_records(
            &mut c,
            2,
            &[
                ("trimmed", 0, 21),
                ("trimmed", 1, 0),
                ("nope", 0, 0),
                ("compacted", 0, 0)
            ]
        ),
        [
            (-1, OFFSET_OUT_OF_RANGE),
            (-1, UNKNOWN_TOPIC_OR_PARTITION),
            (-1, UNKNOWN_TOPIC_OR_PARTITION),
            (-1, POLICY_VIOLATION)
        ]
    );

    broker.kill();
    let broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        earliest(&mut c, "trimmed"),
        7,
        "the log start survives SIGKILL"
    );
    // -1 deletes everything up to the high watermark.
    assert_eq!(delete_records(&mut c, 2, &[("trimmed", 0, -1)]), [(20, 0)]);
    assert_eq!(earliest(&mut c, "trimmed"), 20);
    assert_eq!(produce_one(&mut c, "trimmed", "after"), 20);
}

/// Replica lists, one per new partition.
type Assignments = Option<Vec<Vec<i32>>>;

/// CreatePartitions of one topic per entry: (name, count, assignments); the error code of each.
fn create_partitions(
    c: &mut Client,
    v: i16,
    topics: &[(&str, i32, Assignments)],
    validate_only: bool,
) -> Vec<i16> {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|(t, n, a)| {
                    CreatePartitionsTopic::default()
                        .with_name(common::name(t))
                        .with_count(*n)
                        .with_assignments(a.as_ref().map(|lists| {
                            lists
                                .iter()
                                .map(|b| {
                                    CreatePartitionsAssignment::default()
                                        .with_broker_ids(b.iter().map(|id| BrokerId(*id)).collect())
                                })
                                .collect()
                        }))
                })
                .collect(),
        );
    match c.request(ApiKey::CreatePartitions, v, req) {
        Some(ResponseKind::CreatePartitions(r)) => r.results.iter().map(|r| r.error_code).collect(),
        other => panic!("CreatePartitions v{v}: {other:?}"),
    }
}

fn partition_count(c: &mut Client, topic: &str) -> usize {
    let req = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(common::name(topic))),
    ]));
    match c.request(ApiKey::Metadata, 12, req) {
        Some(ResponseKind::Metadata(m)) => m.topics[0].partitions.len(),
        other => panic!("Metadata: {other:?}"),
    }
}

/// Produces one record to `partition`; its error code.
fn produce_to(c: &mut Client, topic: &str, partition: i32, value: &str) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(common::name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(common::batch(&[value])))])]);
    match c.request(ApiKey::Produce, 9, req) {
        Some(ResponseKind::Produce(r)) => r.responses[0].partition_responses[0].error_code,
        other => panic!("Produce: {other:?}"),
    }
}

#[test]
fn create_partitions_grows_topics_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "growing", 1, &[]).topics[0].error_code,
        0
    );
    let (first, last) = vltava::handlers::lookup(ApiKey::CreatePartitions as i16)
        .map(|a| (a.min_version, a.max_version))
        .unwrap();
    assert_eq!((first, last), (0, 3));
    for v in first..=last {
        let count = 2 + v as i32;
        // validate_only checks and changes nothing.
        assert_eq!(
            create_partitions(&mut c, v, &[("growing", count, None)], true),
            [0]
        );
        assert_eq!(partition_count(&mut c, "growing"), count as usize - 1);
        assert_eq!(
            create_partitions(&mut c, v, &[("growing", count, None)], false),
            [0],
            "v{v}"
        );
        assert_eq!(partition_count(&mut c, "growing"), count as usize);
        assert_eq!(
            produce_to(&mut c, "growing", count - 1, "in the new partition"),
            0
        );
    }
    let errors = create_partitions(
        &mut c,
        3,
        &[
            ("growing", 3, None),
            ("missing", 2, None),
            ("twice", 2, None),
            ("twice", 3, None),
        ],
        false,
    );
    assert_eq!(
        errors,
        [
            INVALID_PARTITIONS,
            UNKNOWN_TOPIC_OR_PARTITION,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    assert_eq!(
        create_partitions(&mut c, 3, &[("growing", 5, None)], false),
        [INVALID_PARTITIONS]
    );
    // Assignments: one replica list per new partition, naming registered brokers.
    let bad = [
        Some(vec![vec![7]]),
        Some(vec![vec![1], vec![1]]),
        Some(vec![vec![1, 1]]),
    ];
    for a in bad {
        assert_eq!(
            create_partitions(&mut c, 3, &[("growing", 6, a.clone())], false),
            [INVALID_REPLICA_ASSIGNMENT],
            "{a:?}"
        );
    }
    assert_eq!(
        create_partitions(&mut c, 3, &[("growing", 6, Some(vec![vec![1]]))], false),
        [0]
    );
    assert_eq!(partition_count(&mut c, "growing"), 6);

    broker.kill();
    let broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        partition_count(&mut c, "growing"),
        6,
        "new partitions survive SIGKILL"
    );
    assert_eq!(produce_to(&mut c, "growing", 5, "after restart"), 0);
}

/// IncrementalAlterConfigs of topic resources: (name, [(key, op, value)]); (code, message) of each.
type Ops<'a> = &'a [(&'a str, i8, Option<&'a str>)];

fn incremental_alter(
    c: &mut Client,
    v: i16,
    resources: &[(i8, &str, Ops)],
    validate_only: bool,
) -> Vec<i16> {
    incremental_alter_answers(c, v, resources, validate_only)
        .into_iter()
        .map(|(code, _)| code)
        .collect()
}

/// As `incremental_alter`, with each resource's error message.
fn incremental_alter_answers(
    c: &mut Client,
    v: i16,
    resources: &[(i8, &str, Ops)],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .iter()
                .map(|(ty, name, ops)| {
                    AlterConfigsResource::default()
                        .with_resource_type(*ty)
                        .with_resource_name(s(name))
                        .with_configs(
                            ops.iter()
                                .map(|(k, op, v)| {
                                    AlterableConfig::default()
                                        .with_name(s(k))
                                        .with_config_operation(*op)
                                        .with_value(v.map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    match c.request(ApiKey::IncrementalAlterConfigs, v, req) {
        Some(ResponseKind::IncrementalAlterConfigs(r)) => r
            .responses
            .iter()
            .map(|r| {
                (
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect(),
        other => panic!("IncrementalAlterConfigs v{v}: {other:?}"),
    }
}

fn topic_value(c: &mut Client, topic: &str, key: &str) -> (String, i8) {
    let r = describe(c, 4, &[(TOPIC, topic, Some(&[key]))], false);
    let (value, source, _, _) = config(&r[0], key);
    (value, source)
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

#[test]
fn incremental_alter_configs_changes_topics_and_their_live_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "tuned", 1, &[]).topics[0].error_code,
        0
    );

    for v in 0..=1 {
        let retention = format!("{}", 1000 + v);
        let ops: Ops = &[("retention.ms", SET, Some(&retention))];
        let before = topic_value(&mut c, "tuned", "retention.ms");
        assert_eq!(
            incremental_alter(&mut c, v, &[(TOPIC, "tuned", ops)], true),
            [0]
        );
        assert_eq!(topic_value(&mut c, "tuned", "retention.ms"), before);
        assert_eq!(
            incremental_alter(&mut c, v, &[(TOPIC, "tuned", ops)], false),
            [0],
            "v{v}"
        );
        assert_eq!(
            topic_value(&mut c, "tuned", "retention.ms"),
            (retention.clone(), SOURCE_TOPIC)
        );
    }
    // Lists: append to the default ("delete"), subtract from it; DELETE restores the default.
    let append: Ops = &[("cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(TOPIC, "tuned", append)], false),
        [0]
    );
    assert_eq!(
        topic_value(&mut c, "tuned", "cleanup.policy").0,
        "delete,compact"
    );
    let subtract: Ops = &[("cleanup.policy", SUBTRACT, Some("delete"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(TOPIC, "tuned", subtract)], false),
        [0]
    );
    assert_eq!(topic_value(&mut c, "tuned", "cleanup.policy").0, "compact");
    let delete: Ops = &[
        ("cleanup.policy", DELETE, None),
        ("retention.ms", DELETE, None),
    ];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(TOPIC, "tuned", delete)], false),
        [0]
    );
    assert_eq!(
        topic_value(&mut c, "tuned", "cleanup.policy"),
        ("delete".to_string(), SOURCE_DEFAULT)
    );

    let errors = incremental_alter(
        &mut c,
        1,
        &[
            (TOPIC, "tuned", &[("retention.ms", APPEND, Some("5"))]),
            (TOPIC, "missing", &[("retention.ms", SET, Some("5"))]),
            (TOPIC, "tuned2", &[("no.such.config", SET, Some("5"))]),
            (TOPIC, "tuned3", &[("retention.ms", SET, Some("soon"))]),
            (BROKER, "1", &[("num.partitions", SET, Some("3"))]),
            (TOPIC, "dup", &[]),
            (TOPIC, "dup", &[]),
            (TOPIC, "tuned4", &[("retention.ms", SET, None)]),
        ],
        false,
    );
    assert_eq!(
        errors,
        [
            INVALID_CONFIG,
            UNKNOWN_TOPIC_OR_PARTITION,
            UNKNOWN_TOPIC_OR_PARTITION,
            UNKNOWN_TOPIC_OR_PARTITION,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    for t in ["tuned2", "tuned3", "tuned4"] {
        assert_eq!(create_topic(&mut c, 7, t, 1, &[]).topics[0].error_code, 0);
    }
    let errors = incremental_alter(
        &mut c,
        1,
        &[
            (TOPIC, "tuned2", &[("no.such.config", SET, Some("5"))]),
            (TOPIC, "tuned3", &[("retention.ms", SET, Some("soon"))]),
            (TOPIC, "tuned4", &[("retention.ms", SET, None)]),
        ],
        false,
    );
    assert_eq!(errors, [INVALID_CONFIG, INVALID_CONFIG, INVALID_REQUEST]);

    // The hosted log follows at once: a smaller max.message.bytes refuses a bigger batch.
    let big = "x".repeat(2000);
    assert_eq!(produce_to(&mut c, "tuned", 0, &big), 0);
    let small: Ops = &[("max.message.bytes", SET, Some("1000"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(TOPIC, "tuned", small)], false),
        [0]
    );
    assert_eq!(produce_to(&mut c, "tuned", 0, &big), MESSAGE_TOO_LARGE);

    broker.kill();
    let broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        topic_value(&mut c, "tuned", "max.message.bytes"),
        ("1000".to_string(), SOURCE_TOPIC),
        "configs survive SIGKILL"
    );
    assert_eq!(produce_to(&mut c, "tuned", 0, &big), MESSAGE_TOO_LARGE);
}

#[test]
fn alter_configs_replaces_every_override() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let r = create_topic(&mut c, 7, "replaced", 1, &[("retention.ms", "1000")]);
    assert_eq!(r.topics[0].error_code, 0);
    for v in 0..=2 {
        let bytes = format!("{}", 100_000 + i64::from(v));
        let req = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("replaced"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_value(Some(s(&bytes)))]),
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("missing")),
        ]);
        let Some(ResponseKind::AlterConfigs(r)) = c.request(ApiKey::AlterConfigs, v, req) else {
            panic!("AlterConfigs v{v}")
        };
        let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, UNKNOWN_TOPIC_OR_PARTITION], "v{v}");
        assert_eq!(
            topic_value(&mut c, "replaced", "retention.bytes"),
            (bytes, SOURCE_TOPIC)
        );
        // The earlier override is gone: AlterConfigs sets the whole set.
        assert_eq!(
            topic_value(&mut c, "replaced", "retention.ms").1,
            SOURCE_DEFAULT
        );
    }
}

#[test]
fn describe_cluster_lists_this_broker_and_refuses_controller_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let (host, port) = broker.addr.rsplit_once(':').unwrap();
    let port: i32 = port.parse().unwrap();
    for v in 0..=2 {
        let req = DescribeClusterRequest::default()
            .with_include_cluster_authorized_operations(true)
            .with_endpoint_type(1);
        let Some(ResponseKind::DescribeCluster(r)) = c.request(ApiKey::DescribeCluster, v, req)
        else {
            panic!("DescribeCluster v{v}")
        };
        assert_eq!((r.error_code, r.controller_id), (0, BrokerId(1)), "v{v}");
        assert_eq!(r.cluster_id.len(), 22);
        let brokers: Vec<(i32, &str, i32)> = r
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.as_str(), b.port))
            .collect();
        assert_eq!(brokers, [(1, host, port)]);
        assert_ne!(r.cluster_authorized_operations, i32::MIN);
    }
    let req = DescribeClusterRequest::default().with_endpoint_type(2);
    let Some(ResponseKind::DescribeCluster(r)) = c.request(ApiKey::DescribeCluster, 1, req) else {
        panic!("DescribeCluster")
    };
    const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
    assert_eq!(r.error_code, UNSUPPORTED_ENDPOINT_TYPE);
}

#[test]
fn describe_log_dirs_reports_partition_sizes_and_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "sized", 2, &[]).topics[0].error_code,
        0
    );
    assert_eq!(
        create_topic(&mut c, 7, "other", 1, &[]).topics[0].error_code,
        0
    );
    for i in 0..5 {
        produce_one(&mut c, "sized", &format!("value-{i}"));
    }
    let on_disk = std::fs::metadata(data.join("sized-0/00000000000000000000.log"))
        .unwrap()
        .len() as i64;
    assert!(on_disk > 0);
    for v in 1..=4 {
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        let only_sized = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(common::name("sized"))
                .with_partitions(vec![0, 1, 9]),
        ]));
        let all = DescribeLogDirsRequest::default().with_topics(None);
        for (req, topics) in [(only_sized, vec!["sized"]), (all, vec!["other", "sized"])] {
            let Some(ResponseKind::DescribeLogDirs(r)) = c.request(ApiKey::DescribeLogDirs, v, req)
            else {
                panic!("DescribeLogDirs v{v}")
            };
            assert_eq!((r.error_code, r.results.len()), (0, 1), "v{v}");
            let d = &r.results[0];
            assert_eq!(
                std::path::Path::new(d.log_dir.as_str()),
                std::fs::canonicalize(&data).unwrap()
            );
            let names: Vec<&str> = d.topics.iter().map(|t| t.name.0.as_str()).collect();
            assert_eq!(names, topics, "v{v}");
            let sized = d
                .topics
                .iter()
                .find(|t| t.name.0.as_str() == "sized")
                .unwrap();
            let sizes: Vec<(i32, i64)> = sized
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.partition_size))
                .collect();
            assert_eq!(sizes, [(0, on_disk), (1, 0)], "v{v}");
            if v >= 4 {
                assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes);
            }
        }
    }
}

#[test]
fn acl_apis_answer_security_disabled_as_kafka_without_an_authorizer() {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    const SECURITY_DISABLED: i16 = 54;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    for v in 1..=3 {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        let Some(ResponseKind::DescribeAcls(r)) = c.request(ApiKey::DescribeAcls, v, req) else {
            panic!("DescribeAcls v{v}")
        };
        assert_eq!((r.error_code, r.resources.len()), (SECURITY_DISABLED, 0));
        assert_eq!(
            r.error_message.unwrap().as_str(),
            "No Authorizer is configured."
        );

        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let req = CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]);
        let Some(ResponseKind::CreateAcls(r)) = c.request(ApiKey::CreateAcls, v, req) else {
            panic!("CreateAcls v{v}")
        };
        let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [SECURITY_DISABLED, SECURITY_DISABLED]);

        let req = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)]);
        let Some(ResponseKind::DeleteAcls(r)) = c.request(ApiKey::DeleteAcls, v, req) else {
            panic!("DeleteAcls v{v}")
        };
        let codes: Vec<i16> = r.filter_results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [SECURITY_DISABLED]);
    }
}

#[test]
fn create_time_outside_the_topic_timestamp_window_is_refused_as_kip_937_says() {
    const INVALID_TIMESTAMP: i16 = 32;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let configs: [(&str, &[(&str, &str)]); 4] = [
        ("defaults", &[]),
        ("lenient", &[("message.timestamp.after.max.ms", "86400000")]),
        ("strict", &[("message.timestamp.before.max.ms", "60000")]),
        ("appended", &[("message.timestamp.type", "LogAppendTime")]),
    ];
    for (topic, cfg) in configs {
        assert_eq!(
            create_topic(&mut c, 7, topic, 1, cfg).topics[0].error_code,
            0
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hour = 3_600_000;
    let produce_at = |c: &mut Client, topic: &str, ts: i64| -> (i16, Option<String>) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(common::name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(common::records_batch(
                        -1,
                        -1,
                        -1,
                        ts,
                        &["a", "b"],
                    )))])]);
        match c.request(ApiKey::Produce, 9, req) {
            Some(ResponseKind::Produce(r)) => {
                let p = &r.responses[0].partition_responses[0];
                (
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                )
            }
            other => panic!("Produce: {other:?}"),
        }
    };
    // Kafka's defaults: up to an hour ahead of the broker's clock, any age.
    assert_eq!(produce_at(&mut c, "defaults", now).0, 0);
    assert_eq!(produce_at(&mut c, "defaults", now - 1000 * 24 * hour).0, 0);
    let (code, message) = produce_at(&mut c, "defaults", now + 2 * hour);
    assert_eq!(code, INVALID_TIMESTAMP);
    assert!(message.unwrap().contains("is out of range"));
    assert_eq!(produce_at(&mut c, "lenient", now + 2 * hour).0, 0);
    assert_eq!(
        produce_at(&mut c, "strict", now - hour).0,
        INVALID_TIMESTAMP
    );
    assert_eq!(produce_at(&mut c, "strict", now).0, 0);
    // LogAppendTime topics stamp the broker's time and check nothing.
    assert_eq!(produce_at(&mut c, "appended", now + 48 * hour).0, 0);
    // Refused batches are not written: only the two accepted ones (4 records) are in the log.
    assert_eq!(fetch_partition(&mut c, "defaults", 0).high_watermark, 4);
}

/// (value, source) of each synonym of one config of the broker resource `name`.
fn broker_synonyms(c: &mut Client, name: &str, key: &str) -> Vec<(String, i8)> {
    let r = describe(c, 4, &[(BROKER, name, Some(&[key]))], true);
    assert_eq!(r[0].error_code, 0, "{:?}", r[0].error_message);
    r[0].configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .map(|e| {
            e.synonyms
                .iter()
                .map(|s| {
                    let v = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    (v, s.source)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dynamic_broker_configs_set_topic_defaults_cluster_wide_and_per_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "inherits", 1, &[]).topics[0].error_code,
        0
    );
    let own = create_topic(&mut c, 7, "own", 1, &[("retention.ms", "5000")]);
    assert_eq!(own.topics[0].error_code, 0);
    let week = "604800000".to_string();

    // validate_only changes nothing.
    let hour: Ops = &[("log.retention.ms", SET, Some("3600000"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(BROKER, "", hour)], true),
        [0]
    );
    assert_eq!(
        broker_synonyms(&mut c, "1", "log.retention.ms"),
        [(week.clone(), SOURCE_DEFAULT)]
    );

    // The cluster-wide default.
    assert_eq!(
        incremental_alter(&mut c, 1, &[(BROKER, "", hour)], false),
        [0]
    );
    let r = describe(
        &mut c,
        4,
        &[(BROKER, "1", Some(&["log.retention.ms"]))],
        false,
    );
    assert_eq!(
        config(&r[0], "log.retention.ms"),
        (
            "3600000".into(),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            false,
            TYPE_LONG
        )
    );
    assert_eq!(
        broker_synonyms(&mut c, "", "log.retention.ms"),
        [
            ("3600000".to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER),
            (week.clone(), SOURCE_DEFAULT)
        ]
    );
    let r = describe(&mut c, 4, &[(BROKER, "", None)], false);
    assert_eq!(r[0].configs.len(), 1, "only the values set cluster-wide");
    assert_eq!(
        topic_value(&mut c, "inherits", "retention.ms"),
        ("3600000".into(), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(
        topic_value(&mut c, "own", "retention.ms"),
        ("5000".into(), SOURCE_TOPIC)
    );

    // This broker's own value wins over the cluster's; Kafka's synonym order.
    let two: Ops = &[("log.retention.ms", SET, Some("7200000"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(BROKER, "1", two)], false),
        [0]
    );
    assert_eq!(
        broker_synonyms(&mut c, "1", "log.retention.ms"),
        [
            ("7200000".to_string(), SOURCE_DYNAMIC_BROKER),
            ("3600000".to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER),
            (week.clone(), SOURCE_DEFAULT)
        ]
    );
    assert_eq!(
        topic_value(&mut c, "inherits", "retention.ms"),
        ("7200000".into(), SOURCE_DYNAMIC_BROKER)
    );

    // Hosted logs take a new default at once: a smaller message.max.bytes refuses a bigger batch.
    let big = "x".repeat(2000);
    assert_eq!(produce_to(&mut c, "inherits", 0, &big), 0);
    let small: Ops = &[("message.max.bytes", SET, Some("1000"))];
    assert_eq!(
        incremental_alter(&mut c, 1, &[(BROKER, "", small)], false),
        [0]
    );
    assert_eq!(produce_to(&mut c, "inherits", 0, &big), MESSAGE_TOO_LARGE);

    // Read-only settings, bad values and other brokers are refused.
    let fixed: Ops = &[
        ("node.id", SET, Some("5")),
        ("log.retention.ms", SET, Some("1")),
        ("num.partitions", SET, Some("3")),
    ];
    let bad: Ops = &[("log.retention.ms", SET, Some("soon"))];
    let answers = incremental_alter_answers(
        &mut c,
        1,
        &[(BROKER, "", fixed), (BROKER, "1", bad), (BROKER, "7", hour)],
        false,
    );
    assert_eq!(
        answers[0],
        (
            INVALID_REQUEST,
            Some("Cannot update these configs dynamically: Set(node.id, num.partitions)".into())
        )
    );
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [INVALID_REQUEST, INVALID_CONFIG, INVALID_REQUEST]
    );

    // They survive a restart (the Raft log, then its snapshot).
    broker.kill();
    let broker = BrokerProcess::start(&data, &[]);
    let mut c = broker.connect();
    assert_eq!(
        topic_value(&mut c, "inherits", "retention.ms"),
        ("7200000".into(), SOURCE_DYNAMIC_BROKER),
        "dynamic configs survive SIGKILL"
    );
    assert_eq!(
        broker_synonyms(&mut c, "", "log.retention.ms")[0],
        ("3600000".to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(produce_to(&mut c, "inherits", 0, &big), MESSAGE_TOO_LARGE);

    // DELETE removes them, and the static defaults are back.
    let del_retention: Ops = &[("log.retention.ms", DELETE, None)];
    let del_both: Ops = &[
        ("log.retention.ms", DELETE, None),
        ("message.max.bytes", DELETE, None),
    ];
    assert_eq!(
        incremental_alter(
            &mut c,
            1,
            &[(BROKER, "1", del_retention), (BROKER, "", del_both)],
            false
        ),
        [0, 0]
    );
    assert_eq!(
        broker_synonyms(&mut c, "1", "log.retention.ms"),
        [(week.clone(), SOURCE_DEFAULT)]
    );
    assert_eq!(
        topic_value(&mut c, "inherits", "retention.ms"),
        (week, SOURCE_DEFAULT)
    );
    assert!(describe(&mut c, 4, &[(BROKER, "", None)], false)[0]
        .configs
        .is_empty());
    assert_eq!(produce_to(&mut c, "inherits", 0, &big), 0);
}
