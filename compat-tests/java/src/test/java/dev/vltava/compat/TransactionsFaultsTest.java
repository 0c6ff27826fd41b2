package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Transactions under faults with the Java client (Transactions V2: EndTxn v5 bumps the epoch per
 * transaction, leaders add partitions for Produce v12 and TxnOffsetCommit v5): a 3-node cluster, a
 * topic of 3 partitions with replication factor 3 and min.insync.replicas=2, {@code
 * __transaction_state} and {@code __consumer_offsets} replicated 3 times (min ISR 2), and a
 * transactional producer ({@link TxnWorkload}) running transactions back to back over every
 * partition, every other one with a group offset, one in five aborted on purpose, while the
 * transaction coordinator's node is killed -9 mid-commit (and restarted), a partition leader that is
 * not the coordinator is killed -9 mid-commit (and restarted), or the coordinator is paused (SIGSTOP)
 * past its session timeout until another node coordinates and commits go on, then resumed, or the
 * link between the coordinator and a data partition's leader is cut (nftables) for a while.
 *
 * <p>After healing, {@link TxnHistory} checks a read_committed and a read_uncommitted read of every
 * partition from the earliest offset and the group's committed offset: committed transactions whole,
 * nothing of aborted ones, unknown ones all or nothing, no duplicates, nothing never sent, every
 * committed value in the log, the group's offset that of the last committed transaction that sent one,
 * and every partition's last stable offset at its high watermark (no transaction left open).
 * Each scenario holds the machine-wide fault-test lock ({@link MachineLock}).
 */
class TransactionsFaultsTest {
    private static final int PARTITIONS = 3;
    private static final int PER_PARTITION = 2;
    /** Bound on each wait for the cluster to react (an election, a restart, the ISR growing back). */
    private static final Duration SETTLE = Duration.ofSeconds(30);
    /** Commits wanted in each phase of a scenario: the transactions really go on. */
    private static final int STEP = 5;
    private static final String TXN_STATE = "__transaction_state";
    private static final String OFFSETS = "__consumer_offsets";
    /**
     * How long the cut of scenario (d) lasts once it has shrunk an ISR: past the workload's delivery
     * timeout (12 s) and its bound on blocking calls (10 s), so stalled transactions fail.
     */
    private static final Duration CUT = Duration.ofSeconds(13);

    /** FaultsTest's liveness timers, and the transaction and offsets topics replicated as the data. */
    private static final Map<String, String> NODE_PROPERTIES = Map.ofEntries(
            Map.entry("replica.lag.time.max.ms", "3000"),
            Map.entry("broker.session.timeout.ms", "4000"),
            Map.entry("broker.heartbeat.interval.ms", "500"),
            Map.entry("min.insync.replicas", "2"),
            Map.entry("default.replication.factor", "3"),
            Map.entry("unclean.leader.election.enable", "false"),
            Map.entry("transaction.state.log.num.partitions", "3"),
            Map.entry("transaction.state.log.replication.factor", "3"),
            Map.entry("transaction.state.log.min.isr", "2"),
            Map.entry("offsets.topic.replication.factor", "3"));

    private FaultCluster fault;
    private Cluster cluster;
    private Admin admin;
    private Instant started;
    private String scenario;

    /** On a failure, the nodes' last lines go to the test's output (target/surefire-reports). */
    @RegisterExtension
    final TestWatcher dumpLogsOnFailure = new ClusterLogsOnFailure(() -> cluster);

    @BeforeEach
    void start() {
        fault = FaultCluster.start(NODE_PROPERTIES);
        started = Instant.now();
        cluster = fault.cluster;
        admin = fault.admin;
    }

    @AfterEach
    void stop() {
        if (fault != null) {
            fault.close();
        }
    }

    /** (a) kill -9 the transaction coordinator's node mid-commit; another coordinates; it comes back. */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void killingTheCoordinatorLeavesTransactionsAllOrNothing() throws Exception {
        Load l = load("txnf-kill-coord");
        try (TxnWorkload w = l.workload) {
            int coordinator = coordinator(l.tid);
            killMidCommitAndRestart(l, coordinator, "coordinator of " + l.tid,
                    () -> awaitCoordinatorMoved(l.tid, coordinator));
        }
    }

