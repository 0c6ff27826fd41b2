package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** AdminClient over consumer groups: list, describe, delete; list, alter and delete their offsets. */
class AdminGroupsTest {
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

    private static Set<String> groupIds() throws Exception {
        return admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get().stream()
                .map(GroupListing::groupId).collect(Collectors.toSet());
    }

    @Test
    void listAndDescribeAStableGroupThenDeleteItOnceEmpty() throws Exception {
        String topic = Clients.unique("admin-grp");
        Clients.createTopic(broker, topic, 2);
        String group = Clients.unique("g-admin");
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            c.subscribe(List.of(topic));
            Clients.waitUntil("assignment", () -> {
                c.poll(java.time.Duration.ofMillis(100));
                return c.assignment().size() == 2;
            });
            assertTrue(groupIds().contains(group));
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals("range", d.partitionAssignor());
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)),
                    m.assignment().topicPartitions());
            c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0)));
            ExecutionException busy = assertThrows(ExecutionException.class,
                    () -> admin.deleteConsumerGroups(List.of(group)).all().get());
            assertInstanceOf(GroupNotEmptyException.class, busy.getCause());
        }
        Clients.waitUntil("group empty", () -> {
            try {
                return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get().groupState()
                        == GroupState.EMPTY;
            } catch (Exception e) {
                return false;
            }
        });
        admin.deleteConsumerGroups(List.of(group)).all().get();
        assertFalse(groupIds().contains(group));
    }

    @Test
    void alterListAndDeleteConsumerGroupOffsets() throws Exception {
        String topic = Clients.unique("admin-offsets");
        Clients.createTopic(broker, topic, 2);
        String group = Clients.unique("g-offsets");
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(0, "m0"),
                p1, new OffsetAndMetadata(0))).all().get();
        Map<TopicPartition, OffsetAndMetadata> listed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        assertEquals(0, listed.get(p0).offset());
        assertEquals("m0", listed.get(p0).metadata());
        assertEquals(0, listed.get(p1).offset());

        admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all().get();
        listed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        assertFalse(listed.containsKey(p0) && listed.get(p0) != null, "p0's offset deleted: " + listed);
        assertEquals(0, listed.get(p1).offset());

        // A group subscribed to the topic keeps its offsets (GROUP_SUBSCRIBED_TO_TOPIC).
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            c.subscribe(List.of(topic));
            Clients.waitUntil("assignment", () -> {
                c.poll(java.time.Duration.ofMillis(100));
                return c.assignment().size() == 2;
            });
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get());
            assertInstanceOf(GroupSubscribedToTopicException.class, e.getCause());
        }
    }
}
