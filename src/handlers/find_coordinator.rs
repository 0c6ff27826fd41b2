//! FindCoordinator (key 10): a group's coordinator is the leader of its `__consumer_offsets` partition
//! (COORDINATOR_NOT_AVAILABLE while it has none), a transactional id's the leader of its
//! `__transaction_state` partition; v0-v3 ask for one key, v4+ for a batch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(ctx: RequestContext, req: FindCoordinatorRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let ready = match req.key_type {
        KEY_TYPE_GROUP => broker.group.ensure_offsets_topic().await,
        KEY_TYPE_TRANSACTION => broker.txn.ensure_topic().await,
        _ => true,
    };
    let answer = |key: &StrBytes| -> Coordinator {
        let c = Coordinator::default().with_key(key.clone());
        let fail = |e: ResponseError| {
            c.clone()
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_static_str(match e {
                    ResponseError::InvalidRequest => "Unknown coordinator key type",
                    _ => "The coordinator is not available.",
                })))
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1)
        };
        match req.key_type {
            KEY_TYPE_GROUP if key.is_empty() => fail(ResponseError::InvalidRequest),
            KEY_TYPE_TRANSACTION if key.is_empty() => fail(ResponseError::InvalidRequest),
            KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION if !ready => {
                fail(ResponseError::CoordinatorNotAvailable)
            }
            KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {
                let found = if req.key_type == KEY_TYPE_GROUP {
                    broker.group.coordinator_for(key)
                } else {
                    broker.txn.coordinator_for(key)
                };
                match found {
                    Some(b) => {
                        let (host, port) = b.endpoint(ctx.session.listener());
                        c.with_node_id(BrokerId(b.id))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port)
                    }
                    None => fail(ResponseError::CoordinatorNotAvailable),
                }
            }
            _ => fail(ResponseError::InvalidRequest),
        }
    };
    let response = if ctx.api_version >= 4 {
        FindCoordinatorResponse::default()
            .with_coordinators(req.coordinator_keys.iter().map(answer).collect())
    } else {
        let c = answer(&req.key);
        let r = FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port);
        if ctx.api_version >= 1 {
            r.with_error_message(c.error_message)
        } else {
            r
        }
    };
    Ok(Some(response.into()))
}
