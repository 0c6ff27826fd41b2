//! DeleteGroups (key 42): removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{HandlerResult, RequestContext};
use crate::group::code_of;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(ctx: RequestContext, req: DeleteGroupsRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic().await;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let result = ctx.broker.group.delete_group(&g.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code_of(&result)),
        );
    }
    Ok(Some(
        DeleteGroupsResponse::default().with_results(results).into(),
    ))
}
