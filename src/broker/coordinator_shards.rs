//! Which partitions of an internal topic this node coordinates: a coordinator (groups on
//! `__consumer_offsets`, transactions on `__transaction_state` later) owns the state stored in the
//! partitions it leads, so it follows their leadership. `on_metadata` diffs a new image against the
//! shards held and says what was gained (load it; COORDINATOR_LOAD_IN_PROGRESS meanwhile) and what was
//! lost (unload it; NOT_COORDINATOR from then on). A leader epoch change while still leading counts as
//! both: someone else may have led in between, so what is in memory is reloaded from the log.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::cluster::{BrokerInfo, MetadataImage};

/// This node's part in one partition of the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardStatus {
    NotLeader,
    /// Led here at `epoch`, its state being loaded.
    Loading {
        epoch: i32,
    },
    /// Led here at `epoch` and loaded: the coordinator serves it.
    Active {
        epoch: i32,
    },
}

/// A change `on_metadata` found; a reload is `Lost` then `Gained`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardChange {
    Gained { partition: i32, epoch: i32 },
    Lost { partition: i32 },
}

pub struct CoordinatorShards {
    topic: &'static str,
    node_id: i32,
    /// Only the partitions led here.
    held: Mutex<HashMap<i32, ShardStatus>>,
    /// Bumped on every change, for `wait_loaded`.
    changed: watch::Sender<u64>,
}

