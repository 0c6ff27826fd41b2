//! Raft type configuration (`declare_raft_types!`) and the aliases used across the module.

// `declare_raft_types!` names `Cursor` unqualified for the default snapshot data type.
use std::io::Cursor;

use super::image::{CommandResult, MetadataCommand};

openraft::declare_raft_types!(
    /// Raft types of the metadata group: commands in, command results out.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResult,
);

pub type NodeId = u64;
/// A node is known by its Raft RPC address.
pub type Node = openraft::BasicNode;
pub type RaftInstance = openraft::Raft<TypeConfig>;
pub type LogEntry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Shorthand for "cursor over bytes", the snapshot payload type (openraft default).
pub type SnapshotData = Cursor<Vec<u8>>;
