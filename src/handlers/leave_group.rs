//! LeaveGroup (key 13): one member (v0-2) or a batch of members by id or group.instance.id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{HandlerResult, RequestContext};
use crate::group::code_of;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(ctx: RequestContext, req: LeaveGroupRequest) -> HandlerResult {
    let coordinator = &ctx.broker.group;
    if ctx.api_version < 3 {
        let result = coordinator.leave(&req.group_id.0, &req.member_id, None);
        return Ok(Some(
            LeaveGroupResponse::default()
                .with_error_code(code_of(&result))
                .into(),
        ));
    }
    let members = req
        .members
        .into_iter()
        .map(|m| {
            let result = coordinator.leave(
                &req.group_id.0,
                &m.member_id,
                m.group_instance_id.as_deref(),
            );
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code_of(&result))
        })
        .collect();
    Ok(Some(
        LeaveGroupResponse::default().with_members(members).into(),
    ))
}
