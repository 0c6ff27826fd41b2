//! Forming the cluster with no format step: fresh voters initialize the Raft group with the
//! configured voter map (openraft allows every member to do so with the same map; storage that
//! holds a group is never initialized again), the first leader commits `InitCluster` once (the
//! configured `cluster.id` if any), the id is kept in `<data_dir>/raft/cluster_id` (Kafka's
//! meta.properties) and checked at start, and a broker-only node asks the leader to add it as a
//! learner.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use openraft::ServerState;

use super::controller::ControllerRequest;
use super::durable::{atomic_write, read_atomic};
use super::error::ClusterError;
use super::image::{new_cluster_id, MetadataCommand};
use super::instance::{fatal_error, wait_single_leader};
use super::store::{ClusterConfig, Inner, MetadataStore};
use super::types::{Node, NodeId};

/// How a node joins the metadata quorum, beyond [`ClusterConfig`]; the default is a voter with no
/// configured cluster id that binds outgoing sockets to its Raft listen IP.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Kafka's `cluster.id`: the id a new cluster takes, and the one stored data must carry
    /// (else the node refuses to start). `None`: a fresh cluster draws a random one.
    pub cluster_id: Option<String>,
    /// A broker-only node (`process.roles=broker`): it is not in the voter map and joins as a
    /// non-voting learner, which the leader adds on its request. Its `raft_addr` must be an
    /// address the others can reach.
    pub learner: bool,
    /// This node's own IP, which every outgoing Raft/forwarding socket is bound to (so links can
    /// be cut by address pair). `None`: the IP of `raft_addr` unless that is unspecified.
    pub local_ip: Option<IpAddr>,
}

/// File under `<data_dir>/raft` holding the cluster id once known.
const CLUSTER_ID_FILE: &str = "cluster_id";

/// The cluster id stored in `dir`, checked against the configured one.
pub(super) fn stored_cluster_id(
    dir: &Path,
    configured: Option<&str>,
) -> Result<Option<String>, ClusterError> {
    let stored = read_atomic(&dir.join(CLUSTER_ID_FILE))
        .map_err(|e| ClusterError::Storage(e.to_string()))?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    check_cluster_id(configured, stored.as_deref())?;
    Ok(stored)
}

