//! JoinGroup (key 11): the coordinator's join phase; see `group::coordinator`.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::group::JoinRequest;

pub const VERSIONS: (i16, i16) = (0, 9);

pub async fn handle(ctx: RequestContext, req: JoinGroupRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic().await;
    let v = ctx.api_version;
    let outcome = ctx
        .broker
        .group
        .join(JoinRequest {
            group_id: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.map(|s| s.to_string()),
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: format!("/{}", ctx.peer.ip()),
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if v >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: v >= 4,
        })
        .await;
    tracing::debug!(group = %req.group_id.0, member = %req.member_id, generation = outcome.generation,
        leader = %outcome.leader, error = ?outcome.error, "join group");
    let response = JoinGroupResponse::default()
        .with_error_code(outcome.error.as_ref().map(|e| e.code()).unwrap_or(0))
        .with_generation_id(outcome.generation)
        .with_protocol_type(if v >= 7 {
            outcome.protocol_type.map(StrBytes::from_string)
        } else {
            None
        })
        // Before v7 the protocol name is not nullable; Kafka sends "" when there is none.
        .with_protocol_name(match outcome.protocol_name {
            Some(n) => Some(StrBytes::from_string(n)),
            None if v < 7 => Some(StrBytes::default()),
            None => None,
        })
        .with_leader(StrBytes::from_string(outcome.leader))
        .with_skip_assignment(v >= 9 && outcome.skip_assignment)
        .with_member_id(StrBytes::from_string(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(if v >= 5 {
                            instance.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_metadata(metadata)
                })
                .collect(),
        );
    Ok(Some(response.into()))
}
