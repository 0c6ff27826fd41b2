//! The producers a partition leader knows (DescribeProducers, KIP-664): the state behind
//! idempotence and transactions, for finding a hanging transaction's producer.

use super::{ReplicaError, ReplicaManager};

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of its open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

impl ReplicaManager {
    /// The producers of `topic`-`index` in this broker's replica, leader or follower (a follower
    /// rebuilds them as it copies the leader's batches), by producer id; NOT_LEADER_OR_FOLLOWER when
    /// no replica is hosted here, as Kafka's `activeProducerState` answers.
    /// (`kafka-transactions.sh find-hanging --broker-id` asks every replica.)
    pub fn active_producers(
        &self,
        topic: &str,
        index: i32,
    ) -> Result<Vec<ActiveProducer>, ReplicaError> {
        let image = self.metadata.image();
        let partition = self.hosted(&image, topic, index)?;
        let log = partition.lock();
        let mut producers: Vec<ActiveProducer> = log
            .producer_state()
            .iter()
            .map(|(id, e)| ActiveProducer {
                producer_id: id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        Ok(producers)
    }
}
