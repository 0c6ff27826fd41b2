//! In-process tests of the coordinator on paused time, over an in-memory transaction log and the
//! recording marker writer: the commit and abort paths with their durable records, marker retries,
//! fencing, timeouts, expiry, failed and held writes, not-coordinator and loading answers, and
//! reload after a leadership change resuming a decided transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::ports::{BoxFuture, PendingWrite, ProducerIdSource, TxnLog};
use super::records::{decode_key, TxnLogValue};
use super::*;
use crate::broker::internal_topic::{InternalTopicError, ReplayedRecord};
use crate::clock::Clock;
use crate::cluster::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};

const PARTITIONS: i32 = 4;

type Record = (Bytes, Option<Bytes>);

/// `__transaction_state` in memory: every committed record per partition, in order.
#[derive(Default)]
pub(super) struct MemLog {
    records: Mutex<HashMap<i32, Vec<Record>>>,
    /// Appends are refused after the fact (the ISR shrank), nothing stored.
    fail: AtomicBool,
    /// While true, appends wait before they commit.
    hold: Option<watch::Sender<bool>>,
    /// Replay answers "not hosted here" (the partition stays loading).
    not_hosted: AtomicBool,
}

impl MemLog {
    fn new() -> Arc<MemLog> {
        Arc::new(MemLog {
            hold: Some(watch::Sender::new(false)),
            ..MemLog::default()
        })
    }

    fn hold(&self, on: bool) {
        if let Some(h) = &self.hold {
            h.send_replace(on);
        }
    }

    /// The states written for `id`, in order (Dead for a tombstone).
    fn states(&self, id: &str) -> Vec<TxnState> {
        let p = partition_for(id, PARTITIONS);
        let records = self.records.lock().unwrap();
        records
            .get(&p)
            .into_iter()
            .flatten()
            .filter(|(k, _)| decode_key(k.clone()).unwrap().as_deref() == Some(id))
            .map(|(_, v)| match v {
                None => TxnState::Dead,
                Some(v) => TxnLogValue::decode(v.clone()).unwrap().state,
            })
            .collect()
    }
}

impl TxnLog for MemLog {
    fn partition_count(&self) -> i32 {
        PARTITIONS
    }

    fn exists(&self) -> bool {
        true
    }

    fn ensure_exists(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn append(
        &self,
        partition: i32,
        records: Vec<Record>,
        _now_ms: i64,
    ) -> Result<PendingWrite, InternalTopicError> {
        let fail = self.fail.load(Ordering::SeqCst);
        if !fail {
            let mut all = self.records.lock().unwrap();
            all.entry(partition).or_default().extend(records);
        }
        let mut hold = self.hold.as_ref().map(|h| h.subscribe());
        Ok(Box::pin(async move {
            if let Some(h) = hold.as_mut() {
                let _ = h.wait_for(|held| !held).await;
            }
            if fail {
                return Err(InternalTopicError::NotEnoughReplicasAfterAppend(partition));
            }
            Ok(())
        }))
    }

    fn replay(&self, partition: i32, visit: &mut dyn FnMut(ReplayedRecord)) -> bool {
        if self.not_hosted.load(Ordering::SeqCst) {
            return false;
        }
        let records = self.records.lock().unwrap();
        for (i, (k, v)) in records.get(&partition).into_iter().flatten().enumerate() {
            visit(ReplayedRecord {
                offset: i as i64,
                key: Some(k.clone()),
                value: v.clone(),
            });
        }
        true
    }
}

struct Counter(AtomicI64);

impl ProducerIdSource for Counter {
    fn next_id(&self) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(async move { Ok(self.0.fetch_add(1, Ordering::SeqCst)) })
    }
}

/// `__transaction_state` with every partition led by `leader` at `epoch`.
pub(super) fn image(leader: i32, epoch: i32) -> Arc<MetadataImage> {
    let mut image = MetadataImage::empty();
    image.topics.insert(
        TRANSACTION_STATE_TOPIC.into(),
        TopicInfo {
            name: TRANSACTION_STATE_TOPIC.into(),
            id: uuid::Uuid::new_v4(),
            configs: Default::default(),
            partitions: (0..PARTITIONS)
                .map(|p| PartitionInfo {
                    partition: p,
                    leader,
                    leader_epoch: epoch,
                    replicas: vec![leader],
                    isr: vec![leader],
                    partition_epoch: 0,
                })
                .collect(),
            internal: true,
        },
    );
    for id in [1, 2] {
        let b = BrokerInfo {
            id,
            host: format!("h{id}"),
            port: 9092,
            rack: None,
            listeners: Vec::new(),
        };
        image.brokers.insert(id, b);
    }
    Arc::new(image)
}

