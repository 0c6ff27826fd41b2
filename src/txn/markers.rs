//! Completing a decided transaction: once PrepareCommit or PrepareAbort is durable, its markers are
//! written to every partition of the transaction through the [`MarkerWriter`], retried with back-off
//! until each partition has one, and then CompleteCommit or CompleteAbort is written. Runs while
//! this coordinator still leads the id's partition at the epoch it decided at; a successor (which
//! replays Prepare* on load) takes over otherwise.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::coordinator::TransactionCoordinator;
use super::error::TxnError;
use super::ports::{BoxFuture, MarkerOutcome, MarkerRequest, MarkerWriter};
use super::state::{TopicPartition, Transit, TxnState};

const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

impl TransactionCoordinator {
    /// Sends the markers of the durable Prepare* `prepared`, then writes Complete*.
    pub(super) fn spawn_markers(&self, transactional_id: String, epoch: i32, prepared: Transit) {
        let weak = self.me.clone();
        self.spawner.spawn(async move {
            let commit = prepared.state == TxnState::PrepareCommit;
            let mut remaining: BTreeSet<TopicPartition> = prepared.partitions.clone();
            let mut backoff = RETRY_MIN;
            while !remaining.is_empty() {
                let Some(c) = weak.upgrade() else { return };
                if !c.still_prepared(&transactional_id, epoch, &prepared) {
                    debug!(transactional_id, "transaction no longer ours to complete");
                    return;
                }
                let request = MarkerRequest {
                    transactional_id: transactional_id.clone(),
                    producer_id: prepared.producer_id,
                    producer_epoch: prepared.producer_epoch,
                    commit,
                    coordinator_epoch: epoch,
                    partitions: remaining.iter().cloned().collect(),
                };
                for (tp, outcome) in c.markers.write_markers(request).await {
                    match outcome {
                        MarkerOutcome::Written | MarkerOutcome::PartitionGone => {
                            remaining.remove(&tp);
                        }
                        MarkerOutcome::Fenced => {
                            warn!(transactional_id, topic = %tp.0, partition = tp.1,
                                "markers fenced by a newer coordinator; it completes the transaction");
                            return;
                        }
                        MarkerOutcome::Retry(why) => {
                            debug!(transactional_id, topic = %tp.0, partition = tp.1, why, "marker retried")
                        }
                    }
                }
                if !remaining.is_empty() {
                    drop(c);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
            let mut backoff = RETRY_MIN;
            loop {
                let Some(c) = weak.upgrade() else { return };
                match c.write_complete(&transactional_id, epoch, &prepared).await {
                    Ok(()) => {
                        info!(transactional_id, commit, producer_id = prepared.producer_id,
                            "transaction completed");
                        return;
                    }
                    Err(TxnError::NotCoordinator | TxnError::CoordinatorLoadInProgress) => return,
                    Err(e) => warn!(transactional_id, error = %e, "cannot write the transaction's completion; retried"),
                }
                drop(c);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        });
    }

    /// Whether the id is still in the Prepare* `prepared` wrote, here at `epoch`.
    fn still_prepared(&self, transactional_id: &str, epoch: i32, prepared: &Transit) -> bool {
        if self.coordinator_epoch(transactional_id) != Ok(epoch) {
            return false;
        }
        self.lock().get(transactional_id).is_some_and(|md| {
            md.state == prepared.state
                && md.producer_id == prepared.producer_id
                && md.producer_epoch == prepared.producer_epoch
        })
    }

    async fn write_complete(
        &self,
        transactional_id: &str,
        epoch: i32,
        prepared: &Transit,
    ) -> Result<(), TxnError> {
        if !self.still_prepared(transactional_id, epoch, prepared) {
            return Err(TxnError::NotCoordinator);
        }
        let write = {
            let mut txns = self.lock();
            let now = self.now_ms();
            let md = txns
                .get_mut(transactional_id)
                .ok_or(TxnError::NotCoordinator)?;
            let t = md.prepare_complete(now)?;
            self.queue_write(md, epoch, t)?
        };
        self.finish_write(write).await.map(|_| ())
    }
}

/// A [`MarkerWriter`] for tests: records every request and answers each partition as told
/// (written unless set otherwise).
#[derive(Default)]
pub struct RecordingMarkerWriter {
    pub requests: Mutex<Vec<MarkerRequest>>,
    /// Outcomes per partition; a partition not listed is written.
    pub outcomes: Mutex<std::collections::HashMap<TopicPartition, MarkerOutcome>>,
}

impl RecordingMarkerWriter {
    pub fn new() -> Arc<RecordingMarkerWriter> {
        Arc::new(RecordingMarkerWriter::default())
    }

    pub fn set_outcome(&self, tp: TopicPartition, outcome: Option<MarkerOutcome>) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Some(o) => outcomes.insert(tp, o),
            None => outcomes.remove(&tp),
        };
    }

    pub fn requests(&self) -> Vec<MarkerRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl MarkerWriter for RecordingMarkerWriter {
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<'_, Vec<(TopicPartition, MarkerOutcome)>> {
        let outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        let answer = request
            .partitions
            .iter()
            .map(|tp| {
                let o = outcomes.get(tp).cloned().unwrap_or(MarkerOutcome::Written);
                (tp.clone(), o)
            })
            .collect();
        drop(outcomes);
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        Box::pin(async move { answer })
    }
}
