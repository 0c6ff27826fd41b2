//! `MetadataStore`: the facade the broker uses — start Raft on local storage, read the latest
//! image, propose commands and wait for their result. A Raft core that stops on a storage error
//! is restarted from disk by the store's supervisor (`supervisor.rs`); writes meanwhile answer
//! `ClusterError::StorageUnavailable` at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::{Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bootstrap::{
    join_as_learner, settle_cluster_id, stored_cluster_id, validate_options, ClusterOptions,
};
use super::controller::{Controller, ControllerReply, ControllerRequest};
use super::error::ClusterError;
use super::forward::default_bind_ip;
use super::heartbeat::fence_expired;
use super::identity::Identity;
use super::image::{CommandResult, MetadataCommand, MetadataImage};
use super::instance::{wait_single_leader, Shared};
use super::network::NetworkFactory;
use super::reserve::Reserve;
use super::server::serve;
use super::state_machine::Publisher;
use super::supervisor::supervise;
use super::types::{NodeId, RaftInstance};

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
    /// Single node: how long `start` (and a restart) waits to become leader and replay the log.
    pub leader_wait: Duration,
    /// How long `write` waits for a command to be committed and applied.
    pub write_timeout: Duration,
    /// The controller fences a broker after this long without a heartbeat (Kafka's
    /// `broker.session.timeout.ms`, 9 s).
    pub broker_session_timeout: Duration,
    /// Size of the ballast file in `<data_dir>/raft/` released when a Raft write runs out of
    /// space (0: none).
    pub reserve_bytes: u64,
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
            write_timeout: Duration::from_secs(10),
            broker_session_timeout: Duration::from_secs(9),
            reserve_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Handle to the local member of the metadata Raft group. Cheap to clone.
#[derive(Clone)]
pub struct MetadataStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) shared: Shared,
    pub(super) single: bool,
    pub(super) tuning: RaftTuning,
    /// Executes controller requests when this node leads (also for the server).
    pub(super) controller: Arc<Controller>,
    /// The configured voters (node id -> Raft address), tried while no leader is known.
    pub(super) voters: BTreeMap<NodeId, String>,
    /// How this node introduces itself on the metadata port, and its own IP.
    pub(super) identity: Arc<Identity>,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    /// The Raft instance in use; the RPC listener follows it too.
    current: watch::Sender<RaftInstance>,
    /// The task following the current instance's leader.
    leader_task: Mutex<Option<JoinHandle<()>>>,
    /// The RPC listener and the supervisor.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Why the core is down, from when the supervisor sees it stop until it is restarted.
    down: Mutex<Option<Down>>,
    /// Held while an instance is replaced, so `shutdown` never races a restart.
    restarting: tokio::sync::Mutex<()>,
    pub(super) shut_down: AtomicBool,
}

