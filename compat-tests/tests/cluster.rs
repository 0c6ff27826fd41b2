//! rdkafka (librdkafka) against a 3-node vltava cluster: an idempotent producer bootstrapped on one node
//! and a consumer group bootstrapped on another (every acknowledged record read exactly once, nothing
//! else), and a group whose coordinator's node is killed -9 and restarted (the group resumes from its
//! committed offsets: nothing lost, nothing re-delivered below the last commit), and a group whose
//! coordinator is killed -9 for good with `__consumer_offsets` replicated three times (the coordinator
//! moves to another node, which has the group's commits: it resumes exactly at them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::cluster::Cluster;
use vltava_compat::kafka;
use vltava_compat::unique_topic;

const PARTITIONS: i32 = 6;
/// Upper bound for reading everything, elections and restarts on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// A record as a consumer read it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Read {
    value: String,
    partition: i32,
    offset: i64,
}

fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    kafka::base_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("create producer")
}

fn group_consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    let mut c: ClientConfig = kafka::group_consumer_config(bootstrap, group, 10_000);
    c.set("enable.partition.eof", "false");
    c.create().expect("create group consumer")
}

/// Sends `n` keyed records valued `{prefix}{i}` and waits for every delivery report: value -> (partition,
/// offset) of each acknowledged record; a failed delivery fails the test.
async fn produce_keyed(
    producer: &FutureProducer,
    topic: &str,
    prefix: &str,
    n: usize,
) -> HashMap<String, (i32, i64)> {
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let value = format!("{prefix}{i}");
        let key = format!("key-{i}");
        let mut record = FutureRecord::to(topic).key(&key).payload(&value);
        let future = loop {
            match producer.send_result(record) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce {value} failed locally: {e}"),
            }
        };
        pending.push((value.clone(), future));
    }
    let mut acked = HashMap::new();
    for (value, future) in pending {
        match tokio::time::timeout(DEADLINE, future).await {
            Ok(Ok(Ok(d))) => {
                acked.insert(value, (d.partition, d.offset));
            }
            other => panic!("delivery of {value}: {other:?}"),
        }
    }
    acked
}

/// Reads from `consumer` until `done` holds for what was read (each record in arrival order), for at
/// most `DEADLINE`.
async fn read_until(
    consumer: &StreamConsumer,
    what: &str,
    mut done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut stream = consumer.stream();
    while !done(&got) {
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(m))) => got.push(Read {
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                partition: m.partition(),
                offset: m.offset(),
            }),
            Ok(Some(Err(e))) => eprintln!("{what}: consumer error (retried by the client): {e}"),
            Ok(None) => panic!("{what}: the consumer stream ended"),
            Err(_) => panic!(
                "{what}: timed out after {DEADLINE:?} with {} records read",
                got.len()
            ),
        }
    }
    got
}

/// partition -> high watermark of `topic`, through node `bootstrap`.
fn high_watermarks(consumer: &StreamConsumer, topic: &str) -> BTreeMap<i32, i64> {
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("watermarks of {topic}-{p}: {e}"));
            (p, high)
        })
        .collect()
}

/// partition -> leader of `topic`, as the node at `bootstrap` describes it.
fn partition_leaders(bootstrap: &str, topic: &str) -> BTreeMap<i32, i32> {
    let md = kafka::consumer(bootstrap)
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
    md.topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| (p.id(), p.leader())))
        .collect()
}

