//! Kafka API handlers, one module per API. `APIS` is the single table that drives both dispatch and
//! the ApiVersions answer, so what we advertise is exactly what we serve.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod compact;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod write_txn_markers;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use acls::{create_acls, delete_acls, describe_acls};

use crate::broker::Broker;

/// What a handler knows about the request it serves.
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub peer: SocketAddr,
    /// The connection's SASL state (SaslHandshake and SaslAuthenticate move it on).
    pub session: Arc<crate::server::sasl::Session>,
}

/// A failure that is not expressible as a Kafka error code in the response: the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("request body does not match its api key")]
    Mismatch,
    #[error("{0}")]
    Invalid(String),
}

/// `Ok(None)`: the request gets no response (Produce with acks=0).
pub type HandlerResult = Result<Option<ResponseKind>, HandlerError>;
type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// One row of the API table.
pub struct Api {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    /// Decodes the request body (after the pre-walk); kafka-protocol's decoder unless the handler
    /// module supplies one for versions the codec lacks.
    pub decode: fn(&mut bytes::Bytes, i16) -> anyhow::Result<RequestKind>,
    pub handle: fn(RequestContext, RequestKind) -> HandlerFuture,
}

impl Api {
    pub fn supports(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

/// A table row for `ApiKey::$variant` served by `$module::handle`, versions from `$module::VERSIONS`.
macro_rules! api {
    ($variant:ident, $module:ident) => {
        api!($variant, $module, {
            fn decode(buf: &mut bytes::Bytes, version: i16) -> anyhow::Result<RequestKind> {
                RequestKind::decode(ApiKey::$variant, buf, version)
            }
            decode
        })
    };
    ($variant:ident, $module:ident, $decode:expr) => {
        Api {
            key: ApiKey::$variant,
            min_version: $module::VERSIONS.0,
            max_version: $module::VERSIONS.1,
            decode: $decode,
            handle: {
                fn call(ctx: RequestContext, req: RequestKind) -> HandlerFuture {
                    Box::pin(async move {
                        match req {
                            RequestKind::$variant(r) => $module::handle(ctx, r).await,
                            _ => Err(HandlerError::Mismatch),
                        }
                    })
                }
                call
            },
        }
    };
}

/// Every API this broker serves, with the exact versions its handler implements.
pub static APIS: &[Api] = &[
    api!(Produce, produce),
    api!(Fetch, fetch),
    api!(ListOffsets, list_offsets),
    api!(Metadata, metadata),
    api!(OffsetCommit, offset_commit, offset_commit::decode),
    api!(OffsetFetch, offset_fetch, offset_fetch::decode),
    api!(FindCoordinator, find_coordinator),
    api!(JoinGroup, join_group),
    api!(Heartbeat, heartbeat),
    api!(LeaveGroup, leave_group),
    api!(SyncGroup, sync_group),
    api!(DescribeGroups, describe_groups),
    api!(ListGroups, list_groups),
    api!(ApiVersions, api_versions),
    api!(CreateTopics, create_topics),
    api!(DeleteTopics, delete_topics),
    api!(DeleteGroups, delete_groups),
    api!(OffsetDelete, offset_delete),
    api!(InitProducerId, init_producer_id, init_producer_id::decode),
    api!(AddPartitionsToTxn, add_partitions_to_txn),
    api!(AddOffsetsToTxn, add_offsets_to_txn),
    api!(EndTxn, end_txn),
    api!(WriteTxnMarkers, write_txn_markers),
    api!(DescribeConfigs, describe_configs),
    api!(DeleteRecords, delete_records),
    api!(OffsetForLeaderEpoch, offset_for_leader_epoch),
    api!(AlterConfigs, alter_configs),
    api!(IncrementalAlterConfigs, incremental_alter_configs),
    api!(CreatePartitions, create_partitions),
    api!(DescribeCluster, describe_cluster),
    api!(DescribeLogDirs, describe_log_dirs),
    api!(DescribeTransactions, describe_transactions),
    api!(ListTransactions, list_transactions),
    api!(DescribeAcls, describe_acls),
    api!(CreateAcls, create_acls),
    api!(DeleteAcls, delete_acls),
    api!(SaslHandshake, sasl_handshake),
    api!(SaslAuthenticate, sasl_authenticate),
];

pub fn lookup(api_key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key as i16 == api_key)
}
