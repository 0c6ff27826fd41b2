//! The broker's shared state: configuration, the Raft metadata store, and the hosted partitions.

pub mod alter;
pub mod configs;
pub mod coordinator_shards;
pub mod disk;
pub mod dynamic;
pub mod internal_topic;
mod isr;
mod partition;
mod partitions;
#[cfg(test)]
mod partitions_tests;
pub mod producer_ids;
mod quorum;
pub mod replica;
pub mod topic_config;
pub mod topics;
mod txn_guard;
mod txn_markers;
mod txn_verify;

pub use txn_guard::TxnGuard;
pub use txn_markers::MARKER_WRITE_TIMEOUT;

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

pub use partition::{LeadershipChange, Partition, ReplicaState, Role};
pub use partitions::PartitionManager;

use crate::clock::Clock;
use crate::cluster::{BrokerInfo, ClusterError, MetadataStore};
use crate::config::{Config, ConfigError};
use crate::group::{offsets, CoordinatorHandles, GroupConfig, GroupCoordinator};
use crate::log::FlushPolicy;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metadata store: {0}")]
    Cluster(#[from] ClusterError),
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("this node's configured cluster.id {configured} is not the cluster's {stored}")]
    ClusterIdMismatch { configured: String, stored: String },
    #[error("cannot create the offsets topic: {0}")]
    OffsetsTopic(#[from] crate::broker::topics::TopicError),
}

pub struct Broker {
    pub config: Config,
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub metadata: MetadataStore,
    pub partitions: Arc<PartitionManager>,
    /// The partition layer the produce, fetch and offset handlers go through.
    pub replicas: replica::ReplicaManager,
    /// The consumer group coordinator (every group, on a single node).
    pub group: Arc<GroupCoordinator>,
    /// The transaction coordinator of the `__transaction_state` partitions led here.
    pub txn: Arc<crate::txn::TransactionCoordinator>,
    pub producer_ids: producer_ids::ProducerIdAllocator,
    /// The data directory's free-space floor for client produce.
    pub disk: Arc<disk::DiskSpace>,
    /// This broker's heartbeats to the controller (they keep it unfenced; controlled shutdown
    /// goes through them).
    heartbeats: crate::cluster::Heartbeats,
    /// Copies the leaders' logs of the partitions this broker follows.
    fetchers: replica::fetcher::ReplicaFetchers,
}

impl Broker {
    /// Opens the metadata store and every hosted partition log (recovering them), registers this
    /// broker, and starts the background tasks (metadata follower, retention, interval flush).
    pub async fn start(
        config: Config,
        advertised_host: String,
        advertised_port: i32,
    ) -> Result<Arc<Broker>, StartError> {
        Self::start_with_clock(config, advertised_host, advertised_port, Clock::System).await
    }

