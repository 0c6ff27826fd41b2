//! The broker's [`MarkerWriter`]: each partition of a transaction goes where its leader is, as
//! Kafka's TransactionMarkerChannelManager routes it — to this broker's own log through a
//! [`LocalMarkerAppender`] (the log side's `append_marker`, wired by the broker), to other leaders
//! with WriteTxnMarkers. A partition missing from the metadata is gone (dropped, as Kafka does); one
//! without a leader, or whose leader cannot be reached, is retried.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::debug;

use super::marker_client::MarkerClient;
use super::ports::{BoxFuture, MarkerOutcome, MarkerRequest, MarkerWriter};
use super::state::TopicPartition;
use crate::cluster::MetadataImage;

/// Writes a marker to a partition led here; answers a Kafka error code (0: written).
pub trait LocalMarkerAppender: Send + Sync {
    fn append_marker<'a>(
        &'a self,
        partition: &'a TopicPartition,
        request: &'a MarkerRequest,
    ) -> BoxFuture<'a, i16>;
}

pub struct BrokerMarkerWriter {
    node_id: i32,
    metadata: watch::Receiver<Arc<MetadataImage>>,
    /// The inter-broker listener whose endpoints remote leaders are reached at.
    listener: String,
    local: Arc<dyn LocalMarkerAppender>,
    client: MarkerClient,
}

impl BrokerMarkerWriter {
    pub fn new(
        node_id: i32,
        metadata: watch::Receiver<Arc<MetadataImage>>,
        listener: String,
        bind_ip: Option<IpAddr>,
        local: Arc<dyn LocalMarkerAppender>,
        timeout: Duration,
    ) -> BrokerMarkerWriter {
        BrokerMarkerWriter {
            node_id,
            metadata,
            listener,
            local,
            client: MarkerClient::new(node_id, bind_ip, timeout),
        }
    }
}

/// Where one partition's marker goes.
enum Route {
    Gone,
    NoLeader,
    Local,
    Remote(i32),
}

fn route(image: &MetadataImage, node_id: i32, (topic, p): &TopicPartition) -> Route {
    let Some(info) = image
        .topics
        .get(topic)
        .and_then(|t| t.partitions.iter().find(|i| i.partition == *p))
    else {
        return Route::Gone;
    };
    match info.leader {
        l if l < 0 => Route::NoLeader,
        l if l == node_id => Route::Local,
        l => Route::Remote(l),
    }
}

impl MarkerWriter for BrokerMarkerWriter {
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<'_, Vec<(TopicPartition, MarkerOutcome)>> {
        Box::pin(async move {
            let image = self.metadata.borrow().clone();
            let mut out = Vec::new();
            let mut local = Vec::new();
            let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            for tp in &request.partitions {
                match route(&image, self.node_id, tp) {
                    Route::Gone => out.push((tp.clone(), MarkerOutcome::PartitionGone)),
                    Route::NoLeader => {
                        out.push((tp.clone(), MarkerOutcome::Retry("no leader".into())))
                    }
                    Route::Local => local.push(tp.clone()),
                    Route::Remote(l) => remote.entry(l).or_default().push(tp.clone()),
                }
            }
            for tp in local {
                let code = self.local.append_marker(&tp, &request).await;
                out.push((tp, MarkerOutcome::from_error_code(code)));
            }
            for (leader, partitions) in remote {
                let Some(b) = image.brokers.get(&leader) else {
                    let why = format!("leader {leader} not registered");
                    out.extend(
                        partitions
                            .into_iter()
                            .map(|tp| (tp, MarkerOutcome::Retry(why.clone()))),
                    );
                    continue;
                };
                let endpoint = b.endpoint(&self.listener);
                match self
                    .client
                    .write(leader, endpoint, &request, &partitions)
                    .await
                {
                    Ok(codes) => {
                        let codes: BTreeMap<TopicPartition, i16> = codes.into_iter().collect();
                        for tp in partitions {
                            let outcome = match codes.get(&tp) {
                                Some(c) => MarkerOutcome::from_error_code(*c),
                                None => MarkerOutcome::Retry("not in the answer".into()),
                            };
                            out.push((tp, outcome));
                        }
                    }
                    Err(e) => {
                        debug!(leader, error = %e, "WriteTxnMarkers failed; retried");
                        let why = e.to_string();
                        out.extend(
                            partitions
                                .into_iter()
                                .map(|tp| (tp, MarkerOutcome::Retry(why.clone()))),
                        );
                    }
                }
            }
            out
        })
    }
}
