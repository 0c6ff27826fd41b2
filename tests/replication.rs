//! Follower replication across 3-node clusters of real processes on 127.0.0.1-3: followers copy the
//! leader's log byte for byte, only replicas may fetch as one, after the leader's controlled shutdown
//! the new leader serves every record at the same offset and deduplicates the producer's retries, the
//! old leader, back, follows it, and a leader isolated with nftables acknowledges nothing with acks=all and
//! truncates its divergent tail on return.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{Cluster, ClusterOptions};
use common::{init_producer_id, name, read_all, records_batch, topic_id, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

/// Elections, session timeouts and catching up on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(30);
const TOPIC: &str = "replicated";
const NOT_LEADER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;

/// Sends one request and decodes its answer: the harness's `Client`, or a [`BoundClient`].
trait Ask {
    fn ask(&mut self, key: ApiKey, version: i16, body: RequestKind) -> Option<ResponseKind>;
}

impl Ask for Client {
    fn ask(&mut self, key: ApiKey, version: i16, body: RequestKind) -> Option<ResponseKind> {
        self.request(key, version, body)
    }
}

/// A client connecting from 127.0.0.9, so that nftables rules between the nodes' addresses leave it be.
struct BoundClient {
    stream: std::net::TcpStream,
    correlation: i32,
}

impl BoundClient {
    fn connect(addr: &str) -> std::io::Result<BoundClient> {
        let addr: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind("127.0.0.9:0".parse().map_err(std::io::Error::other)?)?;
            socket.connect(addr).await?.into_std()
        })?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(BoundClient {
            stream,
            correlation: 0,
        })
    }
}

impl Ask for BoundClient {
    fn ask(&mut self, key: ApiKey, version: i16, body: RequestKind) -> Option<ResponseKind> {
        use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
        use std::io::{Read, Write};
        self.correlation += 1;
        let mut buf = bytes::BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("vltava-test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).ok()?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        let mut body = bytes::Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Some(ResponseKind::decode(key, &mut body, version).unwrap())
    }
}

/// (leader, leader epoch, replicas) of `topic`'s partition 0 as `c`'s node reports it; None while
/// unknown there.
fn partition0(c: &mut impl Ask, topic: &str) -> Option<(i32, i32, Vec<i32>)> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let Some(ResponseKind::Metadata(m)) = c.ask(ApiKey::Metadata, 12, req.into()) else {
        return None;
    };
    let t = m.topics.first().filter(|t| t.error_code == 0)?;
    let p = t.partitions.first().filter(|p| p.error_code == 0)?;
    Some((
        p.leader_id.0,
        p.leader_epoch,
        p.replica_nodes.iter().map(|b| b.0).collect(),
    ))
}

/// One batch of idempotent producer `pid` (epoch 0) from sequence `seq`.
fn idempotent(pid: i64, seq: i32, values: &[&str]) -> bytes::Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    records_batch(pid, 0, seq, now, values)
}

fn produce(c: &mut impl Ask, records: bytes::Bytes) -> (i16, i64) {
    produce_to(c, TOPIC, records)
}

fn produce_to(c: &mut impl Ask, topic: &str, records: bytes::Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    match c.ask(ApiKey::Produce, 9, req.into()) {
        Some(ResponseKind::Produce(r)) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("Produce: {other:?}"),
    }
}

/// The concatenated segment files of partition 0 in node `id`'s data directory.
fn log_bytes(cluster: &Cluster, id: i32) -> Vec<u8> {
    topic_log_bytes(cluster, id, TOPIC)
}