    /// [`Broker::start`] with the clock the group coordinator reads (in-process tests on paused time
    /// pass `Clock::tokio()`).
    pub async fn start_with_clock(
        config: Config,
        advertised_host: String,
        advertised_port: i32,
        clock: Clock,
    ) -> Result<Arc<Broker>, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
        let log_defaults = config.log_config()?;
        let (budget, nofile, max_maps) = crate::log::handles::budget_from_process_limits();
        crate::log::handles::set_budget(budget);
        info!(
            open_segments_max = budget,
            nofile, max_maps, "segment files are opened on demand, at most this many at once"
        );
        let metadata = quorum::start_metadata(&config).await?;
        let me = BrokerInfo {
            id: config.node_id,
            host: advertised_host.clone(),
            port: advertised_port,
            rack: config.broker_rack.clone(),
            listeners: config
                .bound_listeners
                .iter()
                .map(|l| crate::cluster::ListenerEndpoint {
                    name: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: i32::from(l.advertised_port),
                })
                .collect(),
        };
        let heartbeats = quorum::join(&config, &metadata, me).await?;
        let partitions = Arc::new(PartitionManager::new(
            config.data_dir.clone(),
            config.node_id,
            log_defaults.clone(),
        ));
        let image = metadata.image();
        partitions.remove_orphans(&image);
        partitions.reconcile(&image);
        let group_config = GroupConfig::from_config(&config);
        let disk = Arc::new(disk::DiskSpace::new(
            config.data_dir.clone(),
            config.log.min_free_bytes,
        ));
        let replicas = replica::ReplicaManager::new(
            config.node_id,
            partitions.clone(),
            disk.clone(),
            metadata.clone(),
        );
        let offsets_spec = offsets::topic_spec(&config);
        let images = metadata.subscribe();
        let node_id = config.node_id;
        let inter = config.inter_broker_listener();
        let listener_protocol = config
            .bound_listeners
            .iter()
            .find(|l| l.name == inter)
            .map_or(crate::config::SecurityProtocol::Plaintext, |l| l.protocol);
        let bind_ip = config
            .bound_listeners
            .first()
            .map(|l| l.addr.ip())
            .filter(|ip| !ip.is_unspecified());
        let txn_config = crate::txn::TxnConfig::from_config(&config);
        let broker = Arc::new_cyclic(|weak| Broker {
            node_id: config.node_id,
            txn: crate::txn::TransactionCoordinator::new(
                txn_config,
                crate::txn::TxnHandles::for_broker(
                    weak.clone(),
                    &config,
                    metadata.subscribe(),
                    Arc::new(crate::txn::BrokerMarkerWriter::new(
                        node_id,
                        metadata.subscribe(),
                        inter.clone(),
                        bind_ip,
                        Arc::new(txn_markers::BrokerLocalMarkers(weak.clone())),
                        MARKER_WRITE_TIMEOUT + Duration::from_secs(5),
                    )),
                    clock,
                ),
            ),
            config,
            advertised_host,
            advertised_port,
            metadata,
            partitions,
            replicas,
            group: GroupCoordinator::new(
                group_config,
                CoordinatorHandles {
                    offsets: internal_topic::InternalTopic::new(
                        weak.clone(),
                        offsets_spec,
                        tokio::runtime::Handle::current(),
                    ),
                    metadata: images,
                    clock,
                    spawner: tokio::runtime::Handle::current(),
                    node_id,
                },
            ),
            producer_ids: producer_ids::ProducerIdAllocator::new(),
            disk,
            heartbeats,
            fetchers: replica::fetcher::ReplicaFetchers::default(),
        });
        broker.fetchers.start(
            broker.partitions.clone(),
            broker.metadata.clone(),
            replica::fetcher::FetcherConfig {
                node_id: broker.node_id,
                listener: inter,
                listener_protocol,
                bind_ip,
            },
        );
        broker
            .replicas
            .set_txn_verifier(Arc::new(txn_verify::BrokerTxnVerifier::new(
                Arc::downgrade(&broker),
                broker.node_id,
                broker.config.inter_broker_listener(),
                bind_ip,
                MARKER_WRITE_TIMEOUT,
            )));
        broker.replicas.start();
        broker.spawn_background_tasks(log_defaults.flush);
        broker.group.start().await?;
        broker.txn.start();
        Ok(broker)
    }

    fn spawn_background_tasks(self: &Arc<Self>, flush: FlushPolicy) {
        // Follow metadata changes made elsewhere (other handlers, later other nodes).
        let weak = Arc::downgrade(self);
        let mut images = self.metadata.subscribe();
        tokio::spawn(async move {
            while images.changed().await.is_ok() {
                let image = images.borrow_and_update().clone();
                let Some(broker) = weak.upgrade() else { break };
                broker.partitions.reconcile(&image);
                broker.group.on_metadata(&image);
                broker.txn.on_metadata(&image);
            }
        });

        // Partitions whose logs could not be opened are retried (with their own back-off) even
        // when no metadata changes.
        self.spawn_periodic(Duration::from_secs(1), |broker| {
            if broker.partitions.any_offline() {
                broker.partitions.reconcile(&broker.metadata.image());
            }
        });
        // Kafka checks for lagging followers every half `replica.lag.time.max.ms`.
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        self.spawn_periodic(Duration::from_millis(lag_max_ms / 2), move |broker| {
            broker
                .replicas
                .shrink_lagging_isrs(crate::clock::now_ms(), lag_max_ms as i64)
        });
        let every = Duration::from_millis(self.config.retention_check_interval_ms);
        self.spawn_periodic(every, |broker| {
            broker.partitions.enforce_retention(crate::clock::now_ms())
        });
        let every = Duration::from_millis(self.config.log_cleaner_backoff_ms);
        self.spawn_periodic(every, |broker| {
            broker.partitions.clean_all(crate::clock::now_ms())
        });
        if let FlushPolicy::Interval(every) = flush {
            self.spawn_periodic(every, |broker| broker.partitions.flush_all());
        }
    }

    /// Runs `work` every `every` (at least 1 ms) for as long as the broker exists. The task holds only
    /// a weak reference, so it never keeps a shut-down broker alive; `work` runs on the blocking pool
    /// (it does file I/O) and a run finishes before the next tick is awaited, so runs never overlap.
    pub fn spawn_periodic(
        self: &Arc<Self>,
        every: Duration,
        work: impl Fn(Arc<Broker>) + Send + Sync + 'static,
    ) {
        let weak = Arc::downgrade(self);
        let work = Arc::new(work);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                let work = work.clone();
                let _ = tokio::task::spawn_blocking(move || work(broker)).await;
            }
        });
    }

    /// Flushes and closes the logs and stops Raft. Call after the server has drained its connections.
    /// Controlled shutdown (SIGTERM): asks the controller to move this broker's leaderships away
    /// and waits until it says the broker may stop, at most a session timeout, while requests are
    /// still served (clients follow the leaders to their new brokers).
    pub async fn controlled_shutdown(&self) {
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        if self.heartbeats.controlled_shutdown(timeout).await {
            info!("controlled shutdown: leaderships moved away");
        } else {
            warn!(
                timeout_ms = timeout.as_millis() as u64,
                "controlled shutdown not confirmed by the controller in time; stopping anyway"
            );
        }
    }

    pub async fn shutdown(&self) {
        self.fetchers.stop().await;
        self.partitions.close_all();
        if let Err(e) = self.metadata.shutdown().await {
            warn!(error = %e, "metadata store shutdown failed");
        }
        info!("broker stopped");
    }
}
