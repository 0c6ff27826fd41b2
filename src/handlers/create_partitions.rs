//! CreatePartitions (key 37): grows topics to a larger partition count, placing the new replicas
//! or taking the client's assignments; `validate_only` checks without writing.

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{HandlerResult, RequestContext};
use crate::broker::topics::TopicError;

pub const VERSIONS: (i16, i16) = (0, 3);

pub async fn handle(ctx: RequestContext, req: CreatePartitionsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.as_str();
        let outcome = if seen[name] > 1 {
            Err(TopicError::InvalidRequest(
                "Duplicate topic in request.".into(),
            ))
        } else {
            let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            match broker.plan_partitions(name, t.count, assignments.as_deref()) {
                Ok(_) if req.validate_only => Ok(()),
                Ok(planned) => broker.create_partitions(name, planned).await,
                Err(e) => Err(e),
            }
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => {
                if !req.validate_only {
                    info!(topic = %name, partitions = t.count, "partitions added");
                }
                result
            }
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    Ok(Some(
        CreatePartitionsResponse::default()
            .with_results(results)
            .into(),
    ))
}