pub(super) struct Harness {
    pub(super) c: Arc<TransactionCoordinator>,
    pub(super) log: Arc<MemLog>,
    pub(super) markers: Arc<RecordingMarkerWriter>,
}

fn config() -> TxnConfig {
    TxnConfig {
        transaction_version: 0,
        max_timeout_ms: 900_000,
        abort_scan_interval_ms: 100,
        id_expiration_ms: 3_600_000,
        expiry_scan_interval_ms: 60_000,
    }
}

pub(super) async fn harness_on(log: Arc<MemLog>, epoch: i32) -> Harness {
    let markers = RecordingMarkerWriter::new();
    let img = image(1, epoch);
    let c = TransactionCoordinator::new(
        config(),
        TxnHandles {
            log: log.clone(),
            producer_ids: Arc::new(Counter(AtomicI64::new(1000))),
            markers: markers.clone(),
            metadata: watch::channel(img.clone()).1,
            clock: Clock::tokio(),
            spawner: tokio::runtime::Handle::current(),
            node_id: 1,
        },
    );
    c.on_metadata(&img);
    c.wait_loaded().await;
    Harness { c, log, markers }
}

pub(super) async fn harness() -> Harness {
    harness_on(MemLog::new(), 3).await
}

pub(super) fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

/// Polls `cond` on paused time (each sleep lets the spawned tasks run) for at most a minute.
pub(super) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

pub(super) fn state(h: &Harness, id: &str) -> Option<TxnState> {
    h.c.state_of(id).map(|m| m.state)
}

#[tokio::test(start_paused = true)]
async fn a_commit_writes_prepare_then_markers_then_complete() {
    let h = harness().await;
    assert_eq!(h.c.init_producer_id("t", 60_000, None).await, Ok((1000, 0)));
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0), tp("a", 1)])
        .await
        .unwrap();
    h.c.add_offsets("t", 1000, 0, "g", 50).await.unwrap();
    h.c.end_txn("t", 1000, 0, true).await.unwrap();
    eventually("CompleteCommit", || {
        state(&h, "t") == Some(TxnState::CompleteCommit)
    })
    .await;
    use TxnState::*;
    assert_eq!(
        h.log.states("t"),
        vec![Empty, Ongoing, Ongoing, PrepareCommit, CompleteCommit]
    );
    let requests = h.markers.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (
            r.producer_id,
            r.producer_epoch,
            r.commit,
            r.coordinator_epoch
        ),
        (1000, 0, true, 3)
    );
    let offsets = tp(
        "__consumer_offsets",
        crate::group::records::partition_for("g", 50),
    );
    assert_eq!(r.partitions, vec![offsets, tp("a", 0), tp("a", 1)]);
    // A retried EndTxn of the completed transaction succeeds; the other outcome is refused.
    assert_eq!(h.c.end_txn("t", 1000, 0, true).await, Ok(()));
    assert_eq!(
        h.c.end_txn("t", 1000, 0, false).await,
        Err(TxnError::InvalidTxnState)
    );
    assert!(h.c.state_of("t").unwrap().partitions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn markers_are_retried_until_every_partition_has_one() {
    let h = harness().await;
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0), tp("a", 1), tp("gone", 0)])
        .await
        .unwrap();
    h.markers
        .set_outcome(tp("a", 1), Some(MarkerOutcome::Retry("no leader".into())));
    h.markers
        .set_outcome(tp("gone", 0), Some(MarkerOutcome::PartitionGone));
    h.c.end_txn("t", 1000, 0, false).await.unwrap();
    eventually("three rounds", || h.markers.requests().len() >= 3).await;
    assert_eq!(state(&h, "t"), Some(TxnState::PrepareAbort));
    // Meanwhile the producer is told to wait.
    assert_eq!(
        h.c.end_txn("t", 1000, 0, false).await,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        h.c.init_producer_id("t", 60_000, None).await,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        h.c.add_partitions("t", 1000, 0, vec![tp("b", 0)]).await,
        Err(TxnError::ConcurrentTransactions)
    );
    h.markers.set_outcome(tp("a", 1), None);
    eventually("CompleteAbort", || {
        state(&h, "t") == Some(TxnState::CompleteAbort)
    })
    .await;
    let requests = h.markers.requests();
    assert!(requests.iter().all(|r| !r.commit));
    assert_eq!(requests.last().unwrap().partitions, vec![tp("a", 1)]);
    assert_eq!(
        requests[1].partitions,
        vec![tp("a", 1)],
        "only what is missing is resent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let h = harness().await;
    assert_eq!(h.c.init_producer_id("t", 60_000, None).await, Ok((1000, 0)));
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    assert_eq!(
        h.c.init_producer_id("t", 60_000, None).await,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        h.c.add_partitions("t", 1000, 0, vec![tp("a", 1)]).await,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        h.c.end_txn("t", 1000, 0, true).await,
        Err(TxnError::ProducerFenced)
    );
    eventually("CompleteAbort", || {
        state(&h, "t") == Some(TxnState::CompleteAbort)
    })
    .await;
    let r = &h.markers.requests()[0];
    assert_eq!((r.commit, r.producer_epoch), (false, 1));
    assert_eq!(h.c.init_producer_id("t", 60_000, None).await, Ok((1000, 2)));
    use TxnState::*;
    assert_eq!(
        h.log.states("t"),
        vec![Empty, Ongoing, PrepareAbort, CompleteAbort, Empty]
    );
    // KIP-360: the fenced producer cannot recover with its old epoch; the new one can retry.
    assert_eq!(
        h.c.init_producer_id("t", 60_000, Some((1000, 0))).await,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        h.c.init_producer_id("t", 60_000, Some((1000, 2))).await,
        Ok((1000, 3))
    );
}

