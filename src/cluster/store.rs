//! `MetadataStore`: the facade the broker uses — start Raft on local storage, read the latest
//! image, propose commands and wait for their result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::ClusterError;
use super::image::{CommandResult, MetadataCommand, MetadataImage};
use super::log_store::LogStore;
use super::network::{serve_raft, NetworkFactory};
use super::state_machine::{Publisher, StateMachineStore};
use super::types::{Node, NodeId, RaftInstance};

/// Where and how this node takes part in the metadata Raft group.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: u64,
    /// The broker's data dir; Raft state lives in `data_dir/raft`.
    pub data_dir: PathBuf,
    /// Listen address for Raft RPC; `None` = single node, no listener.
    pub raft_addr: Option<SocketAddr>,
    /// node id -> raft addr; empty or only self = single node.
    pub voters: BTreeMap<u64, String>,
}

/// Raft knobs; `MetadataStore::start` uses the defaults, tests lower the snapshot threshold.
#[derive(Clone, Debug)]
pub struct RaftTuning {
    /// Build a snapshot (and purge the log) after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept behind a snapshot so briefly-lagging followers don't need a snapshot.
    pub logs_to_keep_after_snapshot: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Single node: how long `start` waits to become leader and replay the log.
    pub leader_wait: Duration,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            snapshot_logs_since_last: 1000,
            logs_to_keep_after_snapshot: 100,
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            leader_wait: Duration::from_secs(10),
        }
    }
}

/// Handle to the local member of the metadata Raft group. Cheap to clone.
#[derive(Clone)]
pub struct MetadataStore {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    raft: RaftInstance,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
}

fn broker_id(node: Option<NodeId>) -> i32 {
    node.and_then(|n| i32::try_from(n).ok()).unwrap_or(-1)
}

impl MetadataStore {
    /// Open storage, start Raft; if the storage is fresh and this node is the lowest id among
    /// voters (or single node), initialize the membership. A single node waits (bounded by
    /// ~10 s) until it is leader and has applied its whole log.
    pub async fn start(config: ClusterConfig) -> Result<MetadataStore, ClusterError> {
        Self::start_with(config, RaftTuning::default()).await
    }

    /// [`MetadataStore::start`] with explicit Raft tuning.
    pub async fn start_with(
        config: ClusterConfig,
        tuning: RaftTuning,
    ) -> Result<MetadataStore, ClusterError> {
        let started = Instant::now();
        let node_id = config.node_id;
        let single = config.voters.keys().all(|id| *id == node_id);
        if !single && config.raft_addr.is_none() {
            return Err(ClusterError::Raft(
                "a multi-voter cluster needs raft_addr to listen on".into(),
            ));
        }

        let dir = config.data_dir.join("raft");
        let log_store = LogStore::open(&dir).map_err(|e| ClusterError::Storage(e.to_string()))?;
        let publisher = Arc::new(Publisher::new());
        let sm = StateMachineStore::open(&dir, publisher.clone())
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let image_rx = publisher.subscribe();

        let raft_config = Config {
            cluster_name: "vltava-metadata".into(),
            heartbeat_interval: tuning.heartbeat_ms,
            election_timeout_min: tuning.election_timeout_min_ms,
            election_timeout_max: tuning.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: tuning.logs_to_keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;

        // Bind before starting Raft so a bad address fails start-up cleanly.
        let listener = match config.raft_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let raft = RaftInstance::new(
            node_id,
            Arc::new(raft_config),
            NetworkFactory,
            log_store,
            sm,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;

        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            tasks.push(tokio::spawn(serve_raft(listener, raft.clone())));
        }

        let store = MetadataStore {
            inner: Arc::new(Inner {
                node_id,
                raft: raft.clone(),
                image_rx,
                tasks: Mutex::new(Vec::new()),
                shut_down: AtomicBool::new(false),
            }),
        };
        // From here on, failures must stop Raft again.
        match store
            .init_and_wait(&config, single, &tuning, publisher, tasks)
            .await
        {
            Ok(()) => {
                tracing::info!(node_id, elapsed = ?started.elapsed(), "metadata store started");
                Ok(store)
            }
            Err(e) => {
                let _ = store.shutdown().await;
                Err(e)
            }
        }
    }

    async fn init_and_wait(
        &self,
        config: &ClusterConfig,
        single: bool,
        tuning: &RaftTuning,
        publisher: Arc<Publisher>,
        mut tasks: Vec<JoinHandle<()>>,
    ) -> Result<(), ClusterError> {
        let raft = &self.inner.raft;
        let node_id = self.inner.node_id;

        // Keep the published image's controller_id in step with Raft leadership.
        let mut metrics = raft.metrics();
        tasks.push(tokio::spawn(async move {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                publisher.set_controller(broker_id(leader));
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        }));
        *self.lock_tasks() = tasks;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<NodeId, Node> = if single {
                let addr = config.raft_addr.map(|a| a.to_string()).unwrap_or_default();
                BTreeMap::from([(node_id, Node::new(addr))])
            } else {
                config
                    .voters
                    .iter()
                    .map(|(id, addr)| (*id, Node::new(addr)))
                    .collect()
            };
            // Only the lowest id bootstraps, so two nodes never create competing clusters; the
            // others learn the membership from its first AppendEntries.
            if members.keys().next() == Some(&node_id) {
                tracing::info!(node_id, voters = ?members.keys().collect::<Vec<_>>(), "initializing metadata raft group");
                match raft.initialize(members).await {
                    Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                    Err(e) => return Err(ClusterError::Raft(e.to_string())),
                }
            }
        }

        if single {
            raft.wait(Some(tuning.leader_wait))
                .metrics(
                    |m| {
                        m.current_leader == Some(node_id)
                            && m.last_applied.map(|l| l.index) >= m.last_log_index
                    },
                    "single node becomes leader and applies its log",
                )
                .await
                .map_err(|e| ClusterError::Timeout(e.to_string()))?;
        }
        Ok(())
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    /// Propose `cmd` through Raft and wait until it is applied; returns the apply result.
    pub async fn write(&self, cmd: MetadataCommand) -> Result<CommandResult, ClusterError> {
        match self.inner.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ClusterError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(ClusterError::Raft(e.to_string())),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The current Raft leader as last seen by this node (for forwarding).
    pub fn current_leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Stop Raft and the RPC listener. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for t in self.lock_tasks().drain(..) {
            t.abort();
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }
}
