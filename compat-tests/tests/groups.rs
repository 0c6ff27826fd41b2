//! rdkafka (librdkafka 2.12) consumer groups against vltava: two subscribed consumers split a topic
//! through the group coordinator and commit; after a SIGKILL and restart of the broker a new member
//! of the group resumes exactly at the committed offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::kafka::{self, Rec};
use vltava_compat::{unique_topic, Broker, BrokerOptions};

const PARTITIONS: i32 = 4;
const PER_PARTITION: usize = 25;
const TIMEOUT: Duration = Duration::from_secs(60);

/// The broker and its config file's directory (restarts reread the file, so it must outlive them).
fn group_broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vltava.toml");
    // No initial rebalance delay: Kafka's 3 s default would only slow the test down.
    std::fs::write(&cfg, "group_initial_rebalance_delay_ms = 0\n").expect("write config");
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), cfg.display().to_string()],
        ..BrokerOptions::default()
    });
    (broker, dir)
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    let mut cfg = kafka::base_config(bootstrap);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    cfg.create().expect("create group consumer")
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|l| l.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[test]
fn subscribed_consumers_split_a_topic_and_resume_after_kill9() {
    let (mut broker, _config_dir) = group_broker();
    let topic = unique_topic("groups");
    let group = unique_topic("g");
    kafka::create_topic(broker.bootstrap(), &topic, PARTITIONS, &[]).unwrap();
    let producer = kafka::producer(broker.bootstrap(), "all", "none");
    let recs: Vec<Rec> = (0..PARTITIONS as usize * PER_PARTITION)
        .map(|i| {
            let v = format!("v{i}");
            Rec::new((i % PARTITIONS as usize) as i32, None, Some(v.as_bytes()))
        })
        .collect();
    kafka::produce_ok(&producer, &topic, &recs);

    let consumers = [
        group_consumer(broker.bootstrap(), &group),
        group_consumer(broker.bootstrap(), &group),
    ];
    for c in &consumers {
        c.subscribe(&[&topic]).unwrap();
    }
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut uncommitted: BTreeSet<(i32, i64)> = BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let parts: Vec<BTreeSet<i32>> = consumers.iter().map(assigned).collect();
        let split = parts.iter().all(|p| p.len() == 2)
            && parts[0].union(&parts[1]).count() == PARTITIONS as usize;
        if split && seen.len() == recs.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seen {} of {}, assignments {parts:?}",
            seen.len(),
            recs.len()
        );
        for c in &consumers {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                *seen.entry((m.partition(), m.offset())).or_default() += 1;
                // A commit racing a rebalance may fail; the record may then come again.
                if c.commit_message(&m, CommitMode::Sync).is_err() {
                    uncommitted.insert((m.partition(), m.offset()));
                }
            }
        }
    }
    let twice: Vec<_> = seen
        .iter()
        .filter(|(k, n)| **n > 1 && !uncommitted.contains(k))
        .collect();
    assert!(
        twice.is_empty(),
        "consumed twice although committed: {twice:?}"
    );
    // Commit positions explicitly and check them through the coordinator after a restart.
    let mut end = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        end.add_partition_offset(&topic, p, Offset::Offset(PER_PARTITION as i64 - 5))
            .unwrap();
    }
    // Any member of the current generation may commit any partition, as in Kafka.
    consumers[0].commit(&end, CommitMode::Sync).unwrap();
    drop(consumers);

    broker.restart();
    let c = group_consumer(broker.bootstrap(), &group);
    let committed = c.committed_offsets(end.clone(), TIMEOUT).unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(PER_PARTITION as i64 - 5),
            "{e:?}"
        );
    }
    c.subscribe(&[&topic]).unwrap();
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while first.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "resumed only {first:?}");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.entry(m.partition()).or_insert(m.offset());
        }
    }
    assert!(
        first.values().all(|o| *o == PER_PARTITION as i64 - 5),
        "{first:?}"
    );
}
