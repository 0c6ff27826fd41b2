package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * The Java client against a 3-node vltava cluster: the cluster as the admin client describes it
 * through each node, topics spread over the brokers, an idempotent producer and a consumer group
 * bootstrapped on different nodes, and a kill -9 of the controller (re-election, metadata writes
 * through a survivor, and the killed node's partitions readable and writable again after its restart).
 */
class ClusterTest {
    /** Elections, session timeouts and restarts on a loaded 2-core machine. */
    private static final Duration SETTLE = Duration.ofSeconds(45);
    private static final int PARTITIONS = 6;

    private Cluster cluster;

    /** On a failure, the nodes' last lines go to the test's output (target/surefire-reports). */
    @RegisterExtension
    final TestWatcher dumpLogsOnFailure = new ClusterLogsOnFailure(() -> cluster);

    @BeforeEach
    void start() {
        cluster = Cluster.start(3);
    }

    @AfterEach
    void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** The cluster as one describeCluster call shows it. */
    private record View(Set<Integer> nodes, int controller, String clusterId) {}

    private static View view(Admin admin) throws Exception {
        DescribeClusterResult r = admin.describeCluster();
        Set<Integer> nodes = r.nodes().get(10, TimeUnit.SECONDS).stream()
                .map(Node::id).collect(Collectors.toCollection(TreeSet::new));
        Node controller = r.controller().get(10, TimeUnit.SECONDS);
        return new View(nodes, controller == null ? -1 : controller.id(), r.clusterId().get(10, TimeUnit.SECONDS));
    }

    /**
     * Asks {@code probe} until it returns a value (null or an exception: not yet), for at most
     * {@code timeout}. For states other processes reach through their own timers (elections,
     * sessions), which a client can only observe by asking.
     */
    private <T> T await(String what, Duration timeout, Supplier<T> probe) {
        Instant end = Instant.now().plus(timeout);
        Object last = null;
        while (true) {
            try {
                T v = probe.get();
                if (v != null) {
                    return v;
                }
            } catch (RuntimeException e) {
                last = e;
            }
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what
                        + (last == null ? "" : "; last error: " + last) + "\n" + cluster.allLogs());
            }
            try {
                Thread.sleep(100); // back-off between questions to the cluster, not a synchronisation
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what);
            }
        }
    }

    private View awaitView(Admin admin, String what, java.util.function.Predicate<View> ok) {
        return await(what, SETTLE, () -> {
            try {
                View v = view(admin);
                return ok.test(v) ? v : null;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
    }

    /** partition -> leader, once every partition of {@code topic} has a leader. */
    private Map<Integer, Integer> awaitLeaders(Admin admin, String topic) {
        return await("leaders of " + topic, SETTLE, () -> {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(10, TimeUnit.SECONDS).get(topic);
                Map<Integer, Integer> leaders = new TreeMap<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    if (p.leader() == null || p.leader().id() < 0) {
                        return null;
                    }
                    leaders.put(p.partition(), p.leader().id());
                }
                return leaders.size() == PARTITIONS ? leaders : null;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
    }

    private static Map<String, Object> idempotent() {
        return Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.LINGER_MS_CONFIG, 5);
    }

    @Test
    void describesTheClusterSpreadsATopicAndCarriesRecordsAcrossNodes() throws Exception {
        // The same cluster through each bootstrap node: three brokers, a controller among them.
        List<View> views = new ArrayList<>();
        for (int id : cluster.ids()) {
            try (Admin admin = Clients.admin(cluster.bootstrap(id))) {
                views.add(awaitView(admin, "three brokers and a controller via node " + id,
                        v -> v.nodes().size() == 3 && v.nodes().contains(v.controller())));
            }
        }
        assertEquals(Set.of(1, 2, 3), views.get(0).nodes());
        // Vltava names the metadata quorum's leader as the controller, so every node names the same one.
        // (A Kafka KRaft broker names a random unfenced broker instead: KafkaApis uses
        // getRandomAliveBrokerId, since clients reach the controller only through forwarding.)
        for (View v : views) {
            assertEquals(views.get(0), v, "every node describes the same cluster: " + views);
        }
        assertEquals(22, views.get(0).clusterId().length(), "a base64 cluster id, as Kafka's");

        // A topic created through node 2 has leaders on all three brokers, as node 3 describes it.
        String topic = Clients.unique("cluster");
        try (Admin admin = Clients.admin(cluster.bootstrap(2))) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
        Map<Integer, Integer> leaders;
        try (Admin admin = Clients.admin(cluster.bootstrap(3))) {
            leaders = awaitLeaders(admin, topic);
        }
        assertEquals(Set.of(1, 2, 3), new TreeSet<>(leaders.values()), "leaders " + leaders);

        // 600 keyed records through a producer bootstrapped on node 1 only: each goes to its leader.
        Map<String, RecordMetadata> acked = new HashMap<>();
        try (KafkaProducer<String, String> p = Clients.producer(cluster.bootstrap(1), idempotent())) {
            Map<String, Future<RecordMetadata>> sent = new HashMap<>();
            for (int i = 0; i < 600; i++) {
                sent.put("v" + i, p.send(new ProducerRecord<>(topic, "key-" + i, "v" + i)));
            }
            for (Map.Entry<String, Future<RecordMetadata>> e : sent.entrySet()) {
                acked.put(e.getKey(), e.getValue().get(60, TimeUnit.SECONDS));
            }
        }
        assertEquals(PARTITIONS, acked.values().stream().map(RecordMetadata::partition).distinct().count(),
                "keys spread over every partition");

        // A group bootstrapped on node 3 reads every acknowledged record exactly once, where it was acked.
        Map<String, Integer> reads = new HashMap<>();
        try (KafkaConsumer<String, String> c = Clients.consumer(cluster.bootstrap(3), Clients.unique("g-cluster"),
                Map.of(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000))) {
            c.subscribe(List.of(topic));
            Set<TopicPartition> all = leaders.keySet().stream()
                    .map(i -> new TopicPartition(topic, i)).collect(Collectors.toSet());
            Instant end = Instant.now().plus(Clients.DEADLINE);
            while (reads.size() < acked.size()) {
                assertTrue(Instant.now().isBefore(end), "read " + reads.size() + " of " + acked.size()
                        + " within " + Clients.DEADLINE + "\n" + cluster.allLogs());
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    RecordMetadata m = acked.get(r.value());
                    assertTrue(m != null, "read a value nobody sent: " + r);
                    assertEquals(m.partition() + "@" + m.offset(), r.partition() + "@" + r.offset(),
                            "read " + r.value() + " where it was acknowledged");
                    reads.merge(r.value(), 1, Integer::sum);
                }
            }
            assertEquals(all, c.assignment(), "the only member has every partition");
            // Nothing more: the positions are at the end of every partition.
            Map<TopicPartition, Long> ends = c.endOffsets(all, Duration.ofSeconds(30));
            for (TopicPartition tp : all) {
                assertEquals(ends.get(tp), c.position(tp, Duration.ofSeconds(30)), "position of " + tp);
            }
        }
        Map<String, Integer> twice = reads.entrySet().stream().filter(e -> e.getValue() != 1)
                .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
        assertEquals(Map.of(), twice, "values read more than once");
    }

    /** Sends {@code n} records to every partition, valued "p{partition}-{phase}{i}". */
    private static Map<String, Future<RecordMetadata>> sendToEvery(KafkaProducer<String, String> p, String topic,
            String phase, int n) {
        Map<String, Future<RecordMetadata>> sent = new TreeMap<>();
        for (int part = 0; part < PARTITIONS; part++) {
            for (int i = 0; i < n; i++) {
                String v = "p" + part + "-" + phase + i;
                sent.put(v, p.send(new ProducerRecord<>(topic, part, v, v)));
            }
        }
        return sent;
    }

    private static int partitionOf(String value) {
        return Integer.parseInt(value.substring(1, value.indexOf('-')));
    }

    /** Polls {@code c} until every value of {@code expected} arrived; fails on one read twice or unknown. */
    private void readExactly(KafkaConsumer<String, String> c, Set<String> expected, Set<String> seen, String what) {
        Instant end = Instant.now().plus(Clients.DEADLINE);
        while (!seen.containsAll(expected)) {
            assertTrue(Instant.now().isBefore(end), what + ": missing "
                    + expected.stream().filter(v -> !seen.contains(v)).collect(Collectors.toList())
                    + "\n" + cluster.allLogs());
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                assertTrue(expected.contains(r.value()), what + ": unexpected " + r);
                assertTrue(seen.add(r.value()), what + ": read twice " + r);
                assertEquals(partitionOf(r.value()), r.partition(), "partition of " + r);
            }
        }
    }

    @Test
    void killingTheControllerElectsAnotherAndItsPartitionsComeBackWithTheNode() throws Exception {
        int controller;
        try (Admin admin = Clients.admin(cluster.bootstrapAll())) {
            controller = awaitView(admin, "a controller", v -> v.nodes().size() == 3
                    && v.nodes().contains(v.controller())).controller();
        }
        List<Integer> survivors = cluster.ids().stream().filter(id -> id != controller).collect(Collectors.toList());
        String topic = Clients.unique("failover");
        Map<Integer, Integer> leaders;
        try (Admin admin = Clients.admin(cluster.bootstrap(survivors.get(0)))) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
            leaders = awaitLeaders(admin, topic);
        }
        Set<Integer> onController = leaders.entrySet().stream().filter(e -> e.getValue() == controller)
                .map(Map.Entry::getKey).collect(Collectors.toSet());
        assertFalse(onController.isEmpty(), "the controller leads some partitions: " + leaders);

        Map<String, Object> producerConfig = new HashMap<>(idempotent());
        // The killed node's partitions wait for its return: deliveries must outlast the outage.
        producerConfig.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 180_000);
        producerConfig.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        Set<String> seen = new TreeSet<>();
        try (KafkaProducer<String, String> p = Clients.producer(cluster.bootstrap(survivors.get(0)), producerConfig);
                KafkaConsumer<String, String> c = Clients.consumer(cluster.bootstrap(survivors.get(1)),
                        Clients.unique("g-failover"), Map.of())) {
            Map<String, Future<RecordMetadata>> before = sendToEvery(p, topic, "a", 20);
            for (Future<RecordMetadata> f : before.values()) {
                f.get(60, TimeUnit.SECONDS);
            }
            c.subscribe(List.of(topic));
            readExactly(c, before.keySet(), seen, "before the kill");
            c.commitSync(Duration.ofSeconds(30));

            cluster.kill9(controller);
            Instant killed = Instant.now();
            try (Admin admin = Clients.admin(cluster.bootstrap(survivors.get(0)))) {
                View v = awaitView(admin, "a new controller", x -> x.controller() > 0 && x.controller() != controller);
                assertTrue(survivors.contains(v.controller()), "the new controller is a survivor: " + v);
            }
            Duration election = Duration.between(killed, Instant.now());
            try (Admin admin = Clients.admin(cluster.bootstrap(survivors.get(1)))) {
                admin.createTopics(List.of(new NewTopic(Clients.unique("after-kill"), 3, (short) 1)))
                        .all().get(30, TimeUnit.SECONDS);
            }

            // While the node is down its partitions take no writes; the others do.
            Map<String, Future<RecordMetadata>> during = sendToEvery(p, topic, "b", 20);
            Set<String> duringElsewhere = during.keySet().stream()
                    .filter(v -> !onController.contains(partitionOf(v))).collect(Collectors.toSet());
            for (String v : duringElsewhere) {
                during.get(v).get(60, TimeUnit.SECONDS);
            }
            for (Map.Entry<String, Future<RecordMetadata>> e : during.entrySet()) {
                if (onController.contains(partitionOf(e.getKey()))) {
                    assertFalse(e.getValue().isDone(), e.getKey() + " acknowledged while its leader was down");
                }
            }
            readExactly(c, duringElsewhere, seen, "while node " + controller + " is down");

            cluster.restart(controller);
            try (Admin admin = Clients.admin(cluster.bootstrap(survivors.get(1)))) {
                awaitView(admin, "three brokers again", x -> x.nodes().size() == 3 && x.nodes().contains(x.controller()));
            }
            for (Future<RecordMetadata> f : during.values()) {
                f.get(120, TimeUnit.SECONDS);
            }
            Map<String, Future<RecordMetadata>> after = sendToEvery(p, topic, "c", 20);
            for (Future<RecordMetadata> f : after.values()) {
                f.get(60, TimeUnit.SECONDS);
            }
            Set<String> rest = new TreeSet<>(during.keySet());
            rest.addAll(after.keySet());
            readExactly(c, rest, seen, "after the restart");
            c.commitSync(Duration.ofSeconds(30));
            System.err.println("controller " + controller + " killed; new controller in " + election);
        }

        // The restarted node serves all its data again: every partition, from the beginning, through it.
        try (KafkaConsumer<String, String> c = Clients.consumer(cluster.bootstrap(controller), null, Map.of())) {
            List<TopicPartition> all = leaders.keySet().stream()
                    .map(i -> new TopicPartition(topic, i)).collect(Collectors.toList());
            c.assign(all);
            c.seekToBeginning(all);
            Set<String> again = new TreeSet<>();
            readExactly(c, seen, again, "from the beginning");
            assertEquals(seen, again);
        }
        assertEquals(PARTITIONS * 60, seen.size());
        // A graceful stop of the restarted node ends cleanly.
        assertEquals(0, cluster.terminate(controller), "exit status after SIGTERM\n" + cluster.logs(controller));
    }
}
