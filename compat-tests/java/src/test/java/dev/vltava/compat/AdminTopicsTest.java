package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** AdminClient: the cluster, topics, their partitions and configs (topic and broker). */
class AdminTopicsTest {
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
    void describeClusterNamesThisBrokerAsController() throws Exception {
        DescribeClusterResult r = admin.describeCluster();
        Collection<Node> nodes = r.nodes().get();
        assertEquals(1, nodes.size());
        Node node = nodes.iterator().next();
        assertEquals(broker.bootstrap(), node.host() + ":" + node.port());
        assertEquals(node.id(), r.controller().get().id());
        assertNotNull(r.clusterId().get());
        assertFalse(r.clusterId().get().isEmpty());
    }

    @Test
    void createTopicWithConfigsDescribeItAndDeleteIt() throws Exception {
        String topic = Clients.unique("admin-topic");
        NewTopic nt = new NewTopic(topic, 3, (short) 1)
                .configs(Map.of("retention.ms", "3600000", "cleanup.policy", "compact"));
        admin.createTopics(List.of(nt)).all().get();
        ExecutionException dup = assertThrows(ExecutionException.class,
                () -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get());
        assertInstanceOf(TopicExistsException.class, dup.getCause());

        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        assertEquals(3, d.partitions().size());
        assertNotNull(d.topicId());

        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        assertEquals("3600000", cfg.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source());
        assertEquals("compact", cfg.get("cleanup.policy").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, cfg.get("segment.bytes").source());

        admin.deleteTopics(List.of(topic)).all().get();
        Clients.waitUntil("topic " + topic + " gone", () -> {
            try {
                return !admin.listTopics().names().get().contains(topic);
            } catch (Exception e) {
                return false;
            }
        });
        ExecutionException gone = assertThrows(ExecutionException.class,
                () -> admin.describeTopics(List.of(topic)).allTopicNames().get());
        assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause());
    }

    @Test
    void incrementalAlterConfigsSetsAndDeletesTopicConfigs() throws Exception {
        String topic = Clients.unique("alter");
        Clients.createTopic(broker, topic, 1);
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET))))
                .all().get();
        Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        assertEquals("7200000", cfg.get("retention.ms").value());
        assertEquals("2000000", cfg.get("max.message.bytes").value());

        admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                .all().get();
        cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        assertEquals("604800000", cfg.get("retention.ms").value(), "back to the default");
        assertEquals("2000000", cfg.get("max.message.bytes").value());

        ExecutionException bad = assertThrows(ExecutionException.class, () -> admin.incrementalAlterConfigs(Map.of(res,
                List.of(new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                .all().get());
        assertInstanceOf(org.apache.kafka.common.errors.InvalidConfigurationException.class, bad.getCause());
    }

    @Test
    void brokerConfigsAreDescribedAndReadOnlyOnesRefused() throws Exception {
        int id = admin.describeCluster().controller().get().id();
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(id));
        Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        assertEquals("1048588", cfg.get("message.max.bytes").value());
        assertNotNull(cfg.get("log.dirs"));
        // log.dirs cannot change while the broker runs: Kafka answers INVALID_REQUEST.
        ExecutionException e = assertThrows(ExecutionException.class, () -> admin.incrementalAlterConfigs(Map.of(res,
                List.of(new AlterConfigOp(new ConfigEntry("log.dirs", "/elsewhere"), AlterConfigOp.OpType.SET))))
                .all().get());
        assertInstanceOf(InvalidRequestException.class, e.getCause());
    }

    @Test
    void createPartitionsGrowsATopic() throws Exception {
        String topic = Clients.unique("grow");
        Clients.createTopic(broker, topic, 2);
        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
        Clients.waitUntil("5 partitions", () -> {
            try {
                return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size() == 5;
            } catch (Exception ex) {
                return false;
            }
        });
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get());
        assertInstanceOf(org.apache.kafka.common.errors.InvalidPartitionsException.class, e.getCause());
        assertTrue(admin.listTopics().names().get().containsAll(Set.of(topic)));
    }
}
