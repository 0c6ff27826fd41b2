//! IncrementalAlterConfigs (key 44): sets, deletes, appends to and subtracts from a topic's config
//! overrides (what `kafka-configs --alter` and the admin clients' `incrementalAlterConfigs` send).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::{alter_resource, duplicated};
use super::{HandlerResult, RequestContext};
use crate::broker::alter::ConfigOp;
use crate::broker::topics::TopicError;

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(ctx: RequestContext, req: IncrementalAlterConfigsRequest) -> HandlerResult {
    let keys: Vec<(i8, &str)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let duplicates = duplicated(&keys);
    let mut responses = Vec::with_capacity(req.resources.len());
    for (i, r) in req.resources.iter().enumerate() {
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
        let (code, message) = alter_resource(
            &ctx,
            (r.resource_type, r.resource_name.as_str()),
            duplicates[i],
            req.validate_only,
            |b, name| b.plan_incremental_configs(name, &ops?),
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
        IncrementalAlterConfigsResponse::default()
            .with_responses(responses)
            .into(),
    ))
}
