//! An internal topic as a coordinator uses it (`__consumer_offsets` now, `__transaction_state` later):
//! created on first use with the coordinator's configs, appended to as plain key/value record batches,
//! and replayed partition by partition from log start to log end. The coordinator sees only this
//! handle, not the broker: keys and values are opaque bytes here, their formats are the coordinator's.
//!
//! Appends are asynchronous so that a coordinator never holds its own lock across disk I/O: `append`
//! only encodes the batch and queues it on the partition's appender task (one per partition, so batches
//! land in the order they were queued: queue under your lock and per-key order is the lock's order);
//! the returned [`PendingAppend`] resolves once the partition's high watermark passes the batch, i.e.
//! once the in-sync replicas have it. Writes have acks=all semantics, as Kafka's coordinators' do: an
//! append to a partition whose ISR is below `min.insync.replicas` is refused, and the wait for the
//! high watermark is bounded (`offsets.commit.timeout.ms` for the group coordinator).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::replica::ReplicaError;
use super::topics::{TopicError, TopicRequest};
use super::{Broker, Partition, TxnGuard};
use crate::log::{
    encode_batch, plain_record, validate_batches, BatchError, LogError, ProducerError,
};

/// What an internal topic is: its name, partition count, replication factor and topic configs at
/// creation, and how long a write waits for the in-sync replicas.
#[derive(Clone, Debug)]
pub struct InternalTopicSpec {
    pub name: &'static str,
    /// Used until the topic exists; afterwards the topic's actual count is.
    pub partitions: i32,
    /// Replicas per partition at creation (`offsets.topic.replication.factor`). Creation fails while
    /// fewer live brokers exist, as Kafka's does, and is tried again on the next use.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// How long a write waits for the high watermark to pass it (`offsets.commit.timeout.ms`).
    pub write_timeout: Duration,
}

/// Why an append to an internal topic failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InternalTopicError {
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("partition {0} of the internal topic is not hosted here")]
    NotHosted(i32),
    /// Larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    /// Our own encoder produced something the log refuses: a bug, not a storage condition.
    #[error("cannot build a record batch: {0}")]
    Encode(String),
    #[error("storage: {0}")]
    Storage(String),
    /// This broker no longer leads the partition (leadership moved before or while writing).
    #[error("partition {0} of the internal topic is not led here")]
    NotLeader(i32),
    /// The partition's ISR is below `min.insync.replicas`: nothing was appended.
    #[error(
        "partition {0} of the internal topic has fewer in-sync replicas than min.insync.replicas"
    )]
    NotEnoughReplicas(i32),
    /// Appended, but the ISR shrank below `min.insync.replicas` before it was committed.
    #[error("partition {0} of the internal topic lost in-sync replicas while the write waited")]
    NotEnoughReplicasAfterAppend(i32),
    /// Appended, but the high watermark did not pass it within the write timeout.
    #[error("partition {0} of the internal topic did not commit the write in time")]
    TimedOut(i32),
}

impl InternalTopicError {
    /// The partition layer's refusal of `partition`, in this module's terms.
    fn from_replica(partition: i32, e: ReplicaError) -> InternalTopicError {
        match e {
            ReplicaError::NotLeaderOrFollower => InternalTopicError::NotLeader(partition),
            ReplicaError::NotEnoughReplicas { .. } => {
                InternalTopicError::NotEnoughReplicas(partition)
            }
            ReplicaError::NotEnoughReplicasAfterAppend { .. } => {
                InternalTopicError::NotEnoughReplicasAfterAppend(partition)
            }
            ReplicaError::RequestTimedOut => InternalTopicError::TimedOut(partition),
            e => InternalTopicError::Storage(e.to_string()),
        }
    }
}

/// Why a transactional append ([`InternalTopic::append_transactional`]) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnAppendError {
    #[error(transparent)]
    Topic(#[from] InternalTopicError),
    /// The producer's epoch is older than the one the partition has seen (INVALID_PRODUCER_EPOCH).
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// The producer's transaction ended after the partition was verified to be in it.
    #[error("the transaction ended while the partition was being verified")]
    VerificationLost,
}

