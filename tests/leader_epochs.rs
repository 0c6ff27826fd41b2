//! OffsetForLeaderEpoch (key 23) against the real binary: every advertised version answers from the
//! partition's leader-epoch cache, checks the caller's current leader epoch (KIP-320), and the cache
//! (`leader-epoch-checkpoint`) survives kill -9 and DeleteRecords.

mod common;

use common::{batch, create_topic, name, topic_id, BrokerProcess, Client};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::*;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn end_offset(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    match c.request(ApiKey::OffsetForLeaderEpoch, version, req) {
        Some(ResponseKind::OffsetForLeaderEpoch(mut r)) => {
            assert_eq!(r.topics.len(), 1);
            assert_eq!(r.topics[0].topic.0.as_str(), topic);
            r.topics.remove(0).partitions.remove(0)
        }
        other => panic!("OffsetForLeaderEpoch v{version}: {other:?}"),
    }
}

fn produce(c: &mut Client, topic: &str, values: &[&str]) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(values)))])]);
    match c.request(ApiKey::Produce, 9, req) {
        Some(ResponseKind::Produce(r)) => {
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0)
        }
        other => panic!("Produce: {other:?}"),
    }
}

fn leader_epoch_in_metadata(c: &mut Client, topic: &str) -> i32 {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    match c.request(ApiKey::Metadata, 12, req) {
        Some(ResponseKind::Metadata(m)) => m.topics[0].partitions[0].leader_epoch,
        other => panic!("Metadata: {other:?}"),
    }
}

#[test]
fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 5, "epochs", 1, &[]).topics[0].error_code,
        0
    );
    let epoch = leader_epoch_in_metadata(&mut c, "epochs");
    assert!(epoch >= 0);
    let api = vltava::handlers::lookup(ApiKey::OffsetForLeaderEpoch as i16).unwrap();
    assert_eq!((api.min_version, api.max_version), (2, 4));

    // Nothing written yet: the leader's epoch starts where the log ends (Kafka's makeLeader).
    let r = end_offset(&mut c, 4, "epochs", 0, epoch, epoch);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, epoch, 0));

    produce(&mut c, "epochs", &["a", "b", "c"]);
    produce(&mut c, "epochs", &["d"]);
    for v in api.min_version..=api.max_version {
        let r = end_offset(&mut c, v, "epochs", 0, epoch, epoch);
        assert_eq!(
            (r.error_code, r.leader_epoch, r.end_offset),
            (0, epoch, 4),
            "v{v}"
        );
        let r = end_offset(&mut c, v, "epochs", 0, -1, epoch + 1);
        assert_eq!(
            (r.error_code, r.leader_epoch, r.end_offset),
            (0, -1, -1),
            "an epoch above every known one is undefined (v{v})"
        );
        let r = end_offset(&mut c, v, "epochs", 0, epoch + 1, epoch);
        assert_eq!(r.error_code, UNKNOWN_LEADER_EPOCH, "v{v}");
        if epoch > 0 {
            let r = end_offset(&mut c, v, "epochs", 0, epoch - 1, epoch);
            assert_eq!(r.error_code, FENCED_LEADER_EPOCH, "v{v}");
        }
        let r = end_offset(&mut c, v, "epochs", 1, -1, epoch);
        assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
        let r = end_offset(&mut c, v, "no-such-topic", 0, -1, epoch);
        assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
    }

    // DeleteRecords past the first batch, then kill -9: the cache follows the log start and survives.
    let id = topic_id(&mut c, "epochs");
    assert!(!id.is_nil());
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("epochs"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(3)])]);
    match c.request(ApiKey::DeleteRecords, 2, req) {
        Some(ResponseKind::DeleteRecords(r)) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
            assert_eq!(r.topics[0].partitions[0].low_watermark, 3);
        }
        other => panic!("DeleteRecords: {other:?}"),
    }
    broker.kill();
    let checkpoint = dir.path().join("epochs-0").join("leader-epoch-checkpoint");
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    assert_eq!(
        text,
        format!("0\n1\n{epoch} 3\n"),
        "Kafka's checkpoint format"
    );
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    // The restarted broker registered anew: its old incarnation was fenced and the partition led
    // again at a newer epoch, which starts at the log's end.
    let now = leader_epoch_in_metadata(&mut c, "epochs");
    assert!(now > epoch, "epoch {now} after the restart, {epoch} before");
    let r = end_offset(&mut c, 4, "epochs", 0, now, epoch);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, epoch, 4));
    let r = end_offset(&mut c, 4, "epochs", 0, now, now);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, now, 4));
    let r = end_offset(&mut c, 4, "epochs", 0, -1, -1);
    assert_eq!(
        (r.error_code, r.leader_epoch, r.end_offset),
        (0, -1, -1),
        "the undefined epoch has no end"
    );
}