#[tokio::test(start_paused = true)]
async fn a_transaction_older_than_its_timeout_is_aborted() {
    let h = harness().await;
    h.c.init_producer_id("t", 1000, None).await.unwrap();
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    let start = h.c.state_of("t").unwrap().start_ms;
    assert_eq!(h.c.abort_timed_out(start + 1000).await, 0);
    assert_eq!(h.c.abort_timed_out(start + 1001).await, 1);
    eventually("CompleteAbort", || {
        state(&h, "t") == Some(TxnState::CompleteAbort)
    })
    .await;
    assert_eq!(h.markers.requests()[0].producer_epoch, 1);
    assert_eq!(
        h.c.end_txn("t", 1000, 0, true).await,
        Err(TxnError::ProducerFenced)
    );

    // The periodic scan does it by itself, on the coordinator's clock.
    h.c.start();
    assert_eq!(h.c.init_producer_id("t", 1000, None).await, Ok((1000, 2)));
    h.c.add_partitions("t", 1000, 2, vec![tp("a", 0)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(state(&h, "t"), Some(TxnState::Ongoing));
    eventually("aborted by the scan", || {
        state(&h, "t") == Some(TxnState::CompleteAbort)
    })
    .await;
    assert_eq!(h.c.state_of("t").unwrap().producer_epoch, 3);
}

#[tokio::test(start_paused = true)]
async fn idle_transactional_ids_expire_with_a_tombstone() {
    let h = harness().await;
    h.c.init_producer_id("idle", 60_000, None).await.unwrap();
    h.c.init_producer_id("busy", 60_000, None).await.unwrap();
    h.c.add_partitions("busy", 1001, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    let now = h.c.state_of("idle").unwrap().last_update_ms;
    assert_eq!(h.c.expire_transactional_ids(now + 3_599_999).await, 0);
    assert_eq!(h.c.expire_transactional_ids(now + 3_600_000).await, 1);
    assert_eq!(h.c.state_of("idle"), None);
    assert_eq!(state(&h, "busy"), Some(TxnState::Ongoing));
    assert_eq!(h.log.states("idle").last(), Some(&TxnState::Dead));
    // Forgotten: the id starts over with a new producer id.
    assert_eq!(
        h.c.init_producer_id("idle", 60_000, None).await,
        Ok((1002, 0))
    );
    // A reload does not bring it back (the tombstone wins)... and "busy" survives.
    let h2 = harness_on(h.log.clone(), 4).await;
    assert_eq!(h2.c.state_of("idle").unwrap().producer_id, 1002);
    assert_eq!(state(&h2, "busy"), Some(TxnState::Ongoing));
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_kafkas_errors() {
    let h = harness().await;
    assert_eq!(
        h.c.init_producer_id("", 60_000, None).await,
        Err(TxnError::InvalidRequest)
    );
    for timeout in [0, -1, 900_001] {
        assert_eq!(
            h.c.init_producer_id("t", timeout, None).await,
            Err(TxnError::InvalidTransactionTimeout)
        );
    }
    assert_eq!(
        h.c.add_partitions("unknown", 1, 0, vec![tp("a", 0)]).await,
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.c.end_txn("unknown", 1, 0, true).await,
        Err(TxnError::InvalidProducerIdMapping)
    );
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    assert_eq!(
        h.c.end_txn("t", 1000, 0, true).await,
        Err(TxnError::InvalidTxnState),
        "nothing to commit"
    );
    assert_eq!(
        h.c.add_partitions("t", 1001, 0, vec![tp("a", 0)]).await,
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_of_the_partition_coordinates_and_not_while_loading() {
    let log = MemLog::new();
    log.not_hosted.store(true, Ordering::SeqCst);
    let markers = RecordingMarkerWriter::new();
    let c = TransactionCoordinator::new(
        config(),
        TxnHandles {
            log: log.clone(),
            producer_ids: Arc::new(Counter(AtomicI64::new(1))),
            markers,
            metadata: watch::channel(image(2, 0)).1,
            clock: Clock::tokio(),
            spawner: tokio::runtime::Handle::current(),
            node_id: 1,
        },
    );
    c.on_metadata(&image(2, 0));
    assert_eq!(
        c.init_producer_id("t", 60_000, None).await,
        Err(TxnError::NotCoordinator)
    );
    assert_eq!(
        c.end_txn("t", 1, 0, true).await,
        Err(TxnError::NotCoordinator)
    );
    c.on_metadata(&image(1, 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.init_producer_id("t", 60_000, None).await,
        Err(TxnError::CoordinatorLoadInProgress)
    );
    log.not_hosted.store(false, Ordering::SeqCst);
    c.wait_loaded().await;
    assert_eq!(c.init_producer_id("t", 60_000, None).await, Ok((1, 0)));
    // The metadata this coordinator was given names broker 2 the leader.
    assert_eq!(c.coordinator_for("t").map(|b| b.id), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_changes_nothing_and_can_be_retried() {
    let h = harness().await;
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    h.log.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)]).await,
        Err(TxnError::CoordinatorNotAvailable)
    );
    let md = h.c.state_of("t").unwrap();
    assert_eq!((md.state, md.pending), (TxnState::Empty, None));
    h.log.fail.store(false, Ordering::SeqCst);
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    assert_eq!(state(&h, "t"), Some(TxnState::Ongoing));
}

#[tokio::test(start_paused = true)]
async fn a_client_going_away_does_not_leave_a_transition_pending() {
    let h = harness().await;
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    h.log.hold(true);
    let c = h.c.clone();
    let request = tokio::spawn(async move { c.end_txn("t", 1000, 0, true).await });
    eventually("PrepareCommit pending", || {
        h.c.state_of("t").unwrap().pending == Some(TxnState::PrepareCommit)
    })
    .await;
    assert_eq!(
        h.c.end_txn("t", 1000, 0, true).await,
        Err(TxnError::ConcurrentTransactions)
    );
    request.abort();
    h.log.hold(false);
    eventually("CompleteCommit", || {
        state(&h, "t") == Some(TxnState::CompleteCommit)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_resumes_a_decided_transaction() {
    let h = harness().await;
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0), tp("b", 0)])
        .await
        .unwrap();
    h.markers
        .set_outcome(tp("b", 0), Some(MarkerOutcome::Retry("unreachable".into())));
    h.c.end_txn("t", 1000, 0, true).await.unwrap();
    eventually("a marker round", || !h.markers.requests().is_empty()).await;
    // Leadership moves away: the ids are unloaded and the marker rounds stop.
    h.c.on_metadata(&image(2, 4));
    assert_eq!(h.c.state_of("t"), None);
    assert_eq!(
        h.c.end_txn("t", 1000, 0, true).await,
        Err(TxnError::NotCoordinator)
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rounds = h.markers.requests().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.markers.requests().len(), rounds, "the old rounds stopped");

    // Another coordinator takes over at epoch 5: it replays PrepareCommit and sends every marker
    // again with its own epoch, then writes CompleteCommit.
    let h2 = harness_on(h.log.clone(), 5).await;
    eventually("CompleteCommit", || {
        state(&h2, "t") == Some(TxnState::CompleteCommit)
    })
    .await;
    let r = &h2.markers.requests()[0];
    assert_eq!((r.coordinator_epoch, r.commit), (5, true));
    assert_eq!(r.partitions, vec![tp("a", 0), tp("b", 0)]);
    assert_eq!(h2.log.states("t").last(), Some(&TxnState::CompleteCommit));
    assert_eq!(
        h2.c.init_producer_id("t", 60_000, None).await,
        Ok((1000, 1))
    );
}

#[tokio::test(start_paused = true)]
async fn describe_and_list_transactions() {
    let h = harness().await;
    h.c.init_producer_id("x", 60_000, None).await.unwrap();
    h.c.init_producer_id("y", 60_000, None).await.unwrap();
    h.c.add_partitions("y", 1001, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    let y = h.c.describe_transaction("y").unwrap();
    assert_eq!(
        (y.state, y.producer_id, y.partitions.len()),
        (TxnState::Ongoing, 1001, 1)
    );
    assert_eq!(
        h.c.describe_transaction("nope"),
        Err(TxnError::TransactionalIdNotFound)
    );
    let all = h.c.list_transactions(&[], &[], -1).unwrap();
    let ids: Vec<&str> = all
        .transactions
        .iter()
        .map(|t| t.transactional_id.as_str())
        .collect();
    assert_eq!(ids, vec!["x", "y"]);
    let ongoing =
        h.c.list_transactions(&["Ongoing".into(), "Bogus".into()], &[], -1)
            .unwrap();
    assert_eq!(ongoing.transactions.len(), 1);
    assert_eq!(ongoing.unknown_state_filters, vec!["Bogus".to_string()]);
    assert_eq!(
        h.c.list_transactions(&[], &[1000], -1)
            .unwrap()
            .transactions[0]
            .transactional_id,
        "x"
    );
    // Open for longer than a minute: none yet, "y" a minute later.
    assert!(h
        .c
        .list_transactions(&["Ongoing".into()], &[], 60_000)
        .unwrap()
        .transactions
        .is_empty());
    tokio::time::sleep(Duration::from_millis(60_001)).await;
    assert_eq!(
        h.c.list_transactions(&["Ongoing".into()], &[], 60_000)
            .unwrap()
            .transactions
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn fenced_markers_stop_and_a_failed_completion_is_retried() {
    let h = harness().await;
    h.c.init_producer_id("t", 60_000, None).await.unwrap();
    h.c.add_partitions("t", 1000, 0, vec![tp("a", 0)])
        .await
        .unwrap();
    h.markers
        .set_outcome(tp("a", 0), Some(MarkerOutcome::Retry("moving".into())));
    h.c.end_txn("t", 1000, 0, true).await.unwrap();
    eventually("a marker round", || !h.markers.requests().is_empty()).await;
    // The markers get through but CompleteCommit cannot be written: retried until it can.
    h.log.fail.store(true, Ordering::SeqCst);
    h.markers.set_outcome(tp("a", 0), None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let md = h.c.state_of("t").unwrap();
    assert_eq!((md.state, md.pending), (TxnState::PrepareCommit, None));
    h.log.fail.store(false, Ordering::SeqCst);
    eventually("CompleteCommit", || {
        state(&h, "t") == Some(TxnState::CompleteCommit)
    })
    .await;

    // A partition answering that a newer coordinator owns it stops this coordinator's rounds.
    h.c.add_partitions("t", 1000, 0, vec![tp("b", 0)])
        .await
        .unwrap();
    h.markers
        .set_outcome(tp("b", 0), Some(MarkerOutcome::Fenced));
    let before = h.markers.requests().len();
    h.c.end_txn("t", 1000, 0, false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        h.markers.requests().len(),
        before + 1,
        "one round, then none"
    );
    assert_eq!(state(&h, "t"), Some(TxnState::PrepareAbort));
}