/// Every acknowledged value read exactly once, where it was acknowledged, and nothing else.
fn check_history(acked: &HashMap<String, (i32, i64)>, reads: &[Read]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in reads {
        let at = acked
            .get(&r.value)
            .unwrap_or_else(|| panic!("read a value never acknowledged: {r:?}"));
        assert_eq!(
            *at,
            (r.partition, r.offset),
            "{} read where it was not acknowledged",
            r.value
        );
        *seen.entry(r.value.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    let unseen: Vec<_> = acked
        .keys()
        .filter(|v| !seen.contains_key(v.as_str()))
        .collect();
    assert!(unseen.is_empty(), "acknowledged, never read: {unseen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_and_group_on_different_nodes_see_each_record_once() {
    let cluster = Cluster::start(3, &[]);
    let topic = unique_topic("cluster-rdkafka");
    kafka::create_topic(&cluster.bootstrap(2), &topic, PARTITIONS, &[]).expect("create topic");
    let leaders = partition_leaders(&cluster.bootstrap(3), &topic);
    assert_eq!(
        leaders.values().copied().collect::<BTreeSet<i32>>(),
        BTreeSet::from([1, 2, 3]),
        "partitions led by every broker: {leaders:?}"
    );

    let producer = idempotent_producer(&cluster.bootstrap(1));
    let acked = produce_keyed(&producer, &topic, "v", 1000).await;
    assert_eq!(acked.len(), 1000);
    let used: BTreeSet<i32> = acked.values().map(|(p, _)| *p).collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "keys spread over every partition"
    );

    let consumer = group_consumer(&cluster.bootstrap(2), &unique_topic("g-cluster"));
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut reads = read_until(&consumer, "the group", |got| got.len() >= acked.len()).await;
    // Nothing beyond: the consumer's positions are the high watermarks of every partition.
    let high = high_watermarks(&consumer, &topic);
    let positions = consumer.position().expect("positions");
    for (p, h) in &high {
        let at = positions
            .find_partition(&topic, *p)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        if at != Offset::Offset(*h) {
            // Positions advance only as records are handed out; anything left is read (and checked) here.
            reads.extend(
                read_until(&consumer, "past the expected count", |_| {
                    consumer
                        .position()
                        .ok()
                        .and_then(|l| l.find_partition(&topic, *p).map(|e| e.offset()))
                        == Some(Offset::Offset(*h))
                })
                .await,
            );
        }
    }
    check_history(&acked, &reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_from_its_commits_after_its_coordinator_is_killed_and_restarted() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("cluster-coordinator");
    kafka::create_topic(&cluster.bootstrap(1), &topic, PARTITIONS, &[]).expect("create topic");
    let producer = idempotent_producer(&cluster.bootstrap(1));
    let acked = produce_keyed(&producer, &topic, "w", 600).await;
    drop(producer);

    let group = unique_topic("g-coordinator");
    let coordinator = cluster
        .group_coordinator(1, &group)
        .expect("FindCoordinator");
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != coordinator)
        .collect();

    // A reads about half and commits, then reads on past its commit.
    let first = group_consumer(&cluster.bootstrap(others[0]), &group);
    first.subscribe(&[&topic]).expect("subscribe");
    let before = read_until(&first, "before the commit", |got| got.len() >= 300).await;
    first
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &before {
        let next = committed.entry(r.partition).or_insert(0);
        *next = (*next).max(r.offset + 1);
    }
    let tail = read_until(&first, "past the commit", |got| got.len() >= 100).await;
    assert_eq!(
        cluster
            .group_coordinator(others[1], &group)
            .expect("FindCoordinator"),
        coordinator,
        "one coordinator, whichever node is asked"
    );

    cluster.kill9(coordinator);
    cluster
        .restart(coordinator)
        .expect("restart the coordinator");
    // The first member leaves (through the restarted coordinator) without committing its tail.
    let closing = tokio::task::spawn_blocking(move || drop(first));
    tokio::time::timeout(DEADLINE, closing)
        .await
        .expect("the first consumer closes within the deadline")
        .expect("close");

    // B, on the other bootstrap node, starts at the committed offsets and reads the rest once.
    let second = group_consumer(&cluster.bootstrap(others[1]), &group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topic, p);
    }
    let stored = second
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets after the restart");
    for (p, next) in &committed {
        assert_eq!(
            stored.find_partition(&topic, *p).map(|e| e.offset()),
            Some(Offset::Offset(*next)),
            "the commit of partition {p} survived the coordinator's kill -9"
        );
    }
    second.subscribe(&[&topic]).expect("subscribe");
    let expect_rest: usize = (0..PARTITIONS)
        .map(|p| {
            let from = committed.get(&p).copied().unwrap_or(0);
            acked
                .values()
                .filter(|(q, o)| *q == p && *o >= from)
                .count()
        })
        .sum();
    let after = read_until(&second, "after the restart", |got| got.len() >= expect_rest).await;
    for r in &after {
        let from = committed.get(&r.partition).copied().unwrap_or(0);
        assert!(
            r.offset >= from,
            "{r:?} re-delivered below the commit (next offset {from})"
        );
    }
    let redelivered = tail
        .iter()
        .filter(|t| after.iter().any(|a| a.value == t.value))
        .count();
    assert_eq!(
        redelivered,
        tail.len(),
        "the uncommitted tail comes again, once"
    );
    let mut history = before.clone();
    history.extend(after.iter().cloned());
    check_history(&acked, &history);
    second
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit after the restart");
    tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(move || drop(second)))
        .await
        .expect("the second consumer closes within the deadline")
        .expect("close");
    // The restarted coordinator also stops cleanly on SIGTERM.
    let status = cluster
        .terminate(coordinator, Duration::from_secs(30))
        .expect("SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// The replica lists of `__consumer_offsets`, as the node at `bootstrap` describes them.
fn offsets_replicas(bootstrap: &str) -> Vec<Vec<i32>> {
    let md = kafka::consumer(bootstrap)
        .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(30))
        .expect("metadata of __consumer_offsets");
    md.topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.replicas().to_vec()))
        .collect()
}

