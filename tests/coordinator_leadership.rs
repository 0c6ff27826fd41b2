//! Group coordination follows `__consumer_offsets` leadership, in-process: with a second broker
//! registered, the offsets partitions are spread over both and FindCoordinator points each group at
//! its partition's leader; groups led elsewhere get NOT_COORDINATOR. Leadership moves are applied by
//! handing the coordinator a modified copy of the image (no metadata command moves a leader yet): a
//! partition lost unloads its groups (waiting joins are told NOT_COORDINATOR), a partition regained
//! answers COORDINATOR_LOAD_IN_PROGRESS until its groups and offsets are replayed from the log.

mod in_process;

use bytes::Bytes;
use in_process::{AsyncClient, InProcess};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use vltava::cluster::{BrokerInfo, CommandResult, MetadataCommand, MetadataImage};
use vltava::config::Config;
use vltava::group::offsets::OFFSETS_TOPIC;
use vltava::group::records::partition_for;
use vltava::group::GroupError;

const NOT_COORDINATOR: i16 = 16;
const PARTITIONS: i32 = 4;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn find(c: &mut AsyncClient, version: i16, keys: &[&str]) -> Vec<Coordinator> {
    let req = if version >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(keys.iter().map(|k| s(k)).collect())
    } else {
        FindCoordinatorRequest::default().with_key(s(keys[0]))
    };
    match c.request(ApiKey::FindCoordinator, version, req).await {
        Some(ResponseKind::FindCoordinator(r)) if version >= 4 => r.coordinators,
        Some(ResponseKind::FindCoordinator(r)) => vec![Coordinator::default()
            .with_error_code(r.error_code)
            .with_node_id(r.node_id)
            .with_host(r.host)
            .with_port(r.port)],
        other => panic!("FindCoordinator: {other:?}"),
    }
}

async fn commit(c: &mut AsyncClient, group: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    match c.request(ApiKey::OffsetCommit, 8, req).await {
        Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        other => panic!("OffsetCommit: {other:?}"),
    }
}

/// OffsetFetch v7 of partition 0 of "t": (group error code, committed offset).
async fn fetch(c: &mut AsyncClient, group: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0])]));
    match c.request(ApiKey::OffsetFetch, 7, req).await {
        Some(ResponseKind::OffsetFetch(r)) => (
            r.error_code,
            r.topics
                .first()
                .map_or(-1, |t| t.partitions[0].committed_offset),
        ),
        other => panic!("OffsetFetch: {other:?}"),
    }
}

async fn join(c: &mut AsyncClient, group: &str, member: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"m"))]);
    // v3: no KIP-394 handshake, the first join gets its member id at once.
    match c.request(ApiKey::JoinGroup, 3, req).await {
        Some(ResponseKind::JoinGroup(r)) => r,
        other => panic!("JoinGroup: {other:?}"),
    }
}

/// The image with `partition` of the offsets topic led by `leader` at `epoch`.
fn led_by(image: &MetadataImage, partition: i32, leader: i32, epoch: i32) -> MetadataImage {
    let mut image = image.clone();
    let p = &mut image.topics.get_mut(OFFSETS_TOPIC).unwrap().partitions[partition as usize];
    p.leader = leader;
    p.leader_epoch = epoch;
    p.replicas = vec![leader];
    p.isr = vec![leader];
    image
}

/// A group name whose offsets partition `pick` accepts.
fn group_where(prefix: &str, pick: impl Fn(i32) -> bool) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|g| pick(partition_for(g, PARTITIONS)))
        .unwrap()
}

