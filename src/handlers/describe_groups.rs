//! DescribeGroups (key 15): state, protocol and members of each group; unknown groups are Dead
//! (v6: with GROUP_ID_NOT_FOUND, as Kafka 3.8+ answers). Authorized operations (v3+, when asked
//! for) are every operation a group supports, as Kafka reports them without an authorizer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::GROUP_OPERATIONS;
use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 6);

pub async fn handle(ctx: RequestContext, req: DescribeGroupsRequest) -> HandlerResult {
    let v = ctx.api_version;
    let with_operations = v >= 3 && req.include_authorized_operations;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let d = match ctx.broker.group.describe(&id.0) {
                Ok(d) => d,
                // Kafka's DescribeGroupsResponse.groupError: the code and nothing else.
                Err(e) => {
                    return DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(e.code())
                }
            };
            let mut group = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(if v >= 4 {
                                    m.instance_id.map(StrBytes::from_string)
                                } else {
                                    None
                                })
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                );
            // The empty group id is valid here, as in Kafka (so that its state can be viewed).
            if !d.exists && v >= 6 {
                group = group
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Group {} not found.",
                        id.0
                    ))));
            } else if with_operations {
                // Kafka fills them in for the groups it describes without an error; the others
                // keep the "not requested" sentinel (i32::MIN, the field's default).
                group = group.with_authorized_operations(GROUP_OPERATIONS);
            }
            group
        })
        .collect();
    Ok(Some(
        DescribeGroupsResponse::default().with_groups(groups).into(),
    ))
}
