package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** What the coordinator refuses, with the exceptions the Java client maps Kafka's codes to. */
class GroupFencingTest {
    private static Broker broker;
    private static Admin admin;

    @BeforeAll
    static void start() {
        broker = Broker.start();
        admin = Clients.admin(broker);
    }

    @AfterAll
    static void stop() {
        admin.close();
        broker.close();
    }

    private static void pollUntilAssigned(KafkaConsumer<String, String> c, int n) {
        Clients.waitUntil(n + " partitions assigned", () -> {
            c.poll(Duration.ofMillis(100));
            return c.assignment().size() == n;
        });
    }

    @Test
    void aSecondStaticMemberWithTheSameInstanceIdFencesTheFirst() {
        String topic = Clients.unique("fence");
        Clients.createTopic(broker, topic, 1);
        String group = Clients.unique("g-fence");
        Map<String, Object> cfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "same-instance",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30_000);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> first = Clients.consumer(broker, group, cfg)) {
            first.subscribe(List.of(topic));
            pollUntilAssigned(first, 1);
            try (KafkaConsumer<String, String> second = Clients.consumer(broker, group, cfg)) {
                second.subscribe(List.of(topic));
                pollUntilAssigned(second, 1);
                // The first member's id was replaced: its next commit (or heartbeat) is FENCED_INSTANCE_ID.
                KafkaException e = assertThrows(KafkaException.class, () -> {
                    for (int i = 0; i < 600; i++) {
                        first.commitSync(Map.of(tp, new OffsetAndMetadata(0)));
                        first.poll(Duration.ofMillis(100));
                    }
                });
                assertInstanceOf(FencedInstanceIdException.class, e, e.toString());
                second.commitSync(Map.of(tp, new OffsetAndMetadata(0)));
            }
        }
    }

    @Test
    void adminCannotCommitForAGroupWithMembers() throws Exception {
        String topic = Clients.unique("busy");
        Clients.createTopic(broker, topic, 1);
        String group = Clients.unique("g-busy");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            c.subscribe(List.of(topic));
            pollUntilAssigned(c, 1);
            // Kafka: an offset commit from outside the group (no member id) to a non-empty group
            // is UNKNOWN_MEMBER_ID.
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.alterConsumerGroupOffsets(group, Map.of(tp, new OffsetAndMetadata(0))).all().get());
            assertInstanceOf(UnknownMemberIdException.class, e.getCause(), e.toString());
        }
        admin.alterConsumerGroupOffsets(group, Map.of(tp, new OffsetAndMetadata(0))).all().get();
        assertEquals(0, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(tp).offset());
    }

    @Test
    void unknownGroupsAreGroupIdNotFound() {
        String group = Clients.unique("g-none");
        ExecutionException d = assertThrows(ExecutionException.class,
                () -> admin.describeConsumerGroups(List.of(group)).all().get());
        assertInstanceOf(GroupIdNotFoundException.class, d.getCause(), d.toString());
        ExecutionException del = assertThrows(ExecutionException.class,
                () -> admin.deleteConsumerGroups(List.of(group)).all().get());
        assertInstanceOf(GroupIdNotFoundException.class, del.getCause(), del.toString());
    }
}
