//! ListGroups (key 16): every group, filtered by state (v4+, case-insensitive) and type (v5: all
//! groups here are "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 5);

const GROUP_TYPE: &str = "classic";

pub async fn handle(ctx: RequestContext, req: ListGroupsRequest) -> HandlerResult {
    let v = ctx.api_version;
    let types_ok = v < 5
        || req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(GROUP_TYPE));
    let groups = if !types_ok {
        Vec::new()
    } else {
        ctx.broker
            .group
            .list()
            .into_iter()
            .filter(|g| {
                v < 4
                    || req.states_filter.is_empty()
                    || req
                        .states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state))
            })
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type));
                if v >= 4 {
                    listed = listed.with_group_state(StrBytes::from_static_str(g.state));
                }
                if v >= 5 {
                    listed = listed.with_group_type(StrBytes::from_static_str(GROUP_TYPE));
                }
                listed
            })
            .collect()
    };
    // As Kafka: the groups loaded so far, and COORDINATOR_LOAD_IN_PROGRESS while some still load.
    let code = if ctx.broker.group.is_loading() {
        kafka_protocol::error::ResponseError::CoordinatorLoadInProgress.code()
    } else {
        0
    };
    Ok(Some(
        ListGroupsResponse::default()
            .with_error_code(code)
            .with_groups(groups)
            .into(),
    ))
}
