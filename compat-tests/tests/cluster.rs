//! rdkafka (librdkafka) against a 3-node vltava cluster: an idempotent producer bootstrapped on one node
//! and a consumer group bootstrapped on another (every acknowledged record read exactly once, nothing
//! else), and a group whose coordinator's node is killed -9 and restarted (the group resumes from its
//! committed offsets: nothing lost, nothing re-delivered below the last commit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
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
