//! DescribeConfigs (key 32): a topic's configs and this broker's settings, with their sources and,
//! when asked, their synonyms. Broker settings are read-only but for the dynamic ones
//! (`broker::dynamic`); the BROKER resource "" holds the cluster-wide dynamic defaults.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::broker::configs::{describe_broker, describe_cluster_default, ConfigEntry};
use crate::broker::topics::validate_topic_name;

/// Kafka 4 removed v0 (KIP-896).
pub const VERSIONS: (i16, i16) = (1, 4);

/// Kafka's `ConfigResource.Type`.
pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

pub async fn handle(ctx: RequestContext, req: DescribeConfigsRequest) -> HandlerResult {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match entries(&ctx, &r) {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| wanted(&r, &e.name))
                        .map(|e| encode(e, req.include_synonyms))
                        .collect(),
                ),
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    Ok(Some(
        DescribeConfigsResponse::default()
            .with_results(results)
            .into(),
    ))
}

fn entries(
    ctx: &RequestContext,
    r: &DescribeConfigsResource,
) -> Result<Vec<ConfigEntry>, (ResponseError, String)> {
    let broker = &ctx.broker;
    let name = r.resource_name.as_str();
    match r.resource_type {
        TOPIC => {
            validate_topic_name(name)
                .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
            let image = broker.metadata.image();
            let topic = image.topics.get(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            Ok(broker.describe_topic_configs(topic))
        }
        // The empty name stands for the cluster-wide dynamic defaults.
        BROKER if name.is_empty() => {
            let advertised = format!("{}:{}", broker.advertised_host, broker.advertised_port);
            Ok(describe_cluster_default(
                &broker.config,
                &advertised,
                &broker.dynamic_configs(),
            ))
        }
        BROKER if name.parse::<i32>() == Ok(broker.node_id) => {
            let advertised = format!("{}:{}", broker.advertised_host, broker.advertised_port);
            Ok(describe_broker(
                &broker.config,
                &advertised,
                &broker.dynamic_configs(),
            ))
        }
        BROKER => Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// `configuration_keys` null asks for every config.
fn wanted(r: &DescribeConfigsResource, name: &str) -> bool {
    r.configuration_keys
        .as_ref()
        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
}

fn encode(e: ConfigEntry, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        e.synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(Some(StrBytes::from_string(s.value)))
                    .with_source(s.source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(e.config_type)
}
