//! The transaction coordinator, as Kafka's TransactionCoordinator / TransactionStateManager /
//! TransactionMetadata / TransactionLog: each transactional id's state machine (`state.rs`), the
//! coordinator's decisions on it (`plan.rs`), the client operations (`ops.rs`), what the admin APIs read (`admin.rs`), the
//! APIs' answers (`api.rs`), its durable log on
//! `__transaction_state` in Kafka's record formats (`records.rs`, `topic.rs`, written as `write.rs`
//! says), the markers that complete a decided transaction (`markers.rs`; routed to local logs and
//! other leaders by `marker_channel.rs`, WriteTxnMarkers in `marker_client.rs`), load/unload following the
//! leadership of the log's partitions (`loading.rs`), and the timeout/expiry scans (`timers.rs`).
//! It reaches the broker only through the narrow ports of `ports.rs`.

mod admin;
pub mod api;
mod coordinator;
mod error;
mod loading;
pub mod marker_channel;
pub mod marker_client;
mod markers;
mod ops;
pub mod plan;
pub mod ports;
pub mod records;
pub mod state;
mod timers;
pub mod topic;
mod verify;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_api;
#[cfg(test)]
mod tests_broker;
#[cfg(test)]
mod tests_markers;
#[cfg(test)]
mod tests_plan;
#[cfg(test)]
mod tests_plan_v2;

pub use admin::{TxnList, TxnListing};
pub use coordinator::{TransactionCoordinator, TxnConfig, TxnHandles};
pub use error::{TxnApi, TxnError};
pub use marker_channel::{BrokerMarkerWriter, LocalMarkerAppender};
pub use markers::RecordingMarkerWriter;
pub use ports::{
    BrokerProducerIds, MarkerOutcome, MarkerRequest, MarkerWriter, ProducerIdSource, TxnLog,
};
pub use state::{TopicPartition, TxnMetadata, TxnState};
pub use topic::{partition_for, topic_spec, TRANSACTION_STATE_TOPIC};
