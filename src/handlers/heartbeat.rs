//! Heartbeat (key 12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{HandlerResult, RequestContext};
use crate::group::code_of;

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(ctx: RequestContext, req: HeartbeatRequest) -> HandlerResult {
    let result = ctx.broker.group.heartbeat(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    );
    Ok(Some(
        HeartbeatResponse::default()
            .with_error_code(code_of(&result))
            .into(),
    ))
}
