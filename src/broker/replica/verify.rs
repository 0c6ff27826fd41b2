//! Transaction verification of produced batches (Kafka's `transaction.partition.verification.enable`,
//! on by default since 3.6, KIP-890 part 1): before a producer's first transactional batch in a
//! partition, the leader asks the transaction coordinator whether the partition is in the producer's
//! ongoing transaction, through a [`TxnVerifier`] (the broker's: its own coordinator, or another
//! broker's with AddPartitionsToTxn v4). A batch that is not gets an error instead of opening a
//! transaction that would hold the partition's last stable offset forever. A Transactions V2
//! client (Produce v12+, TxnOffsetCommit v5+) does not add partitions itself: the leader asks the
//! coordinator to add them instead of only verifying (KIP-890 part 2).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::debug;

use super::{ProduceTopic, ReplicaError, ReplicaManager, TopicRef};
use crate::broker::partition::Partition;
use crate::broker::TxnGuard;
use crate::log::BatchHeader;

pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Vec<((String, i32), i16)>> + Send + 'a>>;

/// Asks a transactional id's coordinator which of `partitions` are in the ongoing transaction of
/// (producer id, epoch), or with `add` to add them to it: each partition's error code (0: it is).
pub trait TxnVerifier: Send + Sync {
    fn verify<'a>(
        &'a self,
        transactional_id: &'a str,
        producer: (i64, i16),
        partitions: Vec<(String, i32)>,
        add: bool,
    ) -> VerifyFuture<'a>;
}

/// How long a verification answered CONCURRENT_TRANSACTIONS (the producer's previous transaction
/// still completing) is retried before the answer goes to the client, and how often (Kafka's
/// `add.partitions.to.txn.retry.backoff.max.ms` and `.backoff.ms` defaults).
const CONCURRENT_RETRY_FOR: Duration = Duration::from_millis(100);
const CONCURRENT_RETRY_EVERY: Duration = Duration::from_millis(20);

/// Asks `verifier`, retrying while the coordinator answers CONCURRENT_TRANSACTIONS for a while;
/// `begin` (re)starts the partitions' guards before each attempt.
async fn ask_with_retries<G>(
    verifier: &dyn TxnVerifier,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: &[(String, i32)],
    add: bool,
    mut begin: impl FnMut() -> G,
) -> (HashMap<(String, i32), i16>, G) {
    let started = Instant::now();
    loop {
        let guards = begin();
        let answers: HashMap<(String, i32), i16> = verifier
            .verify(transactional_id, producer, partitions.to_vec(), add)
            .await
            .into_iter()
            .collect();
        let concurrent = ResponseError::ConcurrentTransactions.code();
        if !answers.values().any(|c| *c == concurrent)
            || started.elapsed() + CONCURRENT_RETRY_EVERY > CONCURRENT_RETRY_FOR
        {
            return (answers, guards);
        }
        tokio::time::sleep(CONCURRENT_RETRY_EVERY).await;
    }
}

/// The transactional side of a Produce request.
#[derive(Clone, Debug)]
pub struct TxnProduce {
    pub transactional_id: String,
    /// Produce v11+ clients know TRANSACTION_ABORTABLE; older ones get INVALID_TXN_STATE.
    pub abortable_supported: bool,
    /// Produce v12+: a Transactions V2 client, whose partitions the leader adds to the transaction.
    pub add_partitions: bool,
}

/// A partition awaiting the coordinator's answer: where in the request, which, and its guard.
type Pending = ((usize, usize), (String, i32), TxnGuard);

/// A transactional batch's partition hosted here: where in the request, which, and the partition.
type Candidate = ((usize, usize), (String, i32), Arc<Partition>);

/// Per (topic index, partition index) of a request: the guard to append with, or why not.
pub type Verdicts = HashMap<(usize, usize), Result<TxnGuard, ReplicaError>>;

impl ReplicaManager {
    /// Sets the verifier transactional batches are checked with (none: not checked).
    pub fn set_txn_verifier(&self, verifier: Arc<dyn TxnVerifier>) {
        let _ = self.verifier.set(verifier);
    }