/// The cause of a stopped core, as writes report it until the restart.
#[derive(Clone)]
enum Down {
    Storage(String),
    Other(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(super) fn current(&self) -> RaftInstance {
        self.current.borrow().clone()
    }

    /// Records why the core is down (what writes answer until it is restarted).
    pub(super) fn set_down(&self, cause: &ClusterError) {
        let down = match cause {
            ClusterError::StorageUnavailable(c) => Down::Storage(c.clone()),
            other => Down::Other(other.to_string()),
        };
        *lock(&self.down) = Some(down);
    }

    /// The error for a write while the current core is stopped with `fatal`.
    pub(super) fn unavailable(&self, fatal: ClusterError) -> ClusterError {
        if self.shut_down.load(Ordering::SeqCst) {
            return ClusterError::Raft("the metadata store is shut down".into());
        }
        match lock(&self.down).clone() {
            Some(Down::Storage(cause)) => ClusterError::StorageUnavailable(cause),
            Some(Down::Other(cause)) => ClusterError::Raft(cause),
            None => fatal,
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_rx.clone()
    }

    /// Replaces the current, stopped, instance with one reopened from disk. `Ok(false)` when the
    /// store was shut down first.
    pub(super) async fn restart(&self) -> Result<bool, ClusterError> {
        let _serial = self.restarting.lock().await;
        if self.shut_down.load(Ordering::SeqCst) {
            return Ok(false);
        }
        if let Some(t) = lock(&self.leader_task).take() {
            t.abort();
        }
        // Joins the stopped core, so nothing uses the old log store once the new one opens.
        let old = self.current();
        if tokio::time::timeout(STOP_WAIT, old.shutdown())
            .await
            .is_err()
        {
            return Err(ClusterError::Raft(format!(
                "the stopped raft core did not finish within {STOP_WAIT:?}"
            )));
        }
        let raft = self.shared.open().await?;
        if self.single {
            let waited =
                wait_single_leader(&raft, self.shared.node_id, self.tuning.leader_wait).await;
            if let Err(e) = waited {
                let _ = raft.shutdown().await;
                return Err(e);
            }
        }
        *lock(&self.leader_task) = Some(self.shared.follow_leader(&raft));
        self.current.send_replace(raft);
        *lock(&self.down) = None;
        Ok(true)
    }
}

impl Inner {
    /// Waits (until `deadline`) until the local state machine has applied log `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) {
        let raft = self.current();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let applied = raft
            .wait(Some(timeout))
            .metrics(
                |m| m.last_applied.map(|l| l.index) >= Some(index),
                "the local image contains the write",
            )
            .await;
        if applied.is_err() {
            tracing::warn!(
                index,
                "metadata write committed but not yet applied on this node"
            );
        }
    }
}

/// How long a restart waits for the stopped core's task to finish.
const STOP_WAIT: Duration = Duration::from_secs(5);

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
        Self::start_node(config, ClusterOptions::default(), tuning).await
    }

    /// Starts this node's member of the metadata quorum: a voter (in `config.voters`) or, with
    /// `options.learner`, a broker-only learner that asks the leader to add it. Fresh voters
    /// with the same voter map form the cluster by themselves; the first leader commits the
    /// cluster id (`options.cluster_id` if set). Storage that already holds the group is never
    /// initialized again: a restarted node just rejoins (and may start alone, without a
    /// majority: writes then wait for one). Fails with `ClusterIdMismatch` when the stored
    /// cluster id differs from `options.cluster_id`. A single node returns once it leads, with
    /// its log applied and a cluster id; a multi-node member returns at once.
    pub async fn start_node(
        config: ClusterConfig,
        options: ClusterOptions,
        tuning: RaftTuning,
    ) -> Result<MetadataStore, ClusterError> {
        let started = Instant::now();
        let node_id = config.node_id;
        validate_options(&config, &options)?;
        let single = !options.learner && config.voters.keys().all(|id| *id == node_id);
        if !single && config.raft_addr.is_none() {
            return Err(ClusterError::Raft(
                "a multi-voter cluster needs raft_addr to listen on".into(),
            ));
        }

        let dir = config.data_dir.join("raft");
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(e.to_string()))?;
        let stored_id = stored_cluster_id(&dir, options.cluster_id.as_deref())?;
        // Before any Raft write, so even the first vote on a full disk can use it.
        let reserve = Arc::new(Reserve::open(&dir, tuning.reserve_bytes));
        let publisher = Arc::new(Publisher::new());
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
        let identity = Arc::new(Identity::new(
            node_id,
            options.learner,
            options.cluster_id.clone(),
            stored_id,
            image_rx.clone(),
            config.voters.clone(),
            options.local_ip.or(default_bind_ip(config.raft_addr)),
        ));
        let shared = Shared {
            node_id,
            dir,
            raft_config: Arc::new(raft_config),
            publisher,
            reserve,
            network: NetworkFactory {
                identity: identity.clone(),
            },
        };
        let raft = shared.open().await?;
        let leader_task = shared.follow_leader(&raft);
        let (current, current_rx) = watch::channel(raft);
        let controller = Arc::new(Controller {
            raft: current_rx,
            images: image_rx.clone(),
            liveness: Default::default(),
        });
        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            tasks.push(tokio::spawn(serve(
                listener,
                controller.clone(),
                identity.clone(),
            )));
        }

        let store = MetadataStore {
            inner: Arc::new(Inner {
                shared,
                single,
                tuning,
                controller,
                voters: config.voters.clone(),
                identity,
                image_rx,
                current,
                leader_task: Mutex::new(Some(leader_task)),
                tasks: Mutex::new(tasks),
                down: Mutex::new(None),
                restarting: tokio::sync::Mutex::new(()),
                shut_down: AtomicBool::new(false),
            }),
        };
        // From here on, failures must stop Raft again.
        match store.init_and_wait(&config, &options).await {
            Ok(()) => {
                let weak = Arc::downgrade(&store.inner);
                let mut tasks = lock(&store.inner.tasks);
                tasks.push(tokio::spawn(supervise(weak.clone())));
                let session = store.inner.tuning.broker_session_timeout;
                tasks.push(tokio::spawn(fence_expired(weak.clone(), session)));
                tasks.push(tokio::spawn(settle_cluster_id(
                    weak.clone(),
                    options.cluster_id.clone(),
                )));
                if let (true, Some(addr)) = (options.learner, config.raft_addr) {
                    tasks.push(tokio::spawn(join_as_learner(weak, addr.to_string())));
                }
                drop(tasks);
                tracing::info!(node_id, elapsed = ?started.elapsed(), "metadata store started");
                Ok(store)
            }
            Err(e) => {
                let _ = store.shutdown().await;
                Err(e)
            }
        }
    }

    /// Latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    /// Commits `cmd` through the controller (the Raft leader) and returns its result: run here
    /// when this node leads, else forwarded to the leader over the Raft port. Waits through an
    /// election up to `RaftTuning::write_timeout`; without a reachable leader by then it fails
    /// with `NotLeader { leader: None }` (NOT_CONTROLLER), with a leader that could not commit
    /// (no majority) with `Timeout` (REQUEST_TIMED_OUT). While this node's Raft core is stopped
    /// (a storage failure, until the supervisor restarts it) it answers `StorageUnavailable` at
    /// once. Image reads ([`MetadataStore::image`]) need no majority.
    ///
    /// When it returns, this node's image contains the write (read-your-writes on any node),
    /// unless this node lags so far that it has not applied it by the deadline (logged).
    pub async fn write(&self, cmd: MetadataCommand) -> Result<CommandResult, ClusterError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        match self
            .inner
            .to_controller(ControllerRequest::Write(cmd), deadline)
            .await?
        {
            ControllerReply::Written { result, index } => {
                self.inner.wait_applied(index, deadline).await;
                Ok(result)
            }
            other => Err(ClusterError::Raft(format!(
                "the controller answered a write with {other:?}"
            ))),
        }
    }

    /// Waits (up to `timeout`) until the applied image has a cluster id, which a multi-node
    /// member learns once the first leader has committed it; the broker needs it before it
    /// answers clients. `Timeout` when no leader committed one in time.
    pub async fn wait_for_cluster_id(&self, timeout: Duration) -> Result<String, ClusterError> {
        let mut images = self.subscribe();
        let found = tokio::time::timeout(timeout, images.wait_for(|i| !i.cluster_id.is_empty()))
            .await
            .map(|r| r.map(|img| img.cluster_id.clone()));
        match found {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(_)) => Err(ClusterError::Raft("the metadata store is shut down".into())),
            Err(_) => Err(ClusterError::Timeout(format!(
                "no cluster id committed within {timeout:?} (is a majority of the voters up?)"
            ))),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.inner.shared.node_id
    }

    /// The current Raft leader as last seen by this node (for forwarding).
    pub fn current_leader(&self) -> Option<u64> {
        self.inner.current().metrics().borrow().current_leader
    }

    /// Stop Raft, the RPC listener and the supervisor. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // A restart under way finishes first; none starts after this.
        let _serial = self.inner.restarting.lock().await;
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        if let Some(t) = lock(&self.inner.leader_task).take() {
            t.abort();
        }
        self.inner
            .current()
            .shutdown()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// The local Raft's metrics, for tests that await a leadership change.
    #[cfg(test)]
    pub(crate) fn raft_metrics(
        &self,
    ) -> watch::Receiver<openraft::RaftMetrics<NodeId, super::types::Node>> {
        self.inner.current().metrics()
    }

    /// Test-only fault hook: the next `n` metadata storage writes fail with ENOSPC.
    #[cfg(test)]
    pub(crate) fn fail_next_storage_writes(&self, n: u32) {
        self.inner.shared.reserve.fail_next_writes(n);
    }

    /// Whether the reserve ballast is in place.
    #[cfg(test)]
    pub(crate) fn reserve_held(&self) -> bool {
        self.inner.shared.reserve.is_held()
    }
}
