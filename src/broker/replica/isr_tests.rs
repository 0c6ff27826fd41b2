//! The leader's side of the ISR in-process: acks=all answers once the followers in the ISR have the
//! records (or at the timeout), min.insync.replicas refuses and freezes the high watermark, and a
//! follower joins the ISR when it catches up and leaves it when it stops fetching.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::fetcher_tests::replica_fetch;
use super::tests::{broker, place, produce_acks};
use crate::broker::Broker;
use crate::cluster::{MetadataCommand, PartitionInfo, TopicInfo};

const ME: i32 = 1;
const OTHER: i32 = 2;

fn code(r: &kafka_protocol::messages::ProduceResponse) -> i16 {
    r.responses[0].partition_responses[0].error_code
}

/// Waits (bounded) until the image lists `isr` for partition 0 of `topic` and this broker applied it.
async fn await_isr(b: &Broker, topic: &str, isr: &[i32]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let applied = b.partitions.get(topic, 0).map(|p| p.state().isr);
        if applied.as_deref() == Some(isr) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ISR of {topic} is {applied:?}, not {isr:?}"
        );
        // The change is written through Raft and applied by the reconcile task.
        b.partitions.reconcile(&b.metadata.image());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_answers_once_the_isr_has_the_records_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "isr", ME, 5, &[ME, OTHER]).await;
    let pending = {
        let b = b.clone();
        tokio::spawn(async move { produce_acks(&b, 9, "isr", -1, 10_000).await })
    };
    // The follower fetches the record (its log end still 0), then asks for more from 1: now it
    // has it, and so does the whole ISR.
    let mut first = replica_fetch(&b, "isr", OTHER, 0, -1).await;
    while first.records.as_ref().is_none_or(|r| r.is_empty()) {
        first = replica_fetch(&b, "isr", OTHER, 0, -1).await;
    }
    assert!(
        !pending.is_finished(),
        "acknowledged before the follower had the record"
    );
    let second = replica_fetch(&b, "isr", OTHER, 1, 5).await;
    assert_eq!(second.high_watermark, 1);
    assert_eq!(code(&pending.await.unwrap()), 0);

    // Nobody fetches the next one: the request's timeout answers, and it stays uncommitted.
    let timed_out = produce_acks(&b, 9, "isr", -1, 200).await;
    assert_eq!(code(&timed_out), ResponseError::RequestTimedOut.code());
    let p = b.partitions.get("isr", 0).unwrap();
    assert_eq!(p.high_watermark(), 1);
    // acks=1 answers after the leader's append alone.
    assert_eq!(code(&produce_acks(&b, 9, "isr", 1, 200).await), 0);
    assert_eq!(p.high_watermark(), 1);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_gates_acks_all_and_followers_join_and_leave_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let topic = TopicInfo {
        name: "strict".into(),
        id: uuid::Uuid::new_v4(),
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
        partitions: vec![PartitionInfo {
            partition: 0,
            leader: ME,
            leader_epoch: 5,
            replicas: vec![ME, OTHER],
            isr: vec![ME],
            partition_epoch: 0,
        }],
        internal: false,
    };
    b.metadata
        .write(MetadataCommand::CreateTopic(topic))
        .await
        .unwrap();
    b.partitions.reconcile(&b.metadata.image());
    let enough = ResponseError::NotEnoughReplicas.code();
    assert_eq!(code(&produce_acks(&b, 9, "strict", -1, 1000).await), enough);
    // acks=1 is appended, but an ISR under min.insync.replicas commits nothing (KIP-966).
    assert_eq!(code(&produce_acks(&b, 9, "strict", 1, 1000).await), 0);
    let p = b.partitions.get("strict", 0).unwrap();
    assert_eq!(p.high_watermark(), 0);

    // The follower catches up: the leader asks the controller to add it, and then commits.
    let caught_up = replica_fetch(&b, "strict", OTHER, 1, 5).await;
    assert_eq!(caught_up.error_code, 0);
    await_isr(&b, "strict", &[ME, OTHER]).await;
    assert_eq!(p.high_watermark(), 1);
    let image = b.metadata.image();
    assert_eq!(image.topics["strict"].partitions[0].partition_epoch, 1);
    assert_eq!(
        image.topics["strict"].partitions[0].leader_epoch, 5,
        "an ISR change is no leader change"
    );

    // Then it stops fetching: past replica.lag.time.max.ms the leader drops it again.
    let lag_max = 30_000;
    b.replicas
        .shrink_lagging_isrs(crate::clock::now_ms() + lag_max + 1, lag_max);
    await_isr(&b, "strict", &[ME]).await;
    assert_eq!(code(&produce_acks(&b, 9, "strict", -1, 1000).await), enough);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_follower_does_not_join_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<Broker> = broker(dir.path()).await;
    place(&b, "fenced", ME, 5, &[ME, OTHER]).await;
    let epoch = b.metadata.image().registrations[&OTHER].epoch;
    b.metadata
        .write(MetadataCommand::FenceBroker { id: OTHER, epoch })
        .await
        .unwrap();
    await_isr(&b, "fenced", &[ME]).await;
    assert_eq!(code(&produce_acks(&b, 9, "fenced", 1, 1000).await), 0);
    // It still fetches (a fenced broker that has not noticed yet), all caught up: not added.
    for _ in 0..3 {
        replica_fetch(&b, "fenced", OTHER, 1, 5).await;
    }
    let image = b.metadata.image();
    assert_eq!(image.topics["fenced"].partitions[0].isr, vec![ME]);
    assert_eq!(b.partitions.get("fenced", 0).unwrap().high_watermark(), 1);
    b.shutdown().await;
}