/// Validates `batch` against the partition's `max.message.bytes` and appends it; a batch with a
/// producer id (transactional) is checked as a coordinator's.
fn append_now(
    p: Arc<Partition>,
    batch: BytesMut,
    now_ms: i64,
    transactional: bool,
    guard: Option<TxnGuard>,
) -> Result<Appended, TxnAppendError> {
    let max = p.with_log(|l| l.config().max_message_bytes);
    let headers = validate_batches(&batch, max).map_err(|e| match e {
        BatchError::TooLarge { size, max } => InternalTopicError::TooLarge { size, max },
        e => InternalTopicError::Encode(e.to_string()),
    })?;
    // acks=all: a write the ISR cannot commit is refused before it reaches the log.
    let appended = if transactional {
        p.append_as_coordinator(batch, &headers, now_ms, guard)
    } else {
        p.append_as_leader_with_acks(batch, &headers, now_ms, true)
    };
    let (info, leader_epoch) = appended.map_err(|e| match e {
        ReplicaError::Log(LogError::Producer(ProducerError::InvalidProducerEpoch(m))) => {
            TxnAppendError::InvalidProducerEpoch(m)
        }
        ReplicaError::TxnVerificationLost => TxnAppendError::VerificationLost,
        e => InternalTopicError::from_replica(p.index, e).into(),
    })?;
    Ok(Appended {
        partition: p,
        next_offset: info.last_offset + 1,
        leader_epoch,
    })
}

/// One record read back by [`InternalTopic::replay`].
pub struct ReplayedRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// What [`InternalTopic::replay_events`] reads back: a data record with its batch's producer, or
/// a transaction marker (control record COMMIT/ABORT) as Kafka's coordinator loader sees them.
pub enum ReplayEvent {
    Record {
        record: ReplayedRecord,
        /// The batch's producer id (-1: none).
        producer_id: i64,
        /// The batch is transactional: the record takes effect when its producer's marker commits.
        transactional: bool,
    },
    /// An end-transaction marker of `producer_id` at `offset`: COMMIT if `commit`, else ABORT.
    Marker {
        offset: i64,
        producer_id: i64,
        commit: bool,
    },
}

