//! Three in-process `MetadataStore`s over TCP on loopback: forwarding from followers, writes
//! failing within the timeout without a majority and working again when it returns.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::*;
use super::{topic, wait_for};

/// Data dirs and Raft addresses of a 3-voter cluster; nodes are started and stopped by index.
pub(super) struct Trio {
    pub(super) dirs: Vec<tempfile::TempDir>,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) tuning: RaftTuning,
}

pub(super) fn free_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

impl Trio {
    /// Node i listens on `ips[i]` (all of 127/8 is on `lo`).
    pub(super) fn new(ips: [&str; 3], tuning: RaftTuning) -> Trio {
        Trio {
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs: ips.iter().map(|ip| free_addr(ip)).collect(),
            tuning,
        }
    }

    pub(super) fn voters(&self) -> BTreeMap<u64, String> {
        (0..3)
            .map(|i| (i as u64 + 1, self.addrs[i].to_string()))
            .collect()
    }

    pub(super) fn cfg(&self, i: usize) -> ClusterConfig {
        ClusterConfig {
            node_id: i as u64 + 1,
            data_dir: self.dirs[i].path().to_path_buf(),
            raft_addr: Some(self.addrs[i]),
            voters: self.voters(),
        }
    }

    pub(super) async fn start(&self, i: usize) -> MetadataStore {
        self.start_as(i, ClusterOptions::default())
            .await
            .unwrap_or_else(|e| panic!("node {} failed to start: {e}", i + 1))
    }

    pub(super) async fn start_as(
        &self,
        i: usize,
        options: ClusterOptions,
    ) -> Result<MetadataStore, ClusterError> {
        MetadataStore::start_node(self.cfg(i), options, self.tuning.clone()).await
    }

    pub(super) async fn start_all(&self) -> Vec<MetadataStore> {
        let (a, b, c) = tokio::join!(self.start(0), self.start(1), self.start(2));
        vec![a, b, c]
    }
}

/// Awaits (up to 10 s) a leader every node in `nodes` agrees on.
pub(super) async fn agreed_leader(nodes: &[&MetadataStore]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut watches: Vec<_> = nodes.iter().map(|n| n.raft_metrics()).collect();
    loop {
        let leaders: Vec<_> = watches
            .iter_mut()
            .map(|w| w.borrow_and_update().current_leader)
            .collect();
        if let Some(Some(l)) = leaders.first() {
            if leaders.iter().all(|x| *x == Some(*l)) {
                return *l;
            }
        }
        let changed = futures_any(&mut watches);
        assert!(
            tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_ok(),
            "no agreed leader within 10 s: {leaders:?}"
        );
    }
}

/// Resolves when any of the watches changes.
async fn futures_any(
    watches: &mut [tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>],
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for w in watches.iter() {
        let mut w = w.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            if w.changed().await.is_ok() {
                let _ = tx.send(()).await;
            }
        }));
    }
    let _ = rx.recv().await;
    for t in tasks {
        t.abort();
    }
}

pub(super) fn quick() -> RaftTuning {
    RaftTuning {
        write_timeout: Duration::from_secs(2),
        ..RaftTuning::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_writes_to_the_leader() {
    let trio = Trio::new(["127.0.0.1"; 3], quick());
    let nodes = trio.start_all().await;
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    for (i, n) in nodes.iter().enumerate() {
        if n.node_id() == leader {
            continue;
        }
        let t = topic(&format!("via{}", i + 1), 1);
        let res = n.write(MetadataCommand::CreateTopic(t.clone())).await;
        assert_eq!(res.unwrap(), CommandResult::Ok);
        // Read-your-writes on the forwarding node.
        assert_eq!(n.image().topics.get(&t.name), Some(&t));
        let res = n
            .write(MetadataCommand::AllocateProducerIds { count: 10 })
            .await;
        assert!(matches!(
            res,
            Ok(CommandResult::ProducerIds { count: 10, .. })
        ));
    }
    for n in &nodes {
        wait_for(n, |img| img.topics.len() == 2 && img.next_producer_id == 20).await;
    }
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_in_time_without_a_majority_and_resume_with_it() {
    let trio = Trio::new(["127.0.0.1"; 3], quick());
    let mut nodes: Vec<Option<MetadataStore>> =
        trio.start_all().await.into_iter().map(Some).collect();
    let all: Vec<&MetadataStore> = nodes.iter().flatten().collect();
    let leader = agreed_leader(&all).await;
    let first = all[0]
        .write(MetadataCommand::CreateTopic(topic("before", 1)))
        .await;
    assert_eq!(first.unwrap(), CommandResult::Ok);

    // Stop the leader and one follower: the survivor has no majority.
    let survivor = (0..3).find(|i| *i as u64 + 1 != leader).unwrap();
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != survivor {
            n.take().unwrap().shutdown().await.unwrap();
        }
    }
    let alone = nodes[survivor].as_ref().unwrap();
    wait_for(alone, |img| img.topics.contains_key("before")).await;
    let t = Instant::now();
    let res = alone
        .write(MetadataCommand::CreateTopic(topic("lost", 1)))
        .await;
    let took = t.elapsed();
    match res {
        Err(ClusterError::NotLeader { leader: None }) | Err(ClusterError::Timeout(_)) => {}
        other => panic!("a write without a majority answered {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "failed after {took:?}, the write timeout is 2 s"
    );
    // Reads go on without a majority.
    assert!(alone.image().topics.contains_key("before"));
    assert!(!alone.image().topics.contains_key("lost"));

    // One node back: a majority again, and the survivor's writes commit.
    let back = (0..3).find(|i| *i != survivor).unwrap();
    nodes[back] = Some(trio.start(back).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut timed_out = false;
    let res = loop {
        let alone = nodes[survivor].as_ref().unwrap();
        match alone
            .write(MetadataCommand::CreateTopic(topic("after", 1)))
            .await
        {
            Err(ClusterError::NotLeader { .. }) if Instant::now() < deadline => {}
            // Taken by a leader that could not commit it in time: it may commit later.
            Err(ClusterError::Timeout(_)) if Instant::now() < deadline => timed_out = true,
            other => break other,
        }
    };
    match res.unwrap() {
        CommandResult::Ok => {}
        CommandResult::TopicAlreadyExists if timed_out => {}
        other => panic!("the write after the majority returned answered {other:?}"),
    }
    for n in nodes.iter().flatten() {
        wait_for(n, |img| img.topics.contains_key("after")).await;
        n.shutdown().await.unwrap();
    }
}
