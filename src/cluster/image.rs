//! The metadata image (brokers, topics, partitions), the commands that change it, and their
//! deterministic `apply`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::isr::{IsrChange, IsrChangeRefused};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    /// The advertised endpoint of its first (default) client listener.
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Every client listener's advertised endpoint, by listener name (Kafka registers them all, and
    /// answers a client with the endpoints of the listener it connected to). Absent from images
    /// written before brokers registered them.
    #[serde(default)]
    pub listeners: Vec<ListenerEndpoint>,
}

/// One named listener's advertised address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    pub name: String,
    pub host: String,
    pub port: i32,
}

impl BrokerInfo {
    /// Where a client connected on `listener` reaches this broker: that listener's advertised
    /// address, else the default one.
    pub fn endpoint(&self, listener: &str) -> (&str, i32) {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map_or((self.host.as_str(), self.port), |l| {
                (l.host.as_str(), l.port)
            })
    }
}

/// A broker's registration as the controller sees it (KRaft's BrokerRegistration record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// The Raft log index of the registration: a restarted broker registers anew with a
    /// higher one, so requests carrying an older epoch come from a previous incarnation.
    pub epoch: i64,
    /// Fenced brokers lead nothing and are left out of Metadata; a new registration starts
    /// fenced until a heartbeat says the broker has caught up with the metadata log.
    pub fenced: bool,
    /// The broker asked to shut down: its leaderships move away first.
    pub in_controlled_shutdown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Bumped by every change to the partition (leader, ISR): the version an ISR change must name
    /// (KIP-497's compare-and-set). Absent from images written before ISR changes existed.
    #[serde(default)]
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    // The `uuid` crate is built without its `serde` feature, so (de)serialize by hand.
    #[serde(with = "uuid_as_string")]
    pub id: uuid::Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionInfo>,
    pub internal: bool,
}

/// Cluster metadata as of the last applied Raft entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Set by the first `InitCluster` applied; empty until then.
    pub cluster_id: String,
    /// Broker id of the current Raft leader (-1 unknown). Not part of the replicated state: the
    /// state machine keeps it at its default and `MetadataStore` fills it when publishing.
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    pub next_producer_id: i64,
    /// Registration state of each registered broker (KIP-631), by id; absent from images
    /// written before brokers registered with epochs.
    #[serde(default)]
    pub registrations: BTreeMap<i32, BrokerRegistration>,
    /// Dynamic broker configs under Kafka's broker names, by resource: "" the cluster-wide
    /// defaults, else a broker id. Absent from images written before they existed.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// No-op if the cluster id is already set.
    InitCluster {
        cluster_id: String,
    },
    /// Upsert: host/port may change across restarts. Also a new registration: broker epoch =
    /// this entry's log index, fenced, not shutting down. Answers `BrokerRegistered`.
    RegisterBroker(BrokerInfo),
    /// The controller fences a broker (missed heartbeats, or it asked to be fenced): the
    /// partitions it leads get a new leader from their ISR among unfenced brokers, else none
    /// (-1, offline); it leaves every ISR it is not the last member of. Ignored (answers
    /// `StaleBrokerEpoch`) unless `epoch` is the broker's current one.
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    /// A fenced broker heartbeated caught up: unfenced, and it leads again the offline
    /// partitions whose ISR holds it.
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    /// The broker wants to shut down: its leaderships move as for a fence, it leaves the ISRs,
    /// and it stays registered (unfenced) until it stops.
    ControlledShutdown {
        id: i32,
        epoch: i64,
    },
    /// The proposer fills id, partitions and configs.
    CreateTopic(TopicInfo),
    DeleteTopic {
        name: String,
    },
    /// Answers `CommandResult::ProducerIds { first, count }`.
    AllocateProducerIds {
        count: i64,
    },
    /// Adds partitions to a topic; they must continue its numbering (else `InvalidPartitions`).
    CreatePartitions {
        name: String,
        partitions: Vec<PartitionInfo>,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A partition leader's ISR changes (Kafka's AlterPartition), each a compare-and-set on the
    /// partition epoch. Answers `PartitionsAltered` with one outcome per change, in order.
    AlterPartition {
        /// The leader and its broker epoch: a previous incarnation's request is refused whole.
        broker: i32,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    },
    /// Replaces the dynamic configs of a broker resource ("" the cluster default, else a broker
    /// id); an empty set removes the resource.
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Ok,
    TopicAlreadyExists,
    UnknownTopic,
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// The new partitions do not continue the topic's (it changed since they were planned).
    InvalidPartitions,
    /// A broker registration and its broker epoch.
    BrokerRegistered {
        epoch: i64,
    },
    /// The broker is not registered, or registered since with a newer epoch.
    StaleBrokerEpoch,
    /// One outcome per requested ISR change: the partition as it now stands, or why not.
    PartitionsAltered(Vec<Result<PartitionInfo, IsrChangeRefused>>),
}

impl MetadataImage {
    /// An empty image; `controller_id` starts unknown.
    pub fn empty() -> Self {
        MetadataImage {
            controller_id: -1,
            ..Default::default()
        }
    }

    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&TopicInfo> {
        self.topics.values().find(|t| t.id == *id)
    }

    /// [`MetadataImage::apply_at`] at log index 0 (for tests of the image alone).
    pub fn apply(&mut self, cmd: MetadataCommand) -> CommandResult {
        self.apply_at(cmd, 0)
    }

