//! CreateTopics (key 19): validate, place replicas, commit through Raft; `validate_only` stops before the write.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{HandlerResult, RequestContext};
use crate::broker::topics::{TopicError, TopicRequest};
use crate::cluster::TopicInfo;

pub const VERSIONS: (i16, i16) = (2, 7);

pub async fn handle(ctx: RequestContext, req: CreateTopicsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results.push(failed(
                result,
                &TopicError::InvalidRequest(format!(
                    "Create topics request from client contains duplicate topic {name}"
                )),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => null_config = Some(c.name.to_string()),
            }
        }
        if let Some(key) = null_config {
            results.push(failed(
                result,
                &TopicError::InvalidConfig(format!(
                    "Null value not supported for topic configs: {key}"
                )),
            ));
            continue;
        }
        let mut assignments: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort_by_key(|(p, _)| *p);
        if assignments
            .iter()
            .enumerate()
            .any(|(i, (p, _))| *p != i as i32)
        {
            results.push(failed(
                result,
                &TopicError::InvalidReplicaAssignment(
                    "Partitions of a replica assignment must be numbered consecutively from 0"
                        .into(),
                ),
            ));
            continue;
        }
        let request = TopicRequest {
            name: name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: assignments.into_iter().map(|(_, b)| b).collect(),
            configs,
        };
        let outcome = match broker.plan_topic(&request) {
            Ok(planned) if req.validate_only => Ok(planned),
            Ok(planned) => broker.create_topic(planned).await,
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok(topic) => created(&ctx, result, &topic),
            Err(e) => failed(result, &e),
        });
    }
    Ok(Some(
        CreateTopicsResponse::default().with_topics(results).into(),
    ))
}

fn created(
    ctx: &RequestContext,
    result: CreatableTopicResult,
    topic: &TopicInfo,
) -> CreatableTopicResult {
    let configs = ctx
        .broker
        .describe_topic_configs(topic)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_read_only(e.read_only)
                .with_config_source(e.source as i8)
        })
        .collect();
    let rf = topic
        .partitions
        .first()
        .map_or(0, |p| p.replicas.len() as i16);
    result
        .with_topic_id(topic.id)
        .with_num_partitions(topic.partitions.len() as i32)
        .with_replication_factor(rf)
        .with_configs(Some(configs))
}

fn failed(result: CreatableTopicResult, e: &TopicError) -> CreatableTopicResult {
    // v5+ carries -1 counts and null configs on failure, as Kafka answers.
    result
        .with_topic_id(Uuid::nil())
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(e.to_string())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_configs(None)
}
