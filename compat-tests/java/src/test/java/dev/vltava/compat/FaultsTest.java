package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.NotEnoughReplicasException;
import org.apache.kafka.common.errors.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Issue 12's fault scenarios with the Java client: a 3-node cluster, a topic of one partition with
 * replication factor 3 and min.insync.replicas=2, an idempotent acks=all producer streaming unique
 * values, a read_uncommitted consumer reading along, and faults on the partition's replicas (kill -9,
 * SIGSTOP past the session timeout, rolling SIGTERM, kill -9 of all, losing one follower then the
 * other's link, losing both followers). After healing a
 * full read from the earliest offset is checked by {@link History}: nothing acknowledged lost, no
 * duplicates, no offset with two values, every value where it was acknowledged. Each scenario holds
 * the machine-wide fault-test lock ({@link MachineLock}), as the other fault suites do.
 */
class FaultsTest {
    /** Elections, session timeouts, restarts and catch-up on a loaded 2-core machine. */
    private static final Duration SETTLE = Duration.ofSeconds(30);
    /** Acknowledgements wanted between two faults: the stream really goes on. */
    private static final int STEP = 200;

    /** Liveness timers short enough for a bounded test (keys of Kafka's broker config). */
    private static final Map<String, String> NODE_PROPERTIES = Map.of(
            "replica.lag.time.max.ms", "3000",
            "broker.session.timeout.ms", "4000",
            "broker.heartbeat.interval.ms", "500",
            "min.insync.replicas", "2",
            "default.replication.factor", "3",
            "unclean.leader.election.enable", "false");

    private Cluster cluster;
    private Admin admin;
    private FaultCluster fault;

    /** On a failure, the nodes' last lines go to the test's output (target/surefire-reports). */
    @RegisterExtension
    final TestWatcher dumpLogsOnFailure = new ClusterLogsOnFailure(() -> cluster);

    @BeforeEach
    void start() {
        fault = FaultCluster.start(NODE_PROPERTIES);
        cluster = fault.cluster;
        admin = fault.admin;
    }

    @AfterEach
    void stop() {
        if (fault != null) {
            fault.close();
        }
    }

