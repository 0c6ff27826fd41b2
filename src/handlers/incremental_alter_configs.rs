//! IncrementalAlterConfigs (key 44): sets, deletes, appends to and subtracts from a topic's config
//! overrides or a broker resource's dynamic configs (what `kafka-configs --alter` and the admin
//! clients' `incrementalAlterConfigs` send).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::{alter_resources, Plan};
use super::describe_configs::BROKER;
use super::{HandlerResult, RequestContext};
use crate::broker::alter::ConfigOp;
use crate::broker::topics::TopicError;
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(ctx: RequestContext, req: IncrementalAlterConfigsRequest) -> HandlerResult {
    let resources = req.resources.iter().map(|r| {
        let ops: Result<Vec<(String, ConfigOp, Option<String>)>, TopicError> = r
            .configs
            .iter()
            .map(|c| {
                let op = ConfigOp::from_code(c.config_operation).ok_or_else(|| {
                    TopicError::InvalidRequest(format!(
                        "Unknown config operation {} for {}",
                        c.config_operation,
                        c.name.as_str()
                    ))
                })?;
                Ok((
                    c.name.to_string(),
                    op,
                    c.value.as_ref().map(|v| v.to_string()),
                ))
            })
            .collect();
        let plan: Plan = Box::new(move |b: &Broker, ty: i8, name: &str| {
            if ty == BROKER {
                b.plan_incremental_broker_configs(name, &ops?)
            } else {
                b.plan_incremental_configs(name, &ops?)
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
        IncrementalAlterConfigsResponse::default()
            .with_responses(responses)
            .into(),
    ))
}
