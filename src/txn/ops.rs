//! The client-facing operations: InitProducerId with a transactional id, AddPartitionsToTxn (client
//! form), AddOffsetsToTxn and EndTxn. Each checks that this broker coordinates the id, decides under
//! the lock (`plan.rs`) and writes the transition before answering, as Kafka's coordinator does.

use tracing::{info, warn};

use super::coordinator::TransactionCoordinator;
use super::error::TxnError;
use super::plan::{plan_add_partitions, plan_end_for, plan_init, EndStep, InitStep};
use super::state::{TopicPartition, TxnMetadata};
use crate::group::offsets::OFFSETS_TOPIC;

impl TransactionCoordinator {
    /// InitProducerId for `transactional_id`: the producer id and the epoch to use. A new id starts
    /// at epoch 0; a known one is bumped (fencing the previous producer), its open transaction
    /// aborted first (CONCURRENT_TRANSACTIONS meanwhile; the client retries). `expected` is the
    /// producer id and epoch a v3+ client sends to recover (KIP-360).
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let mut spare_id: Option<i64> = None;
        loop {
            let epoch = self.coordinator_epoch(transactional_id)?;
            let queued = {
                let mut txns = self.lock();
                let now = self.now_ms();
                if !txns.contains_key(transactional_id) {
                    if let Some(id) = spare_id.take() {
                        let md = TxnMetadata::new(transactional_id, id, timeout_ms, now);
                        txns.insert(transactional_id.to_string(), md);
                    }
                }
                match txns.get_mut(transactional_id) {
                    None => None,
                    Some(md) => {
                        match plan_init(
                            md,
                            timeout_ms,
                            expected,
                            &mut spare_id,
                            now,
                            self.config.transaction_version,
                        )? {
                            InitStep::NeedProducerId => None,
                            InitStep::Write(t) => Some((self.queue_write(md, epoch, t)?, false)),
                            InitStep::AbortOngoing(t) => {
                                info!(transactional_id, producer_id = md.producer_id,
                                "fencing the previous producer: its open transaction is aborted");
                                Some((self.queue_write(md, epoch, t)?, true))
                            }
                        }
                    }
                }
            };
            let Some((write, aborting)) = queued else {
                spare_id = Some(self.spare_producer_id().await?);
                continue;
            };
            let done = self.run_write(write).await?;
            if aborting {
                return Err(TxnError::ConcurrentTransactions);
            }
            info!(
                transactional_id,
                producer_id = done.producer_id,
                producer_epoch = done.producer_epoch,
                "transactional producer initialised"
            );
            return Ok((done.producer_id, done.producer_epoch));
        }
    }

    /// AddPartitionsToTxn (v0-3): adds `partitions` to the producer's transaction, opening it.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Result<(), TxnError> {
        self.add_partitions_at(
            transactional_id,
            (producer_id, producer_epoch),
            partitions,
            0,
        )
        .await
    }

    /// Adds `partitions` to the transaction of `producer` (id, epoch), opening it: a client's
    /// AddPartitionsToTxn (`client_tv` 0) or a leader's implicit add for a Transactions V2 client's
    /// first batch or offsets there (AddPartitionsToTxn v4+ without `verify_only`, `client_tv` 2).
    pub async fn add_partitions_at(
        &self,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: Vec<TopicPartition>,
        client_tv: i16,
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let epoch = self.coordinator_epoch(transactional_id)?;
        let write = {
            let mut txns = self.lock();
            let now = self.now_ms();
            let md = txns
                .get_mut(transactional_id)
                .ok_or(TxnError::InvalidProducerIdMapping)?;
            let planned =
                plan_add_partitions(md, producer_id, producer_epoch, &partitions, now, client_tv)?;
            match planned {
                None => return Ok(()),
                Some(t) => self.queue_write(md, epoch, t)?,
            }
        };
        self.run_write(write).await.map(|_| ())
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition (of `offsets_partitions`)
    /// to the transaction, so that its markers also settle the transaction's offset commits.
    pub async fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        offsets_partitions: i32,
    ) -> Result<(), TxnError> {
        let partition = crate::group::records::partition_for(group_id, offsets_partitions);
        let tp = (OFFSETS_TOPIC.to_string(), partition);
        self.add_partitions(transactional_id, producer_id, producer_epoch, vec![tp])
            .await
    }

    /// EndTxn v0-4: commits or aborts the producer's transaction (Transactions V1).
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.end_txn_at(transactional_id, (producer_id, producer_epoch), commit, 0)
            .await
            .map(|_| ())
    }

    /// EndTxn: commits or aborts the producer's transaction. Answers once the decision (Prepare*)
    /// is durable; the markers and the Complete* record follow in the background. Returns the
    /// producer id and epoch the producer continues with: under Transactions V2 (`client_tv` 2,
    /// EndTxn v5+) the bumped epoch, or a new producer id at epoch 0 once the epoch is exhausted.
    pub async fn end_txn_at(
        &self,
        transactional_id: &str,
        producer: (i64, i16),
        commit: bool,
        client_tv: i16,
    ) -> Result<(i64, i16), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let mut spare_id: Option<i64> = None;
        loop {
            let epoch = self.coordinator_epoch(transactional_id)?;
            let write = {
                let mut txns = self.lock();
                let now = self.now_ms();
                let md = txns
                    .get_mut(transactional_id)
                    .ok_or(TxnError::InvalidProducerIdMapping)?;
                match plan_end_for(md, producer, commit, client_tv, &mut spare_id, now)? {
                    EndStep::Done(id, epoch) => return Ok((id, epoch)),
                    EndStep::Write(t) => Some(self.queue_write(md, epoch, t)?),
                    EndStep::NeedProducerId => None,
                }
            };
            match write {
                Some(write) => return self.run_write(write).await.map(|t| t.handed_out()),
                None => spare_id = Some(self.spare_producer_id().await?),
            }
        }
    }

    /// A new producer id, for a rotation; fetched outside the lock, so the caller decides again.
    async fn spare_producer_id(&self) -> Result<i64, TxnError> {
        self.producer_ids.next_id().await.map_err(|e| {
            // Retriable, as Kafka's producer id manager answers while it has no block.
            warn!(error = %e, "cannot allocate a producer id");
            TxnError::CoordinatorLoadInProgress
        })
    }
}
