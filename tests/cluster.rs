//! A cluster of real `vltava` processes on 127.0.0.1-3 (and 1-5), configured by Kafka `server.properties`
//! files: bootstrap without a format step, identical Metadata on every node, topics spread over leaders,
//! metadata writes through any node, a controller killed with -9, a quorum losing and regaining its
//! majority, broker fencing and controlled shutdown, and `__consumer_offsets` waiting for as many live
//! brokers as its replication factor. Raw Kafka requests here; real clients in compat-tests.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Cluster, ClusterOptions};
use common::{batch, name, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

/// Elections, session timeouts and restarts on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(30);

fn metadata(c: &mut Client, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    match c.request(ApiKey::Metadata, 12, req) {
        Some(ResponseKind::Metadata(m)) => m,
        other => panic!("Metadata: {other:?}"),
    }
}

fn try_metadata(cluster: &Cluster, id: i32, topics: Option<&[&str]>) -> Option<MetadataResponse> {
    let addr = cluster.addr(id);
    let stream = std::net::TcpStream::connect(&addr).ok()?;
    drop(stream);
    Some(metadata(&mut cluster.client(id), topics))
}

/// (broker ids, controller id, cluster id) as node `id` reports them.
fn view(m: &MetadataResponse) -> (BTreeSet<i32>, i32, String) {
    (
        m.brokers.iter().map(|b| b.node_id.0).collect(),
        m.controller_id.0,
        m.cluster_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

fn create_topic(c: &mut Client, topic: &str, partitions: i32, rf: i16) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)])
        .with_timeout_ms(10_000);
    match c.request(ApiKey::CreateTopics, 7, req) {
        Some(ResponseKind::CreateTopics(r)) => r.topics[0].error_code,
        other => panic!("CreateTopics: {other:?}"),
    }
}

/// Creates `topic` through node `via` once every running node sees every broker alive, and returns
/// once every running node knows the topic's leaders (metadata reaches the other nodes moments after
/// the controller commits it; a client would retry meanwhile).
fn create_topic_everywhere(cluster: &Cluster, via: i32, topic: &str, partitions: i32, rf: i16) {
    let ids: Vec<i32> = cluster
        .specs
        .iter()
        .map(|s| s.id)
        .filter(|&id| cluster.is_up(id))
        .collect();
    cluster.await_state("every broker alive everywhere", SETTLE, |c| {
        ids.iter()
            .all(|&id| view(&metadata(&mut c.client(id), Some(&[]))).0.len() == ids.len())
            .then_some(())
    });
    assert_eq!(
        create_topic(&mut cluster.client(via), topic, partitions, rf),
        0,
        "via node {via}"
    );
    cluster.await_state("the topic known everywhere", SETTLE, |c| {
        ids.iter()
            .all(|&id| {
                let m = metadata(&mut c.client(id), Some(&[topic]));
                m.topics[0].error_code == 0
                    && m.topics[0].partitions.len() == partitions as usize
                    && m.topics[0].partitions.iter().all(|p| p.error_code == 0)
            })
            .then_some(())
    });
}

/// Produces one batch to `topic`-`partition` through `c`; the partition's error code.
fn produce(c: &mut Client, topic: &str, partition: i32, values: &[&str]) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(values)))])]);
    match c.request(ApiKey::Produce, 9, req) {
        Some(ResponseKind::Produce(r)) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("Produce: {other:?}"),
    }
}

/// partition -> (leader, leader epoch, replicas, isr) as node `id` reports them.
type Layout = Vec<(i32, i32, Vec<i32>, Vec<i32>)>;

fn layout(m: &MetadataResponse) -> Layout {
    let mut parts: Vec<_> = m.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                (
                    p.leader_id.0,
                    p.leader_epoch,
                    p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                ),
            )
        })
        .collect();
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, v)| v).collect()
}

