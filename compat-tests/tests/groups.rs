//! rdkafka (librdkafka 2.12) consumer groups against vltava: members that join, leave and die while
//! a 4-partition topic is consumed (every record consumed, none twice once committed), and committed
//! offsets that survive a SIGKILL and restart of the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
    kafka::group_consumer_config(bootstrap, group, 10_000)
        .create()
        .expect("create group consumer")
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

/// What the members consumed: how often each (partition, offset) arrived, and which of them were
/// delivered without a successful commit (those alone may arrive twice).
#[derive(Default)]
struct Tally {
    seen: BTreeMap<(i32, i64), usize>,
    uncommitted: BTreeSet<(i32, i64)>,
}

impl Tally {
    fn poll(&mut self, consumers: &[&BaseConsumer]) {
        for c in consumers {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let at = (m.partition(), m.offset());
                *self.seen.entry(at).or_default() += 1;
                // A commit racing a rebalance may fail; the record may then come again.
                if c.commit_message(&m, CommitMode::Sync).is_err() {
                    self.uncommitted.insert(at);
                }
            }
        }
    }

    fn has_all(&self, produced: &[(i32, i64)]) -> bool {
        produced.iter().all(|at| self.seen.contains_key(at))
    }
}

/// A group member in its own process (`vltava-group-member`), so it can die without leaving.
struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
    assigned: BTreeSet<i32>,
    /// Records it reported before their commit succeeded.
    pending: BTreeSet<(i32, i64)>,
    consumed: usize,
}

impl Member {
    fn spawn(bootstrap: &str, group: &str, topic: &str, session_ms: u32) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vltava-group-member"))
            .args([bootstrap, group, topic, &session_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vltava-group-member");
        let stdout = child.stdout.take().expect("member stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Member {
            child,
            lines,
            assigned: BTreeSet::new(),
            pending: BTreeSet::new(),
            consumed: 0,
        }
    }

    /// Folds what the member has reported so far into its state and the tally.
    fn drain(&mut self, tally: &mut Tally) {
        while let Ok(line) = self.lines.try_recv() {
            let mut words = line.split_whitespace();
            let at = |w: &mut std::str::SplitWhitespace| -> (i32, i64) {
                let p = w.next().and_then(|p| p.parse().ok()).expect("partition");
                let o = w.next().and_then(|o| o.parse().ok()).expect("offset");
                (p, o)
            };
            match words.next() {
                Some("assigned") => {
                    self.assigned = words
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .filter_map(|p| p.parse().ok())
                        .collect();
                }
                Some("revoked") => self.assigned.clear(),
                Some("got") => {
                    let at = at(&mut words);
                    *tally.seen.entry(at).or_default() += 1;
                    self.pending.insert(at);
                    self.consumed += 1;
                }
                Some("committed") => {
                    self.pending.remove(&at(&mut words));
                }
                _ => panic!("unexpected line from the member: {line}"),
            }
        }
    }

    /// SIGKILL: the member sends nothing more, in particular no LeaveGroup.
    fn kill9(mut self, tally: &mut Tally) {
        self.child.kill().expect("kill member");
        self.child.wait().expect("reap member");
        self.drain(tally);
        tally.uncommitted.extend(std::mem::take(&mut self.pending));
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn disjoint_cover(parts: &[BTreeSet<i32>]) -> bool {
    let total: usize = parts.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = parts.iter().flatten().copied().collect();
    parts.iter().all(|p| !p.is_empty())
        && total == union.len()
        && union.len() == PARTITIONS as usize
}

#[test]
fn members_join_leave_and_die_and_every_record_is_consumed() {
    let (broker, _config_dir) = group_broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("members");
    let group = unique_topic("g");
    kafka::create_topic(bs, &topic, PARTITIONS, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let mut produced: Vec<(i32, i64)> = Vec::new();
    let mut produce_round = |tag: &str| {
        let recs: Vec<Rec> = (0..PARTITIONS as usize * PER_PARTITION)
            .map(|i| {
                let v = format!("{tag}{i}");
                Rec::new((i % PARTITIONS as usize) as i32, None, Some(v.as_bytes()))
            })
            .collect();
        produced.extend(kafka::produce_ok(&producer, &topic, &recs));
        produced.clone()
    };
    let mut tally = Tally::default();
    let wait = |what: &str, tally: &mut Tally, step: &mut dyn FnMut(&mut Tally) -> bool| {
        let deadline = Instant::now() + TIMEOUT;
        while !step(tally) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; consumed {} distinct records",
                tally.seen.len()
            );
        }
    };

    // Two members split the topic.
    let all = produce_round("a");
    let c1 = group_consumer(bs, &group);
    let c2 = group_consumer(bs, &group);
    for c in [&c1, &c2] {
        c.subscribe(&[&topic]).unwrap();
    }
    wait("two members to split the topic", &mut tally, &mut |t| {
        t.poll(&[&c1, &c2]);
        let parts = [assigned(&c1), assigned(&c2)];
        disjoint_cover(&parts) && parts.iter().all(|p| p.len() == 2) && t.has_all(&all)
    });

    // A third joins: the group rebalances over three members.
    let c3 = group_consumer(bs, &group);
    c3.subscribe(&[&topic]).unwrap();
    let all = produce_round("b");
    wait("a third member to get partitions", &mut tally, &mut |t| {
        t.poll(&[&c1, &c2, &c3]);
        disjoint_cover(&[assigned(&c1), assigned(&c2), assigned(&c3)]) && t.has_all(&all)
    });

    // One closes (LeaveGroup): the other two take its partitions.
    drop(c1);
    let all = produce_round("c");
    wait(
        "two members to take over from the one that left",
        &mut tally,
        &mut |t| {
            t.poll(&[&c2, &c3]);
            disjoint_cover(&[assigned(&c2), assigned(&c3)]) && t.has_all(&all)
        },
    );

    // A member in another process joins and consumes its share ...
    let mut victim = Member::spawn(bs, &group, &topic, 6_000);
    wait("the new member to get partitions", &mut tally, &mut |t| {
        t.poll(&[&c2, &c3]);
        victim.drain(t);
        disjoint_cover(&[assigned(&c2), assigned(&c3), victim.assigned.clone()])
    });
    let all = produce_round("d");
    wait(
        "the new member to consume its partitions",
        &mut tally,
        &mut |t| {
            t.poll(&[&c2, &c3]);
            victim.drain(t);
            t.has_all(&all) && victim.pending.is_empty()
        },
    );
    assert!(victim.consumed > 0, "the new member consumed nothing");
    let victims_partitions = victim.assigned.clone();

    // ... and is SIGKILLed: no LeaveGroup, so only its session timeout (6 s) frees its partitions.
    victim.kill9(&mut tally);
    let killed_at = Instant::now();
    let all = produce_round("e");
    wait(
        "the survivors to take over the dead member's partitions",
        &mut tally,
        &mut |t| {
            t.poll(&[&c2, &c3]);
            disjoint_cover(&[assigned(&c2), assigned(&c3)]) && t.has_all(&all)
        },
    );
    let taken_over = killed_at.elapsed();
    assert!(
        taken_over >= Duration::from_secs(5),
        "partitions {victims_partitions:?} moved after {taken_over:?}, before the dead member's session could expire"
    );

    assert!(tally.has_all(&all), "every produced record is consumed");
    let twice: Vec<_> = tally
        .seen
        .iter()
        .filter(|(at, n)| **n > 1 && !tally.uncommitted.contains(at))
        .collect();
    assert!(
        twice.is_empty(),
        "consumed twice although committed: {twice:?}"
    );
}
