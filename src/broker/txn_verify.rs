//! The broker's [`TxnVerifier`]: a transactional id's coordinator asked whether partitions are in a
//! producer's ongoing transaction, or told to add them (Transactions V2) — this broker's own
//! coordinator directly, another broker's with AddPartitionsToTxn v4 on the inter-broker listener.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tracing::debug;

use super::replica::{TxnVerifier, VerifyFuture};
use super::Broker;
use crate::txn::marker_client::MarkerClient;
use crate::txn::state::TV_2;

pub struct BrokerTxnVerifier {
    broker: Weak<Broker>,
    listener: String,
    client: MarkerClient,
}

impl BrokerTxnVerifier {
    pub fn new(
        broker: Weak<Broker>,
        node_id: i32,
        listener: String,
        bind_ip: Option<IpAddr>,
        timeout: Duration,
    ) -> BrokerTxnVerifier {
        BrokerTxnVerifier {
            broker,
            listener,
            client: MarkerClient::new(node_id, bind_ip, timeout),
        }
    }
}

impl TxnVerifier for BrokerTxnVerifier {
    fn verify<'a>(
        &'a self,
        transactional_id: &'a str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: Vec<(String, i32)>,
        add: bool,
    ) -> VerifyFuture<'a> {
        Box::pin(async move {
            let all = |e: ResponseError, partitions: &[(String, i32)]| {
                partitions.iter().map(|tp| (tp.clone(), e.code())).collect()
            };
            let Some(broker) = self.broker.upgrade() else {
                return all(ResponseError::NotCoordinator, &partitions);
            };
            let Some(coordinator) = broker.txn.coordinator_for(transactional_id) else {
                return all(ResponseError::CoordinatorNotAvailable, &partitions);
            };
            if coordinator.id == broker.node_id && add {
                let producer = (producer_id, producer_epoch);
                let code = broker
                    .txn
                    .add_partitions_at(transactional_id, producer, partitions.clone(), TV_2)
                    .await
                    .map_or_else(|e| e.response_error().code(), |_| 0);
                return partitions.into_iter().map(|tp| (tp, code)).collect();
            }
            if coordinator.id == broker.node_id {
                return broker.txn.verify_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                );
            }
            let endpoint = coordinator.endpoint(&self.listener);
            let asked = self.client.verify(
                coordinator.id,
                endpoint,
                transactional_id,
                (producer_id, producer_epoch),
                &partitions,
                add,
            );
            // A coordinator cut off from here would hold the producer's batch for the whole
            // request timeout although its successor already serves the id: given up once the
            // metadata moves the id elsewhere (NOT_COORDINATOR; the producer retries).
            let moved = async {
                let mut images = broker.metadata.subscribe();
                loop {
                    let now = broker.txn.coordinator_for(transactional_id).map(|b| b.id);
                    if now != Some(coordinator.id) {
                        return;
                    }
                    if images.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                answer = asked => match answer {
                    Ok(codes) => codes,
                    Err(e) => {
                        debug!(coordinator = coordinator.id, error = %e,
                            "transaction verification request failed");
                        all(ResponseError::NetworkException, &partitions)
                    }
                },
                () = moved => {
                    debug!(coordinator = coordinator.id, transactional_id,
                        "transaction coordinator moved; verification given up");
                    all(ResponseError::NotCoordinator, &partitions)
                }
            }
        })
    }
}
