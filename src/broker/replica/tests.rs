//! In-process tests of leader-only serving: a broker with a second broker registered in its image,
//! topics led by that broker (one of them with a follower replica here), and Produce, Fetch,
//! ListOffsets and Metadata driven through the handlers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, RequestKind, ResponseHeader,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;

use crate::broker::{Broker, Role};
use crate::cluster::{BrokerInfo, MetadataCommand, PartitionInfo, TopicInfo};
use crate::config::Config;
use crate::handlers::{self, RequestContext};
use crate::log::{encode_batch, plain_record};

const ME: i32 = 1;
const OTHER: i32 = 2;

pub(super) async fn broker(dir: &Path) -> Arc<Broker> {
    let config = Config {
        data_dir: dir.to_path_buf(),
        node_id: ME,
        ..Config::default()
    };
    let b = Broker::start(config, "127.0.0.1".into(), 9092)
        .await
        .unwrap();
    let epoch = b
        .metadata
        .register_broker(BrokerInfo {
            id: OTHER,
            host: "127.0.0.2".into(),
            port: 9192,
            rack: Some("r2".into()),
            listeners: Vec::new(),
        })
        .await
        .unwrap();
    // As if its first heartbeat had come in: alive, so Metadata lists it.
    b.metadata
        .write(MetadataCommand::UnfenceBroker { id: OTHER, epoch })
        .await
        .unwrap();
    b
}

/// Writes a one-partition topic straight into the image, as the controller would place it, and
/// applies it here at once (the background reconcile would too, later).
pub(super) async fn place(
    b: &Broker,
    name: &str,
    leader: i32,
    leader_epoch: i32,
    replicas: &[i32],
) {
    place_topic(b, name, leader, leader_epoch, replicas, false).await
}

async fn place_topic(
    b: &Broker,
    name: &str,
    leader: i32,
    leader_epoch: i32,
    replicas: &[i32],
    internal: bool,
) {
    let topic = TopicInfo {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        configs: BTreeMap::new(),
        partitions: vec![PartitionInfo {
            partition: 0,
            leader,
            leader_epoch,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            partition_epoch: 0,
        }],
        internal,
    };
    b.metadata
        .write(MetadataCommand::CreateTopic(topic))
        .await
        .unwrap();
    b.partitions.reconcile(&b.metadata.image());
}

pub(super) fn ctx(b: &Arc<Broker>, api_version: i16) -> RequestContext {
    RequestContext {
        broker: b.clone(),
        api_version,
        correlation_id: 1,
        client_id: None,
        peer: "127.0.0.1:40000".parse().unwrap(),
        session: Arc::new(crate::server::sasl::Session::new(None)),
    }
}

pub(super) fn batch() -> Bytes {
    let record = plain_record(0, crate::clock::now_ms(), None, Some(Bytes::from("v")));
    encode_batch(&[record], Compression::None).unwrap().freeze()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

/// An acks=1 produce of one record to partition 0 (no follower runs in these tests).
pub(super) async fn produce(b: &Arc<Broker>, version: i16, topic: &str) -> ProduceResponse {
    produce_acks(b, version, topic, 1, 1000).await
}

pub(super) async fn produce_acks(
    b: &Arc<Broker>,
    version: i16,
    topic: &str,
    acks: i16,
    timeout_ms: i32,
) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch()))])]);
    match handlers::produce::handle(ctx(b, version), req).await {
        Ok(Some(ResponseKind::Produce(r))) => r,
        other => panic!("unexpected produce answer {other:?}"),
    }
}

/// Fetch v13+ names topics by id (nil for one the image does not know).
async fn fetch(b: &Arc<Broker>, version: i16, topic: &str, epoch: i32) -> FetchResponse {
    fetch_waiting(b, version, topic, epoch, 0).await
}

/// A fetch of at least one byte from offset 0 that waits up to `max_wait_ms`.
async fn fetch_waiting(
    b: &Arc<Broker>,
    version: i16,
    topic: &str,
    epoch: i32,
    max_wait_ms: i32,
) -> FetchResponse {
    let id = b
        .metadata
        .image()
        .topics
        .get(topic)
        .map_or(uuid::Uuid::nil(), |t| t.id);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch)
                .with_partition_max_bytes(1 << 20)])]);
    match handlers::fetch::handle(ctx(b, version), req).await {
        Ok(Some(ResponseKind::Fetch(r))) => r,
        other => panic!("unexpected fetch answer {other:?}"),
    }
}

