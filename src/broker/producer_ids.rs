//! Producer ids for idempotent producers, handed out from blocks that the Raft metadata group allocates
//! (`AllocateProducerIds`), so an id is never issued twice, across restarts and brokers alike.

use tokio::sync::Mutex;

use crate::cluster::{ClusterError, CommandResult, MetadataCommand, MetadataStore};

/// Ids fetched per Raft write, as Kafka's ProducerIdManager does.
pub const BLOCK_SIZE: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("unexpected answer to AllocateProducerIds: {0:?}")]
    Unexpected(CommandResult),
}

/// The current block `[next, end)`. Ids left in a block when the broker stops are never used.
#[derive(Default)]
pub struct ProducerIdAllocator {
    block: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next unused producer id, fetching a new block through Raft when the current one is used up.
    pub async fn next(&self, metadata: &MetadataStore) -> Result<i64, ProducerIdError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let cmd = MetadataCommand::AllocateProducerIds { count: BLOCK_SIZE };
            match metadata.write(cmd).await? {
                CommandResult::ProducerIds { first, count } if count > 0 => {
                    tracing::debug!(first, count, "allocated a producer id block");
                    *block = (first, first.saturating_add(count));
                }
                other => return Err(ProducerIdError::Unexpected(other)),
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
