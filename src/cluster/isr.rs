//! ISR changes as the controller applies them (Kafka's AlterPartition, KIP-497): a leader asks to
//! shrink or expand its partition's in-sync replicas, naming the leader and partition epochs it saw;
//! the change is applied only if nothing moved since, and only eligible brokers may join (KIP-903).

use serde::{Deserialize, Serialize};

use super::image::{uuid_as_string, CommandResult, MetadataImage};

/// One partition's requested ISR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic: String,
    #[serde(with = "uuid_as_string")]
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The new ISR, each member with the broker epoch the leader last saw it fetch with (-1
    /// unknown): a member that registered again since is not the replica that caught up.
    pub new_isr: Vec<(i32, i64)>,
}

/// Why an ISR change was refused (Kafka's AlterPartition partition errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IsrChangeRefused {
    #[error("the requesting broker's epoch is not its current registration's")]
    StaleBrokerEpoch,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the requesting broker does not lead the partition")]
    NotLeader,
    #[error("the leader epoch changed since")]
    FencedLeaderEpoch,
    #[error("the partition changed since (partition epoch)")]
    InvalidUpdateVersion,
    #[error("a joining replica is fenced, shutting down, or registered again since")]
    IneligibleReplica,
    #[error("the new ISR must hold the leader and only replicas")]
    InvalidRequest,
}

impl MetadataImage {
    pub(super) fn alter_partitions(
        &mut self,
        broker: i32,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    ) -> CommandResult {
        let current = self
            .registrations
            .get(&broker)
            .is_some_and(|r| r.epoch == broker_epoch);
        let outcomes = changes
            .into_iter()
            .map(|change| {
                if !current {
                    return Err(IsrChangeRefused::StaleBrokerEpoch);
                }
                self.alter_partition(broker, change)
            })
            .collect();
        CommandResult::PartitionsAltered(outcomes)
    }