async fn list_offset_error(b: &Arc<Broker>, topic: &str, epoch: i32) -> i16 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)
                .with_current_leader_epoch(epoch)])]);
    match handlers::list_offsets::handle(ctx(b, 7), req).await {
        Ok(Some(ResponseKind::ListOffsets(r))) => r.topics[0].partitions[0].error_code,
        other => panic!("unexpected list offsets answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_elsewhere_answer_not_leader_with_the_leader_and_its_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "mine", ME, 0, &[ME]).await;
    place(&b, "away", OTHER, 3, &[OTHER]).await;
    // A replica here, led by the other broker: the log is open, the role is follower.
    place(&b, "follow", OTHER, 4, &[OTHER, ME]).await;
    assert_eq!(
        b.partitions.get("follow", 0).unwrap().role(),
        Role::Follower { leader: OTHER }
    );
    assert!(b.partitions.get("away", 0).is_none());

    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let ok = produce(&b, 10, "mine").await;
    assert_eq!(ok.responses[0].partition_responses[0].error_code, 0);
    assert!(ok.node_endpoints.is_empty());

    for (topic, epoch) in [("away", 3), ("follow", 4)] {
        let r = produce(&b, 10, topic).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, not_leader, "{topic}");
        assert_eq!(p.current_leader.leader_id, BrokerId(OTHER));
        assert_eq!(p.current_leader.leader_epoch, epoch);
        assert_eq!(r.node_endpoints.len(), 1);
        let e = &r.node_endpoints[0];
        assert_eq!(
            (e.node_id, e.host.as_str(), e.port, e.rack.as_deref()),
            (BrokerId(OTHER), "127.0.0.2", 9192, Some("r2"))
        );

        let r = fetch(&b, 16, topic, -1).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, not_leader, "{topic}");
        assert_eq!(p.current_leader.leader_id, BrokerId(OTHER));
        assert_eq!(p.current_leader.leader_epoch, epoch);
        assert_eq!(r.node_endpoints.len(), 1);
        assert_eq!(r.node_endpoints[0].node_id, BrokerId(OTHER));

        assert_eq!(list_offset_error(&b, topic, -1).await, not_leader);
    }
    // Nothing was written to the follower's log.
    assert_eq!(b.partitions.get("follow", 0).unwrap().high_watermark(), 0);

    // Unknown stays unknown.
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let r = produce(&b, 10, "nowhere").await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, unknown);
    assert_eq!(
        r.responses[0].partition_responses[0]
            .current_leader
            .leader_id,
        BrokerId(-1)
    );
    let unknown_id = ResponseError::UnknownTopicId.code();
    let r = fetch(&b, 16, "nowhere", -1).await;
    assert_eq!(r.responses[0].partitions[0].error_code, unknown_id);
    assert_eq!(
        fetch(&b, 12, "nowhere", -1).await.responses[0].partitions[0].error_code,
        unknown
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_future_leader_epochs_are_fenced_on_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "mine", ME, 5, &[ME]).await;
    assert_eq!(
        produce(&b, 10, "mine").await.responses[0].partition_responses[0].error_code,
        0
    );

    let r = fetch(&b, 16, "mine", 5).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);

    // Older: fenced, and told the current leader (this broker) and epoch.
    let r = fetch(&b, 16, "mine", 4).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::FencedLeaderEpoch.code());
    assert_eq!(
        (p.current_leader.leader_id, p.current_leader.leader_epoch),
        (BrokerId(ME), 5)
    );
    assert_eq!(r.node_endpoints[0].node_id, BrokerId(ME));
    let r = fetch(&b, 16, "mine", 6).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );
    assert_eq!(
        list_offset_error(&b, "mine", 4).await,
        ResponseError::FencedLeaderEpoch.code()
    );
    assert_eq!(
        list_offset_error(&b, "mine", 6).await,
        ResponseError::UnknownLeaderEpoch.code()
    );
    assert_eq!(list_offset_error(&b, "mine", 5).await, 0);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_shows_leaders_epochs_and_offline_replicas_from_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "follow", OTHER, 4, &[OTHER, ME]).await;
    // Broker 3 never registered: its replica is offline and the partition it leads has no leader.
    place(&b, "orphan", 3, 2, &[3, ME]).await;
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name("follow"))),
        MetadataRequestTopic::default().with_name(Some(name("orphan"))),
    ]));
    let r: MetadataResponse = match handlers::metadata::handle(ctx(&b, 12), req).await {
        Ok(Some(ResponseKind::Metadata(r))) => r,
        other => panic!("unexpected metadata answer {other:?}"),
    };
    assert_eq!(r.brokers.len(), 2);
    let follow = &r.topics[0].partitions[0];
    assert_eq!(follow.error_code, 0);
    assert_eq!(
        (follow.leader_id, follow.leader_epoch),
        (BrokerId(OTHER), 4)
    );
    assert_eq!(follow.replica_nodes, vec![BrokerId(OTHER), BrokerId(ME)]);
    assert_eq!(follow.isr_nodes, vec![BrokerId(OTHER), BrokerId(ME)]);
    assert!(follow.offline_replicas.is_empty());
    let orphan = &r.topics[1].partitions[0];
    assert_eq!(orphan.error_code, ResponseError::LeaderNotAvailable.code());
    assert_eq!((orphan.leader_id, orphan.leader_epoch), (BrokerId(-1), 2));
    assert_eq!(orphan.offline_replicas, vec![BrokerId(3)]);
    b.shutdown().await;
}