#[test]
fn three_nodes_bootstrap_and_agree_on_metadata() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let views: Vec<_> = cluster.await_state("every node to see three brokers", SETTLE, |c| {
        let views: Vec<_> = (1..=3)
            .map(|id| view(&metadata(&mut c.client(id), Some(&[]))))
            .collect();
        (views
            .iter()
            .all(|v| v == &views[0] && v.0.len() == 3 && v.1 > 0))
        .then_some(views)
    });
    let (brokers, controller, cluster_id) = &views[0];
    assert_eq!(brokers, &BTreeSet::from([1, 2, 3]));
    assert!((1..=3).contains(controller));
    assert_eq!(cluster_id.len(), 22, "a base64 cluster id, as Kafka's");
    // Every node advertises every broker at its own address.
    let m = metadata(&mut cluster.client(2), Some(&[]));
    for b in &m.brokers {
        let spec = cluster.spec(b.node_id.0);
        assert_eq!(
            (b.host.as_str(), b.port),
            (spec.ip.as_str(), spec.kafka_port as i32)
        );
    }
}

#[test]
fn topics_spread_over_leaders_and_writes_go_through_any_node() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    // CreateTopics through a node that is (most likely) not the controller is forwarded.
    for id in 1..=3 {
        let topic = format!("spread-{id}");
        assert_eq!(
            create_topic(&mut cluster.client(id), &topic, 6, 1),
            0,
            "via node {id}"
        );
    }
    let m = metadata(&mut cluster.client(1), Some(&["spread-2"]));
    let parts = layout(&m);
    let leaders: BTreeSet<i32> = parts.iter().map(|p| p.0).collect();
    assert_eq!(
        leaders,
        BTreeSet::from([1, 2, 3]),
        "6 partitions over 3 brokers: {parts:?}"
    );
    for (leader, _, replicas, isr) in &parts {
        assert_eq!(replicas, &vec![*leader]);
        assert_eq!(isr, &vec![*leader]);
    }
    // Same answer everywhere.
    for id in 2..=3 {
        let other = cluster.await_state("identical layouts", SETTLE, |c| {
            let l = layout(&metadata(&mut c.client(id), Some(&["spread-2"])));
            (l == parts).then_some(l)
        });
        assert_eq!(other, parts);
    }
    // Each partition takes writes at its leader only.
    for (i, (leader, epoch, _, _)) in parts.iter().enumerate() {
        let (code, offset) = produce(&mut cluster.client(*leader), "spread-2", i as i32, &["x"]);
        assert_eq!(
            (code, offset),
            (0, 0),
            "partition {i} at its leader (epoch {epoch})"
        );
        let other = 1 + (*leader % 3);
        let (code, _) = produce(&mut cluster.client(other), "spread-2", i as i32, &["y"]);
        assert_eq!(
            code, 6,
            "NOT_LEADER_OR_FOLLOWER from broker {other} for partition {i}"
        );
    }
}

#[test]
fn killing_the_controller_elects_another_and_metadata_writes_go_on() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let controller = cluster.await_state("a controller", SETTLE, |c| {
        let m = metadata(&mut c.client(1), Some(&[]));
        (m.controller_id.0 > 0).then_some(m.controller_id.0)
    });
    cluster.kill(controller);
    let survivors: Vec<i32> = (1..=3).filter(|&id| id != controller).collect();
    let new_controller = cluster.await_state("a new controller", SETTLE, |c| {
        let m = try_metadata(c, survivors[0], Some(&[]))?;
        (m.controller_id.0 > 0 && m.controller_id.0 != controller).then_some(m.controller_id.0)
    });
    assert!(survivors.contains(&new_controller));
    for &id in &survivors {
        let topic = format!("after-kill-{id}");
        assert_eq!(
            create_topic(&mut cluster.client(id), &topic, 2, 1),
            0,
            "via node {id}"
        );
    }
    // The old controller comes back with its data and catches up: it sees the topics created meanwhile.
    cluster.start_nodes(&[controller]);
    cluster.await_state("the restarted node to catch up", SETTLE, |c| {
        let m = metadata(
            &mut c.client(controller),
            Some(&["after-kill-1", "after-kill-2", "after-kill-3"]),
        );
        let known = m.topics.iter().filter(|t| t.error_code == 0).count();
        (known == 2).then_some(())
    });
}

