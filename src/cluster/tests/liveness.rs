//! Broker registration, heartbeats, fencing and leadership moves on a 3-node cluster over TCP.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::*;
use super::quorum::{agreed_leader, Trio};
use super::wait_for;

fn tuning() -> RaftTuning {
    RaftTuning {
        write_timeout: Duration::from_secs(2),
        broker_session_timeout: Duration::from_millis(1500),
        ..RaftTuning::default()
    }
}

fn partition(p: i32, replicas: &[i32]) -> PartitionInfo {
    PartitionInfo {
        partition: p,
        leader: replicas[0],
        leader_epoch: 0,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        partition_epoch: 0,
    }
}

fn part(img: &MetadataImage, p: usize) -> PartitionInfo {
    img.topics["t"].partitions[p].clone()
}

const BEAT: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_brokers_are_fenced_and_their_leaderships_move() {
    let trio = Trio::new(["127.0.0.1"; 3], tuning());
    let nodes = trio.start_all().await;
    agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let mut epochs = Vec::new();
    let mut beats = Vec::new();
    for n in &nodes {
        let id = n.node_id() as i32;
        let info = BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 9092 + id,
            rack: None,
            listeners: Vec::new(),
        };
        let epoch = n.register_broker(info).await.unwrap();
        assert!(
            n.image().registrations[&id].fenced,
            "a new registration is fenced"
        );
        epochs.push(epoch);
        beats.push(Some(n.spawn_heartbeats(id, epoch, BEAT)));
    }
    for n in &nodes {
        wait_for(n, |img| img.unfenced_brokers().count() == 3).await;
    }
    let topic = TopicInfo {
        name: "t".into(),
        id: uuid::Uuid::new_v4(),
        configs: BTreeMap::new(),
        partitions: vec![
            partition(0, &[2, 1, 3]),
            partition(1, &[2]),
            partition(2, &[1, 3]),
        ],
        internal: false,
    };
    let res = nodes[0].write(MetadataCommand::CreateTopic(topic)).await;
    assert_eq!(res.unwrap(), CommandResult::Ok);

    // A heartbeat from an older incarnation is refused.
    let stale = BrokerHeartbeat {
        broker_id: 2,
        broker_epoch: epochs[1] - 1,
        current_metadata_offset: nodes[1].metadata_offset(),
        want_fence: false,
        want_shutdown: false,
    };
    let res = nodes[1].heartbeat(stale).await;
    assert!(
        matches!(res, Err(ClusterError::StaleBrokerEpoch(_))),
        "{res:?}"
    );

    // Broker 2 goes silent: fenced after the session timeout, its leaderships move.
    beats[1] = None;
    for n in &nodes {
        wait_for(n, |img| img.registrations[&2].fenced).await;
    }
    let img = nodes[0].image();
    assert_eq!(part(&img, 0).leader, 1);
    assert_eq!(part(&img, 0).isr, vec![1, 3]);
    assert_eq!(part(&img, 0).leader_epoch, 1);
    // RF=1: offline, nothing invented.
    assert_eq!(part(&img, 1).leader, -1);
    assert_eq!(part(&img, 1).isr, vec![2]);
    assert_eq!(part(&img, 1).leader_epoch, 1);
    assert_eq!(part(&img, 2).leader_epoch, 0);
    assert_eq!(img.unfenced_brokers().count(), 2);

    // It heartbeats again, caught up: unfenced, and its offline partition is back.
    beats[1] = Some(nodes[1].spawn_heartbeats(2, epochs[1], BEAT));
    for n in &nodes {
        wait_for(n, |img| {
            !img.registrations[&2].fenced && part(img, 1).leader == 2
        })
        .await;
    }
    let img = nodes[0].image();
    assert_eq!(part(&img, 1).leader_epoch, 2);
    assert_eq!(
        part(&img, 0).leader,
        1,
        "no leadership moves back on its own"
    );

    // Controlled shutdown of broker 1: it may stop once it leads nothing.
    let hb1 = beats[0].as_ref().unwrap();
    assert!(hb1.controlled_shutdown(Duration::from_secs(5)).await);
    wait_for(&nodes[0], |img| img.leaderships(1) == 0).await;
    let img = nodes[0].image();
    assert_eq!(part(&img, 0).leader, 3);
    assert_eq!(part(&img, 2).leader, 3);
    assert!(img.registrations[&1].in_controlled_shutdown);

    drop(beats);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}