/// A node configured for one cluster never runs on another's data.
pub(super) fn check_cluster_id(
    configured: Option<&str>,
    stored: Option<&str>,
) -> Result<(), ClusterError> {
    match (configured, stored) {
        (Some(c), Some(s)) if !s.is_empty() && c != s => Err(ClusterError::ClusterIdMismatch {
            configured: c.to_string(),
            stored: s.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Kafka's ids are 22 base64url characters; any short id of those characters is accepted.
pub(super) fn validate_options(
    config: &ClusterConfig,
    options: &ClusterOptions,
) -> Result<(), ClusterError> {
    let bad = |why: String| Err(ClusterError::InvalidConfig(why));
    if let Some(id) = &options.cluster_id {
        let ok_chars = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if id.is_empty() || id.len() > 64 || !ok_chars {
            return bad(format!(
                "cluster.id {id:?} must be 1-64 characters of [A-Za-z0-9_-]"
            ));
        }
    }
    if options.learner {
        if config.voters.contains_key(&config.node_id) {
            return bad(format!(
                "node {} is in the voter map, so it cannot join as a broker-only learner",
                config.node_id
            ));
        }
        if config.voters.is_empty() {
            return bad("a broker-only learner needs the voters to join".into());
        }
        match config.raft_addr {
            Some(a) if !a.ip().is_unspecified() => {}
            _ => {
                return bad(
                    "a broker-only learner needs a raft_addr the voters can reach (not 0.0.0.0)"
                        .into(),
                )
            }
        }
    }
    Ok(())
}

impl MetadataStore {
    /// Initializes fresh voter storage with the voter map; a single node then waits until it
    /// leads with its whole log applied and has a cluster id.
    pub(super) async fn init_and_wait(
        &self,
        config: &ClusterConfig,
        options: &ClusterOptions,
    ) -> Result<(), ClusterError> {
        let raft = self.inner.current();
        let node_id = self.inner.shared.node_id;
        let single = self.inner.single;

        // Storage that holds a vote, a log or a membership is never initialized again: a node
        // restarted with data just rejoins.
        let initialized = raft.is_initialized().await.map_err(|f| fatal_error(&f))?;
        if !initialized && !options.learner {
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
            // Every fresh voter initializes with the same map (safe, as openraft documents), so
            // any majority of them forms the cluster without waiting for one particular node.
            tracing::info!(node_id, voters = ?members.keys().collect::<Vec<_>>(), "initializing metadata raft group");
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(RaftError::Fatal(f)) => return Err(fatal_error(&f)),
                Err(e) => return Err(ClusterError::Raft(e.to_string())),
            }
        }

        if single {
            wait_single_leader(&raft, node_id, self.inner.tuning.leader_wait).await?;
            if self.image().cluster_id.is_empty() {
                let cluster_id = options.cluster_id.clone().unwrap_or_else(new_cluster_id);
                self.write(MetadataCommand::InitCluster { cluster_id })
                    .await?;
            }
        }
        check_cluster_id(
            options.cluster_id.as_deref(),
            Some(&self.image().cluster_id),
        )
    }
}

/// Until the image has a cluster id: whenever this node leads, commits `InitCluster` (a no-op
/// once one is applied, so a repeat after a leader change is harmless). Then stores the id and
/// ends. Runs until the store is dropped.
pub(super) async fn settle_cluster_id(inner: Weak<Inner>, configured: Option<String>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let mut images = strong.subscribe();
    let dir = strong.shared.dir.clone();
    let node_id = strong.shared.node_id;
    drop(strong);
    loop {
        let id = images.borrow_and_update().cluster_id.clone();
        if !id.is_empty() {
            if let Err(e) = check_cluster_id(configured.as_deref(), Some(&id)) {
                tracing::error!(error = %e, "this node's metadata belongs to another cluster");
            }
            remember(&dir, &id);
            return;
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let raft = strong.current();
        let mut metrics = raft.metrics();
        let leading = {
            let m = metrics.borrow_and_update();
            m.state == ServerState::Leader && m.current_leader == Some(node_id)
        };
        if leading {
            let cluster_id = configured.clone().unwrap_or_else(new_cluster_id);
            tracing::info!(%cluster_id, "bootstrapping the cluster id");
            let deadline = Instant::now() + strong.tuning.write_timeout;
            let init = ControllerRequest::Write(MetadataCommand::InitCluster { cluster_id });
            if let Err(e) = strong.to_controller(init, deadline).await {
                tracing::warn!(error = %e, "committing the cluster id failed; retrying");
            }
        }
        drop(strong);
        tokio::select! {
            _ = images.changed() => {}
            _ = metrics.changed() => {}
            // A restarted core has new metrics: look again now and then.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn remember(dir: &Path, id: &str) {
    let path = dir.join(CLUSTER_ID_FILE);
    match read_atomic(&path) {
        Ok(Some(stored)) if stored == id.as_bytes() => {}
        _ => {
            if let Err(e) = atomic_write(&path, id.as_bytes()) {
                tracing::warn!(error = %e, path = %path.display(), "could not store the cluster id");
            }
        }
    }
}

/// A learner asks the controller to add it (its Raft address with it) until it is a member.
pub(super) async fn join_as_learner(inner: Weak<Inner>, addr: String) {
    let mut warned = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let node_id = strong.shared.node_id;
        let member = strong
            .current()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .is_some();
        if member {
            tracing::info!(node_id, "member of the metadata quorum as a learner");
            return;
        }
        let deadline = Instant::now() + strong.tuning.write_timeout;
        let join = ControllerRequest::AddLearner {
            node_id,
            addr: addr.clone(),
        };
        match strong.to_controller(join, deadline).await {
            Ok(_) => {
                tracing::info!(node_id, "added to the metadata quorum as a learner");
                return;
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "joining the metadata quorum as a learner failed; retrying");
            }
            Err(e) => tracing::debug!(error = %e, "joining as a learner failed; retrying"),
        }
        drop(strong);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
