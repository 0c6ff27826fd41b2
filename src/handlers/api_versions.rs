//! ApiVersions (key 18): the supported ranges, straight from the dispatch table, and (v3+) the
//! features: `transaction.version` supported 0-2, finalized at the configured level.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext, APIS};

pub const VERSIONS: (i16, i16) = (0, 4);

/// Kafka's feature of the transaction protocol (KIP-890 part 2 is level 2).
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// The highest `transaction.version` this broker implements.
pub const MAX_TRANSACTION_VERSION: i16 = 2;

pub async fn handle(ctx: RequestContext, _req: ApiVersionsRequest) -> HandlerResult {
    let level = ctx.broker.config.transaction_version;
    Ok(Some(with_features(response(), level).into()))
}

fn response() -> ApiVersionsResponse {
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

/// The features, as Kafka lists them: supported ranges, and the finalized levels above 0 with
/// their epoch. Levels change only with the configuration, so the epoch is this process's start
/// (in ms): a broker restarted with another level has a later epoch, which clients take over.
fn with_features(response: ApiVersionsResponse, transaction_version: i16) -> ApiVersionsResponse {
    static STARTED_MS: OnceLock<i64> = OnceLock::new();
    let epoch = *STARTED_MS.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    let name = || StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE);
    let finalized = (transaction_version > 0)
        .then(|| {
            FinalizedFeatureKey::default()
                .with_name(name())
                .with_min_version_level(transaction_version)
                .with_max_version_level(transaction_version)
        })
        .into_iter()
        .collect();
    response
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name())
            .with_min_version(0)
            .with_max_version(MAX_TRANSACTION_VERSION)])
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(finalized)
}

/// The answer to an ApiVersions request of a version we do not know (encoded as v0): as Kafka's
/// (KIP-511), only ApiVersions' own range, which the client retries within. Clients take an error
/// answer listing every API as a final pre-KIP-511 answer and never learn the features (franz-go).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(VERSIONS.0)
            .with_max_version(VERSIONS.1)])
        .with_error_code(ResponseError::UnsupportedVersion.code())
}