    /** (b) kill -9 a partition leader that is not the coordinator mid-commit; it comes back. */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void killingALeaderNotTheCoordinatorLeavesTransactionsAllOrNothing() throws Exception {
        Load l = load("txnf-kill-leader");
        try (TxnWorkload w = l.workload) {
            int coordinator = coordinator(l.tid);
            List<TopicPartitionInfo> ps = partitions(l.topic);
            TopicPartitionInfo victim = ps.stream().filter(p -> p.leader().id() != coordinator).findFirst()
                    .orElseThrow(() -> new AssertionError("every partition led by the coordinator " + coordinator));
            int leader = victim.leader().id();
            killMidCommitAndRestart(l, leader,
                    "leader of partition " + victim.partition() + ", coordinator " + coordinator,
                    () -> awaitPartitions(l.topic, "partition " + victim.partition() + " led by another than " + leader,
                            all -> all.get(victim.partition()).leader() != null
                                    && all.get(victim.partition()).leader().id() > 0
                                    && all.get(victim.partition()).leader().id() != leader));
        }
    }

    /** A step of a scenario that may throw. */
    private interface Step {
        void run() throws Exception;
    }

    /**
     * kill -9 {@code node} ({@code who}) as a commit begins; once {@code takenOver} holds, commits go
     * on without it; it restarts, every replica catches up, commits go on; then the history check.
     */
    private void killMidCommitAndRestart(Load l, int node, String who, Step takenOver) throws Exception {
        TxnWorkload w = l.workload;
        w.awaitCommitBegun(SETTLE, cluster::allLogs);
        cluster.kill9(node);
        phase("node " + node + " (" + who + ") killed mid-commit");
        takenOver.run();
        w.awaitCommitted(w.committed() + STEP, SETTLE, cluster::allLogs);
        phase("committed with node " + node + " dead");
        cluster.restart(node);
        awaitAllInSync(l.topic);
        w.awaitCommitted(w.committed() + STEP, SETTLE, cluster::allLogs);
        phase("committed after its restart");
        finish(l);
    }

    /**
     * (c) SIGSTOP the coordinator's node past its session timeout, until another node coordinates and
     * commits go on; then SIGCONT: it follows again.
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void pausingTheCoordinatorPastItsSessionLeavesTransactionsAllOrNothing() throws Exception {
        Load l = load("txnf-pause-coord");
        try (TxnWorkload w = l.workload) {
            int coordinator = coordinator(l.tid);
            w.awaitCommitBegun(SETTLE, cluster::allLogs);
            cluster.pause(coordinator);
            phase("node " + coordinator + " (coordinator of " + l.tid + ") paused mid-commit");
            try {
                awaitCoordinatorMoved(l.tid, coordinator);
                w.awaitCommitted(w.committed() + STEP, SETTLE, cluster::allLogs);
                phase("committed with the coordinator paused");
            } finally {
                cluster.resume(coordinator);
            }
            awaitAllInSync(l.topic);
            w.awaitCommitted(w.committed() + STEP, SETTLE, cluster::allLogs);
            phase("committed after it resumed");
            finish(l);
        }
    }

    /**
     * (d) cut the link between the coordinator and the leader of a data partition (nftables, {@link
     * ReplicationCut}: connections from one to the other's Kafka listener dropped; the controller links
     * stay up, so nobody is fenced and no leadership moves). With the coordinator on the cut side, its
     * markers for that leader's partition and its fetches from it are dropped; with the coordinator on
     * node 1 (the clients' own address cannot be cut), the leader's adds to the coordinator (leader
     * verification) and its fetches from it are. Transactions touching both stall or fail while the
     * ISR shrinks and the cut lasts; healed, the cut side catches up and commits go on.
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void cuttingTheCoordinatorOffALeaderLeavesTransactionsAllOrNothing() throws Exception {
        Load l = load("txnf-cut-coord");
        try (TxnWorkload w = l.workload) {
            int coordinator = coordinator(l.tid);
            int leader = partitions(l.topic).stream().map(p -> p.leader().id())
                    .filter(id -> id != coordinator && (coordinator != 1 || id != 1)).findFirst()
                    .orElseThrow(() -> new AssertionError("no partition led by a node that can be cut"));
            // ReplicationCut(from, to): from's connections to to's Kafka listener are dropped.
            int from = coordinator != 1 ? coordinator : leader;
            int to = from == coordinator ? leader : coordinator;
            long committedBefore = w.committed();
            try (ReplicationCut cut = new ReplicationCut(cluster.ip(from), cluster.ip(to), cluster.kafkaPort(to))) {
                phase("node " + from + " cut off node " + to + "'s listener (coordinator " + coordinator
                        + ", leader " + leader + ")");
                // The cut acts: a partition led by `to` drops `from` from its ISR.
                awaitState("node " + from + " out of the ISR of a partition led by " + to, () -> {
                    for (String t : List.of(l.topic, TXN_STATE)) {
                        for (TopicPartitionInfo p : partitions(t)) {
                            if (p.leader() != null && p.leader().id() == to
                                    && p.isr().stream().noneMatch(n -> n.id() == from)) {
                                return null;
                            }
                        }
                    }
                    return "ISRs " + describe(partitions(l.topic)) + " " + describe(partitions(TXN_STATE));
                });
                phase("the ISR shrank; the cut holds for " + CUT + " more");
                Thread.sleep(CUT.toMillis()); // the fault's duration, not a wait for a state
            }
            phase("healed; " + (w.committed() - committedBefore) + " committed while cut, "
                    + l.history.count(TxnHistory.Outcome.UNKNOWN) + " unknown so far");
            awaitAllInSync(l.topic);
            w.awaitCommitted(w.committed() + STEP, SETTLE, cluster::allLogs);
            phase("committed after healing");
            finish(l);
        }
    }

    /** A scenario's topic, transactional id, group, history and running workload. */
    private record Load(String topic, String tid, String group, TxnHistory history, TxnWorkload workload) {}

