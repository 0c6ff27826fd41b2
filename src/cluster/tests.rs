//! Tests of the `MetadataStore` facade: single node, restart (log replay and snapshot), torn log
//! tail recovery, and a three-node in-process cluster over TCP; storage failures in
//! `tests/storage_failures.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

mod bootstrap;
mod liveness;
mod quorum;
mod storage_failures;
mod strangers;

fn config(dir: &Path) -> ClusterConfig {
    ClusterConfig {
        node_id: 1,
        data_dir: dir.to_path_buf(),
        raft_addr: None,
        voters: BTreeMap::new(),
    }
}

fn topic(name: &str, partitions: i32) -> TopicInfo {
    TopicInfo {
        name: name.to_string(),
        id: uuid::Uuid::new_v4(),
        configs: BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]),
        partitions: (0..partitions)
            .map(|p| PartitionInfo {
                partition: p,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1],
                isr: vec![1],
                partition_epoch: 0,
            })
            .collect(),
        internal: false,
    }
}

fn broker(id: i32, port: i32) -> BrokerInfo {
    BrokerInfo {
        id,
        host: "localhost".into(),
        port,
        rack: None,
        listeners: Vec::new(),
    }
}

async fn start_timed(cfg: ClusterConfig, tuning: RaftTuning, what: &str) -> MetadataStore {
    let t = Instant::now();
    let store = MetadataStore::start_with(cfg, tuning)
        .await
        .unwrap_or_else(|e| panic!("{what}: start failed: {e}"));
    eprintln!("{what}: start took {:?}", t.elapsed());
    store
}

async fn populate(store: &MetadataStore) {
    let ok = CommandResult::Ok;
    let cid = new_cluster_id();
    assert_eq!(
        store
            .write(MetadataCommand::InitCluster { cluster_id: cid })
            .await
            .unwrap(),
        ok
    );
    assert!(matches!(
        store
            .write(MetadataCommand::RegisterBroker(broker(1, 9092)))
            .await
            .unwrap(),
        CommandResult::BrokerRegistered { .. }
    ));
    for i in 0..3 {
        let t = topic(&format!("t{i}"), 2);
        assert_eq!(
            store.write(MetadataCommand::CreateTopic(t)).await.unwrap(),
            ok
        );
    }
    assert_eq!(
        store
            .write(MetadataCommand::DeleteTopic { name: "t1".into() })
            .await
            .unwrap(),
        ok
    );
}

