//! AlterConfigs (key 33): replaces a topic's whole set of config overrides. Also the resource
//! handling it shares with IncrementalAlterConfigs: duplicates, resource types, `validate_only`.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::describe_configs::{BROKER, TOPIC};
use super::{HandlerResult, RequestContext};
use crate::broker::topics::TopicError;
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(ctx: RequestContext, req: AlterConfigsRequest) -> HandlerResult {
    let keys: Vec<(i8, &str)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let duplicates = duplicated(&keys);
    let mut responses = Vec::with_capacity(req.resources.len());
    for (i, r) in req.resources.iter().enumerate() {
        let entries: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let (code, message) = alter_resource(
            &ctx,
            (r.resource_type, r.resource_name.as_str()),
            duplicates[i],
            req.validate_only,
            |b, name| b.plan_replaced_configs(name, &entries),
        )
        .await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    Ok(Some(
        AlterConfigsResponse::default()
            .with_responses(responses)
            .into(),
    ))
}

/// Per resource: whether another resource of the request names the same one (Kafka refuses both).
pub(super) fn duplicated(keys: &[(i8, &str)]) -> Vec<bool> {
    let mut count: HashMap<(i8, &str), usize> = HashMap::new();
    for k in keys {
        *count.entry(*k).or_default() += 1;
    }
    keys.iter().map(|k| count[k] > 1).collect()
}

/// Alters one resource with the overrides `plan` computes for a topic; returns the resource's
/// error code and message. Only topics can be altered: the broker's settings are static.
pub(super) async fn alter_resource(
    ctx: &RequestContext,
    (resource_type, name): (i8, &str),
    duplicate: bool,
    validate_only: bool,
    plan: impl FnOnce(&Broker, &str) -> Result<BTreeMap<String, String>, TopicError>,
) -> (i16, Option<String>) {
    let refused = |e: TopicError| (e.code(), Some(e.to_string()));
    if duplicate {
        return refused(TopicError::InvalidRequest(format!(
            "Error due to duplicate resources: {name}"
        )));
    }
    match resource_type {
        TOPIC => {
            let configs = match plan(&ctx.broker, name) {
                Ok(c) => c,
                Err(e) => return refused(e),
            };
            if validate_only {
                return (0, None);
            }
            match ctx.broker.set_topic_configs(name, configs.clone()).await {
                Ok(()) => {
                    info!(topic = %name, ?configs, "topic configs changed");
                    (0, None)
                }
                Err(e) => refused(e),
            }
        }
        BROKER => refused(TopicError::InvalidRequest(
            "Broker configs cannot be changed while vltava runs: set them in its config file"
                .into(),
        )),
        other => refused(TopicError::InvalidRequest(format!(
            "Unsupported resource type {other}"
        ))),
    }
}