/// One request over a real connection to the broker's server; the decoded response.
async fn over_socket(
    stream: &mut tokio::net::TcpStream,
    key: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7);
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    stream.write_u32(buf.len() as u32).await.unwrap();
    stream.write_all(&buf).await.unwrap();
    let len = stream.read_u32().await.unwrap();
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await.unwrap();
    let mut frame = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    ResponseKind::decode(key, &mut frame, version).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_hints_survive_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "away", OTHER, 3, &[OTHER]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listeners = vec![crate::server::Listener {
        socket: listener,
        name: "PLAINTEXT".into(),
        protocol: crate::config::SecurityProtocol::Plaintext,
    }];
    let server = tokio::spawn(crate::server::run(listeners, b.clone(), stopped));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();

    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("away"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch()))])]);
    let ResponseKind::Produce(r) = over_socket(&mut stream, ApiKey::Produce, 11, req.into()).await
    else {
        panic!("not a produce response");
    };
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(
        (p.current_leader.leader_id, p.current_leader.leader_epoch),
        (BrokerId(OTHER), 3)
    );
    assert_eq!(r.node_endpoints[0].host.as_str(), "127.0.0.2");
    assert_eq!(r.node_endpoints[0].port, 9192);

    drop(stream);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fetch_answers_as_soon_as_leadership_moves() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "mine", ME, 0, &[ME, OTHER]).await;
    let p = b.partitions.get("mine", 0).unwrap();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { fetch_waiting(&b, 12, "mine", -1, 60_000).await })
    };
    // The fetch found nothing to read and waits on the high watermark.
    while p.watchers() == 0 {
        tokio::task::yield_now().await;
    }
    // Leadership moves for real, through the metadata log, as when the controller fences this
    // broker: the partition goes to the other in-sync replica. (Reconciling a hand-made image here
    // would race the metadata follower task re-applying the real one.)
    let epoch = b.metadata.image().registrations[&ME].epoch;
    b.metadata
        .write(MetadataCommand::FenceBroker { id: ME, epoch })
        .await
        .unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the fetch waited for its deadline")
        .unwrap();
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_may_append_to_internal_topics_and_clients_may_not() {
    use crate::broker::replica::{
        AppendOrigin, AppendParams, ProducePartition, ProduceTopic, TopicRef,
    };
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place_topic(&b, "__internal", ME, 0, &[ME], true).await;
    let append = |origin| {
        let b = b.clone();
        async move {
            let params = AppendParams {
                acks: -1,
                timeout_ms: 1000,
                origin,
            };
            let topics = vec![ProduceTopic {
                topic: TopicRef::Name("__internal".into()),
                partitions: vec![ProducePartition {
                    index: 0,
                    records: batch(),
                }],
            }];
            let mut answers = b.replicas.append_records(&params, topics).await;
            answers.remove(0).remove(0).result.map_err(|e| e.code())
        }
    };
    let client = AppendOrigin::Client {
        peer: "127.0.0.1:40000".parse().unwrap(),
    };
    assert_eq!(
        append(client).await.unwrap_err(),
        ResponseError::InvalidTopicException
    );
    assert_eq!(
        append(AppendOrigin::Coordinator).await.unwrap().base_offset,
        0
    );
    b.shutdown().await;
}
