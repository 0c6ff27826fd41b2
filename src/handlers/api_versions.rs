//! ApiVersions (key 18): the supported ranges, straight from the dispatch table.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{HandlerResult, RequestContext, APIS};

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(_ctx: RequestContext, _req: ApiVersionsRequest) -> HandlerResult {
    Ok(Some(response().into()))
}

fn response() -> ApiVersionsResponse {
    // Features (tagged fields) stay at their defaults so that none is written: librdkafka 2.0.2
    // mis-parses default-valued tagged fields in this response.
    ApiVersionsResponse::default().with_api_keys(
        APIS.iter()
            .map(|a| {
                ApiVersion::default()
                    .with_api_key(a.key as i16)
                    .with_min_version(a.min_version)
                    .with_max_version(a.max_version)
            })
            .collect(),
    )
}

/// The answer to an ApiVersions request of a version we do not know (encoded as v0).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    response().with_error_code(ResponseError::UnsupportedVersion.code())
}