fn topic_log_bytes(cluster: &Cluster, id: i32, topic: &str) -> Vec<u8> {
    let dir = cluster
        .dir
        .path()
        .join(format!("data{id}"))
        .join(format!("{topic}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(Path::new(&dir))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

/// A replica's Fetch (v15, ReplicaState) of partition 0 from offset 0, as broker `replica_id`; the error.
fn fetch_as_replica(c: &mut Client, id: uuid::Uuid, replica_id: i32, epoch: i32) -> i16 {
    let req = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(replica_id)))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    match c.request(ApiKey::Fetch, 15, req) {
        Some(ResponseKind::Fetch(r)) => r.responses[0].partitions[0].error_code,
        other => panic!("Fetch: {other:?}"),
    }
}

#[test]
fn followers_copy_the_leader_byte_for_byte_and_take_over_with_every_record() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.await_state("every broker registered", SETTLE, |c| {
        let req = MetadataRequest::default().with_topics(Some(vec![]));
        match c.client(1).request(ApiKey::Metadata, 12, req) {
            Some(ResponseKind::Metadata(m)) => (m.brokers.len() == 3).then_some(()),
            _ => None,
        }
    });
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(3)])
        .with_timeout_ms(10_000);
    match cluster.client(1).request(ApiKey::CreateTopics, 7, req) {
        Some(ResponseKind::CreateTopics(r)) => assert_eq!(r.topics[0].error_code, 0),
        other => panic!("CreateTopics: {other:?}"),
    }
    let (leader, epoch, replicas) =
        cluster.await_state("the topic known everywhere", SETTLE, |c| {
            let seen: Vec<_> = (1..=3)
                .filter_map(|id| partition0(&mut c.client(id), TOPIC))
                .collect();
            (seen.len() == 3 && seen.iter().all(|s| *s == seen[0] && s.0 > 0))
                .then(|| seen[0].clone())
        });
    assert_eq!(replicas.len(), 3);

    // 40 batches of 5 records from an idempotent producer, acknowledged by the leader at consecutive
    // offsets.
    let values: Vec<String> = (0..200).map(|i| format!("value-{i}")).collect();
    let chunks: Vec<Vec<&str>> = values
        .chunks(5)
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let mut client = cluster.client(leader);
    let pid = cluster.await_state("a producer id", SETTLE, |_| {
        let r = init_producer_id(&mut client);
        (r.error_code == 0).then_some(r.producer_id.0)
    });
    // The leader answers NOT_LEADER_OR_FOLLOWER until it has applied the image its Metadata shows.
    let first_base = cluster.await_state("the leader taking writes", SETTLE, |_| {
        match produce(&mut client, idempotent(pid, 0, &chunks[0])) {
            (0, base) => Some(base),
            (code, _) if code == NOT_LEADER => None,
            other => panic!("first batch: {other:?}"),
        }
    });
    assert_eq!(first_base, 0);
    for (i, chunk) in chunks.iter().enumerate().skip(1) {
        let seq = 5 * i as i32;
        assert_eq!(
            produce(&mut client, idempotent(pid, seq, chunk)),
            (0, seq as i64),
            "batch {i}"
        );
    }
    let expected: Vec<(i64, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone()))
        .collect();
    assert_eq!(read_all(&mut client, TOPIC), expected);

    let leader_bytes = log_bytes(&cluster, leader);
    assert!(!leader_bytes.is_empty());
    cluster.await_state("every follower's log equal to the leader's", SETTLE, |c| {
        (1..=3)
            .all(|id| log_bytes(c, id) == leader_bytes)
            .then_some(())
    });

    // Only a replica of the partition may fetch as one: broker 9 is none (at the leader's epoch Kafka
    // answers UNKNOWN_LEADER_EPOCH, a replica it may not know of yet; without one NOT_LEADER_OR_FOLLOWER).
    let id = topic_id(&mut client, TOPIC);
    let follower = replicas.iter().copied().find(|r| *r != leader).unwrap();
    assert_eq!(fetch_as_replica(&mut client, id, follower, epoch), 0);
    assert_eq!(
        fetch_as_replica(&mut client, id, 9, epoch),
        kafka_protocol::error::ResponseError::UnknownLeaderEpoch.code()
    );
    assert_eq!(
        fetch_as_replica(&mut client, id, 9, -1),
        kafka_protocol::error::ResponseError::NotLeaderOrFollower.code()
    );
    drop(client);

    // Controlled shutdown moves the leadership to a follower, which serves every record as it was.
    assert!(cluster.terminate(leader), "a clean exit");
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let new_leader = cluster.await_state("a new leader", SETTLE, |c| {
        partition0(&mut c.client(survivor), TOPIC)
            .filter(|(l, e, _)| *l > 0 && *l != leader && *e > epoch)
            .map(|(l, _, _)| l)
    });
    let mut client = cluster.client(new_leader);
    assert_eq!(read_all(&mut client, TOPIC), expected);
    // The copied producer state deduplicates a retry of the last batch the old leader took...
    assert_eq!(
        produce(&mut client, idempotent(pid, 195, &chunks[39])),
        (0, 195)
    );
    // ...and the producer goes on at the next offset.
    assert_eq!(
        produce(&mut client, idempotent(pid, 200, &["after"])),
        (0, 200)
    );
    let mut all = expected.clone();
    all.push((200, "after".into()));
    assert_eq!(read_all(&mut client, TOPIC), all);

    // The old leader comes back as a follower of the new one and copies what it missed.
    cluster.start_nodes(&[leader]);
    let new_bytes = log_bytes(&cluster, new_leader);
    assert!(new_bytes.len() > leader_bytes.len());
    cluster.await_state(
        "every replica's log equal to the new leader's",
        SETTLE,
        |c| {
            (1..=3)
                .all(|id| log_bytes(c, id) == new_bytes)
                .then_some(())
        },
    );
}

/// nftables rules that cut one node off the others of this cluster (only this cluster's ports, so
/// other clusters on the same addresses are left alone); removed when dropped.
struct Isolation {
    table: String,
}