#[tokio::test]
async fn single_node_applies_commands() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(
        config(dir.path()),
        RaftTuning::default(),
        "fresh single node",
    )
    .await;
    assert_eq!(store.node_id(), 1);
    assert_eq!(store.current_leader(), Some(1));
    assert_eq!(store.image().controller_id, 1);
    let mut rx = store.subscribe();

    let ok = CommandResult::Ok;
    // A single node has its cluster id once started; InitCluster is then a no-op.
    let cid = store.image().cluster_id.clone();
    assert_eq!(cid.len(), 22);
    let again = MetadataCommand::InitCluster {
        cluster_id: "other".into(),
    };
    assert_eq!(store.write(again).await.unwrap(), ok);
    assert!(matches!(
        store
            .write(MetadataCommand::RegisterBroker(broker(1, 9092)))
            .await
            .unwrap(),
        CommandResult::BrokerRegistered { .. }
    ));
    // Upsert: a restarted broker re-registers with a new port.
    assert!(matches!(
        store
            .write(MetadataCommand::RegisterBroker(broker(1, 9093)))
            .await
            .unwrap(),
        CommandResult::BrokerRegistered { .. }
    ));
    let t = topic("orders", 3);
    assert_eq!(
        store
            .write(MetadataCommand::CreateTopic(t.clone()))
            .await
            .unwrap(),
        ok
    );

    let img = store.image();
    assert_eq!(img.cluster_id, cid);
    assert_eq!(img.controller_id, 1);
    assert_eq!(img.brokers.get(&1), Some(&broker(1, 9093)));
    assert_eq!(img.topics.get("orders"), Some(&t));
    assert_eq!(
        img.topic_by_id(&t.id).map(|t| t.name.as_str()),
        Some("orders")
    );
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().topics.get("orders"), Some(&t));

    let dup = topic("orders", 1);
    assert_eq!(
        store
            .write(MetadataCommand::CreateTopic(dup))
            .await
            .unwrap(),
        CommandResult::TopicAlreadyExists
    );
    assert_eq!(store.image().topics.get("orders"), Some(&t));

    let del = || MetadataCommand::DeleteTopic {
        name: "orders".into(),
    };
    assert_eq!(store.write(del()).await.unwrap(), ok);
    assert!(store.image().topics.is_empty());
    assert_eq!(
        store.write(del()).await.unwrap(),
        CommandResult::UnknownTopic
    );
    store.shutdown().await.unwrap();
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn producer_id_ranges_are_disjoint_and_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "pid").await;
    let mut next = 0;
    for count in [1000, 1, 500, 1000] {
        match store
            .write(MetadataCommand::AllocateProducerIds { count })
            .await
            .unwrap()
        {
            CommandResult::ProducerIds { first, count: c } => {
                assert_eq!((first, c), (next, count));
                next = first + c;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(store.image().next_producer_id, next);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_replays_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    populate(&store).await;
    let before = store.image();
    store.shutdown().await.unwrap();

    let store = start_timed(
        config(dir.path()),
        RaftTuning::default(),
        "restart (log replay)",
    )
    .await;
    assert_eq!(store.image(), before);
    assert_eq!(
        store
            .write(MetadataCommand::CreateTopic(topic("after", 1)))
            .await
            .unwrap(),
        CommandResult::Ok
    );
    store.shutdown().await.unwrap();
}

fn snapshot_tuning() -> RaftTuning {
    RaftTuning {
        snapshot_logs_since_last: 5,
        logs_to_keep_after_snapshot: 0,
        ..RaftTuning::default()
    }
}

#[tokio::test]
async fn restart_from_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), snapshot_tuning(), "fresh").await;
    populate(&store).await;
    for i in 0..30 {
        let t = topic(&format!("s{i}"), 1);
        assert_eq!(
            store.write(MetadataCommand::CreateTopic(t)).await.unwrap(),
            CommandResult::Ok
        );
    }
    // Snapshots are built in the background: wait until one covers most of the log.
    let t = Instant::now();
    while !std::fs::exists(dir.path().join("raft/snapshot")).unwrap() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no snapshot was built"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = store.image();
    store.shutdown().await.unwrap();
    assert!(
        std::fs::exists(dir.path().join("raft/purged")).unwrap(),
        "log was never purged"
    );

    let store = start_timed(config(dir.path()), snapshot_tuning(), "restart (snapshot)").await;
    assert_eq!(store.image(), before);
    assert_eq!(
        store
            .write(MetadataCommand::CreateTopic(topic("after", 1)))
            .await
            .unwrap(),
        CommandResult::Ok
    );
    let after = store.image();
    store.shutdown().await.unwrap();

    // And once more, now that the state is "snapshot + log tail".
    let store = start_timed(config(dir.path()), snapshot_tuning(), "restart 2").await;
    assert_eq!(store.image(), after);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn torn_log_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("raft/log");
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    populate(&store).await;
    let before = store.image();
    store.shutdown().await.unwrap();

    // 1. Plain garbage after the last record.
    let good = std::fs::read(&log).unwrap();
    append(&log, b"\x13\x37garbage that is not a record");
    let store = start_timed(
        config(dir.path()),
        RaftTuning::default(),
        "restart (garbage)",
    )
    .await;
    assert_eq!(store.image(), before);
    assert_eq!(
        store
            .write(MetadataCommand::CreateTopic(topic("x", 1)))
            .await
            .unwrap(),
        CommandResult::Ok
    );
    let before = store.image();
    store.shutdown().await.unwrap();
    let now = std::fs::read(&log).unwrap();
    assert_eq!(&now[..good.len()], &good[..], "valid prefix was rewritten");

    // 2. A record cut in the middle: a valid header and half of its payload (a torn append).
    let tail = &now[good.len()..];
    append(&log, &tail[..tail.len() / 2]);
    let store = start_timed(config(dir.path()), RaftTuning::default(), "restart (torn)").await;
    assert_eq!(store.image(), before);
    assert_eq!(
        store
            .write(MetadataCommand::DeleteTopic { name: "x".into() })
            .await
            .unwrap(),
        CommandResult::Ok
    );
    let before = store.image();
    store.shutdown().await.unwrap();

    // The truncation left a log that later appends extend cleanly.
    let store = start_timed(config(dir.path()), RaftTuning::default(), "restart (clean)").await;
    assert_eq!(store.image(), before);
    store.shutdown().await.unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test]
