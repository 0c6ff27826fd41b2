//! The coordinator's periodic work: aborting transactions open longer than their timeout (every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms`) and forgetting transactional ids
//! idle for `transactional.id.expiration.ms` (every
//! `transaction.remove.expired.transaction.cleanup.interval.ms`). Both take the time as an argument,
//! so tests drive them with any clock.

use std::time::Duration;

use tracing::{info, warn};

use super::coordinator::TransactionCoordinator;
use super::plan::{plan_expiry, plan_timeout_abort};
use super::write::QueuedWrite;

impl TransactionCoordinator {
    pub(super) fn spawn_scans(&self) {
        let weak = self.me.clone();
        let every = Duration::from_millis(self.config.abort_scan_interval_ms.max(1));
        self.spawner.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(c) = weak.upgrade() else { break };
                c.abort_timed_out(c.now_ms()).await;
            }
        });
        let weak = self.me.clone();
        let every = Duration::from_millis(self.config.expiry_scan_interval_ms.max(1));
        self.spawner.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(c) = weak.upgrade() else { break };
                c.expire_transactional_ids(c.now_ms()).await;
            }
        });
    }

    /// Fences and aborts every transaction of this coordinator open longer than its timeout at
    /// `now_ms`; returns how many aborts became durable (their markers follow).
    pub async fn abort_timed_out(&self, now_ms: i64) -> usize {
        let tv = self.config.transaction_version;
        let writes = self.plan_all(|md| plan_timeout_abort(md, now_ms, tv));
        let mut aborted = 0;
        for w in writes {
            let (id, epoch) = (w.transactional_id.clone(), w.transit.producer_epoch);
            match self.run_write(w).await {
                Ok(_) => {
                    info!(transactional_id = %id, fenced_epoch = epoch, "timed-out transaction aborted");
                    aborted += 1;
                }
                Err(e) => {
                    warn!(transactional_id = %id, error = %e, "cannot abort timed-out transaction; retried at the next scan")
                }
            }
        }
        aborted
    }

    /// Writes tombstones for the transactional ids idle for `transactional.id.expiration.ms` at
    /// `now_ms` and forgets them; returns how many.
    pub async fn expire_transactional_ids(&self, now_ms: i64) -> usize {
        let expiration = self.config.id_expiration_ms;
        let writes = self.plan_all(|md| plan_expiry(md, expiration, now_ms));
        let mut expired = 0;
        for w in writes {
            let id = w.transactional_id.clone();
            match self.run_write(w).await {
                Ok(_) => {
                    info!(transactional_id = %id, "transactional id expired");
                    expired += 1;
                }
                Err(e) => {
                    warn!(transactional_id = %id, error = %e, "cannot expire transactional id")
                }
            }
        }
        expired
    }

    /// Applies `plan` to every id led here under one lock and queues the transitions it returns.
    fn plan_all(
        &self,
        mut plan: impl FnMut(&mut super::state::TxnMetadata) -> Option<super::state::Transit>,
    ) -> Vec<QueuedWrite> {
        let mut txns = self.lock();
        let mut writes = Vec::new();
        for (id, md) in txns.iter_mut() {
            let Ok(epoch) = self.coordinator_epoch(id) else {
                continue;
            };
            let Some(t) = plan(md) else { continue };
            match self.queue_write(md, epoch, t) {
                Ok(w) => writes.push(w),
                Err(e) => {
                    warn!(transactional_id = %id, error = %e, "cannot queue transaction log write")
                }
            }
        }
        writes
    }
}
