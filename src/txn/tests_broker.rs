//! The coordinator on a real single-node broker: `__transaction_state` created on first use through
//! the broker's InternalTopic with Kafka's configs, producer ids from the Raft-allocated blocks, and
//! the transaction log replayed from disk after a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::config::Config;

async fn broker(dir: &Path) -> Arc<Broker> {
    let config = Config {
        data_dir: dir.to_path_buf(),
        transaction_state_log_num_partitions: 4,
        ..Config::default()
    };
    Broker::start(config, "127.0.0.1".into(), 9092)
        .await
        .unwrap()
}

async fn coordinator(b: &Arc<Broker>) -> Arc<TransactionCoordinator> {
    let c = TransactionCoordinator::new(
        TxnConfig::from_config(&b.config),
        TxnHandles::for_broker(
            Arc::downgrade(b),
            &b.config,
            b.metadata.subscribe(),
            RecordingMarkerWriter::new(),
            Clock::System,
        ),
    );
    assert!(c.ensure_topic().await);
    c.on_metadata(&b.metadata.image());
    tokio::time::timeout(Duration::from_secs(30), c.wait_loaded())
        .await
        .expect("the transaction log loads");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_log_is_created_written_and_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let c = coordinator(&b).await;
    let topic = b.metadata.image().topics[TRANSACTION_STATE_TOPIC].clone();
    assert_eq!(topic.partitions.len(), 4);
    assert!(topic.internal);
    assert_eq!(topic.configs["cleanup.policy"], "compact");
    assert_eq!(topic.configs["min.insync.replicas"], "1");
    let (pid, epoch) = c.init_producer_id("t", 60_000, None).await.unwrap();
    assert_eq!(epoch, 0);
    c.add_partitions("t", pid, 0, vec![("a".into(), 0)])
        .await
        .unwrap();
    c.end_txn("t", pid, 0, true).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while c.state_of("t").map(|m| m.state) != Some(TxnState::CompleteCommit) {
        assert!(tokio::time::Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    b.shutdown().await;
    drop(b);

    let b = broker(dir.path()).await;
    let c = coordinator(&b).await;
    let md = c.state_of("t").expect("replayed");
    assert_eq!(
        (md.state, md.producer_id, md.producer_epoch),
        (TxnState::CompleteCommit, pid, 0)
    );
    assert_eq!(c.init_producer_id("t", 60_000, None).await, Ok((pid, 1)));
    b.shutdown().await;
}