/// ControlRecordType of a control record's key (version, type): ABORT 0, COMMIT 1; other types
/// (leader change, snapshots) are not transaction markers.
fn marker_type(key: Option<&Bytes>) -> Option<bool> {
    let key = key?;
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A batch waiting for its partition's appender.
struct Job {
    batch: BytesMut,
    now_ms: i64,
    transactional: bool,
    /// The verification a transactional batch was cleared under (KIP-890), if one was needed.
    guard: Option<TxnGuard>,
    done: oneshot::Sender<Result<Appended, TxnAppendError>>,
}

/// Where a batch landed: the partition replica, the offset after its last record, and the leader
/// epoch it was appended at (leadership lost and regained meanwhile may have truncated it).
struct Appended {
    partition: Arc<Partition>,
    next_offset: i64,
    leader_epoch: i32,
}

/// An append queued by [`InternalTopic::append`]; `wait` resolves once it is committed.
pub struct PendingAppend {
    done: Option<oneshot::Receiver<Result<Appended, TxnAppendError>>>,
    timeout: Duration,
}

impl PendingAppend {
    /// Nothing to append: already done.
    pub fn done() -> PendingAppend {
        PendingAppend {
            done: None,
            timeout: Duration::ZERO,
        }
    }

    /// Waits until the batch is in the log and the partition's high watermark has passed it (the
    /// ISR has it), at most the topic's write timeout after the append. Fails when leadership is
    /// lost meanwhile, the ISR shrinks below `min.insync.replicas`, or the time runs out: the batch
    /// may then still be committed later, as a timed-out acks=all produce may.
    pub async fn wait(self) -> Result<(), InternalTopicError> {
        self.wait_txn().await.map_err(|e| match e {
            TxnAppendError::Topic(e) => e,
            // Only batches with a producer id are refused so, and `append` writes none.
            TxnAppendError::InvalidProducerEpoch(m) => InternalTopicError::Encode(m),
            TxnAppendError::VerificationLost => {
                InternalTopicError::Encode("transaction verification lost".into())
            }
        })
    }

    /// [`Self::wait`] for an [`InternalTopic::append_transactional`]: also tells a producer
    /// epoch the partition refused.
    pub async fn wait_txn(self) -> Result<(), TxnAppendError> {
        let Some(done) = self.done else {
            return Ok(());
        };
        let appended = done.await.map_err(|_| InternalTopicError::ShuttingDown)??;
        let p = &appended.partition;
        p.wait_committed_at(appended.next_offset, appended.leader_epoch, self.timeout)
            .await
            .map_err(|e| InternalTopicError::from_replica(p.index, e).into())
    }
}

pub struct InternalTopic {
    broker: Weak<Broker>,
    spec: InternalTopicSpec,
    spawner: tokio::runtime::Handle,
    /// One appender task per partition, started on its first append.
    appenders: Mutex<HashMap<i32, mpsc::UnboundedSender<Job>>>,
}

impl InternalTopic {
    pub fn new(
        broker: Weak<Broker>,
        spec: InternalTopicSpec,
        spawner: tokio::runtime::Handle,
    ) -> InternalTopic {
        InternalTopic {
            broker,
            spec,
            spawner,
            appenders: Mutex::new(HashMap::new()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The topic's partition count: the actual one once it exists, the configured one before.
    pub fn partition_count(&self) -> i32 {
        self.broker
            .upgrade()
            .and_then(|b| {
                b.metadata
                    .image()
                    .topics
                    .get(self.spec.name)
                    .map(|t| t.partitions.len() as i32)
            })
            .filter(|n| *n > 0)
            .unwrap_or(self.spec.partitions)
    }

    pub fn exists(&self) -> bool {
        self.broker
            .upgrade()
            .is_some_and(|b| b.metadata.image().topics.contains_key(self.spec.name))
    }

    /// Creates the topic unless it exists (Kafka creates `__consumer_offsets` on first use).
    pub async fn ensure_exists(&self) -> Result<(), TopicError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| TopicError::InvalidRequest("the broker is shutting down".into()))?;
        if broker.metadata.image().topics.contains_key(self.spec.name) {
            return Ok(());
        }
        let mut planned = broker.plan_topic(&TopicRequest {
            name: self.spec.name.to_string(),
            num_partitions: self.spec.partitions,
            replication_factor: self.spec.replication_factor,
            assignments: Vec::new(),
            configs: self.spec.configs.clone(),
        })?;
        planned.internal = true;
        match broker.create_topic(planned).await {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {
                info!(
                    topic = self.spec.name,
                    partitions = self.spec.partitions,
                    replication_factor = self.spec.replication_factor,
                    "internal topic ready"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Queues `records` (key, value or tombstone) for `partition` as one uncompressed batch. Batches
    /// queued for one partition are appended in queue order; the result resolves once this one is
    /// committed (see [`PendingAppend::wait`]), or with why it was not.
    pub fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<PendingAppend, InternalTopicError> {
        self.append_batch(partition, records, now_ms, None, None)
    }

    /// [`Self::append`] as one transactional batch of `producer_id` at `producer_epoch`, as Kafka's
    /// group coordinator writes a TxnOffsetCommit (base sequence 0; the log checks the epoch
    /// only). Its records take effect when the producer's transaction marker commits; an epoch
    /// older than the partition has seen is refused ([`PendingAppend::wait_txn`]).
    pub fn append_transactional(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
        producer_id: i64,
        producer_epoch: i16,
        guard: Option<TxnGuard>,
    ) -> Result<PendingAppend, InternalTopicError> {
        self.append_batch(
            partition,
            records,
            now_ms,
            Some((producer_id, producer_epoch)),
            guard,
        )
    }

    fn append_batch(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
        producer: Option<(i64, i16)>,
        guard: Option<TxnGuard>,
    ) -> Result<PendingAppend, InternalTopicError> {
        if records.is_empty() {
            return Ok(PendingAppend::done());
        }
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let plain = plain_record(i as i64, now_ms, Some(key), value);
                match producer {
                    None => plain,
                    Some((producer_id, producer_epoch)) => Record {
                        transactional: true,
                        producer_id,
                        producer_epoch,
                        sequence: i as i32,
                        ..plain
                    },
                }
            })
            .collect();
        let batch = encode_batch(&records, Compression::None)
            .map_err(|e| InternalTopicError::Encode(e.to_string()))?;
        let (done, rx) = oneshot::channel();
        let job = Job {
            batch,
            now_ms,
            transactional: producer.is_some(),
            guard,
            done,
        };
        let mut appenders = self.appenders.lock().unwrap_or_else(|p| p.into_inner());
        let queue = appenders
            .entry(partition)
            .or_insert_with(|| self.start_appender(partition));
        if let Err(mpsc::error::SendError(job)) = queue.send(job) {
            // The appender ended (the broker is going away); a new one would find no broker either.
            let _ = job.done.send(Err(InternalTopicError::ShuttingDown.into()));
        }
        Ok(PendingAppend {
            done: Some(rx),
            timeout: self.spec.write_timeout,
        })
    }

    fn start_appender(&self, partition: i32) -> mpsc::UnboundedSender<Job> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let broker = self.broker.clone();
        let topic = self.spec.name;
        self.spawner.spawn(async move {
            while let Some(job) = rx.recv().await {
                let Some(p) = broker.upgrade().map(|b| b.partitions.get(topic, partition)) else {
                    let _ = job.done.send(Err(InternalTopicError::ShuttingDown.into()));
                    continue;
                };
                let result = match p {
                    None => Err(InternalTopicError::NotHosted(partition).into()),
                    // The log's write (and fsync, under flush = always) happens off the async workers.
                    Some(p) => {
                        let (batch, now_ms, txn) = (job.batch, job.now_ms, job.transactional);
                        let guard = job.guard;
                        tokio::task::spawn_blocking(move || {
                            append_now(p, batch, now_ms, txn, guard)
                        })
                        .await
                        .unwrap_or_else(|e| Err(InternalTopicError::Storage(e.to_string()).into()))
                    }
                };
                let _ = job.done.send(result);
            }
        });
        tx
    }

    /// Reads `partition` from its log start to its log end, handing every data record to `visit` in
    /// offset order. Returns false when the partition is not hosted here. An unreadable or
    /// undecodable stretch ends the replay of that partition with a warning (what was read stays).
    ///
    /// To the log end, not the high watermark, as Kafka's coordinator loader reads
    /// (`FetchIsolation.LOG_END`): a new leader learns the high watermark from its followers only
    /// after it has taken over, so its own may still lag writes the old leader acknowledged; and
    /// what its log holds, the followers will copy and commit.
    pub fn replay(&self, partition: i32, mut visit: impl FnMut(ReplayedRecord)) -> bool {
        self.replay_events(partition, |event| {
            if let ReplayEvent::Record { record, .. } = event {
                visit(record);
            }
        })
    }

    /// [`Self::replay`] with each data record's producer and transactional flag, and the
    /// transaction markers (control records COMMIT/ABORT) in their place in the log.
    pub fn replay_events(&self, partition: i32, mut visit: impl FnMut(ReplayEvent)) -> bool {
        let Some(broker) = self.broker.upgrade() else {
            return false;
        };
        let Some(p) = broker.partitions.get(self.spec.name, partition) else {
            return false;
        };
        let topic = self.spec.name;
        let (mut offset, end) = p.with_log(|l| (l.log_start_offset(), l.log_end_offset()));
        while offset < end {
            let slice = match p.read_to_log_end(offset, 1 << 20, true) {
                Ok(s) => s,
                Err(e) => {
                    warn!(topic, partition, offset, error = %e, "cannot read internal topic; rest of partition skipped");
                    break;
                }
            };
            let mut bytes = slice.bytes;
            if bytes.is_empty() {
                break;
            }
            let before = offset;
            while !bytes.is_empty() {
                let set = match RecordBatchDecoder::decode(&mut bytes) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(topic, partition, offset, error = %e, "undecodable batch in internal topic; rest of partition skipped");
                        offset = end;
                        break;
                    }
                };
                for r in set.records {
                    offset = offset.max(r.offset + 1);
                    if r.offset < before {
                        continue;
                    }
                    if r.control {
                        if let Some(commit) = marker_type(r.key.as_ref()) {
                            visit(ReplayEvent::Marker {
                                offset: r.offset,
                                producer_id: r.producer_id,
                                commit,
                            });
                        }
                        continue;
                    }
                    visit(ReplayEvent::Record {
                        producer_id: r.producer_id,
                        transactional: r.transactional,
                        record: ReplayedRecord {
                            offset: r.offset,
                            key: r.key,
                            value: r.value,
                        },
                    });
                }
            }
            if offset == before {
                // A slice that did not advance (empty batches only): stop rather than loop.
                break;
            }
        }
        true
    }
}
