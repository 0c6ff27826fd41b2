//! Where a transaction marker for a partition led here goes: the partition layer appends it and
//! waits for the ISR, then, on `__consumer_offsets`, the group coordinator applies or drops the
//! producer's pending transactional offsets (Kafka's `handleTxnCompletion` after WriteTxnMarkers).
//! Used by the WriteTxnMarkers handler and, for its own partitions, by the transaction
//! coordinator's marker channel.

use std::sync::Weak;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tracing::debug;

use super::replica::TxnMarker;
use super::Broker;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::txn::ports::BoxFuture;
use crate::txn::{LocalMarkerAppender, MarkerRequest, TopicPartition};

/// How long a marker waits for the ISR: Kafka's WriteTxnMarkers handler waits `request.timeout.ms`.
pub const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Broker {
    /// Writes `marker` to `topic`-`index` (led here) and answers Kafka's error code (0: written
    /// and replicated to the ISR).
    pub async fn write_txn_marker(&self, topic: &str, index: i32, marker: TxnMarker) -> i16 {
        let result = self
            .replicas
            .write_txn_marker(
                topic,
                index,
                marker,
                crate::clock::now_ms(),
                MARKER_WRITE_TIMEOUT,
            )
            .await;
        match result {
            Ok(()) => {
                if topic == OFFSETS_TOPIC {
                    self.group
                        .on_txn_marker(index, marker.producer_id, marker.commit);
                }
                0
            }
            Err(e) => {
                debug!(topic, partition = index, producer_id = marker.producer_id,
                    commit = marker.commit, error = %e, "transaction marker not written");
                let code: ResponseError = e.code();
                code.code()
            }
        }
    }
}

/// The transaction coordinator's way to this broker's own partitions.
pub struct BrokerLocalMarkers(pub Weak<Broker>);

impl LocalMarkerAppender for BrokerLocalMarkers {
    fn append_marker<'a>(
        &'a self,
        (topic, index): &'a TopicPartition,
        request: &'a MarkerRequest,
    ) -> BoxFuture<'a, i16> {
        Box::pin(async move {
            let Some(broker) = self.0.upgrade() else {
                return ResponseError::NotLeaderOrFollower.code();
            };
            let marker = TxnMarker {
                producer_id: request.producer_id,
                producer_epoch: request.producer_epoch,
                commit: request.commit,
                coordinator_epoch: request.coordinator_epoch,
            };
            broker.write_txn_marker(topic, *index, marker).await
        })
    }
}
