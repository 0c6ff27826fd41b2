//! Broker registration, fencing and partition leadership as the controller applies them (KRaft's
//! ClusterControlManager and ReplicationControlManager): deterministic changes to the image,
//! every leadership or ISR change bumping the partition's leader epoch.

use super::image::{BrokerInfo, BrokerRegistration, CommandResult, MetadataImage, PartitionInfo};

impl MetadataImage {
    /// Whether broker `id` is registered, unfenced and not shutting down: it may lead.
    pub fn can_lead(&self, id: i32) -> bool {
        self.registrations
            .get(&id)
            .is_some_and(|r| !r.fenced && !r.in_controlled_shutdown)
    }

    /// Registered, unfenced brokers (Kafka lists only these in Metadata), by id.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(|b| self.registrations.get(&b.id).is_some_and(|r| !r.fenced))
    }

    /// The replicas of `p` on brokers that are not alive (registered and unfenced), which
    /// Metadata lists as offline replicas. Brokers without a registration entry (an image from
    /// before registrations) count as alive.
    pub fn offline_replicas(&self, p: &PartitionInfo) -> Vec<i32> {
        p.replicas
            .iter()
            .copied()
            .filter(|r| match self.registrations.get(r) {
                Some(reg) => reg.fenced,
                None => !self.brokers.contains_key(r),
            })
            .collect()
    }

    /// Partitions broker `id` leads.
    pub fn leaderships(&self, id: i32) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == id)
            .count()
    }

    pub(super) fn register_broker(&mut self, b: BrokerInfo, index: i64) -> CommandResult {
        let id = b.id;
        // A new incarnation of a registered broker (it restarted, perhaps after a crash that lost
        // what it had not flushed): its previous one is fenced first, as Kafka's controller does on
        // an unclean shutdown, so it leaves the ISRs and leads nothing it has to catch up on.
        if self.registrations.contains_key(&id) {
            self.move_leaderships_off(id);
        }
        self.brokers.insert(id, b);
        self.registrations.insert(
            id,
            BrokerRegistration {
                epoch: index,
                fenced: true,
                in_controlled_shutdown: false,
            },
        );
        CommandResult::BrokerRegistered { epoch: index }
    }

    fn current(&self, id: i32, epoch: i64) -> bool {
        self.registrations
            .get(&id)
            .is_some_and(|r| r.epoch == epoch)
    }

    /// Fences broker `id` (or, with `shutdown`, marks it shutting down) and moves what it leads.
    pub(super) fn fence_broker(&mut self, id: i32, epoch: i64, shutdown: bool) -> CommandResult {
        if !self.current(id, epoch) {
            return CommandResult::StaleBrokerEpoch;
        }
        if let Some(r) = self.registrations.get_mut(&id) {
            if shutdown {
                r.in_controlled_shutdown = true;
            } else {
                r.fenced = true;
            }
        }
        self.move_leaderships_off(id);
        CommandResult::Ok
    }

    pub(super) fn unfence_broker(&mut self, id: i32, epoch: i64) -> CommandResult {
        if !self.current(id, epoch) {
            return CommandResult::StaleBrokerEpoch;
        }
        if let Some(r) = self.registrations.get_mut(&id) {
            r.fenced = false;
        }
        if !self.can_lead(id) {
            return CommandResult::Ok;
        }
        // Offline partitions it is in the ISR of come back with it as leader; a replica out of
        // the ISR leads only where unclean leader election is enabled, with an ISR of itself.
        let cluster_unclean = self.cluster_unclean_election();
        for t in self.topics.values_mut() {
            let unclean = topic_unclean_election(&t.configs, cluster_unclean);
            for p in t.partitions.iter_mut().filter(|p| p.leader == -1) {
                if p.isr.contains(&id) {
                    p.leader = id;
                } else if unclean && p.replicas.contains(&id) {
                    p.leader = id;
                    p.isr = vec![id];
                } else {
                    continue;
                }
                p.leader_epoch += 1;
                p.partition_epoch += 1;
            }
        }
        CommandResult::Ok
    }

    /// Every partition `id` leads gets a new leader from its ISR among brokers that may lead,
    /// else none (-1); `id` also leaves each ISR it is not the last member of
    /// (the last one stays, as KIP-841 keeps it, so the partition can come back with it).
    fn move_leaderships_off(&mut self, id: i32) {
        let can_lead: Vec<i32> = self
            .registrations
            .keys()
            .copied()
            .filter(|b| self.can_lead(*b))
            .collect();
        let cluster_unclean = self.cluster_unclean_election();
        for t in self.topics.values_mut() {
            let unclean = topic_unclean_election(&t.configs, cluster_unclean);
            for p in t.partitions.iter_mut() {
                let led = p.leader == id;
                let shrinks = p.isr.len() > 1 && p.isr.contains(&id);
                if !led && !shrinks {
                    continue;
                }
                if shrinks {
                    p.isr.retain(|b| *b != id);
                }
                if led {
                    p.leader = elect(p, id, &can_lead);
                    if p.leader == -1 && unclean {
                        if let Some(r) = elect_unclean(p, id, &can_lead) {
                            p.leader = r;
                            p.isr = vec![r];
                        }
                    }
                    // Only a new leader starts a new leader epoch; an ISR change alone moves the
                    // partition epoch (followers keep fetching undisturbed).
                    p.leader_epoch += 1;
                }
                p.partition_epoch += 1;
            }
        }
    }

    /// `unclean.leader.election.enable` among the cluster-wide dynamic broker configs.
    fn cluster_unclean_election(&self) -> bool {
        self.broker_configs
            .get("")
            .and_then(|c| c.get(UNCLEAN))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

const UNCLEAN: &str = "unclean.leader.election.enable";

/// The topic's `unclean.leader.election.enable`, else the cluster's.
fn topic_unclean_election(
    configs: &std::collections::BTreeMap<String, String>,
    cluster: bool,
) -> bool {
    configs
        .get(UNCLEAN)
        .map_or(cluster, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// The first replica, in replica order, that is in the ISR, is not `leaving` and may lead.
fn elect(p: &PartitionInfo, leaving: i32, can_lead: &[i32]) -> i32 {
    p.replicas
        .iter()
        .copied()
        .find(|r| *r != leaving && p.isr.contains(r) && can_lead.contains(r))
        .unwrap_or(-1)
}

/// Unclean election: the first live replica, in or out of the ISR (it may lack acknowledged data).
fn elect_unclean(p: &PartitionInfo, leaving: i32, can_lead: &[i32]) -> Option<i32> {
    p.replicas
        .iter()
        .copied()
        .find(|r| *r != leaving && can_lead.contains(r))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::image::{MetadataCommand, TopicInfo};
    use super::*;

    fn image_with(brokers: &[i32], partitions: &[(&[i32], i32)]) -> (MetadataImage, Vec<i64>) {
        let mut img = MetadataImage::empty();
        let mut epochs = Vec::new();
        for (i, b) in brokers.iter().enumerate() {
            let info = BrokerInfo {
                id: *b,
                host: "h".into(),
                port: 9092,
                rack: None,
                listeners: Vec::new(),
            };
            let index = 10 + i as u64;
            img.apply_at(MetadataCommand::RegisterBroker(info), index);
            img.apply(MetadataCommand::UnfenceBroker {
                id: *b,
                epoch: index as i64,
            });
            epochs.push(index as i64);
        }
        let topic = TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            configs: BTreeMap::new(),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, (replicas, leader))| PartitionInfo {
                    partition: i as i32,
                    leader: *leader,
                    leader_epoch: 0,
                    replicas: replicas.to_vec(),
                    isr: replicas.to_vec(),
                    partition_epoch: 0,
                })
                .collect(),
            internal: false,
        };
        img.apply(MetadataCommand::CreateTopic(topic));
        (img, epochs)
    }

    fn part(img: &MetadataImage, p: usize) -> &PartitionInfo {
        &img.topics["t"].partitions[p]
    }

    #[test]
    fn registration_epoch_is_the_log_index_and_starts_fenced() {
        let mut img = MetadataImage::empty();
        let info = BrokerInfo {
            id: 1,
            host: "h".into(),
            port: 1,
            rack: Some("r1".into()),
            listeners: Vec::new(),
        };
        let res = img.apply_at(MetadataCommand::RegisterBroker(info), 42);
        assert_eq!(res, CommandResult::BrokerRegistered { epoch: 42 });
        assert!(img.registrations[&1].fenced);
        assert_eq!(img.unfenced_brokers().count(), 0);
        let stale = MetadataCommand::UnfenceBroker { id: 1, epoch: 41 };
        assert_eq!(img.apply(stale), CommandResult::StaleBrokerEpoch);
        let unknown = MetadataCommand::FenceBroker { id: 7, epoch: 42 };
        assert_eq!(img.apply(unknown), CommandResult::StaleBrokerEpoch);
        img.apply(MetadataCommand::UnfenceBroker { id: 1, epoch: 42 });
        assert_eq!(img.unfenced_brokers().count(), 1);
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_bumps_epochs() {
        let (mut img, epochs) = image_with(&[1, 2, 3], &[(&[2, 1, 3], 2), (&[1, 2], 1), (&[2], 2)]);
        let fence = MetadataCommand::FenceBroker {
            id: 2,
            epoch: epochs[1],
        };
        assert_eq!(img.apply(fence), CommandResult::Ok);
        // Led by 2: the next ISR replica leads, 2 leaves the ISR.
        assert_eq!(part(&img, 0).leader, 1);
        assert_eq!(part(&img, 0).isr, vec![1, 3]);
        assert_eq!(part(&img, 0).leader_epoch, 1);
        // Led by 1: only the ISR shrinks, so only the partition epoch moves.
        assert_eq!(part(&img, 1).leader, 1);
        assert_eq!(part(&img, 1).isr, vec![1]);
        assert_eq!(part(&img, 1).leader_epoch, 0);
        assert_eq!(part(&img, 1).partition_epoch, 1);
        assert_eq!(img.offline_replicas(part(&img, 0)), vec![2]);
        // RF=1 on 2: offline, ISR kept.
        assert_eq!(part(&img, 2).leader, -1);
        assert_eq!(part(&img, 2).isr, vec![2]);
        assert_eq!(part(&img, 2).leader_epoch, 1);

        // 2 comes back unfenced: the offline partition is its again; the others stay.
        img.apply(MetadataCommand::UnfenceBroker {
            id: 2,
            epoch: epochs[1],
        });
        assert_eq!(part(&img, 2).leader, 2);
        assert_eq!(part(&img, 2).leader_epoch, 2);
        assert_eq!(part(&img, 0).leader, 1);
        assert_eq!(part(&img, 0).leader_epoch, 1);
        assert!(img.offline_replicas(part(&img, 0)).is_empty());
    }

    #[test]
    fn controlled_shutdown_moves_leaders_to_unfenced_brokers_only() {
        let (mut img, epochs) = image_with(&[1, 2, 3], &[(&[1, 2, 3], 1)]);
        img.apply(MetadataCommand::FenceBroker {
            id: 2,
            epoch: epochs[1],
        });
        assert_eq!(part(&img, 0).isr, vec![1, 3]);
        img.apply(MetadataCommand::ControlledShutdown {
            id: 1,
            epoch: epochs[0],
        });
        assert_eq!(part(&img, 0).leader, 3);
        assert_eq!(part(&img, 0).isr, vec![3]);
        assert_eq!(part(&img, 0).leader_epoch, 1);
        assert!(img.registrations[&1].in_controlled_shutdown);
        assert_eq!(img.leaderships(1), 0);
        // Broker 3 shuts down too: the last ISR member stays, the partition goes offline.
        img.apply(MetadataCommand::ControlledShutdown {
            id: 3,
            epoch: epochs[2],
        });
        assert_eq!(part(&img, 0).leader, -1);
        assert_eq!(part(&img, 0).isr, vec![3]);
        assert_eq!(part(&img, 0).leader_epoch, 2);
    }

    #[test]
    fn a_broker_registering_again_is_fenced_out_of_its_old_incarnation_first() {
        let (mut img, _) = image_with(&[1, 2, 3], &[(&[1, 2, 3], 1)]);
        let info = img.brokers[&1].clone();
        img.apply_at(MetadataCommand::RegisterBroker(info), 50);
        assert_eq!(part(&img, 0).leader, 2);
        assert_eq!(part(&img, 0).isr, vec![2, 3]);
        assert_eq!(part(&img, 0).leader_epoch, 1);
        assert!(img.registrations[&1].fenced);
    }

    #[test]
    fn unclean_election_picks_a_live_replica_outside_the_isr_only_when_enabled() {
        for (enabled, leader) in [(false, -1), (true, 3)] {
            let (mut img, epochs) = image_with(&[1, 2, 3], &[(&[1, 2, 3], 1)]);
            if enabled {
                let topic = img.topics.get_mut("t").unwrap();
                topic
                    .configs
                    .insert("unclean.leader.election.enable".into(), "true".into());
            }
            // 3 fell out of the ISR; then 2 and 1 are fenced.
            img.topics.get_mut("t").unwrap().partitions[0].isr = vec![1, 2];
            img.apply(MetadataCommand::FenceBroker {
                id: 2,
                epoch: epochs[1],
            });
            img.apply(MetadataCommand::FenceBroker {
                id: 1,
                epoch: epochs[0],
            });
            assert_eq!(part(&img, 0).leader, leader, "unclean enabled: {enabled}");
            let isr = if enabled { vec![3] } else { vec![1] };
            assert_eq!(part(&img, 0).isr, isr);
        }
    }
}