/// Polls FindCoordinator through node `via` until it names a node other than `old`, for at most
/// `DEADLINE` (the old one is named until the controller fences it and elects another leader).
async fn coordinator_other_than(cluster: &Cluster, via: i32, group: &str, old: i32) -> i32 {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match cluster.group_coordinator(via, group) {
            Ok(id) if id != old => return id,
            Ok(_) => {}
            Err(e) => eprintln!("FindCoordinator via {via} (retried): {e:#}"),
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the coordinator of {group} is still node {old} after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_at_its_commits_on_a_new_coordinator_after_the_old_one_is_killed() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("offsets.topic.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            ("replica.lag.time.max.ms", "3000"),
        ],
    );
    let group = unique_topic("g-failover");
    // The first FindCoordinator creates __consumer_offsets, every partition on all three nodes.
    let coordinator = cluster
        .group_coordinator(1, &group)
        .expect("FindCoordinator");
    let replicas = offsets_replicas(&cluster.bootstrap(2));
    assert!(
        !replicas.is_empty() && replicas.iter().all(|r| r.len() == 3),
        "offsets.topic.replication.factor=3: {replicas:?}"
    );
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != coordinator)
        .collect();

    // The data lives on all three nodes but is led by the two that stay, so that only the
    // coordinator moves when its node dies.
    let topic = unique_topic("cluster-failover");
    let lists: Vec<Vec<i32>> = (0..PARTITIONS as usize)
        .map(|p| vec![others[p % 2], others[(p + 1) % 2], coordinator])
        .collect();
    let assignment: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
    let admin = kafka::admin(&cluster.bootstrap(others[0]));
    let created = admin
        .create_topics(
            [&NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Variable(&assignment),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreateTopics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    kafka::wait_for_topic(&cluster.bootstrap(others[1]), &topic, PARTITIONS).expect("topic");
    let producer = idempotent_producer(&cluster.bootstrap(others[0]));
    let acked = produce_keyed(&producer, &topic, "f", 600).await;
    drop(producer);

    // A reads about half and commits (acknowledged once the offsets partition's ISR has it), then
    // reads on past its commit.
    let first = group_consumer(&cluster.bootstrap(others[0]), &group);
    first.subscribe(&[&topic]).expect("subscribe");
    let before = read_until(&first, "before the commit", |got| got.len() >= 300).await;
    first
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &before {
        let next = committed.entry(r.partition).or_insert(0);
        *next = (*next).max(r.offset + 1);
    }
    let tail = read_until(&first, "past the commit", |got| got.len() >= 100).await;

    cluster.kill9(coordinator);
    let moved = coordinator_other_than(&cluster, others[0], &group, coordinator).await;
    assert!(others.contains(&moved), "moved to a live node: {moved}");
    assert_eq!(
        coordinator_other_than(&cluster, others[1], &group, coordinator).await,
        moved,
        "one coordinator, whichever node is asked"
    );
    // The first member leaves (through the new coordinator) without committing its tail.
    let closing = tokio::task::spawn_blocking(move || drop(first));
    tokio::time::timeout(DEADLINE, closing)
        .await
        .expect("the first consumer closes within the deadline")
        .expect("close");

    // B finds the commits on the new coordinator and reads from exactly there.
    let second = group_consumer(&cluster.bootstrap(others[1]), &group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topic, p);
    }
    let stored = second
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets from the new coordinator");
    for (p, next) in &committed {
        assert_eq!(
            stored.find_partition(&topic, *p).map(|e| e.offset()),
            Some(Offset::Offset(*next)),
            "the commit of partition {p} is on the new coordinator"
        );
    }
    second.subscribe(&[&topic]).expect("subscribe");
    let expect_rest: usize = (0..PARTITIONS)
        .map(|p| {
            let from = committed.get(&p).copied().unwrap_or(0);
            acked
                .values()
                .filter(|(q, o)| *q == p && *o >= from)
                .count()
        })
        .sum();
    let after = read_until(&second, "after the failover", |got| {
        got.len() >= expect_rest
    })
    .await;
    for r in &after {
        let from = committed.get(&r.partition).copied().unwrap_or(0);
        assert!(
            r.offset >= from,
            "{r:?} re-delivered below the commit (next offset {from})"
        );
    }
    let redelivered = tail
        .iter()
        .filter(|t| after.iter().any(|a| a.value == t.value))
        .count();
    assert_eq!(
        redelivered,
        tail.len(),
        "the uncommitted tail comes again, once"
    );
    let mut history = before.clone();
    history.extend(after.iter().cloned());
    check_history(&acked, &history);
    // The new coordinator takes commits with two of the three replicas (min.insync.replicas=2).
    second
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit on the new coordinator");
    tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(move || drop(second)))
        .await
        .expect("the second consumer closes within the deadline")
        .expect("close");
}