    /// Apply one committed command, the Raft log entry at `index`. Must be deterministic
    /// (every replica and every log replay must reach the same image), so all state-dependent
    /// validation happens here, not at proposal time.
    pub fn apply_at(&mut self, cmd: MetadataCommand, index: u64) -> CommandResult {
        match cmd {
            MetadataCommand::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id;
                }
                CommandResult::Ok
            }
            MetadataCommand::RegisterBroker(b) => self.register_broker(b, index as i64),
            MetadataCommand::FenceBroker { id, epoch } => self.fence_broker(id, epoch, false),
            MetadataCommand::ControlledShutdown { id, epoch } => self.fence_broker(id, epoch, true),
            MetadataCommand::UnfenceBroker { id, epoch } => self.unfence_broker(id, epoch),
            MetadataCommand::CreateTopic(t) => {
                if self.topics.contains_key(&t.name) {
                    return CommandResult::TopicAlreadyExists;
                }
                self.topics.insert(t.name.clone(), t);
                CommandResult::Ok
            }
            MetadataCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => CommandResult::Ok,
                None => CommandResult::UnknownTopic,
            },
            MetadataCommand::AllocateProducerIds { count } => {
                // A negative request would move the counter backwards and hand out ids twice.
                let count = count.max(0);
                let first = self.next_producer_id;
                self.next_producer_id = first.saturating_add(count);
                CommandResult::ProducerIds { first, count }
            }
            MetadataCommand::CreatePartitions { name, partitions } => {
                let Some(topic) = self.topics.get_mut(&name) else {
                    return CommandResult::UnknownTopic;
                };
                let continues = partitions
                    .iter()
                    .enumerate()
                    .all(|(i, p)| p.partition as usize == topic.partitions.len() + i);
                if !continues {
                    return CommandResult::InvalidPartitions;
                }
                topic.partitions.extend(partitions);
                CommandResult::Ok
            }
            MetadataCommand::SetTopicConfigs { name, configs } => {
                match self.topics.get_mut(&name) {
                    Some(topic) => {
                        topic.configs = configs;
                        CommandResult::Ok
                    }
                    None => CommandResult::UnknownTopic,
                }
            }
            MetadataCommand::AlterPartition {
                broker,
                broker_epoch,
                changes,
            } => self.alter_partitions(broker, broker_epoch, changes),
            MetadataCommand::SetBrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(&resource);
                } else {
                    self.broker_configs.insert(resource, configs);
                }
                CommandResult::Ok
            }
        }
    }
}

/// Serde adapter: a `Uuid` as its hyphenated string form.
pub(super) mod uuid_as_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &uuid::Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<uuid::Uuid, D::Error> {
        let s = String::deserialize(d)?;
        uuid::Uuid::parse_str(&s).map_err(D::Error::custom)
    }
}

/// A fresh Kafka-style cluster id: 16 random bytes as 22 chars of unpadded base64url.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // 3 bytes -> 4 chars; a trailing 1-byte chunk -> 2 chars (no padding).
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(i: i32) -> PartitionInfo {
        PartitionInfo {
            partition: i,
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
            partition_epoch: 0,
        }
    }

    #[test]
    fn added_partitions_must_continue_the_topics_numbering() {
        let mut image = MetadataImage::empty();
        let topic = TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            configs: BTreeMap::new(),
            partitions: vec![partition(0)],
            internal: false,
        };
        assert_eq!(
            image.apply(MetadataCommand::CreateTopic(topic)),
            CommandResult::Ok
        );
        let add = |partitions| MetadataCommand::CreatePartitions {
            name: "t".into(),
            partitions,
        };
        // Planned against an image that has since changed: refused, nothing applied.
        assert_eq!(
            image.apply(add(vec![partition(2)])),
            CommandResult::InvalidPartitions
        );
        assert_eq!(
            image.apply(add(vec![partition(1), partition(2)])),
            CommandResult::Ok
        );
        assert_eq!(image.topics["t"].partitions.len(), 3);
        let missing = MetadataCommand::SetTopicConfigs {
            name: "u".into(),
            configs: BTreeMap::new(),
        };
        assert_eq!(image.apply(missing), CommandResult::UnknownTopic);
    }

    #[test]
    fn broker_configs_are_replaced_and_older_images_still_load() {
        let mut image = MetadataImage::empty();
        let set = |configs: &[(&str, &str)]| MetadataCommand::SetBrokerConfigs {
            resource: String::new(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert_eq!(
            image.apply(set(&[("log.retention.ms", "1000")])),
            CommandResult::Ok
        );
        assert_eq!(image.broker_configs[""]["log.retention.ms"], "1000");
        image.apply(set(&[]));
        assert!(image.broker_configs.is_empty());
        let old = r#"{"cluster_id":"c","controller_id":-1,"brokers":{},"topics":{},"next_producer_id":0}"#;
        let loaded: MetadataImage = serde_json::from_str(old).unwrap();
        assert!(loaded.broker_configs.is_empty());
    }

    #[test]
    fn cluster_id_is_22_chars() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn apply_is_deterministic() {
        let mut a = MetadataImage::empty();
        assert_eq!(
            a.apply(MetadataCommand::AllocateProducerIds { count: 10 }),
            CommandResult::ProducerIds {
                first: 0,
                count: 10
            }
        );
        assert_eq!(
            a.apply(MetadataCommand::AllocateProducerIds { count: 5 }),
            CommandResult::ProducerIds {
                first: 10,
                count: 5
            }
        );
        assert_eq!(
            a.apply(MetadataCommand::DeleteTopic { name: "x".into() }),
            CommandResult::UnknownTopic
        );
        a.apply(MetadataCommand::InitCluster {
            cluster_id: "a".into(),
        });
        a.apply(MetadataCommand::InitCluster {
            cluster_id: "b".into(),
        });
        assert_eq!(a.cluster_id, "a");
    }
}
