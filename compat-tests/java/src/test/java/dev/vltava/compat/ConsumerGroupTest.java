package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Group subscription with the eager range and the cooperative-sticky assignors, as members come and go. */
class ConsumerGroupTest {
    private static final int PARTITIONS = 4;
    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start();
    }

    @AfterAll
    static void stop() {
        broker.close();
    }

    /** Records every partition ever revoked from a consumer. */
    static final class Revocations implements ConsumerRebalanceListener {
        final Set<TopicPartition> revoked = ConcurrentHashMap.newKeySet();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revoked.addAll(partitions);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
    }

    private static KafkaConsumer<String, String> member(String group, String assignor) {
        return Clients.consumer(broker, group, Map.of(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor));
    }

    /** Polls every consumer in turn until each holds {@code sizes[i]} partitions and together all of them. */
    private static void pollUntilAssigned(List<KafkaConsumer<String, String>> consumers, int... sizes) {
        Clients.waitUntil("assignment sizes " + java.util.Arrays.toString(sizes), () -> {
            Set<TopicPartition> all = new HashSet<>();
            boolean sized = true;
            for (int i = 0; i < consumers.size(); i++) {
                KafkaConsumer<String, String> c = consumers.get(i);
                c.poll(java.time.Duration.ofMillis(100));
                sized &= c.assignment().size() == sizes[i];
                all.addAll(c.assignment());
            }
            return sized && all.size() == PARTITIONS;
        });
    }

    private void rebalanceAsMembersComeAndGo(String assignor, boolean cooperative) {
        String topic = Clients.unique("grp-" + (cooperative ? "coop" : "range"));
        Clients.createTopic(broker, topic, PARTITIONS);
        String group = Clients.unique("g");
        Revocations firstRevoked = new Revocations();
        try (KafkaConsumer<String, String> c1 = member(group, assignor)) {
            c1.subscribe(List.of(topic), firstRevoked);
            pollUntilAssigned(List.of(c1), PARTITIONS);
            Set<TopicPartition> before = new HashSet<>(c1.assignment());
            int generation = c1.groupMetadata().generationId();
            try (KafkaConsumer<String, String> c2 = member(group, assignor)) {
                c2.subscribe(List.of(topic));
                pollUntilAssigned(List.of(c1, c2), 2, 2);
                assertTrue(c1.groupMetadata().generationId() > generation, "a new generation after the join");
                Set<TopicPartition> moved = new HashSet<>(c2.assignment());
                if (cooperative) {
                    // Incremental: only the partitions handed to c2 were ever revoked from c1.
                    assertEquals(moved, firstRevoked.revoked, "cooperative revokes only what moves");
                } else {
                    // Eager: c1 gave up everything it held before the new assignment.
                    assertEquals(before, firstRevoked.revoked, "eager revokes everything");
                }
            }
            // c2 left (LeaveGroup on close): c1 gets every partition back.
            pollUntilAssigned(List.of(c1), PARTITIONS);
        }
    }

    @Test
    void rangeAssignorRebalancesEagerlyAsASecondMemberJoinsAndLeaves() {
        rebalanceAsMembersComeAndGo(RangeAssignor.class.getName(), false);
    }

    @Test
    void cooperativeStickyAssignorRebalancesIncrementally() {
        rebalanceAsMembersComeAndGo(CooperativeStickyAssignor.class.getName(), true);
    }

    @Test
    void staticMemberRejoinsWithItsAssignmentAndNoNewGeneration() {
        String topic = Clients.unique("static");
        Clients.createTopic(broker, topic, PARTITIONS);
        String group = Clients.unique("g-static");
        Map<String, Object> cfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-a",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30_000);
        int generation;
        Set<TopicPartition> assigned;
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group, cfg)) {
            c.subscribe(List.of(topic));
            pollUntilAssigned(List.of(c), PARTITIONS);
            generation = c.groupMetadata().generationId();
            assigned = new HashSet<>(c.assignment());
            assertEquals("instance-a", c.groupMetadata().groupInstanceId().orElse(null));
        }
        // A static member does not leave on close (KIP-345): the same instance id takes its place
        // again without a rebalance, in the same generation.
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group, cfg)) {
            c.subscribe(List.of(topic));
            pollUntilAssigned(List.of(c), PARTITIONS);
            assertEquals(assigned, c.assignment());
            assertEquals(generation, c.groupMetadata().generationId(), "no rebalance for a returning static member");
        }
    }
}
