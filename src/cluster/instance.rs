//! One Raft instance on the metadata directory: opened from its durable state (log store and
//! state machine on the store's shared publisher and reserve), the task that stamps its leader on
//! the published image, the single-node wait for leadership, and what a stopped core means.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::Fatal;
use openraft::Config;
use tokio::task::JoinHandle;

use super::error::ClusterError;
use super::log_store::LogStore;
use super::network::NetworkFactory;
use super::reserve::Reserve;
use super::state_machine::{Publisher, StateMachineStore};
use super::types::{NodeId, RaftInstance};

/// What every Raft instance of one `MetadataStore` is built from.
pub(super) struct Shared {
    pub(super) node_id: NodeId,
    /// `<data_dir>/raft`.
    pub(super) dir: PathBuf,
    pub(super) raft_config: Arc<Config>,
    /// Outlives the instances, so the broker's image watch keeps working across restarts.
    pub(super) publisher: Arc<Publisher>,
    pub(super) reserve: Arc<Reserve>,
    pub(super) network: NetworkFactory,
}

fn broker_id(node: Option<NodeId>) -> i32 {
    node.and_then(|n| i32::try_from(n).ok()).unwrap_or(-1)
}

impl Shared {
    /// Opens the log store and the state machine from disk and starts Raft on them.
    pub(super) async fn open(&self) -> Result<RaftInstance, ClusterError> {
        let storage = |e: std::io::Error| ClusterError::Storage(e.to_string());
        let log_store = LogStore::open(&self.dir, self.reserve.clone()).map_err(storage)?;
        let sm = StateMachineStore::open(&self.dir, self.publisher.clone(), self.reserve.clone())
            .map_err(storage)?;
        RaftInstance::new(
            self.node_id,
            self.raft_config.clone(),
            self.network.clone(),
            log_store,
            sm,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Keeps the published image's controller_id in step with `raft`'s leadership.
    pub(super) fn follow_leader(&self, raft: &RaftInstance) -> JoinHandle<()> {
        let mut metrics = raft.metrics();
        let publisher = self.publisher.clone();
        tokio::spawn(async move {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                publisher.set_controller(broker_id(leader));
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        })
    }
}

/// The error a stopped core answers with: a storage failure makes the storage unavailable.
pub(super) fn fatal_error(fatal: &Fatal<NodeId>) -> ClusterError {
    match fatal {
        Fatal::StorageError(e) => ClusterError::StorageUnavailable(e.to_string()),
        other => ClusterError::Raft(format!("raft core stopped: {other}")),
    }
}

/// Why `raft`'s core stopped, if it has.
pub(super) fn stopped(raft: &RaftInstance) -> Option<ClusterError> {
    match &raft.metrics().borrow().running_state {
        Ok(()) => None,
        Err(fatal) => Some(fatal_error(fatal)),
    }
}

/// Single node: waits (up to `wait`) until this node leads and has applied its whole log; a
/// core that stops meanwhile is answered at once with why.
pub(super) async fn wait_single_leader(
    raft: &RaftInstance,
    node_id: NodeId,
    wait: Duration,
) -> Result<(), ClusterError> {
    let res = raft
        .wait(Some(wait))
        .metrics(
            |m| {
                m.running_state.is_err()
                    || (m.current_leader == Some(node_id)
                        && m.last_applied.map(|l| l.index) >= m.last_log_index)
            },
            "single node becomes leader and applies its log",
        )
        .await;
    if let Some(e) = stopped(raft) {
        return Err(e);
    }
    res.map(|_| ())
        .map_err(|e| ClusterError::Timeout(e.to_string()))
}