    /** Kill -9 the leader under the stream: a follower takes over, the old leader rejoins. */
    @Test
    void killingTheLeaderLosesNothingAcknowledged() throws Exception {
        String topic = createTopic("kill-leader");
        int leader = awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3).leader().id();
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP, SETTLE, cluster::allLogs);
            cluster.kill9(leader);
            awaitPartition(topic, "a leader other than " + leader, p -> p.leader().id() != leader);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            cluster.restart(leader);
            awaitPartition(topic, "3 in sync after " + leader + " returned", p -> p.isr().size() == 3);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            w.stop(Duration.ofSeconds(20));
        }
        verify(h, topic, 3 * STEP);
    }

    /** SIGSTOP the leader past its session timeout: another leads; after SIGCONT the old one follows. */
    @Test
    void pausingTheLeaderPastItsSessionLosesNothingAcknowledged() throws Exception {
        String topic = createTopic("pause-leader");
        int leader = awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3).leader().id();
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP, SETTLE, cluster::allLogs);
            cluster.pause(leader);
            try {
                awaitPartition(topic, "a leader other than the paused " + leader, p -> p.leader().id() != leader);
                w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            } finally {
                cluster.resume(leader);
            }
            awaitPartition(topic, "3 in sync after " + leader + " resumed", p -> p.isr().size() == 3);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            w.stop(Duration.ofSeconds(20));
        }
        verify(h, topic, 3 * STEP);
    }

    /** SIGTERM and restart each node in turn under the stream. */
    @Test
    void aRollingRestartLosesNothingAcknowledged() throws Exception {
        String topic = createTopic("rolling");
        awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3);
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP / 2, SETTLE, cluster::allLogs);
            for (int id : cluster.ids()) {
                assertEquals(0, cluster.terminate(id), "exit status of node " + id + " after SIGTERM\n"
                        + cluster.logs(id));
                w.awaitAcked(w.acked() + STEP / 2, SETTLE, cluster::allLogs);
                cluster.startNodes(List.of(id));
                awaitPartition(topic, "3 in sync after node " + id + " restarted", p -> p.isr().size() == 3);
                w.awaitAcked(w.acked() + STEP / 2, SETTLE, cluster::allLogs);
            }
            w.stop(Duration.ofSeconds(20));
        }
        verify(h, topic, 7 * STEP / 2);
    }

    /** Kill -9 all three nodes under the stream and start them again: every acknowledged value is back. */
    @Test
    void killingEveryNodeLosesNothingAcknowledged() throws Exception {
        String topic = createTopic("kill-all");
        awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3);
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP, SETTLE, cluster::allLogs);
            for (int id : cluster.ids()) {
                cluster.kill9(id);
            }
            cluster.startNodes(cluster.ids());
            awaitPartition(topic, "3 in sync after the restart of all", p -> p.isr().size() == 3);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            w.stop(Duration.ofSeconds(20));
        }
        verify(h, topic, 2 * STEP);
    }

    /**
     * One follower killed: the stream goes on with 2 in sync. The other follower cut off the leader's
     * listener (nftables; killing it too would take the metadata quorum of 3 combined nodes with it,
     * and every ISR change, as in Kafka: see the next test): the ISR shrinks to the leader, acks=all
     * gets NOT_ENOUGH_REPLICAS and nothing more is acknowledged. Healed and restarted: 3 in sync.
     */
    @Test
    void withOneFollowerDeadAndTheOtherCutOffAcksStopWithNotEnoughReplicas() throws Exception {
        String topic = createTopic("followers");
        int leader = awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3).leader().id();
        List<Integer> followers = cluster.ids().stream().filter(id -> id != leader).collect(Collectors.toList());
        // The clients connect from 127.0.0.1: node 1 cannot be the one cut off.
        int cut = followers.stream().filter(id -> id != 1).findFirst().orElseThrow();
        int dead = followers.stream().filter(id -> id != cut).findFirst().orElseThrow();
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP, SETTLE, cluster::allLogs);
            cluster.kill9(dead);
            awaitPartition(topic, "2 in sync without " + dead, p -> p.isr().size() == 2);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);

            try (ReplicationCut c = new ReplicationCut(cluster.ip(cut), cluster.ip(leader), cluster.kafkaPort(leader))) {
                Throwable refused = probe(h, topic, e -> e instanceof NotEnoughReplicasException);
                assertEquals(NotEnoughReplicasException.class, refused.getClass(), "probe error " + refused);
                awaitPartition(topic, "only the leader in sync", p -> p.isr().size() == 1);
                awaitNoAcksWhileSendsFail(w, h, "1 of 3 in sync");
            }
            cluster.startNodes(List.of(dead));
            awaitPartition(topic, "3 in sync after the cut healed and " + dead + " returned", p -> p.isr().size() == 3);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            w.stop(Duration.ofSeconds(20));
        }
        History.Report r = verify(h, topic, 3 * STEP);
        assertTrue(r.failed() > 0, "sends failed while 1 of 3 was in sync");
    }

    /**
     * Both followers killed: the metadata quorum goes with them, so the ISR cannot shrink and the
     * leader, still in place, never acknowledges with acks=all (the writes time out), as in Kafka.
     * Both back: 3 in sync, and the stream goes on.
     */
    @Test
    void killingBothFollowersAcknowledgesNothingUntilTheyReturn() throws Exception {
        String topic = createTopic("two-followers");
        int leader = awaitPartition(topic, "a leader and 3 in sync", p -> p.isr().size() == 3).leader().id();
        List<Integer> followers = cluster.ids().stream().filter(id -> id != leader).collect(Collectors.toList());
        History h = new History();
        try (Workload w = stream(h, topic)) {
            w.awaitAcked(STEP, SETTLE, cluster::allLogs);
            for (int id : followers) {
                cluster.kill9(id);
            }
            Throwable refused = probe(h, topic, e -> true);
            assertTrue(refused instanceof TimeoutException || refused instanceof NotEnoughReplicasException,
                    "probe error " + refused);
            awaitNoAcksWhileSendsFail(w, h, "both followers dead");
            cluster.startNodes(followers);
            awaitPartition(topic, "3 in sync after both followers returned", p -> p.isr().size() == 3);
            w.awaitAcked(w.acked() + STEP, SETTLE, cluster::allLogs);
            w.stop(Duration.ofSeconds(20));
        }
        History.Report r = verify(h, topic, 2 * STEP);
        assertTrue(r.failed() > 0, "sends failed while both followers were dead");
    }

    /**
     * Waits for a send of the stream to fail (its delivery timeout passes) and asserts that nothing
     * was acknowledged meanwhile and that every failure so far was a timeout or NOT_ENOUGH_REPLICAS.
     */
    private void awaitNoAcksWhileSendsFail(Workload w, History h, String state) throws InterruptedException {
        long acked = w.acked();
        long failed = h.count(History.Outcome.FAILED);
        Instant end = Instant.now().plus(SETTLE);
        while (h.count(History.Outcome.FAILED) == failed) {
            assertTrue(Instant.now().isBefore(end), "no send failed with " + state + ": " + h.errors());
            Thread.sleep(100); // back-off between checks of a real condition
        }
        assertEquals(acked, w.acked(), "acknowledged with " + state + ", min.insync.replicas=2");
        for (String error : h.errors().keySet()) {
            assertTrue(error.matches("(TimeoutException|NotEnoughReplicas(AfterAppend)?Exception)(<-.*)?"),
                    "errors with " + state + ": " + h.errors());
        }
    }

    private String createTopic(String prefix) throws Exception {
        String topic = Clients.unique(prefix);
        admin.createTopics(List.of(new NewTopic(topic, 1, (short) 3)
                .configs(Map.of("min.insync.replicas", "2")))).all().get(30, TimeUnit.SECONDS);
        return topic;
    }

    /** The idempotent acks=all stream, with delivery bounded so an outage turns into failed sends. */
    private Workload stream(History h, String topic) {
        Map<String, Object> config = new HashMap<>();
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 4_000);
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 12_000);
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10_000);
        config.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 100);
        config.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 1_000);
        KafkaProducer<String, String> p = Clients.producer(cluster.bootstrapAll(), config);
        return new Workload(h, topic, "v", p, 100, Duration.ofMillis(4), cluster.bootstrapAll());
    }

    /**
     * Sends one record at a time through a producer that does not retry, until one fails with an
     * error {@code wanted} accepts (e.g. NOT_ENOUGH_REPLICAS once the leader has dropped its lost
     * followers from the ISR); returns that error. The probes go into {@code h} like the stream's sends.
     */
    private Throwable probe(History h, String topic, Predicate<Throwable> wanted) throws Exception {
        Map<String, Object> config = Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.RETRIES_CONFIG, 0,
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 4_000,
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 5_000,
                ProducerConfig.LINGER_MS_CONFIG, 0);
        Instant end = Instant.now().plus(SETTLE);
        Throwable last = null;
        try (KafkaProducer<String, String> p = Clients.producer(cluster.bootstrapAll(), config)) {
            for (int i = 0; Instant.now().isBefore(end); i++) {
                String value = "probe-" + i;
                h.sent(value);
                try {
                    RecordMetadata m = p.send(new ProducerRecord<>(topic, value, value)).get(10, TimeUnit.SECONDS);
                    h.acked(value, m.partition(), m.offset());
                    last = null; // acknowledged: the ISR has not shrunk yet
                } catch (ExecutionException e) {
                    last = e.getCause();
                    h.failed(value, last);
                    if (wanted.test(last)) {
                        return last;
                    }
                }
                Thread.sleep(200); // back-off between probes of a state the leader reaches by its own timer
            }
        }
        throw new AssertionError("no wanted probe error within " + SETTLE + "; last probe: "
                + (last == null ? "acknowledged" : last) + "\n" + cluster.allLogs());
    }

    /** Partition 0 of {@code topic} once it has a leader and {@code ok} holds, within {@link #SETTLE}. */
    private TopicPartitionInfo awaitPartition(String topic, String what, Predicate<TopicPartitionInfo> ok) {
        Instant end = Instant.now().plus(SETTLE);
        Object last = null;
        while (true) {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(10, TimeUnit.SECONDS).get(topic);
                TopicPartitionInfo p = d.partitions().get(0);
                last = describe(p);
                if (p.leader() != null && p.leader().id() >= 0 && ok.test(p)) {
                    return p;
                }
            } catch (Exception e) {
                last = e;
            }
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("timed out after " + SETTLE + " waiting for " + what + " of " + topic
                        + "; last: " + last + "\n" + cluster.allLogs());
            }
            try {
                Thread.sleep(200); // back-off between questions to the cluster, not a synchronisation
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what);
            }
        }
    }

    private static String describe(TopicPartitionInfo p) {
        return "leader " + (p.leader() == null ? "none" : p.leader().id()) + ", replicas "
                + p.replicas().stream().map(Node::id).collect(Collectors.toList()) + ", isr "
                + p.isr().stream().map(Node::id).collect(Collectors.toList());
    }

    /**
     * The final read through every node and the checks: at least {@code minAcked} acknowledged, and
     * no acknowledged value lost, duplicated, moved, or sharing its offset.
     */
    private History.Report verify(History h, String topic, int minAcked) {
        Workload.readAll(h, cluster.bootstrapAll(), topic, SETTLE);
        History.Report r = h.check();
        System.err.println(topic + ": " + r);
        assertTrue(r.acked() >= minAcked, "acknowledged " + r.acked() + " < " + minAcked + "\n" + r);
        assertEquals(0, r.lost().size(), "lost\n" + r);
        assertEquals(0, r.duplicates().size(), "duplicates\n" + r);
        assertEquals(0, r.inconsistent().size(), "inconsistent\n" + r);
        assertEquals(0, r.wrongOffset().size(), "wrong offset\n" + r);
        assertEquals(0, r.neverSent().size(), "never sent\n" + r);
        assertEquals(0, r.vanished().size(), "vanished\n" + r);
        assertEquals(0, r.nonMonotonic().size(), "the live reader went back or skipped\n" + r);
        assertTrue(r.ok(), r.toString());
        assertNotEquals(0, r.finalReads());
        return r;
    }
}