#[test]
fn losing_the_majority_fails_metadata_writes_and_regaining_it_heals() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    assert_eq!(create_topic(&mut cluster.client(1), "before", 3, 1), 0);
    cluster.kill(2);
    cluster.kill(3);
    // Without a majority CreateTopics fails with a Kafka error within its timeout, and reads go on.
    let started = std::time::Instant::now();
    let code = create_topic(&mut cluster.client(1), "without-quorum", 1, 1);
    assert!(
        [7, 41, 5].contains(&code),
        "REQUEST_TIMED_OUT, NOT_CONTROLLER or LEADER_NOT_AVAILABLE, got {code}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no hang past the request timeout"
    );
    let m = metadata(&mut cluster.client(1), Some(&["before"]));
    assert_eq!(m.topics[0].error_code, 0, "reads answer without a quorum");
    cluster.start_nodes(&[2]);
    cluster.await_state("writes to work again", SETTLE, |c| {
        (create_topic(&mut c.client(1), "with-quorum", 1, 1) == 0).then_some(())
    });
}

#[test]
fn five_nodes_form_a_cluster() {
    let cluster = Cluster::start(5, ClusterOptions::default());
    cluster.await_state("five brokers everywhere", SETTLE, |c| {
        (1..=5)
            .all(|id| view(&metadata(&mut c.client(id), Some(&[]))).0.len() == 5)
            .then_some(())
    });
    create_topic_everywhere(&cluster, 4, "five", 10, 1);
    let parts = layout(&metadata(&mut cluster.client(5), Some(&["five"])));
    let leaders: BTreeSet<i32> = parts.iter().map(|p| p.0).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3, 4, 5]));
}

/// Runs kcat (librdkafka) with `args`, feeding `input`; its stdout, or a panic with its stderr.
fn kcat(args: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat (installed by compat-tests/install-deps.sh)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("kcat stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn librdkafka_produces_and_consumes_across_leaders_from_one_bootstrap_node() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    create_topic_everywhere(&cluster, 2, "kcat-spread", 6, 1);
    let listing = kcat(&["-b", &cluster.addr(1), "-L", "-t", "kcat-spread"], "");
    assert!(listing.contains("3 brokers:"), "{listing}");
    for id in 1..=3 {
        assert!(
            listing.contains(&format!("broker {id} at {}", cluster.addr(id))),
            "{listing}"
        );
    }
    // 120 keyed records through node 1 only: librdkafka learns the leaders from Metadata and sends each
    // partition's batches to its leader.
    let input: String = (0..120).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat(
        &[
            "-b",
            &cluster.addr(1),
            "-P",
            "-t",
            "kcat-spread",
            "-K:",
            "-X",
            "acks=all",
        ],
        &input,
    );
    // Read back everything through node 3 only.
    let out = kcat(
        &[
            "-b",
            &cluster.addr(3),
            "-C",
            "-t",
            "kcat-spread",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %s\n",
        ],
        "",
    );
    let mut values: Vec<&str> = out.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    values.sort_unstable();
    let mut expected: Vec<String> = (0..120).map(|i| format!("v{i}")).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    let partitions: BTreeSet<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(partitions.len(), 6, "keys spread over every partition");
}

/// The partitions of `topic` as node `id` reports them, with each partition's error code.
fn partitions(c: &Cluster, id: i32, topic: &str) -> Vec<(i16, i32, i32)> {
    let m = metadata(&mut c.client(id), Some(&[topic]));
    let mut parts: Vec<(i32, i16, i32, i32)> = m.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                p.leader_id.0,
                p.leader_epoch,
            )
        })
        .collect();
    parts.sort_unstable();
    parts.into_iter().map(|(_, e, l, ep)| (e, l, ep)).collect()
}

fn brokers_seen(c: &Cluster, id: i32) -> BTreeSet<i32> {
    view(&metadata(&mut c.client(id), Some(&[]))).0
}

