//! DescribeAcls (key 29), CreateAcls (30), DeleteAcls (31): vltava has no authorizer, so it
//! answers them as Kafka does when `authorizer.class.name` is unset: SECURITY_DISABLED, with
//! Kafka's message. (Metadata and DescribeCluster report every operation as allowed.)

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn disabled() -> (i16, Option<StrBytes>) {
    (
        ResponseError::SecurityDisabled.code(),
        Some(StrBytes::from_static_str(NO_AUTHORIZER)),
    )
}

pub mod describe_acls {
    use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

    use super::super::{HandlerResult, RequestContext};

    pub const VERSIONS: (i16, i16) = (1, 3);

    pub async fn handle(_ctx: RequestContext, _req: DescribeAclsRequest) -> HandlerResult {
        let (code, message) = super::disabled();
        Ok(Some(
            DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .into(),
        ))
    }
}

pub mod create_acls {
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

    use super::super::{HandlerResult, RequestContext};

    pub const VERSIONS: (i16, i16) = (1, 3);

    pub async fn handle(_ctx: RequestContext, req: CreateAclsRequest) -> HandlerResult {
        let results = req
            .creations
            .iter()
            .map(|_| {
                let (code, message) = super::disabled();
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        Ok(Some(
            CreateAclsResponse::default().with_results(results).into(),
        ))
    }
}

pub mod delete_acls {
    use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
    use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

    use super::super::{HandlerResult, RequestContext};

    pub const VERSIONS: (i16, i16) = (1, 3);

    pub async fn handle(_ctx: RequestContext, req: DeleteAclsRequest) -> HandlerResult {
        let results = req
            .filters
            .iter()
            .map(|_| {
                let (code, message) = super::disabled();
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        Ok(Some(
            DeleteAclsResponse::default()
                .with_filter_results(results)
                .into(),
        ))
    }
}
