//! Authorized-operations fields as Kafka answers them without an authorizer: every operation the
//! resource type supports (`AclEntry.supportedOperations`), or Kafka's sentinel when not asked for.

mod common;

use common::{create_topic, name, BrokerProcess};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

const NOT_REQUESTED: i32 = i32::MIN;
// AclOperation codes.
const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn bits(ops: &[i32]) -> i32 {
    ops.iter().fold(0, |acc, op| acc | (1 << op))
}

#[test]
fn metadata_and_describe_cluster_report_kafkas_supported_operations() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 5, "ops", 1, &[]).topics[0].error_code,
        0
    );
    let cluster = bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ]);
    let topic = bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);

    for v in 8..=12 {
        for asked in [true, false] {
            let mut topics = vec![
                MetadataRequestTopic::default().with_name(Some(name("ops"))),
                MetadataRequestTopic::default().with_name(Some(name("absent"))),
            ];
            if v >= 12 {
                topics.push(
                    MetadataRequestTopic::default()
                        .with_name(None)
                        .with_topic_id(uuid::Uuid::new_v4()),
                );
            }
            let req = MetadataRequest::default()
                .with_topics(Some(topics))
                .with_allow_auto_topic_creation(false)
                .with_include_topic_authorized_operations(asked)
                .with_include_cluster_authorized_operations(asked && v <= 10);
            let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, v, req) else {
                panic!("Metadata v{v}")
            };
            // The cluster's field exists in v8-10 only.
            let want_cluster = if asked && v <= 10 {
                cluster
            } else {
                NOT_REQUESTED
            };
            assert_eq!(m.cluster_authorized_operations, want_cluster, "v{v}");
            let want_topic = if asked { topic } else { NOT_REQUESTED };
            let got: Vec<(i16, i32)> = m
                .topics
                .iter()
                .map(|t| (t.error_code, t.topic_authorized_operations))
                .collect();
            // A named topic gets them even when it does not exist; an unknown topic id does not.
            let mut want = vec![(0, want_topic), (UNKNOWN_TOPIC_OR_PARTITION, want_topic)];
            if v >= 12 {
                want.push((UNKNOWN_TOPIC_ID, NOT_REQUESTED));
            }
            assert_eq!(got, want, "v{v} asked={asked}");
        }
    }

    for v in 0..=2 {
        for asked in [true, false] {
            let req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(asked)
                .with_endpoint_type(1);
            let Some(ResponseKind::DescribeCluster(r)) = c.request(ApiKey::DescribeCluster, v, req)
            else {
                panic!("DescribeCluster v{v}")
            };
            let want = if asked { cluster } else { NOT_REQUESTED };
            assert_eq!(r.cluster_authorized_operations, want, "v{v} asked={asked}");
        }
    }
}