#[test]
fn a_killed_broker_is_fenced_and_its_partitions_return_with_it() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    create_topic_everywhere(&cluster, 1, "fenced", 6, 1);
    let before = partitions(&cluster, 1, "fenced");
    let led_by_3: Vec<usize> = (0..before.len()).filter(|&i| before[i].1 == 3).collect();
    assert!(!led_by_3.is_empty(), "{before:?}");
    for &i in &led_by_3 {
        let r = produce(&mut cluster.client(3), "fenced", i as i32, &["kept"]);
        assert_eq!(r.0, 0, "{r:?}");
    }
    cluster.kill(3);
    // After broker.session.timeout.ms without heartbeats the controller fences it: it leaves Metadata,
    // and its RF=1 partitions have no leader (no data is invented elsewhere).
    let fenced = cluster.await_state("broker 3 fenced", SETTLE, |c| {
        let parts = partitions(c, 1, "fenced");
        (brokers_seen(c, 1) == BTreeSet::from([1, 2]) && led_by_3.iter().all(|&i| parts[i].1 == -1))
            .then_some(parts)
    });
    for (i, (code, leader, epoch)) in fenced.iter().enumerate() {
        if led_by_3.contains(&i) {
            assert_eq!(*code, 5, "LEADER_NOT_AVAILABLE for partition {i}");
            assert!(*epoch > before[i].2, "the epoch moves on with the leader");
        } else {
            assert_eq!(
                (*leader, *epoch),
                (before[i].1, before[i].2),
                "others untouched"
            );
        }
    }
    // Back with its data: unfenced, leading its partitions again at a newer epoch.
    cluster.start_nodes(&[3]);
    let after = cluster.await_state("broker 3 leading again, as 2 and 3 see it", SETTLE, |c| {
        let parts = partitions(c, 2, "fenced");
        let own = partitions(c, 3, "fenced");
        (led_by_3.iter().all(|&i| parts[i].1 == 3) && own == parts).then_some(parts)
    });
    assert_eq!(brokers_seen(&cluster, 2), BTreeSet::from([1, 2, 3]));
    for &i in &led_by_3 {
        assert!(after[i].2 > fenced[i].2);
        // Offset 1: the record written before the kill is still there.
        assert_eq!(
            produce(&mut cluster.client(3), "fenced", i as i32, &["more"]),
            (0, 1)
        );
    }
}

#[test]
fn sigterm_moves_leaderships_away_before_the_broker_stops() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    create_topic_everywhere(&cluster, 1, "replicated", 3, 3);
    let before = cluster.await_state("leaders on every broker", SETTLE, |c| {
        let parts = partitions(c, 1, "replicated");
        let leaders: BTreeSet<i32> = parts.iter().map(|p| p.1).collect();
        (leaders == BTreeSet::from([1, 2, 3])).then_some(parts)
    });
    let target = 2;
    assert!(
        cluster.terminate(target),
        "a clean exit after controlled shutdown"
    );
    // Right after the exit (no session timeout to wait for), nothing is led by the stopped broker: its
    // partitions moved to other replicas at a newer epoch.
    let after = partitions(&cluster, 1, "replicated");
    for (i, (code, leader, epoch)) in after.iter().enumerate() {
        assert_eq!(*code, 0, "partition {i}");
        assert_ne!(*leader, target, "partition {i}");
        if before[i].1 == target {
            assert!(
                *epoch > before[i].2,
                "partition {i}: {before:?} -> {after:?}"
            );
        }
    }
}

