//! The transaction coordinator: every transactional id of the `__transaction_state` partitions led
//! here, behind one mutex never held across an await. Transitions are decided under the lock
//! (`plan.rs`), their records queued there (so per-id order is the lock's), and completed once
//! committed by a task of their own (`write.rs`), so that a client going away cannot leave a
//! transition pending.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;

use super::error::TxnError;
use super::ports::{BrokerProducerIds, MarkerWriter, ProducerIdSource, TxnLog};
use super::state::TxnMetadata;
use super::topic::{partition_for, topic_spec, TRANSACTION_STATE_TOPIC};
use crate::broker::coordinator_shards::{coordinator_endpoint, CoordinatorShards, ShardStatus};
use crate::broker::internal_topic::InternalTopic;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::cluster::{BrokerInfo, MetadataImage};
use crate::config::Config;

/// Settings the coordinator reads from the broker configuration.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_scan_interval_ms: u64,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub expiry_scan_interval_ms: u64,
    /// The finalized `transaction.version`: what the coordinator's own aborts follow, and the
    /// `__transaction_state` value version (1 from level 1).
    pub transaction_version: i16,
}

impl TxnConfig {
    pub fn from_config(c: &Config) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: c.transaction_max_timeout_ms,
            abort_scan_interval_ms: c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            id_expiration_ms: c.transactional_id_expiration_ms,
            expiry_scan_interval_ms: c.transaction_remove_expired_transaction_cleanup_interval_ms,
            transaction_version: c.transaction_version,
        }
    }
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig::from_config(&Config::default())
    }
}

/// What the coordinator works through instead of the broker.
pub struct TxnHandles {
    /// `__transaction_state` (the broker's [`InternalTopic`](crate::broker::internal_topic::InternalTopic)).
    pub log: Arc<dyn TxnLog>,
    pub producer_ids: Arc<dyn ProducerIdSource>,
    pub markers: Arc<dyn MarkerWriter>,
    pub metadata: watch::Receiver<Arc<MetadataImage>>,
    pub clock: Clock,
    pub spawner: tokio::runtime::Handle,
    /// This broker: it coordinates the ids of the partitions it leads.
    pub node_id: i32,
}

impl TxnHandles {
    /// A broker's handles: `__transaction_state` through its InternalTopic (Kafka's topic configs,
    /// [`topic_spec`](super::topic::topic_spec)), producer ids from its Raft-allocated blocks, the
    /// given marker writer. Usable inside `Arc::new_cyclic` (only a weak reference is kept).
    pub fn for_broker(
        broker: Weak<Broker>,
        config: &Config,
        metadata: watch::Receiver<Arc<MetadataImage>>,
        markers: Arc<dyn MarkerWriter>,
        clock: Clock,
    ) -> TxnHandles {
        let spawner = tokio::runtime::Handle::current();
        let log = InternalTopic::new(broker.clone(), topic_spec(config), spawner.clone());
        TxnHandles {
            log: Arc::new(log),
            producer_ids: Arc::new(BrokerProducerIds(broker)),
            markers,
            metadata,
            clock,
            spawner,
            node_id: config.node_id,
        }
    }
}

pub struct TransactionCoordinator {
    pub(super) me: Weak<TransactionCoordinator>,
    pub(super) config: TxnConfig,
    pub(super) log: Arc<dyn TxnLog>,
    pub(super) producer_ids: Arc<dyn ProducerIdSource>,
    pub(super) markers: Arc<dyn MarkerWriter>,
    metadata: watch::Receiver<Arc<MetadataImage>>,
    pub(super) clock: Clock,
    pub(super) spawner: tokio::runtime::Handle,
    pub(super) shards: CoordinatorShards,
    txns: Mutex<HashMap<String, TxnMetadata>>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig, handles: TxnHandles) -> Arc<TransactionCoordinator> {
        Arc::new_cyclic(|me| TransactionCoordinator {
            me: me.clone(),
            config,
            log: handles.log,
            producer_ids: handles.producer_ids,
            markers: handles.markers,
            metadata: handles.metadata,
            clock: handles.clock,
            spawner: handles.spawner,
            shards: CoordinatorShards::new(TRANSACTION_STATE_TOPIC, handles.node_id),
            txns: Mutex::new(HashMap::new()),
        })
    }

    /// Takes up the partitions led now and starts the timeout-abort and id-expiry scans. The
    /// topic itself is created on first use ([`Self::ensure_topic`]), as Kafka does.
    pub fn start(&self) {
        self.on_metadata(&self.image());
        self.spawn_scans();
    }

    /// Creates `__transaction_state` unless it exists (FindCoordinator for a transactional id
    /// does, as in Kafka) and takes up its partitions. False, after logging why, when it cannot.
    pub async fn ensure_topic(&self) -> bool {
        if self.log.exists() {
            return true;
        }
        match self.log.ensure_exists().await {
            Ok(()) => {
                // Take up its partitions now, so that the request that created it is served.
                self.on_metadata(&self.image());
                let wait = std::time::Duration::from_secs(10);
                if tokio::time::timeout(wait, self.wait_loaded())
                    .await
                    .is_err()
                {
                    tracing::warn!("{TRANSACTION_STATE_TOPIC} partitions still loading");
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create {TRANSACTION_STATE_TOPIC}");
                false
            }
        }
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(super) fn image(&self) -> Arc<MetadataImage> {
        self.metadata.borrow().clone()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        // Every transition is decided and marked pending within one critical section.
        self.txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.log.partition_count())
    }

    /// Where `transactional_id`'s coordinator is: the leader of its partition (FindCoordinator).
    pub fn coordinator_for(&self, transactional_id: &str) -> Option<BrokerInfo> {
        let image = self.image();
        let partition = self.partition_of(transactional_id);
        coordinator_endpoint(&image, TRANSACTION_STATE_TOPIC, partition).cloned()
    }

    /// Whether this broker serves `transactional_id` now, and at which coordinator epoch (the leader
    /// epoch of its partition): NOT_COORDINATOR elsewhere, COORDINATOR_LOAD_IN_PROGRESS while loading.
    pub(super) fn coordinator_epoch(&self, transactional_id: &str) -> Result<i32, TxnError> {
        match self.shards.status(self.partition_of(transactional_id)) {
            ShardStatus::Active { epoch } => Ok(epoch),
            ShardStatus::Loading { .. } => Err(TxnError::CoordinatorLoadInProgress),
            ShardStatus::NotLeader => Err(TxnError::NotCoordinator),
        }
    }

    /// A copy of `transactional_id`'s state, if this coordinator holds it.
    pub fn state_of(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.lock().get(transactional_id).cloned()
    }
}
