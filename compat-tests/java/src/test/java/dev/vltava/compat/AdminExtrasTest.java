package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeConsumerGroupsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AclOperation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Authorized operations without an authorizer, removing static members, out-of-range positions. */
class AdminExtrasTest {
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

    @Test
    void authorizedOperationsAreEverythingWithoutAnAuthorizer() throws Exception {
        String topic = Clients.unique("ops");
        Clients.createTopic(broker, topic, 1);
        Set<AclOperation> topicOps = admin.describeTopics(List.of(topic),
                new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames().get().get(topic)
                .authorizedOperations();
        assertNotNull(topicOps, "Kafka without an authorizer reports every supported operation");
        assertTrue(topicOps.containsAll(Set.of(AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE)), topicOps.toString());
        Set<AclOperation> clusterOps = admin.describeCluster(
                new DescribeClusterOptions().includeAuthorizedOperations(true)).authorizedOperations().get();
        assertNotNull(clusterOps);
        assertTrue(clusterOps.contains(AclOperation.CREATE), clusterOps.toString());
    }

    @Test
    void removeMembersFromConsumerGroupRemovesAStaticMember() throws Exception {
        String topic = Clients.unique("remove");
        Clients.createTopic(broker, topic, 1);
        String group = Clients.unique("g-remove");
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group,
                Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "to-remove",
                        ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 60_000))) {
            c.subscribe(List.of(topic));
            Clients.waitUntil("assigned", () -> {
                c.poll(Duration.ofMillis(100));
                return c.assignment().size() == 1;
            });
            var d = admin.describeConsumerGroups(List.of(group),
                    new DescribeConsumerGroupsOptions().includeAuthorizedOperations(true)).all().get().get(group);
            assertEquals("to-remove", d.members().iterator().next().groupInstanceId().orElse(null));
            assertNotNull(d.authorizedOperations());
        }
        // A closed static member stays in the group until its session expires or it is removed.
        assertEquals(1, admin.describeConsumerGroups(List.of(group)).all().get().get(group).members().size());
        admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                List.of(new MemberToRemove("to-remove")))).all().get();
        var after = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
        assertEquals(0, after.members().size());
        assertEquals(GroupState.EMPTY, after.groupState());
    }

    @Test
    void positionsOutOfRangeResetByPolicy() throws Exception {
        String topic = Clients.unique("range");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "v" + i)).get();
            }
        }
        admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).all().get();
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            c.assign(List.of(tp));
            c.seek(tp, 1); // below the log start offset: OFFSET_OUT_OF_RANGE, reset to earliest
            assertEquals(4, Clients.pollRecords(c, 1).get(0).offset());
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null,
                Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest"))) {
            c.assign(List.of(tp));
            c.seek(tp, 1000); // past the high watermark: reset to latest
            Clients.waitUntil("position reset to the end", () -> {
                c.poll(Duration.ofMillis(100));
                return c.position(tp) == 10;
            });
        }
    }
}
