//! DescribeCluster (key 60): the cluster id, the controller and the registered brokers, as Java's
//! and librdkafka's `describeCluster` ask for them (KIP-700).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{CLUSTER_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 2);

/// KIP-919 endpoint types: brokers (1) or controllers (2).
const BROKERS: i8 = 1;

pub async fn handle(ctx: RequestContext, req: DescribeClusterRequest) -> HandlerResult {
    let v = ctx.api_version;
    // Before v1 the field is absent and means brokers.
    let endpoint_type = if v >= 1 { req.endpoint_type } else { BROKERS };
    let response = DescribeClusterResponse::default().with_endpoint_type(endpoint_type);
    if endpoint_type != BROKERS {
        // Controllers are described by controllers, which a broker is not addressed as (KIP-919).
        return Ok(Some(
            response
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "The endpoint type requested is not supported by this broker",
                )))
                .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
                .into(),
        ));
    }
    let image = ctx.broker.metadata.image();
    let listener = ctx.session.listener();
    let brokers = image
        .unfenced_brokers()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.endpoint(listener).0.to_string()))
                .with_port(b.endpoint(listener).1)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let response = response
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(image.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        });
    Ok(Some(response.into()))
}
