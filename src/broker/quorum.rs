//! How this broker joins the metadata quorum: the Raft group's shape from the configuration (one voter by
//! default; `controller.quorum.voters` and the controller listener in a cluster), then the cluster id and
//! this broker's registration, written through whichever node leads, waiting as long as the quorum is
//! still forming.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tracing::{info, warn};

use super::StartError;
use crate::cluster::{
    BrokerInfo, ClusterConfig, ClusterError, ClusterOptions, CommandResult, Heartbeats,
    MetadataCommand, MetadataStore, RaftTuning,
};
use crate::config::{Config, ConfigError};

/// Starts this node's member of the metadata quorum as configured.
pub async fn start_metadata(config: &Config) -> Result<MetadataStore, StartError> {
    let cluster = cluster_config(config)?;
    let options = ClusterOptions {
        cluster_id: config.cluster_id.clone(),
        learner: !config.process_roles.controller,
        local_ip: None,
    };
    let tuning = RaftTuning {
        broker_session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
        ..RaftTuning::default()
    };
    Ok(MetadataStore::start_node(cluster, options, tuning).await?)
}

/// The Raft group as configured: a single voter unless `controller.quorum.voters` names others.
fn cluster_config(config: &Config) -> Result<ClusterConfig, StartError> {
    let voters: BTreeMap<u64, String> = config
        .controller_quorum_voters
        .iter()
        .map(|v| (v.id as u64, v.addr.to_string()))
        .collect();
    let single =
        config.process_roles.controller && voters.keys().all(|id| *id == config.node_id as u64);
    let raft_addr = match (single, config.controller_listener()) {
        (true, _) => None,
        (false, Some(listener)) => Some(resolve(
            &format!("{}:{}", listener.addr.bind_host(), listener.addr.port),
            "listeners (controller listener)",
        )?),
        (false, None) => {
            return Err(ConfigError::Invalid(
                "controller.listener.names: a node of a multi-voter quorum needs a controller listener in `listeners`"
                    .into(),
            )
            .into())
        }
    };
    Ok(ClusterConfig {
        node_id: config.node_id as u64,
        data_dir: config.data_dir.clone(),
        raft_addr,
        voters,
    })
}

fn resolve(addr: &str, key: &str) -> Result<SocketAddr, StartError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ConfigError::Invalid(format!("{key}: cannot resolve {addr}")).into())
}

/// Whether a failed metadata write may succeed later without anything changing here: the quorum is
/// forming or electing, or its storage is recovering.
fn worth_retrying(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::NotLeader { .. }
            | ClusterError::Timeout(_)
            | ClusterError::StorageUnavailable(_)
    )
}

/// Writes `cmd`, retrying while the quorum is not (yet) able to commit: a node of a cluster starting up
/// waits for enough voters to come up, as a Kafka broker waits for its controller. One log line per
/// minute of waiting.
async fn write_when_possible(
    metadata: &MetadataStore,
    cmd: MetadataCommand,
    what: &str,
) -> Result<CommandResult, ClusterError> {
    let started = std::time::Instant::now();
    let mut reported = Duration::ZERO;
    loop {
        match metadata.write(cmd.clone()).await {
            Err(e) if worth_retrying(&e) => {
                let waited = started.elapsed();
                if waited >= reported {
                    warn!(error = %e, waited_s = waited.as_secs(), "{what}: waiting for the metadata quorum");
                    reported = waited + Duration::from_secs(60);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// The cluster id (committed by the quorum's first leader: the configured one, else a new one), this
/// broker's registration (a new broker epoch each start, as KRaft), and its
/// heartbeats to the controller, which unfence it once it has caught up with the metadata log. Returns
/// once unfenced, or after the session timeout with a warning (it goes on heartbeating).
pub async fn join(
    config: &Config,
    metadata: &MetadataStore,
    me: BrokerInfo,
) -> Result<Heartbeats, StartError> {
    // The first leader commits the cluster id (the configured one, if any); wait for it, with a log
    // line a minute, as long as the quorum is forming.
    let mut waited = Duration::ZERO;
    let agreed = loop {
        match metadata.wait_for_cluster_id(Duration::from_secs(60)).await {
            Ok(id) => break id,
            Err(ClusterError::Timeout(why)) => {
                waited += Duration::from_secs(60);
                warn!(waited_s = waited.as_secs(), %why, "waiting for the metadata quorum");
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(configured) = &config.cluster_id {
        if configured != &agreed {
            return Err(StartError::ClusterIdMismatch {
                configured: configured.clone(),
                stored: agreed,
            });
        }
    }
    let registered = write_when_possible(
        metadata,
        MetadataCommand::RegisterBroker(me),
        "registration",
    )
    .await?;
    let CommandResult::BrokerRegistered { epoch } = registered else {
        return Err(ClusterError::Raft(format!("registration answered {registered:?}")).into());
    };
    let interval = Duration::from_millis(config.broker_heartbeat_interval_ms);
    let heartbeats = metadata.spawn_heartbeats(config.node_id, epoch, interval);
    let session = Duration::from_millis(config.broker_session_timeout_ms);
    if heartbeats.wait_for(session, |r| !r.is_fenced).await {
        info!(cluster_id = %agreed, node_id = config.node_id, broker_epoch = epoch, "joined the cluster");
    } else {
        warn!(
            node_id = config.node_id,
            broker_epoch = epoch,
            "still fenced after the session timeout; serving anyway and heartbeating on"
        );
    }
    Ok(heartbeats)
}
