//! SyncGroup (key 14): the leader's assignment, distributed to every member; see `group::coordinator`.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::group::SyncRequest;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(ctx: RequestContext, req: SyncGroupRequest) -> HandlerResult {
    let v = ctx.api_version;
    let outcome = ctx
        .broker
        .group
        .sync(SyncRequest {
            group_id: req.group_id.0.to_string(),
            generation: req.generation_id,
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.map(|s| s.to_string()),
            protocol_type: req.protocol_type.map(|s| s.to_string()),
            protocol_name: req.protocol_name.map(|s| s.to_string()),
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        })
        .await;
    let mut response = SyncGroupResponse::default()
        .with_error_code(outcome.error.as_ref().map(|e| e.code()).unwrap_or(0))
        .with_assignment(outcome.assignment);
    if v >= 5 {
        response = response
            .with_protocol_type(outcome.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(outcome.protocol_name.map(StrBytes::from_string));
    }
    Ok(Some(response.into()))
}