impl CoordinatorShards {
    pub fn new(topic: &'static str, node_id: i32) -> CoordinatorShards {
        CoordinatorShards {
            topic,
            node_id,
            held: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i32, ShardStatus>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up the leaderships `image` gives this node: partitions gained are Loading from now on
    /// (mark them loaded with [`CoordinatorShards::loaded`]), partitions lost are forgotten.
    pub fn on_metadata(&self, image: &MetadataImage) -> Vec<ShardChange> {
        let led: HashMap<i32, i32> = image
            .topics
            .get(self.topic)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.leader == self.node_id)
                    .map(|p| (p.partition, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default();
        let mut held = self.held();
        let mut changes = Vec::new();
        held.retain(|&partition, status| {
            let keep = led
                .get(&partition)
                .is_some_and(|e| Some(*e) == epoch_of(*status));
            if !keep {
                changes.push(ShardChange::Lost { partition });
            }
            keep
        });
        let mut gained: Vec<(i32, i32)> = led
            .into_iter()
            .filter(|(p, _)| !held.contains_key(p))
            .collect();
        gained.sort_unstable();
        for (partition, epoch) in gained {
            held.insert(partition, ShardStatus::Loading { epoch });
            changes.push(ShardChange::Gained { partition, epoch });
        }
        drop(held);
        if !changes.is_empty() {
            self.changed.send_modify(|n| *n += 1);
        }
        changes
    }

    pub fn status(&self, partition: i32) -> ShardStatus {
        self.held()
            .get(&partition)
            .copied()
            .unwrap_or(ShardStatus::NotLeader)
    }

    /// A load of `partition` at `epoch` finished: it becomes Active, unless it was lost or re-gained
    /// at another epoch meanwhile (then the load is stale: false, discard it). Call it under the
    /// coordinator's own lock, installing the loaded state in the same critical section.
    pub fn loaded(&self, partition: i32, epoch: i32) -> bool {
        let mut held = self.held();
        let Some(status) = held.get_mut(&partition) else {
            return false;
        };
        if *status != (ShardStatus::Loading { epoch }) {
            return false;
        }
        *status = ShardStatus::Active { epoch };
        drop(held);
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// Returns once no shard held is loading.
    pub async fn wait_loaded(&self) {
        let mut changes = self.changed.subscribe();
        loop {
            let loading = self
                .held()
                .values()
                .any(|s| matches!(s, ShardStatus::Loading { .. }));
            if !loading || changes.changed().await.is_err() {
                return;
            }
        }
    }
}

fn epoch_of(status: ShardStatus) -> Option<i32> {
    match status {
        ShardStatus::NotLeader => None,
        ShardStatus::Loading { epoch } | ShardStatus::Active { epoch } => Some(epoch),
    }
}

/// The broker that leads `partition` of `topic` in `image`: where its coordinator is (FindCoordinator).
/// `None` when the partition has no leader or the leader is not a registered broker.
pub fn coordinator_endpoint<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Option<&'a BrokerInfo> {
    let leader = image
        .topics
        .get(topic)?
        .partitions
        .iter()
        .find(|p| p.partition == partition)?
        .leader;
    image.brokers.get(&leader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionInfo, TopicInfo};

    fn image(leaders: &[(i32, i32)]) -> MetadataImage {
        let mut image = MetadataImage::empty();
        image.topics.insert(
            "__t".into(),
            TopicInfo {
                name: "__t".into(),
                id: uuid::Uuid::new_v4(),
                configs: Default::default(),
                partitions: leaders
                    .iter()
                    .enumerate()
                    .map(|(i, &(leader, leader_epoch))| PartitionInfo {
                        partition: i as i32,
                        leader,
                        leader_epoch,
                        replicas: vec![leader],
                        isr: vec![leader],
                        partition_epoch: 0,
                    })
                    .collect(),
                internal: true,
            },
        );
        image
    }

    #[test]
    fn leadership_changes_become_loads_and_unloads() {
        let shards = CoordinatorShards::new("__t", 1);
        let gained = shards.on_metadata(&image(&[(1, 0), (2, 0), (1, 0)]));
        assert_eq!(
            gained,
            vec![
                ShardChange::Gained {
                    partition: 0,
                    epoch: 0
                },
                ShardChange::Gained {
                    partition: 2,
                    epoch: 0
                }
            ]
        );
        assert_eq!(shards.status(0), ShardStatus::Loading { epoch: 0 });
        assert_eq!(shards.status(1), ShardStatus::NotLeader);
        assert!(shards.loaded(0, 0));
        assert_eq!(shards.status(0), ShardStatus::Active { epoch: 0 });
        // The same image again changes nothing.
        assert!(shards
            .on_metadata(&image(&[(1, 0), (2, 0), (1, 0)]))
            .is_empty());
        // Partition 0 moves away, partition 1 comes here, partition 2 is led here at a new epoch.
        let mut changes = shards.on_metadata(&image(&[(2, 1), (1, 1), (1, 1)]));
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            changes,
            vec![
                ShardChange::Gained {
                    partition: 1,
                    epoch: 1
                },
                ShardChange::Gained {
                    partition: 2,
                    epoch: 1
                },
                ShardChange::Lost { partition: 0 },
                ShardChange::Lost { partition: 2 },
            ]
        );
        assert_eq!(shards.status(0), ShardStatus::NotLeader);
        // The stale load of partition 2 at epoch 0 is refused; the current one is taken.
        assert!(!shards.loaded(2, 0));
        assert!(!shards.loaded(0, 0));
        assert!(shards.loaded(2, 1));
    }

    #[tokio::test]
    async fn wait_loaded_returns_once_every_shard_is_loaded_or_lost() {
        let shards = std::sync::Arc::new(CoordinatorShards::new("__t", 1));
        shards.on_metadata(&image(&[(1, 0), (1, 0)]));
        let waiter = tokio::spawn({
            let shards = shards.clone();
            async move { shards.wait_loaded().await }
        });
        assert!(shards.loaded(0, 0));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        shards.on_metadata(&image(&[(1, 0), (2, 1)]));
        waiter.await.unwrap();
    }

    #[test]
    fn the_coordinator_is_the_partition_leader_if_registered() {
        let mut img = image(&[(1, 0), (-1, 0), (3, 0)]);
        let b1 = BrokerInfo {
            id: 1,
            host: "h1".into(),
            port: 9092,
            rack: None,
            listeners: Vec::new(),
        };
        img.brokers.insert(1, b1.clone());
        assert_eq!(coordinator_endpoint(&img, "__t", 0), Some(&b1));
        assert_eq!(coordinator_endpoint(&img, "__t", 1), None, "no leader");
        assert_eq!(coordinator_endpoint(&img, "__t", 2), None, "unknown broker");
        assert_eq!(coordinator_endpoint(&img, "__t", 9), None);
    }
}
