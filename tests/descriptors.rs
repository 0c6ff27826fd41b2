//! Partitions are not bounded by file descriptors: idle partitions hold none, so a broker under a
//! low `ulimit -n` hosts far more partitions than it has descriptors, and every one of them takes a
//! produce and serves a fetch, also after a restart.

mod common;

use common::{create_topic, name, BrokerProcess, Client};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, MetadataRequest, ProduceRequest, ResponseKind,
};

const NOFILE: u64 = 256;
const TOPICS: usize = 60;
const PARTITIONS: i32 = 10;

/// One record to each partition of `topic`, whose value names the partition: every error code.
fn produce_everywhere(c: &mut Client, topic: &str) -> Vec<i16> {
    let data = (0..PARTITIONS)
        .map(|p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(common::batch(&[&format!("{topic}/{p}")])))
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(data)]);
    let Some(ResponseKind::Produce(r)) = c.request(ApiKey::Produce, 9, req) else {
        panic!("produce to {topic}")
    };
    r.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Fetches every partition of `topic` from offset 0: (error code, records bytes) per partition.
fn fetch_everywhere(c: &mut Client, topic: &str) -> Vec<(i16, usize)> {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 16)
        })
        .collect();
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(partitions)]);
    let Some(ResponseKind::Fetch(r)) = c.request(ApiKey::Fetch, 12, req) else {
        panic!("fetch from {topic}")
    };
    r.responses[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.records.as_ref().map_or(0, |b| b.len())))
        .collect()
}

/// Every partition of every topic: (leader, error code) from Metadata.
fn leaders(c: &mut Client) -> Vec<(i32, i16)> {
    let Some(ResponseKind::Metadata(m)) = c.request(
        ApiKey::Metadata,
        12,
        MetadataRequest::default().with_topics(None),
    ) else {
        panic!("metadata")
    };
    m.topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.0.starts_with("many-")))
        .flat_map(|t| t.partitions.iter().map(|p| (p.leader_id.0, p.error_code)))
        .collect()
}

fn check_every_partition(c: &mut Client, produce: bool) {
    for t in 0..TOPICS {
        let topic = format!("many-{t}");
        if produce {
            assert_eq!(
                produce_everywhere(c, &topic),
                vec![0; PARTITIONS as usize],
                "{topic}"
            );
        }
        for (p, (code, bytes)) in fetch_everywhere(c, &topic).into_iter().enumerate() {
            assert_eq!(code, 0, "{topic}-{p}");
            assert!(bytes > 0, "{topic}-{p} served no records");
        }
    }
    let leaders = leaders(c);
    assert_eq!(leaders.len(), TOPICS * PARTITIONS as usize);
    assert!(
        leaders
            .iter()
            .all(|&(leader, code)| leader >= 0 && code == 0),
        "{leaders:?}"
    );
}

#[test]
fn a_broker_with_256_descriptors_hosts_600_partitions_that_all_take_produce_and_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_with_nofile(dir.path(), &[], NOFILE);
    let mut c = broker.connect();
    for t in 0..TOPICS {
        let r = create_topic(&mut c, 7, &format!("many-{t}"), PARTITIONS, &[]);
        assert_eq!(r.topics[0].error_code, 0, "topic {t}");
    }
    check_every_partition(&mut c, true);
    let open = broker.open_descriptors();
    assert!(open < NOFILE as usize, "{open} descriptors open");

    // A graceful restart under the same limit brings every partition back.
    assert!(broker.terminate_with("TERM"));
    let broker = BrokerProcess::start_with_nofile(dir.path(), &[], NOFILE);
    let mut c = broker.connect();
    check_every_partition(&mut c, false);
}