impl Isolation {
    fn cut(cluster: &Cluster, node: i32) -> Isolation {
        let table = format!("vltava_repl_{}", std::process::id());
        let spec = cluster.spec(node);
        let ports =
            |s: &common::cluster::NodeSpec| format!("{}, {}", s.kafka_port, s.controller_port);
        let mut rules = format!(
            "table inet {table} {{\n chain input {{\n  type filter hook input priority 0;\n"
        );
        for other in cluster.specs.iter().filter(|s| s.id != node) {
            // Both directions, to either side's listeners, and the answers on connections made
            // before the cut (a long-polling fetch).
            for (from, to, listener) in [
                (spec, other, other),
                (other, spec, spec),
                (spec, other, spec),
                (other, spec, other),
            ] {
                let side = if std::ptr::eq(listener, to) {
                    "dport"
                } else {
                    "sport"
                };
                rules.push_str(&format!(
                    "  ip saddr {} ip daddr {} tcp {side} {{ {} }} drop\n",
                    from.ip,
                    to.ip,
                    ports(listener)
                ));
            }
        }
        rules.push_str(" }\n}\n");
        let file = cluster.dir.path().join("isolate.nft");
        std::fs::write(&file, rules).unwrap();
        let ok = std::process::Command::new("nft")
            .arg("-f")
            .arg(&file)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "nft -f {}", file.display());
        Isolation { table }
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// A leader cut off from the others takes writes nobody copies; a new leader is elected and takes
/// other writes at the same offsets. When the links heal, the old leader finds (from the new leader's
/// diverging-epoch answer) where its log parted, truncates its tail and copies the new leader's.
#[test]
fn an_isolated_leader_truncates_its_divergent_tail_when_it_returns() {
    const T: &str = "diverging";
    let cluster = Cluster::start(3, ClusterOptions::default());
    let client = |id: i32| BoundClient::connect(&cluster.addr(id)).ok();
    cluster.await_state("every broker registered", SETTLE, |_| {
        let req = MetadataRequest::default().with_topics(Some(vec![]));
        match client(1)?.ask(ApiKey::Metadata, 12, req.into()) {
            Some(ResponseKind::Metadata(m)) => (m.brokers.len() == 3).then_some(()),
            _ => None,
        }
    });
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(T))
            .with_num_partitions(1)
            .with_replication_factor(3)])
        .with_timeout_ms(10_000);
    match client(1).unwrap().ask(ApiKey::CreateTopics, 7, req.into()) {
        Some(ResponseKind::CreateTopics(r)) => assert_eq!(r.topics[0].error_code, 0),
        other => panic!("CreateTopics: {other:?}"),
    }
    let (leader, epoch, _) = cluster.await_state("the topic known everywhere", SETTLE, |_| {
        let seen: Vec<_> = (1..=3)
            .filter_map(|id| partition0(&mut client(id)?, T))
            .collect();
        (seen.len() == 3 && seen.iter().all(|s| *s == seen[0] && s.0 > 0)).then(|| seen[0].clone())
    });
    let mut old = client(leader).unwrap();
    let base = cluster.await_state("the leader taking writes", SETTLE, |_| {
        match produce_to(
            &mut old,
            T,
            records_batch(-1, -1, -1, 1, &["a0", "a1", "a2", "a3", "a4"]),
        ) {
            (0, base) => Some(base),
            (code, _) if code == NOT_LEADER => None,
            other => panic!("first batch: {other:?}"),
        }
    });
    assert_eq!(base, 0);
    assert_eq!(
        produce_to(
            &mut old,
            T,
            records_batch(-1, -1, -1, 1, &["a5", "a6", "a7", "a8", "a9"])
        ),
        (0, 5)
    );
    let shared = topic_log_bytes(&cluster, leader, T);
    cluster.await_state("every follower's log equal to the leader's", SETTLE, |c| {
        (1..=3)
            .all(|id| topic_log_bytes(c, id, T) == shared)
            .then_some(())
    });

    let cut = Isolation::cut(&cluster, leader);
    // Appended by the old leader alone, which the followers cannot fetch: acks=all is not
    // acknowledged (REQUEST_TIMED_OUT at the request's timeout), and the batch is never copied.
    assert_eq!(
        produce_to(
            &mut old,
            T,
            records_batch(-1, -1, -1, 1, &["lost0", "lost1", "lost2", "lost3"])
        ),
        (REQUEST_TIMED_OUT, -1)
    );
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let new_leader = cluster.await_state("a new leader", SETTLE, |_| {
        partition0(&mut client(survivor)?, T)
            .filter(|(l, e, _)| *l > 0 && *l != leader && *e > epoch)
            .map(|(l, _, _)| l)
    });
    let mut new = client(new_leader).unwrap();
    let base = cluster.await_state(
        "the new leader taking writes",
        SETTLE,
        |_| match produce_to(
            &mut new,
            T,
            records_batch(-1, -1, -1, 1, &["kept0", "kept1"]),
        ) {
            (0, base) => Some(base),
            (code, _) if code == NOT_LEADER => None,
            other => panic!("new leader: {other:?}"),
        },
    );
    assert_eq!(base, 10, "the same offset as the old leader's lost batch");
    assert_ne!(
        topic_log_bytes(&cluster, leader, T),
        topic_log_bytes(&cluster, new_leader, T)
    );

    drop(cut);
    let kept = topic_log_bytes(&cluster, new_leader, T);
    cluster.await_state(
        "every replica's log equal to the new leader's",
        SETTLE,
        |c| {
            (1..=3)
                .all(|id| topic_log_bytes(c, id, T) == kept)
                .then_some(())
        },
    );
}
