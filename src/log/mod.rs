//! Segmented log store: one `PartitionLog` per partition directory, raw RecordBatch v2 bytes in segment files.

mod batch;
mod compaction;
mod config;
mod divergence;
mod encode;
mod error;
mod follower;
pub mod handles;
mod index;
mod leader_epoch;
mod partition;
mod producer_state;
mod records;
mod recovery;
mod retention;
mod segment;
mod txn;
pub mod volume;

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod producer_tests;
#[cfg(test)]
mod tests;

pub use batch::{validate_batches, validate_stored, BatchHeader};
pub use compaction::{compact_batch, CleanPlan, CleanStats, Cleaned};
pub use config::{FlushPolicy, LogConfig, TimestampType};
pub use encode::{encode_batch, plain_record};
pub use error::{BatchError, LogError};
pub use follower::validate_fetched;
pub use leader_epoch::{EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use partition::{AppendInfo, AppendOrigin, FetchSlice, PartitionLog};
pub use producer_state::{
    last_sequence, AppendCheck, BatchMetadata, CompletedTxn, ProducerEntry, ProducerError,
    ProducerStateManager, MAX_CACHED_BATCHES,
};
pub use records::{
    decompress_bounded, for_each_record, keyless_records, record_metas, records_section,
    RecordMeta, RecordView,
};
pub use recovery::{sync_filesystem, FileSync};
pub use txn::{encode_marker, parse_marker, AbortedTxn, TxnMarker};
