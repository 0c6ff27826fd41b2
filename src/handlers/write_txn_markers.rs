//! WriteTxnMarkers (key 27): a transaction coordinator (another broker's, or the admin client
//! aborting a hanging transaction, KIP-664) has the commit/abort markers written to the partitions
//! led here. Every partition's marker is appended and awaited (acks=-1) concurrently; each gets its
//! own error code, and markers on `__consumer_offsets` settle the producer's transactional offsets.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use tokio::task::JoinSet;
use tracing::debug;

use super::{HandlerResult, RequestContext};
use crate::broker::replica::TxnMarker;

pub const VERSIONS: (i16, i16) = (1, 1);

pub async fn handle(ctx: RequestContext, req: WriteTxnMarkersRequest) -> HandlerResult {
    // (marker index, topic, partition) -> code, filled as the appends finish.
    let mut writes = JoinSet::new();
    for (i, m) in req.markers.iter().enumerate() {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        debug!(peer = %ctx.peer, producer_id = marker.producer_id, commit = marker.commit,
            coordinator_epoch = marker.coordinator_epoch, "WriteTxnMarkers");
        for t in &m.topics {
            for &p in &t.partition_indexes {
                let broker = ctx.broker.clone();
                let topic = t.name.0.to_string();
                writes.spawn(async move {
                    let code = broker.write_txn_marker(&topic, p, marker).await;
                    (i, topic, p, code)
                });
            }
        }
    }
    let mut codes: BTreeMap<(usize, String, i32), i16> = BTreeMap::new();
    while let Some(done) = writes.join_next().await {
        match done {
            Ok((i, topic, p, code)) => {
                codes.insert((i, topic, p), code);
            }
            Err(e) => return Err(super::HandlerError::Invalid(format!("marker task: {e}"))),
        }
    }
    let markers = req
        .markers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let code = codes
                                .get(&(i, t.name.0.to_string(), p))
                                .copied()
                                .unwrap_or(ResponseError::UnknownServerError.code());
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(t.name.0.clone()))
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    Ok(Some(
        WriteTxnMarkersResponse::default()
            .with_markers(markers)
            .into(),
    ))
}
