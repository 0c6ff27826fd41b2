//! Forming a cluster from empty data dirs, restarting members without a new bootstrap, the
//! configured cluster id, and a broker-only node joining as a learner.

use std::time::{Duration, Instant};

use super::super::*;
use super::quorum::{agreed_leader, free_addr, quick, Trio};
use super::{topic, wait_for};

async fn create(node: &MetadataStore, name: &str) {
    let res = node
        .write(MetadataCommand::CreateTopic(topic(name, 1)))
        .await;
    assert_eq!(res.unwrap(), CommandResult::Ok, "creating {name}");
}

fn stored_id(trio: &Trio, i: usize) -> Option<Vec<u8>> {
    let path = trio.dirs[i].path().join("raft/cluster_id");
    let bytes = std::fs::read(path).ok()?;
    // [len][crc][payload]
    Some(bytes[8..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_members_rejoin_without_a_new_bootstrap() {
    let trio = Trio::new(["127.0.0.1"; 3], quick());
    let mut nodes: Vec<Option<MetadataStore>> =
        trio.start_all().await.into_iter().map(Some).collect();
    agreed_leader(&nodes.iter().flatten().collect::<Vec<_>>()).await;
    // The first leader committed a cluster id, the same everywhere and stored by every node.
    let mut ids = Vec::new();
    for n in nodes.iter().flatten() {
        ids.push(
            n.wait_for_cluster_id(Duration::from_secs(10))
                .await
                .unwrap(),
        );
    }
    let id = ids[0].clone();
    assert!(ids.iter().all(|i| *i == id), "{ids:?}");
    create(nodes[1].as_ref().unwrap(), "a").await;

    // Node 1 (the lowest id) restarts while the others write: it catches up, nothing new.
    nodes[0].take().unwrap().shutdown().await.unwrap();
    create(nodes[2].as_ref().unwrap(), "b").await;
    nodes[0] = Some(trio.start(0).await);
    wait_for(nodes[0].as_ref().unwrap(), |img| {
        img.topics.contains_key("b") && img.cluster_id == id
    })
    .await;

    // Everyone down; node 2 comes back alone: it has its data, and no majority to write.
    for n in nodes.iter_mut() {
        n.take().unwrap().shutdown().await.unwrap();
    }
    for i in 0..3 {
        let stored = stored_id(&trio, i);
        assert_eq!(stored.as_deref(), Some(id.as_bytes()), "node {}", i + 1);
    }
    let alone = trio.start(1).await;
    wait_for(&alone, |img| img.topics.len() == 2 && img.cluster_id == id).await;
    let res = alone
        .write(MetadataCommand::CreateTopic(topic("c", 1)))
        .await;
    // NOT_CONTROLLER while it finds no leader, REQUEST_TIMED_OUT if it took the lead back from
    // its stored vote (openraft restores a committed vote) but has no majority to commit.
    assert!(
        matches!(
            res,
            Err(ClusterError::NotLeader { leader: None }) | Err(ClusterError::Timeout(_))
        ),
        "{res:?}"
    );
    nodes[1] = Some(alone);
    nodes[2] = Some(trio.start(2).await);
    let both: Vec<&MetadataStore> = nodes.iter().flatten().collect();
    agreed_leader(&both).await;
    // A write that timed out may still commit: it was in the lone leader's log, which the regained
    // majority may keep (Kafka's REQUEST_TIMED_OUT leaves the outcome open too).
    let again = both[0]
        .write(MetadataCommand::CreateTopic(topic("c", 1)))
        .await
        .unwrap();
    assert!(
        again == CommandResult::Ok
            || (again == CommandResult::TopicAlreadyExists
                && matches!(res, Err(ClusterError::Timeout(_)))),
        "{again:?} after {res:?}"
    );
    for n in &both {
        wait_for(n, |img| img.topics.len() == 3 && img.cluster_id == id).await;
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_cluster_id_is_taken_and_enforced() {
    let trio = Trio::new(["127.0.0.1"; 3], quick());
    let ours = ClusterOptions {
        cluster_id: Some("MkU3OEVBNTcwNTJENDM2Qg".into()),
        ..ClusterOptions::default()
    };
    let (a, b, c) = tokio::join!(
        trio.start_as(0, ours.clone()),
        trio.start_as(1, ours.clone()),
        trio.start_as(2, ours.clone())
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];
    for n in &nodes {
        wait_for(n, |img| img.cluster_id == "MkU3OEVBNTcwNTJENDM2Qg").await;
    }
    let [first, rest @ ..] = nodes;
    first.shutdown().await.unwrap();
    let theirs = ClusterOptions {
        cluster_id: Some("another-cluster".into()),
        ..ClusterOptions::default()
    };
    match trio.start_as(0, theirs).await {
        Err(e @ ClusterError::ClusterIdMismatch { .. }) => {
            let text = e.to_string();
            assert!(text.contains("another-cluster") && text.contains("MkU3OEVBNTcwNTJENDM2Qg"));
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("started on another cluster's data"),
    }
    let bad = ClusterOptions {
        cluster_id: Some("has space".into()),
        ..ClusterOptions::default()
    };
    assert!(matches!(
        trio.start_as(0, bad).await,
        Err(ClusterError::InvalidConfig(_))
    ));
    for n in &rest {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_joins_as_a_learner() {
    let trio = Trio::new(["127.0.0.1"; 3], quick());
    let nodes = trio.start_all().await;
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    create(&nodes[0], "before").await;

    let dir = tempfile::tempdir().unwrap();
    let learner_cfg = ClusterConfig {
        node_id: 4,
        data_dir: dir.path().to_path_buf(),
        raft_addr: Some(free_addr("127.0.0.1")),
        voters: trio.voters(),
    };
    let learner = MetadataStore::start_node(
        learner_cfg,
        ClusterOptions {
            learner: true,
            ..ClusterOptions::default()
        },
        quick(),
    )
    .await
    .unwrap();
    wait_for(&learner, |img| img.topics.contains_key("before")).await;
    let mut metrics = nodes[(leader - 1) as usize].raft_metrics();
    let added = tokio::time::timeout(
        Duration::from_secs(10),
        metrics.wait_for(|m| {
            let membership = m.membership_config.membership();
            membership.learner_ids().any(|l| l == 4) && !membership.voter_ids().any(|v| v == 4)
        }),
    )
    .await
    // Drop the borrow at once: it holds the metrics lock Raft writes under.
    .is_ok_and(|r| r.is_ok());
    assert!(added, "node 4 is not a learner of the leader");
    // It forwards writes like any member.
    let t = Instant::now();
    create(&learner, "via-learner").await;
    assert!(t.elapsed() < Duration::from_secs(2));
    for n in nodes.iter().chain([&learner]) {
        wait_for(n, |img| img.topics.contains_key("via-learner")).await;
    }
    // A voter's id can't join as a learner.
    let dup = ClusterConfig {
        node_id: 2,
        data_dir: tempfile::tempdir().unwrap().path().to_path_buf(),
        raft_addr: Some(free_addr("127.0.0.1")),
        voters: trio.voters(),
    };
    let learner_opts = ClusterOptions {
        learner: true,
        ..ClusterOptions::default()
    };
    assert!(matches!(
        MetadataStore::start_node(dup, learner_opts, quick()).await,
        Err(ClusterError::InvalidConfig(_))
    ));
    learner.shutdown().await.unwrap();
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}
