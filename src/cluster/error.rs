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
    /// A write to the metadata storage failed (disk full, I/O error): this write was not
    /// applied, and metadata writes fail until the Raft core restarts from disk, which the
    /// store does by itself once the storage takes writes again. Worth retrying.
    #[error("metadata storage unavailable: {0}")]
    StorageUnavailable(String),
    /// Raft itself failed (fatal error, shut down, invalid config, ...).
    #[error("raft error: {0}")]
    Raft(String),
    /// The data directory belongs to another cluster than the configured `cluster.id`.
    #[error("the metadata in this data directory belongs to cluster {stored:?}, but cluster.id is {configured:?}; refusing to start")]
    ClusterIdMismatch { configured: String, stored: String },
    /// The cluster settings are unusable (the message names the setting).
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out: {0}")]
    Timeout(String),
}
