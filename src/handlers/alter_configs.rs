//! AlterConfigs (key 33): replaces a topic's whole set of config overrides, or a broker
//! resource's whole set of dynamic configs. Also the resource handling it shares with
//! IncrementalAlterConfigs: duplicates, resource types, `validate_only`.

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
    let resources = req.resources.iter().map(|r| {
        let entries: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let plan: Plan = Box::new(move |b: &Broker, ty: i8, name: &str| {
            if ty == BROKER {
                b.plan_replaced_broker_configs(name, &entries)
            } else {
                b.plan_replaced_configs(name, &entries)
            }
        });
        ((r.resource_type, r.resource_name.clone()), plan)
    });
    let responses = alter_resources(&ctx, resources.collect(), req.validate_only)
        .await
        .into_iter()
        .map(|((ty, name), code, message)| {
            AlterConfigsResourceResponse::default()
                .with_resource_type(ty)
                .with_resource_name(name)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    Ok(Some(
        AlterConfigsResponse::default()
            .with_responses(responses)
            .into(),
    ))
}

/// How a resource's new configs (a topic's overrides, a broker resource's dynamic configs) are
/// computed from the broker's current state, given the resource's type and name.
pub(super) type Plan =
    Box<dyn FnOnce(&Broker, i8, &str) -> Result<BTreeMap<String, String>, TopicError> + Send>;

/// Alters each (resource type, name) with its plan, in request order; a resource named twice is
/// refused both times, as Kafka does. Returns each resource with its error code and message.
pub(super) async fn alter_resources(
    ctx: &RequestContext,
    resources: Vec<((i8, StrBytes), Plan)>,
    validate_only: bool,
) -> Vec<((i8, StrBytes), i16, Option<String>)> {
    let mut count: HashMap<(i8, StrBytes), usize> = HashMap::new();
    for (key, _) in &resources {
        *count.entry(key.clone()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(resources.len());
    for (key, plan) in resources {
        let duplicate = count[&key] > 1;
        let (code, message) =
            alter_resource(ctx, (key.0, key.1.as_str()), duplicate, validate_only, plan).await;
        out.push((key, code, message));
    }
    out
}

/// Alters one resource with the configs `plan` computes for it; returns the resource's error code
/// and message. Topics and the BROKER resources ("" and this broker's id) can be altered.
async fn alter_resource(
    ctx: &RequestContext,
    (resource_type, name): (i8, &str),
    duplicate: bool,
    validate_only: bool,
    plan: impl FnOnce(&Broker, i8, &str) -> Result<BTreeMap<String, String>, TopicError>,
) -> (i16, Option<String>) {
    let refused = |e: TopicError| (e.code(), Some(e.to_string()));
    if duplicate {
        return refused(TopicError::InvalidRequest(format!(
            "Error due to duplicate resources: {name}"
        )));
    }
    match resource_type {
        TOPIC => {
            let configs = match plan(&ctx.broker, TOPIC, name) {
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
        BROKER => {
            let configs = match plan(&ctx.broker, BROKER, name) {
                Ok(c) => c,
                Err(e) => return refused(e),
            };
            if validate_only {
                return (0, None);
            }
            match ctx.broker.set_broker_configs(name, configs.clone()).await {
                Ok(()) => {
                    info!(broker = %name, ?configs, "dynamic broker configs changed");
                    (0, None)
                }
                Err(e) => refused(e),
            }
        }
        other => refused(TopicError::InvalidRequest(format!(
            "Unsupported resource type {other}"
        ))),
    }
}