async fn corrupt_vote_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    store.shutdown().await.unwrap();
    std::fs::write(dir.path().join("raft/vote"), b"\x05\x00\x00\x00junkjunk").unwrap();
    match MetadataStore::start(config(dir.path())).await {
        Err(ClusterError::Storage(_)) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started on a corrupt vote file"),
    }
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn wait_for<F: Fn(&MetadataImage) -> bool>(store: &MetadataStore, f: F) {
    let mut rx = store.subscribe();
    let res = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|img| f(img))).await;
    assert!(
        res.is_ok(),
        "node {} never saw the expected image",
        store.node_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_replicate() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let voters: BTreeMap<u64, String> = (0..3)
        .map(|i| (i as u64 + 1, addrs[i].to_string()))
        .collect();
    let cfg = |i: usize| ClusterConfig {
        node_id: i as u64 + 1,
        data_dir: dirs[i].path().to_path_buf(),
        raft_addr: Some(addrs[i]),
        voters: voters.clone(),
    };
    let t = Instant::now();
    let (a, b, c) = tokio::join!(
        MetadataStore::start(cfg(0)),
        MetadataStore::start(cfg(1)),
        MetadataStore::start(cfg(2))
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];

    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(l) = nodes[0].current_leader() {
            if nodes.iter().all(|n| n.current_leader() == Some(l)) {
                break l;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("3 nodes: leader {leader} after {:?}", t.elapsed());
    let leader_store = &nodes[(leader - 1) as usize];
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();

    let t = topic("replicated", 3);
    assert_eq!(
        leader_store
            .write(MetadataCommand::CreateTopic(t.clone()))
            .await
            .unwrap(),
        CommandResult::Ok
    );
    for n in &nodes {
        wait_for(n, |img| img.topics.get("replicated") == Some(&t)).await;
        wait_for(n, |img| img.controller_id == leader as i32).await;
    }
    // A follower forwards to the leader and answers once the write is committed.
    assert_eq!(
        follower
            .write(MetadataCommand::DeleteTopic {
                name: "replicated".into(),
            })
            .await
            .unwrap(),
        CommandResult::Ok
    );
    assert!(!follower.image().topics.contains_key("replicated"));
    for n in &nodes {
        wait_for(n, |img| !img.topics.contains_key("replicated")).await;
    }
    let images: Vec<Arc<MetadataImage>> = nodes.iter().map(|n| n.image()).collect();
    assert!(images.windows(2).all(|w| w[0] == w[1]));
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

/// A follower that was down while the leader snapshotted and purged its log must catch up via
/// InstallSnapshot over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_via_snapshot() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let voters: BTreeMap<u64, String> = (0..3)
        .map(|i| (i as u64 + 1, addrs[i].to_string()))
        .collect();
    let cfg = |i: usize| ClusterConfig {
        node_id: i as u64 + 1,
        data_dir: dirs[i].path().to_path_buf(),
        raft_addr: Some(addrs[i]),
        voters: voters.clone(),
    };
    let (a, b, c) = tokio::join!(
        MetadataStore::start_with(cfg(0), snapshot_tuning()),
        MetadataStore::start_with(cfg(1), snapshot_tuning()),
        MetadataStore::start_with(cfg(2), snapshot_tuning())
    );
    let mut nodes = vec![a.unwrap(), b.unwrap(), c.unwrap()];
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(l) = nodes[0].current_leader() {
            if nodes.iter().all(|n| n.current_leader() == Some(l)) {
                break l;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let li = (leader - 1) as usize;
    let fi = (0..3).find(|i| *i != li).unwrap();
    nodes[fi].shutdown().await.unwrap();

    for i in 0..30 {
        let t = topic(&format!("s{i}"), 1);
        let res = nodes[li]
            .write(MetadataCommand::CreateTopic(t))
            .await
            .unwrap();
        assert_eq!(res, CommandResult::Ok);
    }
    let t = Instant::now();
    while !std::fs::exists(dirs[li].path().join("raft/purged")).unwrap() {
        assert!(t.elapsed() < Duration::from_secs(10), "leader never purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    nodes[fi] = MetadataStore::start_with(cfg(fi), snapshot_tuning())
        .await
        .unwrap();
    let want = nodes[li].image();
    wait_for(&nodes[fi], |img| img.topics == want.topics).await;
    assert!(std::fs::exists(dirs[fi].path().join("raft/snapshot")).unwrap());
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}