    fn alter_partition(
        &mut self,
        broker: i32,
        change: IsrChange,
    ) -> Result<super::PartitionInfo, IsrChangeRefused> {
        let eligible = |img: &MetadataImage, id: i32, epoch: i64| {
            img.registrations.get(&id).is_some_and(|r| {
                !r.fenced && !r.in_controlled_shutdown && (epoch < 0 || r.epoch == epoch)
            })
        };
        let joining_ok = {
            let p = self
                .topics
                .get(&change.topic)
                .filter(|t| t.id == change.topic_id)
                .and_then(|t| {
                    t.partitions
                        .iter()
                        .find(|p| p.partition == change.partition)
                })
                .ok_or(IsrChangeRefused::UnknownTopicOrPartition)?;
            if p.leader != broker {
                return Err(IsrChangeRefused::NotLeader);
            }
            if p.leader_epoch != change.leader_epoch {
                return Err(IsrChangeRefused::FencedLeaderEpoch);
            }
            if p.partition_epoch != change.partition_epoch {
                return Err(IsrChangeRefused::InvalidUpdateVersion);
            }
            let ids: Vec<i32> = change.new_isr.iter().map(|(id, _)| *id).collect();
            let distinct = ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id));
            if !ids.contains(&broker) || !distinct || ids.iter().any(|id| !p.replicas.contains(id))
            {
                return Err(IsrChangeRefused::InvalidRequest);
            }
            change
                .new_isr
                .iter()
                .filter(|(id, _)| !p.isr.contains(id))
                .all(|(id, epoch)| eligible(self, *id, *epoch))
        };
        if !joining_ok {
            return Err(IsrChangeRefused::IneligibleReplica);
        }
        let Some(p) = self.topics.get_mut(&change.topic).and_then(|t| {
            t.partitions
                .iter_mut()
                .find(|p| p.partition == change.partition)
        }) else {
            return Err(IsrChangeRefused::UnknownTopicOrPartition);
        };
        // Replica order, as Kafka keeps it, so every node lists the ISR alike.
        let new_isr: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| change.new_isr.iter().any(|(id, _)| id == r))
            .collect();
        if new_isr != p.isr {
            p.isr = new_isr;
            p.partition_epoch += 1;
        }
        Ok(p.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::image::{BrokerInfo, MetadataCommand, PartitionInfo, TopicInfo};
    use super::*;

    /// Brokers 1-3 registered at epochs 10-12 and unfenced; topic "t" with replicas [1,2,3] led by
    /// 1, ISR [1,2].
    fn image() -> MetadataImage {
        let mut img = MetadataImage::empty();
        for b in 1..=3 {
            let info = BrokerInfo {
                id: b,
                host: "h".into(),
                port: 9092,
                rack: None,
                listeners: Vec::new(),
            };
            let epoch = 9 + b as u64;
            img.apply_at(MetadataCommand::RegisterBroker(info), epoch);
            img.apply(MetadataCommand::UnfenceBroker {
                id: b,
                epoch: epoch as i64,
            });
        }
        img.apply(MetadataCommand::CreateTopic(TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            configs: BTreeMap::new(),
            partitions: vec![PartitionInfo {
                partition: 0,
                leader: 1,
                leader_epoch: 4,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                partition_epoch: 7,
            }],
            internal: false,
        }));
        img
    }

    fn change(partition_epoch: i32, new_isr: &[(i32, i64)]) -> IsrChange {
        IsrChange {
            topic: "t".into(),
            topic_id: uuid::Uuid::nil(),
            partition: 0,
            leader_epoch: 4,
            partition_epoch,
            new_isr: new_isr.to_vec(),
        }
    }

    fn alter(
        img: &mut MetadataImage,
        broker: i32,
        epoch: i64,
        c: IsrChange,
    ) -> Result<PartitionInfo, IsrChangeRefused> {
        let cmd = MetadataCommand::AlterPartition {
            broker,
            broker_epoch: epoch,
            changes: vec![c],
        };
        match img.apply(cmd) {
            CommandResult::PartitionsAltered(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_expansion_is_a_compare_and_set_on_the_partition_epoch() {
        let mut img = image();
        let p = alter(&mut img, 1, 10, change(7, &[(3, 12), (1, 10), (2, 11)])).unwrap();
        assert_eq!(p.isr, vec![1, 2, 3]);
        assert_eq!(p.partition_epoch, 8);
        // The leader epoch is not bumped by an ISR change.
        assert_eq!(p.leader_epoch, 4);
        // A second request still naming epoch 7 lost the race.
        let again = alter(&mut img, 1, 10, change(7, &[(1, 10)]));
        assert_eq!(again, Err(IsrChangeRefused::InvalidUpdateVersion));
        let shrunk = alter(&mut img, 1, 10, change(8, &[(1, 10), (3, 12)])).unwrap();
        assert_eq!(shrunk.isr, vec![1, 3]);
        assert_eq!(shrunk.partition_epoch, 9);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut img = image();
        let stale = alter(&mut img, 1, 9, change(7, &[(1, 10)]));
        assert_eq!(stale, Err(IsrChangeRefused::StaleBrokerEpoch));
        let not_leader = alter(&mut img, 2, 11, change(7, &[(2, 11)]));
        assert_eq!(not_leader, Err(IsrChangeRefused::NotLeader));
        let mut old_epoch = change(7, &[(1, 10)]);
        old_epoch.leader_epoch = 3;
        assert_eq!(
            alter(&mut img, 1, 10, old_epoch),
            Err(IsrChangeRefused::FencedLeaderEpoch)
        );
        let without_leader = alter(&mut img, 1, 10, change(7, &[(2, 11)]));
        assert_eq!(without_leader, Err(IsrChangeRefused::InvalidRequest));
        let stranger = alter(&mut img, 1, 10, change(7, &[(1, 10), (4, 1)]));
        assert_eq!(stranger, Err(IsrChangeRefused::InvalidRequest));
        // Broker 3 registered again (epoch 20) since the leader saw it fetch at 12.
        img.apply_at(MetadataCommand::RegisterBroker(img.brokers[&3].clone()), 20);
        img.apply(MetadataCommand::UnfenceBroker { id: 3, epoch: 20 });
        let epoch = img.topics["t"].partitions[0].partition_epoch;
        let leader_epoch = img.topics["t"].partitions[0].leader_epoch;
        let mut rejoin = change(epoch, &[(1, 10), (2, 11), (3, 12)]);
        rejoin.leader_epoch = leader_epoch;
        assert_eq!(
            alter(&mut img, 1, 10, rejoin.clone()),
            Err(IsrChangeRefused::IneligibleReplica)
        );
        rejoin.new_isr[2].1 = 20;
        assert_eq!(alter(&mut img, 1, 10, rejoin).unwrap().isr, vec![1, 2, 3]);
        let mut gone = change(0, &[(1, 10)]);
        gone.topic_id = uuid::Uuid::from_u128(1);
        assert_eq!(
            alter(&mut img, 1, 10, gone),
            Err(IsrChangeRefused::UnknownTopicOrPartition)
        );
    }
}
