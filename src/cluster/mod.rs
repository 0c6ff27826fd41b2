//! Cluster metadata replicated through an embedded openraft group (KRaft-style): types,
//! durable log storage, the metadata state machine, the metadata port (Raft RPC and requests
//! forwarded to the controller, behind a hello that keeps strangers out), bootstrap, broker
//! liveness and leadership, replica placement, and the `MetadataStore` facade, which restarts a
//! Raft core stopped by a storage failure (and keeps a space reserve for it).

mod bootstrap;
mod controller;
mod durable;
mod election;
mod error;
mod forward;
mod heartbeat;
mod identity;
mod image;
mod instance;
mod isr;
mod log_store;
mod network;
pub mod placement;
mod reserve;
mod server;
mod state_machine;
mod store;
mod supervisor;
mod types;
mod wire;

#[cfg(test)]
mod tests;

pub use bootstrap::ClusterOptions;
pub use error::ClusterError;
pub use heartbeat::{BrokerHeartbeat, HeartbeatReply, Heartbeats};
pub use image::{
    new_cluster_id, BrokerInfo, BrokerRegistration, CommandResult, IsrChange, IsrChangeRefused,
    ListenerEndpoint, MetadataCommand, MetadataImage, PartitionInfo, TopicInfo,
};
pub use store::{ClusterConfig, MetadataStore, RaftTuning};
pub use types::{NodeId, RaftInstance, TypeConfig};
