//! The transactional fault suite (issue 13, point 4): two rdkafka transactional producers (acks=all,
//! transactions of a few records over every partition, about one in four aborted) and a
//! read_committed reader run against a 3-node vltava cluster (an RF=3 topic, min.insync.replicas=2,
//! `__transaction_state` RF=3 with min ISR 2) while a data partition's leader or the transaction
//! coordinator is killed -9 (mid-commit), the coordinator is cut off with nftables, two nodes of
//! three are killed, or every node is restarted in turn. After healing, a read_committed read of
//! every partition (whose LSO must reach its high watermark) goes to the transaction checker: no
//! aborted record read, no committed transaction partly visible, every transaction of unknown
//! outcome all or nothing, no duplicate, nothing never sent.
//!
//! The scenarios run one at a time, each bounded in time.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use vltava_compat::cluster::faults::{MachineLock, PartitionState};
use vltava_compat::cluster::Cluster;
use vltava_compat::txn_history::{TxnHistory, TxnReport};
use vltava_compat::txn_reads::{final_reads, CommittedRunReader};
use vltava_compat::txn_workload::{TxnWriter, TxnWriterOptions};
use vltava_compat::{kafka, unique_topic};

const PARTITIONS: i32 = 3;
const TXN_STATE: &str = "__transaction_state";
/// Liveness timers short enough for faults to show within a scenario (the harness already sets
/// broker.heartbeat.interval.ms=500 and broker.session.timeout.ms=4000).
const PROPS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("min.insync.replicas", "2"),
    ("default.replication.factor", "3"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
    ("transaction.state.log.num.partitions", "3"),
];
/// Bound on each wait for the cluster to react (an election, a restart, the ISR growing back).
const REACT: Duration = Duration::from_secs(30);
/// Bound on each transactional call and each delivery.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// `transaction.timeout.ms`: a transaction abandoned by a dead producer hangs at most this long.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(20);
/// Every scenario commits at least this many transactions, and aborts at least this many, or it
/// proves nothing.
const MIN_COMMITTED: usize = 20;
const MIN_ABORTED: usize = 3;

/// One scenario at a time: each one loads both cores and the nodes' addresses (and other test
/// processes on the machine wait too: [`MachineLock`]).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> (std::sync::MutexGuard<'static, ()>, MachineLock) {
    let here = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    (
        here,
        ok(
            "the machine's fault-test lock",
            MachineLock::acquire().map_err(Into::into),
        ),
    )
}

/// The value, or a panic naming `what` (the cluster prints its nodes' last lines as it drops).
fn ok<T>(what: &str, r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:#}"))
}

fn all_in_sync(ps: &[PartitionState]) -> bool {
    ps.len() == PARTITIONS as usize
        && ps
            .iter()
            .all(|p| p.error == 0 && p.leader > 0 && p.replicas.len() == 3 && p.isr.len() == 3)
}

fn led(ps: &[PartitionState]) -> bool {
    ps.len() == PARTITIONS as usize && ps.iter().all(|p| p.error == 0 && p.leader > 0)
}

/// Waits until every node sees every partition of the data topic and of `__transaction_state` led
/// with three in-sync replicas.
fn await_all_in_sync(cluster: &Cluster, topic: &str) {
    for t in [topic, TXN_STATE] {
        for id in cluster.ids() {
            ok(
                "every replica back in sync",
                cluster.await_partitions(id, t, REACT, "ISR of 3 everywhere", all_in_sync),
            );
        }
    }
}

/// A scenario's cluster, topic and load.
struct Scenario {
    cluster: Cluster,
    topic: String,
    writers: Vec<(String, TxnWriter)>,
    reader: CommittedRunReader,
    started: Instant,
}

