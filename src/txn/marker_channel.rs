//! The broker's [`MarkerWriter`]: each partition of a transaction goes where its leader is, as
//! Kafka's TransactionMarkerChannelManager routes it — to this broker's own log through a
//! [`LocalMarkerAppender`] (the log side's `append_marker`, wired by the broker), to other leaders
//! with WriteTxnMarkers, to every leader at once. A partition missing from the metadata is gone
//! (dropped, as Kafka does); one without a leader, or whose leader cannot be reached or stops
//! leading it meanwhile, is retried.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
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

impl BrokerMarkerWriter {
    /// WriteTxnMarkers to `leader` for `partitions`, each one's outcome. Given up (retried) as soon
    /// as the metadata moves any of them away from `leader`: a leader cut off from this broker would
    /// otherwise hold the transaction's completion for the whole request timeout although its
    /// successor is already serving.
    async fn write_remote(
        &self,
        image: &MetadataImage,
        leader: i32,
        partitions: Vec<TopicPartition>,
        request: &MarkerRequest,
    ) -> Vec<(TopicPartition, MarkerOutcome)> {
        let retry_all = |partitions: Vec<TopicPartition>, why: String| -> Vec<_> {
            partitions
                .into_iter()
                .map(|tp| (tp, MarkerOutcome::Retry(why.clone())))
                .collect()
        };
        let Some(b) = image.brokers.get(&leader) else {
            return retry_all(partitions, format!("leader {leader} not registered"));
        };
        let endpoint = b.endpoint(&self.listener);
        let answer = tokio::select! {
            answer = self.client.write(leader, endpoint, request, &partitions) => answer,
            why = self.leadership_moves(leader, &partitions) => {
                debug!(leader, why, "WriteTxnMarkers abandoned; retried at the new leader");
                return retry_all(partitions, why);
            }
        };
        match answer {
            Ok(codes) => {
                let codes: BTreeMap<TopicPartition, i16> = codes.into_iter().collect();
                partitions
                    .into_iter()
                    .map(|tp| {
                        let outcome = match codes.get(&tp) {
                            Some(c) => MarkerOutcome::from_error_code(*c),
                            None => MarkerOutcome::Retry("not in the answer".into()),
                        };
                        (tp, outcome)
                    })
                    .collect()
            }
            Err(e) => {
                debug!(leader, error = %e, "WriteTxnMarkers failed; retried");
                retry_all(partitions, e.to_string())
            }
        }
    }

    /// Resolves once the metadata no longer has `leader` leading every one of `partitions`.
    async fn leadership_moves(&self, leader: i32, partitions: &[TopicPartition]) -> String {
        let mut metadata = self.metadata.clone();
        loop {
            let moved = {
                let image = metadata.borrow_and_update();
                partitions.iter().find(|tp| {
                    !matches!(route(&image, self.node_id, tp), Route::Remote(l) if l == leader)
                })
                .cloned()
            };
            if let Some((topic, p)) = moved {
                return format!("{topic}-{p} no longer led by {leader}");
            }
            if metadata.changed().await.is_err() {
                // The metadata source is gone (shutting down): only the request can finish.
                std::future::pending::<()>().await;
            }
        }
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
            let calls = remote.into_iter().map(|(leader, partitions)| {
                self.write_remote(&image, leader, partitions, &request)
            });
            for answered in join_all(calls).await {
                out.extend(answered);
            }
            out
        })
    }
}
