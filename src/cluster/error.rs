//! `ClusterError`: the typed error returned by the cluster metadata API.

/// Errors surfaced by [`crate::cluster::MetadataStore`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No reachable controller (Raft leader) took the request; `leader` is the leader if known.
    /// Kafka's NOT_CONTROLLER (41), retriable: a leader may appear once an election ends.
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
    /// A broker request carries an epoch that is not its current registration's (or it is not
    /// registered): Kafka's STALE_BROKER_EPOCH (77); the broker must register again.
    #[error("stale broker epoch: {0}")]
    StaleBrokerEpoch(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// Not done in time (a leader without a majority): Kafka's REQUEST_TIMED_OUT (7).
    #[error("timed out: {0}")]
    Timeout(String),
}