#[test]
fn strangers_on_the_controller_port_and_another_clusters_id_are_refused() {
    use std::io::{Read, Write};
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let cluster_id = view(&metadata(&mut cluster.client(1), Some(&[]))).2;
    // Garbage, an oversized frame and a silent connection on every controller port: each is closed
    // and the quorum carries on.
    for id in 1..=3 {
        let spec = cluster.spec(id);
        for payload in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[0xff, 0xff, 0xff, 0xff, 1, 2, 3][..],
        ] {
            let mut s =
                std::net::TcpStream::connect((spec.ip.as_str(), spec.controller_port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(payload).unwrap();
            let mut buf = [0u8; 64];
            assert!(
                matches!(s.read(&mut buf), Ok(0) | Err(_)),
                "node {id} closes a stranger's connection"
            );
        }
    }
    create_topic_everywhere(&cluster, 2, "after-strangers", 3, 1);

    // Node 3 restarted with another cluster's id refuses to start, naming both ids; with its own
    // file it comes back.
    cluster.kill(3);
    let spec = cluster.spec(3);
    let original = std::fs::read_to_string(&spec.properties).unwrap();
    let foreign = cluster.dir.path().join("node3-foreign.properties");
    std::fs::write(
        &foreign,
        format!("{original}cluster.id=AAAAAAAAAAAAAAAAAAAAAA\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vltava"))
        .args(["--config", foreign.to_str().unwrap()])
        .current_dir(cluster.dir.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a node of another cluster must not start"
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("AAAAAAAAAAAAAAAAAAAAAA") && text.contains(&cluster_id),
        "{text}"
    );
    cluster.start_nodes(&[3]);
    cluster.await_state("node 3 back", SETTLE, |c| {
        (brokers_seen(c, 1).len() == 3).then_some(())
    });
}

#[test]
fn a_broker_only_node_joins_as_a_learner_and_takes_partitions() {
    let mut cluster = Cluster::start(
        4,
        ClusterOptions {
            broker_only: vec![4],
            ..ClusterOptions::default()
        },
    );
    cluster.await_state("four brokers everywhere", SETTLE, |c| {
        (1..=4)
            .all(|id| brokers_seen(c, id) == BTreeSet::from([1, 2, 3, 4]))
            .then_some(())
    });
    let controller = view(&metadata(&mut cluster.client(4), Some(&[]))).1;
    assert!(
        (1..=3).contains(&controller),
        "only voters control: {controller}"
    );
    create_topic_everywhere(&cluster, 4, "with-learner", 8, 1);
    let leaders: BTreeSet<i32> = layout(&metadata(&mut cluster.client(1), Some(&["with-learner"])))
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3, 4]));
    // The learner does not count towards the quorum: with it and one voter gone, two voters of three
    // still commit.
    cluster.kill(4);
    let survivor = if controller == 1 { 2 } else { 1 };
    cluster.kill(if controller == 3 { 2 } else { 3 });
    assert_eq!(
        create_topic(&mut cluster.client(survivor), "still-writable", 1, 1),
        0
    );
}

/// FindCoordinator v3 for `group` through node `id`: (error code, coordinator id).
fn find_coordinator(c: &Cluster, id: i32, group: &str) -> (i16, i32) {
    let req = FindCoordinatorRequest::default()
        .with_key(kafka_protocol::protocol::StrBytes::from_string(
            group.to_string(),
        ))
        .with_key_type(0);
    match c.client(id).request(ApiKey::FindCoordinator, 3, req) {
        Some(ResponseKind::FindCoordinator(r)) => (r.error_code, r.node_id.0),
        other => panic!("FindCoordinator: {other:?}"),
    }
}

#[test]
fn the_offsets_topic_waits_for_as_many_live_brokers_as_its_replication_factor() {
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            extra: vec![("offsets.topic.replication.factor".into(), "3".into())],
            ..ClusterOptions::default()
        },
    );
    cluster.kill(3);
    cluster.await_state("broker 3 fenced", SETTLE, |c| {
        (brokers_seen(c, 1) == BTreeSet::from([1, 2])).then_some(())
    });
    // As Kafka: two live brokers cannot hold three replicas, so there is no coordinator (and no
    // offsets topic) yet; clients are told to retry.
    for via in [1, 2] {
        assert_eq!(find_coordinator(&cluster, via, "g"), (15, -1), "via {via}");
    }
    let m = metadata(&mut cluster.client(1), Some(&["__consumer_offsets"]));
    assert_eq!(m.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    // With the third broker back, the next FindCoordinator creates it, every partition on all three.
    cluster.start_nodes(&[3]);
    cluster.await_state("broker 3 unfenced", SETTLE, |c| {
        (brokers_seen(c, 1) == BTreeSet::from([1, 2, 3])).then_some(())
    });
    let (code, node) = find_coordinator(&cluster, 1, "g");
    assert_eq!(code, 0);
    assert!((1..=3).contains(&node), "{node}");
    // The other nodes learn of the topic through the metadata log.
    let replicas = cluster.await_state("the offsets topic on node 2", SETTLE, |c| {
        let m = metadata(&mut c.client(2), Some(&["__consumer_offsets"]));
        (m.topics[0].error_code == 0).then(|| {
            m.topics[0]
                .partitions
                .iter()
                .map(|p| p.replica_nodes.len())
                .collect::<BTreeSet<usize>>()
        })
    });
    assert_eq!(replicas, BTreeSet::from([3]), "three replicas each");
    cluster.await_state("node 3 naming the same coordinator", SETTLE, |c| {
        (find_coordinator(c, 3, "g") == (0, node)).then_some(())
    });
}