/// A cluster of three with an RF=3 topic and `__transaction_state` in sync everywhere, two
/// transactional writers and a read_committed reader running, and a first few commits.
fn setup(name: &str) -> Scenario {
    let started = Instant::now();
    let cluster = Cluster::start(3, PROPS);
    let topic = unique_topic(name);
    let admin = kafka::admin(&cluster.bootstrap_all());
    let nt = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let opts = AdminOptions::new().operation_timeout(Some(kafka::OP_TIMEOUT));
    let res = futures::executor::block_on(admin.create_topics([&nt], &opts)).expect("CreateTopics");
    for r in res {
        r.unwrap_or_else(|e| panic!("create {topic}: {e:?}"));
    }
    let ids: Vec<String> = ["a", "b"].iter().map(|w| format!("{topic}-{w}")).collect();
    // The first FindCoordinator creates __transaction_state.
    ok("FindCoordinator", cluster.txn_coordinator(1, &ids[0]));
    await_all_in_sync(&cluster, &topic);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("{name}: seed {seed}");
    let writers: Vec<(String, TxnWriter)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let w = TxnWriter::start(TxnWriterOptions {
                bootstrap: cluster.bootstrap_all(),
                topic: topic.clone(),
                partitions: PARTITIONS,
                transactional_id: id.clone(),
                op_timeout: OP_TIMEOUT,
                transaction_timeout: TRANSACTION_TIMEOUT,
                seed: seed.wrapping_add(i as u64 * 0x9E37_79B9),
            });
            (id.clone(), w)
        })
        .collect();
    for id in &ids {
        eprintln!(
            "coordinator of {id}: node {:?}",
            cluster.txn_coordinator(1, id)
        );
    }
    let reader = CommittedRunReader::start(&cluster.bootstrap_all(), &topic, PARTITIONS);
    let s = Scenario {
        cluster,
        topic,
        writers,
        reader,
        started,
    };
    s.await_commits("load", 5);
    s
}

impl Scenario {
    /// Waits until every writer has committed `n` more transactions.
    fn await_commits(&self, what: &str, n: usize) {
        for (id, w) in &self.writers {
            ok(
                &format!("{what}: commits of {id}"),
                w.await_commits(n, REACT),
            );
        }
        self.phase(what);
    }

