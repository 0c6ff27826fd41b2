//! The broker's marker routing over real sockets: a fake leader answers WriteTxnMarkers, a fake
//! local appender stands for the log side; partitions gone, leaderless or unreachable are reported
//! as such.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::ports::BoxFuture;
use super::*;
use crate::cluster::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};

#[derive(Default)]
struct FakeLocal(Mutex<Vec<(TopicPartition, bool, i32)>>);

impl LocalMarkerAppender for FakeLocal {
    fn append_marker<'a>(
        &'a self,
        partition: &'a TopicPartition,
        request: &'a MarkerRequest,
    ) -> BoxFuture<'a, i16> {
        self.0
            .lock()
            .unwrap()
            .push((partition.clone(), request.commit, request.coordinator_epoch));
        Box::pin(async { 0 })
    }
}

fn topic(name: &str, leaders: &[i32]) -> TopicInfo {
    TopicInfo {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        configs: Default::default(),
        partitions: leaders
            .iter()
            .enumerate()
            .map(|(p, &leader)| PartitionInfo {
                partition: p as i32,
                leader,
                leader_epoch: 0,
                replicas: vec![leader],
                isr: vec![leader],
                partition_epoch: 0,
            })
            .collect(),
        internal: false,
    }
}

fn broker(id: i32, port: u16) -> BrokerInfo {
    BrokerInfo {
        id,
        host: "127.0.0.1".into(),
        port: port as i32,
        rack: None,
        listeners: Vec::new(),
    }
}

/// Answers one WriteTxnMarkers per connection read: partition 1 NOT_LEADER_OR_FOLLOWER, the rest
/// written; hands every request decoded to `seen`.
async fn fake_leader(listener: TcpListener, seen: Arc<Mutex<Vec<WriteTxnMarkersRequest>>>) {
    let (mut s, _) = listener.accept().await.unwrap();
    loop {
        let Ok(len) = s.read_i32().await else { return };
        let mut frame = BytesMut::zeroed(len as usize);
        s.read_exact(&mut frame).await.unwrap();
        let mut frame = frame.freeze();
        let key = ApiKey::WriteTxnMarkers;
        let header = RequestHeader::decode(&mut frame, key.request_header_version(1)).unwrap();
        assert_eq!(
            (header.request_api_key, header.request_api_version),
            (27, 1)
        );
        let req = WriteTxnMarkersRequest::decode(&mut frame, 1).unwrap();
        let markers = req
            .markers
            .iter()
            .map(|m| {
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .iter()
                            .map(|t| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|&p| {
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(if p == 1 { 6 } else { 0 })
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        seen.lock().unwrap().push(req);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut buf, key.response_header_version(1))
            .unwrap();
        WriteTxnMarkersResponse::default()
            .with_markers(markers)
            .encode(&mut buf, 1)
            .unwrap();
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        s.write_all(&buf).await.unwrap();
    }
}

#[tokio::test]
async fn markers_go_to_the_local_log_or_the_leader_and_report_each_partition() {
    let leader = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = leader.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(fake_leader(leader, seen.clone()));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);

    let mut image = MetadataImage::empty();
    image.topics.insert("r".into(), topic("r", &[2, 2, 1, -1]));
    image.topics.insert("u".into(), topic("u", &[3]));
    image.brokers.insert(2, broker(2, port));
    image.brokers.insert(3, broker(3, closed_port));
    let local = Arc::new(FakeLocal::default());
    let writer = BrokerMarkerWriter::new(
        1,
        watch::channel(Arc::new(image)).1,
        "PLAINTEXT".into(),
        None,
        local.clone(),
        Duration::from_secs(10),
    );
    let tp = |t: &str, p: i32| (t.to_string(), p);
    let request = MarkerRequest {
        transactional_id: "t".into(),
        producer_id: 77,
        producer_epoch: 3,
        commit: true,
        coordinator_epoch: 9,
        partitions: vec![
            tp("gone", 0),
            tp("r", 0),
            tp("r", 1),
            tp("r", 2),
            tp("r", 3),
            tp("u", 0),
        ],
    };
    let mut out = writer.write_markers(request.clone()).await;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let kinds: Vec<(TopicPartition, &str)> = out
        .iter()
        .map(|(tp, o)| {
            let k = match o {
                MarkerOutcome::Written => "written",
                MarkerOutcome::PartitionGone => "gone",
                MarkerOutcome::Retry(_) => "retry",
                MarkerOutcome::Fenced => "fenced",
            };
            (tp.clone(), k)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (tp("gone", 0), "gone"),
            (tp("r", 0), "written"),
            (tp("r", 1), "retry"),
            (tp("r", 2), "written"),
            (tp("r", 3), "retry"),
            (tp("u", 0), "retry"),
        ]
    );
    assert_eq!(*local.0.lock().unwrap(), vec![(tp("r", 2), true, 9)]);
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let m = &sent[0].markers[0];
    assert_eq!(
        (
            m.producer_id.0,
            m.producer_epoch,
            m.transaction_result,
            m.coordinator_epoch
        ),
        (77, 3, true, 9)
    );
    assert_eq!(m.topics[0].partition_indexes, vec![0, 1]);

    // The next round reuses the connection.
    let again = MarkerRequest {
        partitions: vec![tp("r", 1)],
        ..request
    };
    let out = writer.write_markers(again).await;
    assert!(matches!(out[0].1, MarkerOutcome::Retry(_)));
    assert_eq!(seen.lock().unwrap().len(), 2);
    server.abort();
}

/// A leader that reads one request and never answers (cut off), telling `got` when it has it.
async fn silent_leader(listener: TcpListener, got: tokio::sync::oneshot::Sender<()>) {
    let (mut s, _) = listener.accept().await.unwrap();
    let len = s.read_i32().await.unwrap();
    let mut frame = BytesMut::zeroed(len as usize);
    s.read_exact(&mut frame).await.unwrap();
    let _ = got.send(());
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_request_to_a_leader_that_loses_the_partition_is_given_up_for_the_new_one() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let (got, request_arrived) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(silent_leader(silent, got));

    let mut image = MetadataImage::empty();
    image.topics.insert("s".into(), topic("s", &[2]));
    image.brokers.insert(2, broker(2, port));
    let (publish, metadata) = watch::channel(Arc::new(image.clone()));
    // A request timeout no test run reaches: only the leadership change can end the wait.
    let writer = BrokerMarkerWriter::new(
        1,
        metadata,
        "PLAINTEXT".into(),
        None,
        Arc::new(FakeLocal::default()),
        Duration::from_secs(3600),
    );
    let request = MarkerRequest {
        transactional_id: "t".into(),
        producer_id: 5,
        producer_epoch: 1,
        commit: false,
        coordinator_epoch: 2,
        partitions: vec![("s".to_string(), 0)],
    };
    let write = tokio::spawn(async move { writer.write_markers(request).await });
    request_arrived.await.unwrap();
    // Another broker's metadata moves the partition to node 3.
    image.topics.insert("s".into(), topic("s", &[3]));
    publish.send(Arc::new(image)).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .expect("the write gave up on the old leader")
        .unwrap();
    match &out[..] {
        [(tp, MarkerOutcome::Retry(why))] => {
            assert_eq!(tp, &("s".to_string(), 0));
            assert!(why.contains("no longer led by 2"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    server.abort();
}