#[tokio::test]
async fn coordination_follows_offsets_partition_leadership() {
    let broker = InProcess::start(Config {
        offsets_topic_num_partitions: PARTITIONS,
        group_initial_rebalance_delay_ms: 0,
        ..Config::default()
    })
    .await;
    let me = broker.broker.node_id;
    let other = BrokerInfo {
        id: me + 1,
        host: "127.0.0.2".into(),
        port: 9092,
        rack: None,
        listeners: Vec::new(),
    };
    let epoch = broker
        .broker
        .metadata
        .register_broker(other.clone())
        .await
        .unwrap();
    // As if its first heartbeat had come in: alive, so partitions are placed on it too.
    broker
        .broker
        .metadata
        .write(MetadataCommand::UnfenceBroker {
            id: other.id,
            epoch,
        })
        .await
        .unwrap();
    let mut c = broker.connect().await;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    c.request(ApiKey::CreateTopics, 7, req).await.unwrap();

    // The first FindCoordinator creates the offsets topic, its partitions spread over both brokers
    // (round-robin from a random start, as Kafka places them).
    find(&mut c, 4, &["warm-up"]).await;
    let image = broker.broker.metadata.image();
    let leaders: Vec<i32> = image.topics[OFFSETS_TOPIC]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(
        leaders.iter().filter(|&&l| l == me).count(),
        2,
        "{leaders:?}"
    );
    assert_eq!(
        leaders.iter().filter(|&&l| l == other.id).count(),
        2,
        "{leaders:?}"
    );
    let here = group_where("here", |p| leaders[p as usize] == me);
    let there = group_where("there", |p| leaders[p as usize] == other.id);
    let found = find(&mut c, 4, &[&here, &there]).await;
    assert_eq!(
        (found[0].error_code, found[0].node_id.0, found[0].port),
        (0, me, broker.addr.port() as i32)
    );
    assert_eq!(
        (
            found[1].error_code,
            found[1].node_id.0,
            found[1].host.as_str(),
            found[1].port
        ),
        (0, other.id, "127.0.0.2", 9092)
    );
    let v3 = find(&mut c, 3, &[&there]).await;
    assert_eq!(
        (v3[0].node_id.0, v3[0].host.as_str()),
        (other.id, "127.0.0.2")
    );

    // Groups led elsewhere are not served here; groups led here are.
    assert_eq!(commit(&mut c, &there, 1).await, NOT_COORDINATOR);
    assert_eq!(join(&mut c, &there, "").await.error_code, NOT_COORDINATOR);
    assert_eq!(commit(&mut c, &here, 42).await, 0);
    assert_eq!(fetch(&mut c, &here).await, (0, 42));

    // A member of `here` waits in a rebalance when the partition moves away: it is told
    // NOT_COORDINATOR, and so is everything else about the group.
    let (joiner_group, p_here) = (here.clone(), partition_for(&here, PARTITIONS));
    let first = join(&mut c, &here, "").await;
    assert_eq!(first.error_code, 0);
    let mut c2 = broker.connect().await;
    let waiting = tokio::spawn(async move { join(&mut c2, &joiner_group, "").await });
    while broker
        .broker
        .group
        .describe(&here)
        .map(|d| d.state)
        .unwrap()
        != "PreparingRebalance"
    {
        tokio::task::yield_now().await;
    }
    // The metadata follower has long applied the real image (it runs whenever the client waits);
    // from here on nothing writes metadata, so only the images given below apply.
    broker
        .broker
        .group
        .on_metadata(&led_by(&image, p_here, other.id, 1));
    assert_eq!(waiting.await.unwrap().error_code, NOT_COORDINATOR);
    assert_eq!(fetch(&mut c, &here).await.0, NOT_COORDINATOR);
    assert_eq!(commit(&mut c, &here, 43).await, NOT_COORDINATOR);

    // Leadership comes back at a later epoch: loading first, then the state the log holds.
    broker
        .broker
        .group
        .on_metadata(&led_by(&image, p_here, me, 2));
    assert_eq!(
        broker.broker.group.fetch_offsets(&here, None).err(),
        Some(GroupError::CoordinatorLoadInProgress)
    );
    broker.broker.group.wait_loaded().await;
    assert_eq!(fetch(&mut c, &here).await, (0, 42));
    assert_eq!(commit(&mut c, &here, 44).await, 0);

    // A partition without a leader has no coordinator.
    broker
        .broker
        .group
        .on_metadata(&led_by(&image, p_here, -1, 3));
    assert_eq!(fetch(&mut c, &here).await.0, NOT_COORDINATOR);
    broker.stop().await;
}

#[tokio::test]
async fn find_coordinator_answers_the_leaders_registered_endpoint() {
    // FindCoordinator reads the live image (a leader without a registered endpoint, which no
    // metadata command can produce yet, is COORDINATOR_NOT_AVAILABLE: see coordinator_shards' tests).
    let broker = InProcess::start(Config {
        offsets_topic_num_partitions: PARTITIONS,
        ..Config::default()
    })
    .await;
    let mut c = broker.connect().await;
    let found = find(&mut c, 4, &["g"]).await;
    assert_eq!(found[0].error_code, 0);
    // Only a real metadata change reaches FindCoordinator: re-register this broker elsewhere and
    // check the answer follows the image's endpoint, not the listener's address.
    // A new registration fences the old incarnation (its leaderships go); the new one's first
    // heartbeat unfences it, and it leads again what it is the ISR of.
    let me = broker.broker.node_id;
    let registered = broker
        .broker
        .metadata
        .write(MetadataCommand::RegisterBroker(BrokerInfo {
            id: me,
            host: "moved.example".into(),
            port: 19092,
            rack: None,
            listeners: Vec::new(),
        }))
        .await
        .unwrap();
    let CommandResult::BrokerRegistered { epoch } = registered else {
        panic!("unexpected registration answer {registered:?}");
    };
    assert_eq!(find(&mut c, 4, &["g"]).await[0].error_code, 15);
    broker
        .broker
        .metadata
        .write(MetadataCommand::UnfenceBroker { id: me, epoch })
        .await
        .unwrap();
    let found = find(&mut c, 4, &["g"]).await;
    assert_eq!(
        (found[0].error_code, found[0].host.as_str(), found[0].port),
        (0, "moved.example", 19092)
    );
    broker.stop().await;
}