    /// Waits until the writers together have committed `n` more transactions.
    fn await_total_commits(&self, what: &str, n: usize) {
        let total = || {
            self.writers
                .iter()
                .map(|(_, w)| w.committed())
                .sum::<usize>()
        };
        let (from, until) = (total(), Instant::now() + REACT);
        while total() < from + n {
            assert!(
                Instant::now() < until,
                "{what}: {} commits in all within {REACT:?}, wanted {n}",
                total() - from
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.phase(what);
    }

    /// Waits until node `via` names another coordinator of `id` than `old`.
    fn await_coordinator_moved(&self, via: i32, id: &str, old: i32) {
        let until = Instant::now() + REACT;
        loop {
            match self.cluster.txn_coordinator(via, id) {
                Ok(c) if c != old => break,
                other => assert!(
                    Instant::now() < until,
                    "the coordinator did not move off node {old} within {REACT:?}: {other:?}"
                ),
            }
            // Leadership changes reach each node through the metadata log; only asking shows them.
            std::thread::sleep(Duration::from_millis(100));
        }
        self.phase(&format!("the coordinator of {id} moved off node {old}"));
    }

    /// Notes the end of a phase of the scenario, with the time since its start.
    fn phase(&self, what: &str) {
        eprintln!("{:>8.1?} {what}", self.started.elapsed());
    }

    fn survivor(&self, dead: i32) -> i32 {
        self.cluster
            .ids()
            .into_iter()
            .find(|&id| id != dead)
            .expect("another node")
    }

    /// Stops the load, reads every partition at read_committed after its LSO reached its high
    /// watermark, and asserts the checker finds nothing and that enough committed and aborted.
    fn finish(self) -> TxnReport {
        let Scenario {
            cluster,
            topic,
            writers,
            reader,
            started,
        } = self;
        let mut history = TxnHistory::default();
        for (_, w) in writers {
            history.txns.extend(w.stop());
        }
        history.run_reads = reader.stop();
        ok(
            "leaders before the final read",
            cluster.await_partitions(1, &topic, REACT, "a leader for every partition", led),
        );
        let reads = ok(
            "final reads",
            final_reads(&cluster.bootstrap_all(), &topic, PARTITIONS, REACT),
        );
        history.final_reads = reads.committed;
        history.log_reads = reads.log;
        history.hanging = reads.hanging;
        let report = history.check();
        eprintln!(
            "history of {topic} after {:?}:\n{report}",
            started.elapsed()
        );
        assert!(
            report.is_clean(),
            "the history of {topic} has anomalies:\n{report}"
        );
        assert!(
            report.committed >= MIN_COMMITTED
                && report.aborted >= MIN_ABORTED
                && report.aborted_in_log > 0,
            "too few transactions committed or aborted to prove anything:\n{report}"
        );
        report
    }
}

/// (a) kill -9 the leader of data partition 0 as a transaction commits: a new leader takes over (and
/// gets the markers), the transactions go on; the old leader comes back as a follower.
#[test]
fn a_killed_data_leader_leaves_transactions_all_or_nothing() {
    let _serial = serial();
    let mut s = setup("txnfaults-kill-leader");
    let old = ok("partitions", s.cluster.partitions(1, &s.topic))[0].clone();
    // Mid-commit: the markers of the transactions committing now must reach the new leader.
    ok("a commit", s.writers[0].1.await_commit_begun(REACT));
    s.cluster.kill9(old.leader);
    s.phase(&format!(
        "node {} (leader of partition 0) killed",
        old.leader
    ));
    let survivor = s.survivor(old.leader);
    ok(
        "a new leader",
        s.cluster
            .await_partitions(survivor, &s.topic, REACT, "a new leader", |ps| {
                ps[0].leader > 0 && ps[0].leader != old.leader
            }),
    );
    s.await_commits("with the leader dead", 5);
    ok("restart", s.cluster.restart(old.leader));
    s.phase("restarted");
    await_all_in_sync(&s.cluster, &s.topic);
    s.await_commits("after the restart", 5);
    s.finish();
}

/// (b) kill -9 the node coordinating the first writer's transactions the moment that writer calls
/// commit, twice: `__transaction_state` moves, the new coordinator settles what the old one left
/// (completing a commit it had prepared, aborting what was still open) and serves the next
/// transactions; the old node comes back.
#[test]
fn a_killed_transaction_coordinator_leaves_transactions_all_or_nothing() {
    let _serial = serial();
    let mut s = setup("txnfaults-kill-coordinator");
    let id = s.writers[0].0.clone();
    for round in 1..=2 {
        let coordinator = ok("FindCoordinator", s.cluster.txn_coordinator(1, &id));
        ok("a commit", s.writers[0].1.await_commit_begun(REACT));
        s.cluster.kill9(coordinator);
        s.phase(&format!(
            "round {round}: node {coordinator} (coordinator of {id}) killed mid-commit"
        ));
        let survivor = s.survivor(coordinator);
        s.await_coordinator_moved(survivor, &id, coordinator);
        s.await_commits("with the coordinator dead", 5);
        ok("restart", s.cluster.restart(coordinator));
        s.phase("restarted");
        await_all_in_sync(&s.cluster, &s.topic);
        s.await_commits("after the restart", 5);
    }
    s.finish();
}

/// (c) cut the first writer's transaction coordinator off the other nodes (the clients still reach
/// it): it cannot replicate `__transaction_state` (min ISR 2), the others take its partitions over
/// and the transactions go on through them; after healing it follows them.
#[test]
fn an_isolated_transaction_coordinator_leaves_transactions_all_or_nothing() {
    let _serial = serial();
    let s = setup("txnfaults-isolate-coordinator");
    let id = s.writers[0].0.clone();
    let coordinator = ok("FindCoordinator", s.cluster.txn_coordinator(1, &id));
    let cut = ok("isolate", s.cluster.isolate(coordinator));
    s.phase(&format!("node {coordinator} (coordinator of {id}) cut off"));
    let survivor = s.survivor(coordinator);
    s.await_coordinator_moved(survivor, &id, coordinator);
    // The cut-off node hears no metadata: it may still name itself (as a Kafka broker would).
    eprintln!(
        "coordinator of {id}: node {:?} as the cut-off node {coordinator} answers, node {:?} as node {survivor} does",
        s.cluster.txn_coordinator(coordinator, &id),
        s.cluster.txn_coordinator(survivor, &id)
    );
    // Clients that still ask the cut-off node are sent to it and stall until they give up on it,
    // so only the load as a whole must go on.
    s.await_total_commits("with the coordinator cut off", 5);
    ok("heal", cut.heal());
    await_all_in_sync(&s.cluster, &s.topic);
    s.phase("healed, in sync");
    s.await_commits("after healing", 5);
    s.finish();
}

/// (d) kill -9 the first writer's coordinator and one more node as that writer calls commit: with
/// one node of three left there is no metadata quorum and no ISR of two, so deliveries, commits and
/// aborts time out (outcomes unknown or never committed) and the writers replace their producers;
/// after both nodes restart, the new producers' InitProducerId settles what was left open, and each
/// transaction of unknown outcome is all or nothing.
#[test]
fn two_killed_nodes_leave_failed_transactions_all_or_nothing() {
    let _serial = serial();
    let mut s = setup("txnfaults-kill-two");
    let id = s.writers[0].0.clone();
    let coordinator = ok("FindCoordinator", s.cluster.txn_coordinator(1, &id));
    let p0 = ok("partitions", s.cluster.partitions(1, &s.topic))[0].clone();
    let second = if p0.leader != coordinator {
        p0.leader
    } else {
        s.survivor(coordinator)
    };
    ok("a commit", s.writers[0].1.await_commit_begun(REACT));
    s.cluster.kill9(coordinator);
    s.cluster.kill9(second);
    s.phase(&format!("nodes {coordinator} and {second} killed"));
    for (id, w) in &s.writers {
        ok(
            &format!("a failed transaction of {id}"),
            w.await_failed(1, REACT),
        );
    }
    s.phase("a transaction of each writer failed");
    ok(
        "restart both",
        s.cluster.start_nodes(&[coordinator, second]),
    );
    ok("brokers back", {
        let ids = s.cluster.ids();
        s.cluster.await_brokers(&ids, REACT)
    });
    await_all_in_sync(&s.cluster, &s.topic);
    s.await_commits("after the restart", 5);
    let report = s.finish();
    assert!(
        report.unknown + report.never_committed >= 2,
        "the outage failed no transaction:\n{report}"
    );
}

/// (e) a rolling SIGTERM restart of every node while transactions run, each node back in sync before
/// the next: every coordinator and leader hands over in a controlled shutdown.
#[test]
fn a_rolling_restart_leaves_transactions_all_or_nothing() {
    let _serial = serial();
    let mut s = setup("txnfaults-rolling");
    for id in s.cluster.ids() {
        ok("a commit", s.writers[0].1.await_commit_begun(REACT));
        let status = ok("SIGTERM", s.cluster.terminate(id, REACT));
        assert!(status.success(), "node {id} exit after SIGTERM: {status}");
        s.phase(&format!("node {id} stopped"));
        s.await_commits("with a node down", 3);
        ok("start", s.cluster.start_nodes(&[id]));
        await_all_in_sync(&s.cluster, &s.topic);
        s.phase("back in sync");
    }
    s.await_commits("after the rolling restart", 5);
    s.finish();
}