    /// Verifies the partitions of `topics` whose batch would open its producer's transaction here;
    /// partitions not in the answer need no verification (not transactional, not led here, or the
    /// transaction already open).
    pub(super) async fn verify_transactional(
        &self,
        txn: Option<&TxnProduce>,
        topics: &[ProduceTopic],
    ) -> Verdicts {
        let mut verdicts = Verdicts::new();
        let (Some(txn), Some(verifier)) = (txn, self.verifier.get()) else {
            return verdicts;
        };
        let image = self.metadata.image();
        let add = txn.add_partitions;
        let mut producer: Option<(i64, i16)> = None;
        let mut candidates: Vec<Candidate> = Vec::new();
        for (t, topic) in topics.iter().enumerate() {
            let name = match &topic.topic {
                TopicRef::Name(n) => n.clone(),
                TopicRef::Id(id) => match image.topic_by_id(id) {
                    Some(info) => info.name.clone(),
                    None => continue,
                },
            };
            for (i, data) in topic.partitions.iter().enumerate() {
                let Some(h) = transactional_header(&data.records) else {
                    continue;
                };
                // Kafka refuses transactional records of more than one producer in a request.
                match producer {
                    Some(p) if p != (h.producer_id, h.producer_epoch) => {
                        verdicts.insert(
                            (t, i),
                            Err(ReplicaError::InvalidRequest(
                                "transactional records of more than one producer".into(),
                            )),
                        );
                        continue;
                    }
                    _ => producer = Some((h.producer_id, h.producer_epoch)),
                }
                if let Some(p) = self.partitions.get(&name, data.index) {
                    candidates.push(((t, i), (name.clone(), data.index), p));
                }
            }
        }
        let Some(producer) = producer else {
            return verdicts;
        };
        // The partitions whose batch would open the transaction here, each with its guard.
        let begin = || -> Vec<Pending> {
            candidates
                .iter()
                .filter_map(|(at, tp, p)| {
                    p.begin_txn_verification(producer.0, producer.1, add)
                        .map(|g| (*at, tp.clone(), g))
                })
                .collect()
        };
        let first = begin();
        if first.is_empty() {
            return verdicts;
        }
        let asked: Vec<(String, i32)> = first.iter().map(|(_, tp, _)| tp.clone()).collect();
        let (answers, pending) = ask_with_retries(
            verifier.as_ref(),
            &txn.transactional_id,
            producer,
            &asked,
            add,
            begin,
        )
        .await;
        for (at, tp, guard) in pending {
            let code = answers
                .get(&tp)
                .copied()
                .unwrap_or(ResponseError::NetworkException.code());
            let verdict = if code == 0 {
                Ok(guard)
            } else {
                debug!(transactional_id = %txn.transactional_id, topic = %tp.0, partition = tp.1,
                    producer_id = producer.0, code, "transactional batch not verified");
                Err(produce_error(code, txn.abortable_supported, add))
            };
            verdicts.insert(at, verdict);
        }
        verdicts
    }
}

impl ReplicaManager {
    /// Verification of one partition led here for a coordinator's transactional write (the group
    /// coordinator's TxnOffsetCommit on `__consumer_offsets`; `add` for v5+, a Transactions V2
    /// client): `Ok(None)` when none is needed (no verifier, partition not hosted here, or the
    /// producer's transaction already open in it), `Ok(Some(guard))` once the coordinator confirmed
    /// it, otherwise the coordinator's error code.
    pub async fn verify_txn_partition(
        &self,
        transactional_id: &str,
        producer: (i64, i16),
        (topic, index): (&str, i32),
        add: bool,
    ) -> Result<Option<TxnGuard>, i16> {
        let Some(verifier) = self.verifier.get() else {
            return Ok(None);
        };
        let Some(p) = self.partitions.get(topic, index) else {
            return Ok(None);
        };
        if p.begin_txn_verification(producer.0, producer.1, add)
            .is_none()
        {
            return Ok(None);
        }
        let tp = (topic.to_string(), index);
        let begin = || p.begin_txn_verification(producer.0, producer.1, add);
        let (answers, guard) = ask_with_retries(
            verifier.as_ref(),
            transactional_id,
            producer,
            std::slice::from_ref(&tp),
            add,
            begin,
        )
        .await;
        match answers.get(&tp).copied() {
            // The transaction opened meanwhile (another request of the producer): no guard needed.
            Some(0) => Ok(guard),
            Some(code) => Err(code),
            None => Err(ResponseError::NetworkException.code()),
        }
    }
}

/// The header of a transactional first batch in `records`, if it is one.
fn transactional_header(records: &Bytes) -> Option<BatchHeader> {
    BatchHeader::parse(records)
        .ok()
        .filter(|h| h.is_transactional() && h.producer_id >= 0)
}

/// What the producer is told of a coordinator's verification answer, as Kafka's ReplicaManager and
/// AddPartitionsToTxnManager translate it: fencing as INVALID_PRODUCER_EPOCH, a partition not in the
/// transaction as TRANSACTION_ABORTABLE (INVALID_TXN_STATE before Produce v11), and the retriable
/// coordinator errors as NOT_ENOUGH_REPLICAS, which every client retries without a metadata refresh
/// — except CONCURRENT_TRANSACTIONS for a Transactions V2 client (`add`), which knows it.
fn produce_error(code: i16, abortable_supported: bool, add: bool) -> ReplicaError {
    let translated = match ResponseError::try_from_code(code) {
        Some(ResponseError::ProducerFenced) => ResponseError::InvalidProducerEpoch,
        Some(ResponseError::TransactionAbortable) if !abortable_supported => {
            ResponseError::InvalidTxnState
        }
        Some(ResponseError::ConcurrentTransactions) if add => ResponseError::ConcurrentTransactions,
        Some(
            ResponseError::ConcurrentTransactions
            | ResponseError::NetworkException
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator,
        ) => ResponseError::NotEnoughReplicas,
        Some(e) => e,
        None => ResponseError::UnknownServerError,
    };
    let message = match translated {
        ResponseError::InvalidTxnState | ResponseError::TransactionAbortable => {
            "Partition was not added to the transaction".to_string()
        }
        ResponseError::NotEnoughReplicas => format!(
            "Unable to verify the partition has been added to the transaction. Underlying error code: {code}"
        ),
        _ => format!("transaction verification: error code {code}"),
    };
    ReplicaError::TxnVerification {
        code: translated.code(),
        message,
    }
}
