//! `ClusterError`: the typed error returned by the cluster metadata API.

/// Errors surfaced by [`crate::cluster::MetadataStore`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This node is not the Raft leader; `leader` is the current leader if known.
    #[error("not the metadata leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// Durable storage (raft log, vote, snapshot) is unreadable or could not be written.
    #[error("metadata storage error: {0}")]
    Storage(String),
    /// Raft itself failed (fatal error, shut down, invalid config, ...).
    #[error("raft error: {0}")]
    Raft(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out: {0}")]
    Timeout(String),
}
