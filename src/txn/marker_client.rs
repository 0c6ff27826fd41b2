//! Transaction requests to another broker's inter-broker listener: WriteTxnMarkers (v1), one request
//! per leader with the markers for the partitions it leads, and AddPartitionsToTxn v4 `verify_only`
//! (KIP-890), a leader asking a transaction's coordinator whether a partition is in it; their
//! per-partition error codes back. Connections are kept per broker and dropped on any failure (the
//! next request reconnects).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, RequestHeader,
    ResponseHeader, TopicName, TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{lookup_host, TcpSocket, TcpStream};

use super::ports::MarkerRequest;
use super::state::TopicPartition;

const VERSION: i16 = 1;
/// AddPartitionsToTxn's first version with the brokers' batched, verify-only form.
const VERIFY_VERSION: i16 = 4;
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MarkerClientError {
    #[error("cannot reach the broker: {0}")]
    Io(#[from] io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad frame: {0}")]
    Protocol(String),
}

/// Connections to the leaders markers go to, by broker id.
pub struct MarkerClient {
    node_id: i32,
    bind_ip: Option<IpAddr>,
    timeout: Duration,
    conns: tokio::sync::Mutex<HashMap<i32, (TcpStream, i32)>>,
}

impl MarkerClient {
    pub fn new(node_id: i32, bind_ip: Option<IpAddr>, timeout: Duration) -> MarkerClient {
        MarkerClient {
            node_id,
            bind_ip,
            timeout,
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Sends the markers of `request` for `partitions` to broker `leader` at `host:port`; the
    /// error code of every partition it answered for.
    pub async fn write(
        &self,
        leader: i32,
        (host, port): (&str, i32),
        request: &MarkerRequest,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i16)>, MarkerClientError> {
        let body = marker_request(request, partitions);
        let answer: WriteTxnMarkersResponse = self
            .call(
                leader,
                (host, port),
                ApiKey::WriteTxnMarkers,
                VERSION,
                &body,
            )
            .await?;
        Ok(answer
            .markers
            .into_iter()
            .filter(|m| m.producer_id.0 == request.producer_id)
            .flat_map(|m| m.topics)
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| ((name.clone(), p.partition_index), p.error_code))
            })
            .collect())
    }

    /// Asks broker `coordinator` whether `partitions` are in `transactional_id`'s ongoing
    /// transaction of `producer_id` at `producer_epoch` (AddPartitionsToTxn v4, `verify_only`), or
    /// with `add` to add them (a Transactions V2 client's implicit add): the error code of every
    /// partition it answered for (a top-level error for all of them).
    pub async fn verify(
        &self,
        coordinator: i32,
        endpoint: (&str, i32),
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: &[TopicPartition],
        add: bool,
    ) -> Result<Vec<(TopicPartition, i16)>, MarkerClientError> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (topic, p) in partitions {
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(*p),
                _ => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let body = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_verify_only(!add)
                .with_topics(topics),
        ]);
        let answer: AddPartitionsToTxnResponse = self
            .call(
                coordinator,
                endpoint,
                ApiKey::AddPartitionsToTxn,
                VERIFY_VERSION,
                &body,
            )
            .await?;
        if answer.error_code != 0 {
            return Ok(partitions
                .iter()
                .map(|tp| (tp.clone(), answer.error_code))
                .collect());
        }
        Ok(answer
            .results_by_transaction
            .into_iter()
            .filter(|t| t.transactional_id.0.as_str() == transactional_id)
            .flat_map(|t| t.topic_results)
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.results_by_partition
                    .into_iter()
                    .map(move |p| ((name.clone(), p.partition_index), p.partition_error_code))
            })
            .collect())
    }

    /// One request to broker `node` on a pooled connection (a new one if none is free).
    async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        node: i32,
        (host, port): (&str, i32),
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, MarkerClientError> {
        let taken = self.conns.lock().await.remove(&node);
        let (mut stream, correlation) = match taken {
            Some(c) => c,
            None => (self.connect(host, port).await?, 0),
        };
        let correlation = correlation.wrapping_add(1);
        let answer = tokio::time::timeout(
            self.timeout,
            self.round_trip(&mut stream, correlation, key, version, body),
        )
        .await
        .map_err(|_| MarkerClientError::Timeout(self.timeout))??;
        self.conns.lock().await.insert(node, (stream, correlation));
        Ok(answer)
    }

    async fn connect(&self, host: &str, port: i32) -> Result<TcpStream, MarkerClientError> {
        let port = u16::try_from(port)
            .map_err(|_| MarkerClientError::Protocol(format!("port {port} out of range")))?;
        let peer = lookup_host((host, port)).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
        })?;
        let socket = match peer {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // From this node's own address, so that tests can cut links by address pair.
        if let Some(ip) = self.bind_ip.filter(|ip| ip.is_ipv4() == peer.is_ipv4()) {
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(peer).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn round_trip<Req: Encodable, Resp: Decodable>(
        &self,
        stream: &mut TcpStream,
        correlation: i32,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, MarkerClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(format!(
                "vltava-txn-{}",
                self.node_id
            ))));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        let encode = |e: anyhow::Error| MarkerClientError::Protocol(format!("encode: {e}"));
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(encode)?;
        body.encode(&mut buf, version).map_err(encode)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&buf).await?;

        let len = stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| MarkerClientError::Protocol(format!("response length {len}")))?;
        let mut frame = BytesMut::zeroed(len);
        stream.read_exact(&mut frame).await?;
        let mut frame = frame.freeze();
        let decode = |e: anyhow::Error| MarkerClientError::Protocol(format!("decode: {e}"));
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(decode)?;
        if header.correlation_id != correlation {
            return Err(MarkerClientError::Protocol(format!(
                "correlation id {} answers request {correlation}",
                header.correlation_id
            )));
        }
        Resp::decode(&mut frame, version).map_err(decode)
    }
}

/// One marker for `partitions`, topics grouped in order.
fn marker_request(
    request: &MarkerRequest,
    partitions: &[TopicPartition],
) -> WriteTxnMarkersRequest {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (topic, p) in partitions {
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == topic => t.partition_indexes.push(*p),
            _ => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*p]),
            ),
        }
    }
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(request.producer_id))
        .with_producer_epoch(request.producer_epoch)
        .with_transaction_result(request.commit)
        .with_topics(topics)
        .with_coordinator_epoch(request.coordinator_epoch)])
}