    /** The topic, every replica in sync, the workload running and a first few commits. */
    private Load load(String name) throws Exception {
        scenario = name;
        String topic = Clients.unique(name);
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 3)
                .configs(Map.of("min.insync.replicas", "2")))).all().get(30, TimeUnit.SECONDS);
        TxnHistory h = new TxnHistory();
        String tid = topic + "-tid";
        String group = topic + "-group";
        TxnWorkload w = new TxnWorkload(h, cluster.bootstrapAll(), topic, PARTITIONS, PER_PARTITION, tid, group);
        phase("started");
        try {
            w.awaitCommitted(STEP, SETTLE, cluster::allLogs);
            awaitAllInSync(topic);
            phase("loaded, coordinator of " + tid + ": node " + coordinator(tid));
        } catch (Throwable t) {
            w.close();
            throw t;
        }
        return new Load(topic, tid, group, h, w);
    }

    /** Stops the load, reads everything back after healing and checks the history. */
    private void finish(Load l) throws Exception {
        l.workload.stop(SETTLE);
        phase("stopped");
        List<String> hanging = awaitStable(l.topic);
        List<TxnHistory.Read> committed = reads(Txn.readAll(cluster.bootstrapAll(), l.topic, PARTITIONS,
                Txn.READ_COMMITTED));
        List<TxnHistory.Read> uncommitted = reads(Txn.readAll(cluster.bootstrapAll(), l.topic, PARTITIONS,
                Txn.READ_UNCOMMITTED));
        OffsetAndMetadata o = admin.listConsumerGroupOffsets(l.group, new ListConsumerGroupOffsetsOptions()
                .requireStable(true)).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                .get(l.workload.source());
        TxnHistory.Report r = l.history.check(committed, uncommitted,
                o == null ? null : new TxnHistory.GroupOffset(o.offset(), o.metadata()), hanging);
        phase("checked");
        System.err.println(scenario + " (" + l.topic + ") after " + Duration.between(started, Instant.now())
                + ":\n" + r);
        // The evidence: every transaction on an anomaly, else those that did not end as planned.
        System.err.println((r.ok() ? "transactions of " + l.tid + " not ended as planned:\n"
                : "transactions of " + l.tid + ":\n") + l.history.transactions().stream()
                .filter(t -> !r.ok() || !(t.outcome() == TxnHistory.Outcome.COMMITTED
                        || t.outcome() == TxnHistory.Outcome.ABORTED && t.reason().equals("chosen")))
                .map(String::valueOf).collect(Collectors.joining("\n")));
        if (!r.ok() || System.getenv("VLTAVA_TXN_FAULTS_LOGS") != null) {
            System.err.println(cluster.allLogs());
        }
        assertTrue(r.ok(), "the history of " + l.topic + " has anomalies:\n" + r);
        assertTrue(r.committed >= 2 * STEP, "too few committed to prove anything:\n" + r);
        assertTrue(r.aborted + r.neverCommitted >= 1 && r.abortedInLog > 0,
                "no aborted transaction in the log to prove anything:\n" + r);
    }

    /**
     * Waits (within {@link #SETTLE}) until every partition's last stable offset reaches its high
     * watermark; returns those where it did not ("partition: LSO x < HW y"), for the checker.
     */
    private List<String> awaitStable(String topic) {
        List<TopicPartition> tps = Txn.partitions(topic, PARTITIONS);
        try (KafkaConsumer<String, String> rc = Txn.reader(cluster.bootstrapAll(), Txn.READ_COMMITTED);
                KafkaConsumer<String, String> ru = Txn.reader(cluster.bootstrapAll(), Txn.READ_UNCOMMITTED)) {
            List<String> open = new ArrayList<>();
            boolean stable = awaitState("LSO = high watermark on every partition of " + topic, () -> {
                Map<TopicPartition, Long> lso = rc.endOffsets(tps);
                Map<TopicPartition, Long> hw = ru.endOffsets(tps);
                open.clear();
                for (TopicPartition tp : tps) {
                    if (!lso.get(tp).equals(hw.get(tp))) {
                        open.add(tp.partition() + ": LSO " + lso.get(tp) + " < HW " + hw.get(tp));
                    }
                }
                return open.isEmpty() ? null : open.toString();
            }, false);
            if (!stable && open.isEmpty()) {
                open.add("the LSO and high watermarks could not be read within " + SETTLE);
            }
            return open;
        }
    }

    private static List<TxnHistory.Read> reads(List<ConsumerRecord<String, String>> records) {
        return records.stream().map(x -> new TxnHistory.Read(x.partition(), x.offset(), x.value()))
                .collect(Collectors.toList());
    }

    private void phase(String what) {
        System.err.printf("%s %6.1fs %s%n", scenario,
                Duration.between(started, Instant.now()).toMillis() / 1000.0, what);
    }

    private int coordinator(String tid) throws Exception {
        return admin.describeTransactions(List.of(tid)).description(tid).get(15, TimeUnit.SECONDS).coordinatorId();
    }

    /** Waits until the transaction's coordinator, as the cluster answers, is another node than {@code old}. */
    private void awaitCoordinatorMoved(String tid, int old) {
        awaitState("the coordinator of " + tid + " off node " + old, () -> {
            int now = coordinator(tid);
            return now != old ? null : "still node " + now;
        });
        phase("the coordinator of " + tid + " moved off node " + old);
    }

    /** Every partition of the topic, {@code __transaction_state} and {@code __consumer_offsets} led, 3 in sync. */
    private void awaitAllInSync(String topic) {
        for (String t : List.of(topic, TXN_STATE, OFFSETS)) {
            awaitPartitions(t, "3 in sync", ps -> ps.stream().allMatch(
                    p -> p.leader() != null && p.leader().id() > 0 && p.isr().size() == 3));
        }
        phase("all in sync");
    }

    private List<TopicPartitionInfo> partitions(String topic) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS).get(topic);
        return d.partitions();
    }

    private void awaitPartitions(String topic, String what, Predicate<List<TopicPartitionInfo>> ok) {
        awaitState(what + " of " + topic, () -> {
            List<TopicPartitionInfo> ps = partitions(topic);
            return ok.test(ps) ? null : describe(ps);
        });
    }

    /** A question to the cluster: null when the wanted state holds, else what it is now. */
    private interface Probe {
        String ask() throws Exception;
    }

    /** Asks {@code probe} until the state holds, within {@link #SETTLE}, or fails. */
    private void awaitState(String what, Probe probe) {
        awaitState(what, probe, true);
    }

    /**
     * Asks {@code probe} until the state holds (true), within {@link #SETTLE}; then fails, or returns
     * false if not {@code fail}.
     */
    private boolean awaitState(String what, Probe probe, boolean fail) {
        Instant end = Instant.now().plus(SETTLE);
        Object last;
        while (true) {
            try {
                last = probe.ask();
                if (last == null) {
                    return true;
                }
            } catch (Exception e) {
                last = e;
            }
            if (Instant.now().isAfter(end)) {
                if (!fail) {
                    System.err.println("timed out after " + SETTLE + " waiting for " + what + "; last: " + last);
                    return false;
                }
                throw new AssertionError("timed out after " + SETTLE + " waiting for " + what + "; last: " + last
                        + "\n" + cluster.allLogs());
            }
            try {
                Thread.sleep(200); // back-off between questions to the cluster, not a synchronisation
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what);
            }
        }
    }

    private static String describe(List<TopicPartitionInfo> ps) {
        Map<Integer, String> m = new HashMap<>();
        for (TopicPartitionInfo p : ps) {
            m.put(p.partition(), "leader " + (p.leader() == null ? "none" : p.leader().id()) + " isr "
                    + p.isr().stream().map(Node::id).collect(Collectors.toList()));
        }
        return m.toString();
    }
}
