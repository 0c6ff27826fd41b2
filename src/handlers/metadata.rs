//! Metadata (key 3): brokers, cluster id, controller, and topics with their partitions; auto-creates
//! requested topics when `auto.create.topics.enable` is on.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;
use uuid::Uuid;

use super::{HandlerResult, RequestContext};
use crate::broker::topics::TopicError;
use crate::cluster::{MetadataImage, TopicInfo};

pub const VERSIONS: (i16, i16) = (0, 13);

/// What Kafka answers in authorized-operations fields without an authorizer: every operation the
/// resource type supports (`AclEntry.supportedOperations`), as bits of their AclOperation codes.
/// A topic's: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(super) const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// The cluster's: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE (not WRITE, which applies to topics and transactional ids).
pub(super) const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// A group's: READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (Kafka's `AclEntry.supportedOperations`).
pub(super) const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
/// Kafka's sentinel for "authorized operations not requested".
pub(super) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(ctx: RequestContext, req: MetadataRequest) -> HandlerResult {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && v == 0 => None,
        Some(t) => Some(t),
    };
    let allow_auto_create =
        (v < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics;
    // Authorized operations: topics from v8, the cluster only in v8-10.
    let topic_ops = if v >= 8 && req.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.metadata.image();
            // Internal topics are listed only when asked for by name, as Kafka does.
            topics.extend(
                image
                    .topics
                    .values()
                    .filter(|t| !t.internal)
                    .map(|t| topic_entry(broker, &image, t, topic_ops)),
            );
        }
        Some(list) => {
            for wanted in list {
                let image = broker.metadata.image();
                let name = wanted.name.as_ref().map(|n| n.0.to_string());
                let entry = match name {
                    None => match image.topic_by_id(&wanted.topic_id) {
                        Some(t) => topic_entry(broker, &image, t, topic_ops),
                        None => {
                            // Kafka leaves unknown topic ids out of authorized operations.
                            error_entry(
                                None,
                                wanted.topic_id,
                                ResponseError::UnknownTopicId.code(),
                                OPERATIONS_NOT_REQUESTED,
                            )
                        }
                    },
                    Some(name) => match image.topics.get(&name) {
                        Some(t) => topic_entry(broker, &image, t, topic_ops),
                        None if allow_auto_create => match broker.auto_create_topic(&name).await {
                            Ok(t) => topic_entry(broker, &broker.metadata.image(), &t, topic_ops),
                            Err(e) => {
                                debug!(topic = %name, error = %e, "auto-creation failed");
                                let code = match e {
                                    TopicError::InvalidName(_) => e.code(),
                                    // Kafka answers a topic it could not create yet as unavailable: retriable.
                                    _ => ResponseError::LeaderNotAvailable.code(),
                                };
                                error_entry(Some(name), Uuid::nil(), code, topic_ops)
                            }
                        },
                        None => {
                            let code = if crate::broker::topics::validate_topic_name(&name).is_err()
                            {
                                ResponseError::InvalidTopicException.code()
                            } else {
                                ResponseError::UnknownTopicOrPartition.code()
                            };
                            error_entry(Some(name), Uuid::nil(), code, topic_ops)
                        }
                    },
                };
                topics.push(entry);
            }
        }
    }

    let image = broker.metadata.image();
    let brokers = image
        .unfenced_brokers()
        .map(|b| {
            let (host, port) = b.endpoint(ctx.session.listener());
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(BrokerId(image.controller_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if (8..=10).contains(&v) && req.include_cluster_authorized_operations {
                CLUSTER_OPERATIONS
            } else {
                OPERATIONS_NOT_REQUESTED
            },
        );
    Ok(Some(response.into()))
}

/// Registered and unfenced: Kafka's metadata lists only these brokers.
fn alive(image: &MetadataImage, id: i32) -> bool {
    image.unfenced_brokers().any(|b| b.id == id)
}

/// A topic's partitions as the image has them: leader, leader epoch, replicas and ISR. A replica
/// is offline when its broker is not registered and unfenced, or (here) when its log could not be
/// opened. A partition whose leader is not alive has no leader (LEADER_NOT_AVAILABLE), as Kafka's
/// metadata cache answers; one this broker leads but could not open has no ISR either, as Kafka
/// reports an offline partition.
fn topic_entry(
    broker: &crate::broker::Broker,
    image: &MetadataImage,
    t: &TopicInfo,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let offline_here = p.replicas.contains(&broker.node_id)
                && broker.partitions.is_offline(&t.name, p.partition);
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| !alive(image, **r) || (**r == broker.node_id && offline_here))
                .map(|r| BrokerId(*r))
                .collect();
            let entry = MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(offline);
            let no_leader = ResponseError::LeaderNotAvailable.code();
            if p.leader == broker.node_id && offline_here {
                entry
                    .with_error_code(no_leader)
                    .with_leader_id(BrokerId(-1))
                    .with_isr_nodes(Vec::new())
            } else if !alive(image, p.leader) {
                entry
                    .with_error_code(no_leader)
                    .with_leader_id(BrokerId(-1))
            } else {
                entry
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

/// A topic Metadata could not describe. Named ones carry the topic's authorized operations as
/// Kafka's do (it fills them in for every topic of `getTopicMetadata`, errors included).
fn error_entry(name: Option<String>, id: Uuid, code: i16, topic_ops: i32) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(topic_ops)
}
