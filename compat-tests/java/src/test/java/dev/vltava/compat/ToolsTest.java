package dev.vltava.compat;

import static dev.vltava.compat.Tools.CONFIGS;
import static dev.vltava.compat.Tools.CONSOLE_CONSUMER;
import static dev.vltava.compat.Tools.CONSOLE_PRODUCER;
import static dev.vltava.compat.Tools.CONSUMER_GROUPS;
import static dev.vltava.compat.Tools.DELETE_RECORDS;
import static dev.vltava.compat.Tools.GET_OFFSETS;
import static dev.vltava.compat.Tools.TOPICS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Kafka's command-line tools (kafka-tools 4.4.0) doing their everyday jobs against vltava:
 * kafka-topics, kafka-console-producer/-consumer, kafka-consumer-groups, kafka-configs,
 * kafka-get-offsets and kafka-delete-records, with the output a user reads checked.
 */
class ToolsTest {
    private static Broker broker;
    private static String bs;

    @BeforeAll
    static void start() {
        broker = Broker.start();
        bs = broker.bootstrap();
    }

    @AfterAll
    static void stop() {
        broker.close();
    }

    private static Tools.Result tool(String main, String... args) {
        return toolWithInput(main, null, args);
    }

    private static Tools.Result toolWithInput(String main, String stdin, String... args) {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs));
        all.addAll(Arrays.asList(args));
        return Tools.run(main, stdin, all.toArray(String[]::new));
    }

    /** The table rows of a kafka-consumer-groups --describe for {@code group}, split on blanks. */
    private static List<List<String>> groupRows(String group) {
        Tools.Result r = tool(CONSUMER_GROUPS, "--describe", "--group", group).ok();
        List<String> lines = r.lines();
        assertTrue(lines.stream().anyMatch(l -> l.matches(
                "GROUP\\s+TOPIC\\s+PARTITION\\s+CURRENT-OFFSET\\s+LOG-END-OFFSET\\s+LAG\\s+CONSUMER-ID\\s+HOST\\s+CLIENT-ID")),
                r.toString());
        return lines.stream().filter(l -> l.startsWith(group + " "))
                .map(l -> List.of(l.trim().split("\\s+"))).toList();
    }

    @Test
    void kafkaTopicsCreatesListsDescribesAltersAndDeletes() {
        String topic = Clients.unique("tools-topic");
        Tools.Result created = tool(TOPICS, "--create", "--topic", topic, "--partitions", "3",
                "--replication-factor", "1", "--config", "retention.ms=86400000").ok();
        assertTrue(created.stdout().contains("Created topic " + topic + "."), created.toString());

        Tools.Result list = tool(TOPICS, "--list").ok();
        assertTrue(list.lines().contains(topic), list.toString());

        Tools.Result describe = tool(TOPICS, "--describe", "--topic", topic).ok();
        List<String> lines = describe.lines();
        assertTrue(lines.get(0).matches("Topic: " + topic + "\tTopicId: [A-Za-z0-9_-]{22}\tPartitionCount: 3"
                + "\tReplicationFactor: 1\tConfigs: retention.ms=86400000"), describe.toString());
        for (int p = 0; p < 3; p++) {
            String prefix = "\tTopic: " + topic + "\tPartition: " + p + "\tLeader: 1\tReplicas: 1\tIsr: 1";
            assertTrue(lines.stream().anyMatch(l -> l.startsWith(prefix)), prefix + " in " + describe);
        }

        Tools.Result again = tool(TOPICS, "--create", "--topic", topic, "--partitions", "1");
        assertEquals(1, again.exitCode(), again.toString());
        assertTrue(again.stdout().contains("Topic '" + topic + "' already exists."), again.toString());

        tool(TOPICS, "--alter", "--topic", topic, "--partitions", "5").ok();
        Tools.Result altered = tool(TOPICS, "--describe", "--topic", topic).ok();
        assertTrue(altered.stdout().contains("\tPartitionCount: 5\t"), altered.toString());
        assertTrue(altered.stdout().contains("\tPartition: 4\tLeader: 1\tReplicas: 1\tIsr: 1"), altered.toString());

        tool(TOPICS, "--delete", "--topic", topic).ok();
        Tools.Result after = tool(TOPICS, "--list").ok();
        assertFalse(after.lines().contains(topic), after.toString());
        Tools.Result missing = tool(TOPICS, "--describe", "--topic", topic);
        assertEquals(1, missing.exitCode(), missing.toString());
        assertTrue(missing.stdout().contains("Topic '" + topic + "' does not exist as expected"), missing.toString());
    }

    @Test
    void consoleProducerAndConsumerAndConsumerGroups() {
        String topic = Clients.unique("tools-console");
        String group = Clients.unique("tools-group");
        tool(TOPICS, "--create", "--topic", topic, "--partitions", "1").ok();

        // kafka-console-producer.sh: one record per stdin line, "key:value" with parse.key.
        toolWithInput(CONSOLE_PRODUCER, "k1:v1\nk2:v2\nk3:v3\n", "--topic", topic,
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=:").ok();

        // kafka-console-consumer.sh in a group prints key<TAB>value with print.key and commits on exit.
        Tools.Result consumed = tool(CONSOLE_CONSUMER, "--topic", topic, "--group", group, "--from-beginning",
                "--max-messages", "3", "--formatter-property", "print.key=true").ok();
        assertEquals(List.of("k1\tv1", "k2\tv2", "k3\tv3"), consumed.lines(), consumed.toString());
        assertTrue(consumed.stderr().contains("Processed a total of 3 messages"), consumed.toString());

        Tools.Result groups = tool(CONSUMER_GROUPS, "--list").ok();
        assertTrue(groups.lines().contains(group), groups.toString());
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        assertEquals(List.of(List.of(group, topic, "0", "3", "3", "0", "-", "-", "-")), groupRows(group));

        toolWithInput(CONSOLE_PRODUCER, "v4\nv5\n", "--topic", topic).ok();
        assertEquals(List.of(List.of(group, topic, "0", "3", "5", "2", "-", "-", "-")), groupRows(group));

        Tools.Result reset = tool(CONSUMER_GROUPS, "--group", group, "--reset-offsets", "--to-earliest",
                "--topic", topic, "--execute").ok();
        assertTrue(reset.lines().stream().anyMatch(l -> l.matches("GROUP\\s+TOPIC\\s+PARTITION\\s+NEW-OFFSET")),
                reset.toString());
        assertTrue(reset.lines().stream().anyMatch(l -> l.matches(group + "\\s+" + topic + "\\s+0\\s+0")),
                reset.toString());
        assertEquals(List.of(List.of(group, topic, "0", "0", "5", "5", "-", "-", "-")), groupRows(group));

        // Without print.key only values are printed; the group starts again at its reset offset.
        Tools.Result again = tool(CONSOLE_CONSUMER, "--topic", topic, "--group", group, "--max-messages", "5").ok();
        assertEquals(List.of("v1", "v2", "v3", "v4", "v5"), again.lines(), again.toString());

        Tools.Result deleted = tool(CONSUMER_GROUPS, "--delete", "--group", group).ok();
        assertTrue(deleted.stdout().contains("Deletion of requested consumer groups ('" + group + "') was successful."),
                deleted.toString());
        Tools.Result after = tool(CONSUMER_GROUPS, "--list").ok();
        assertFalse(after.lines().contains(group), after.toString());
    }


    @Test
    void consumerGroupsWithAnActiveMember() {
        String topic = Clients.unique("tools-active");
        String group = Clients.unique("tools-active-group");
        tool(TOPICS, "--create", "--topic", topic, "--partitions", "2").ok();
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group,
                Map.of(ConsumerConfig.CLIENT_ID_CONFIG, "tools-member"))) {
            c.subscribe(List.of(topic));
            Clients.waitUntil("two partitions assigned", () -> {
                c.poll(Duration.ofMillis(100));
                return c.assignment().size() == 2;
            });
            c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0),
                    new TopicPartition(topic, 1), new OffsetAndMetadata(0)));
            String member = c.groupMetadata().memberId();

            // Each partition's row names the member that owns it, its host and client id.
            List<List<String>> rows = groupRows(group);
            assertEquals(2, rows.size(), rows.toString());
            for (List<String> row : rows) {
                assertEquals(List.of(group, topic, "0", "0", "0", member, "/127.0.0.1", "tools-member"),
                        List.of(row.get(0), row.get(1), row.get(3), row.get(4), row.get(5), row.get(6), row.get(7),
                                row.get(8)), rows.toString());
            }

            Tools.Result state = tool(CONSUMER_GROUPS, "--describe", "--group", group, "--state").ok();
            assertTrue(state.lines().stream().anyMatch(l -> l.matches(
                    group + "\\s+" + Pattern.quote(bs) + "\\s+\\(1\\)\\s+range\\s+Stable\\s+1")), state.toString());
            Tools.Result members = tool(CONSUMER_GROUPS, "--describe", "--group", group, "--members").ok();
            assertTrue(members.lines().stream().anyMatch(l -> l.matches(
                    group + "\\s+" + Pattern.quote(member) + "\\s+/127.0.0.1\\s+tools-member\\s+2")),
                    members.toString());

            // Kafka refuses to delete a group with members or to reset its offsets while it is active.
            Tools.Result delete = tool(CONSUMER_GROUPS, "--delete", "--group", group);
            assertTrue(delete.stdout().contains("GroupNotEmptyException: The group is not empty."), delete.toString());
            Tools.Result reset = tool(CONSUMER_GROUPS, "--group", group, "--reset-offsets", "--to-latest",
                    "--topic", topic, "--execute");
            assertTrue(reset.stdout().contains("Assignments can only be reset if the group '" + group
                    + "' is inactive, but the current state is Stable."), reset.toString());
        }
    }

    /** kafka-configs' "  name=value sensitive=..." lines, as name=value. */
    private static Set<String> configLines(Tools.Result r) {
        return r.lines().stream().filter(l -> l.startsWith("  ")).map(l -> l.trim().split(" ")[0])
                .collect(Collectors.toSet());
    }

    @Test
    void kafkaConfigsDescribesAltersAndDeletesTopicConfigsAndDescribesTheBroker() {
        String topic = Clients.unique("tools-configs");
        tool(TOPICS, "--create", "--topic", topic, "--partitions", "1", "--config", "retention.ms=86400000").ok();
        String[] describe = {"--entity-type", "topics", "--entity-name", topic, "--describe"};

        Tools.Result before = tool(CONFIGS, describe).ok();
        assertTrue(before.stdout().contains("Dynamic configs for topic " + topic + " are:"), before.toString());
        assertTrue(before.stdout().contains("  retention.ms=86400000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:"
                + "retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}"), before.toString());
        assertEquals(Set.of("retention.ms=86400000"), configLines(before));

        Tools.Result added = tool(CONFIGS, "--entity-type", "topics", "--entity-name", topic, "--alter",
                "--add-config", "max.message.bytes=200000,cleanup.policy=[compact,delete]").ok();
        assertTrue(added.stdout().contains("Completed updating config for topic " + topic + "."), added.toString());
        assertEquals(Set.of("retention.ms=86400000", "max.message.bytes=200000", "cleanup.policy=compact,delete"),
                configLines(tool(CONFIGS, describe).ok()));

        tool(CONFIGS, "--entity-type", "topics", "--entity-name", topic, "--alter",
                "--delete-config", "retention.ms").ok();
        assertEquals(Set.of("max.message.bytes=200000", "cleanup.policy=compact,delete"),
                configLines(tool(CONFIGS, describe).ok()));

        Tools.Result broker1 = tool(CONFIGS, "--entity-type", "brokers", "--entity-name", "1", "--describe").ok();
        assertTrue(broker1.stdout().contains("Dynamic configs for broker 1 are:"), broker1.toString());
        Tools.Result all = tool(CONFIGS, "--entity-type", "brokers", "--entity-name", "1", "--describe", "--all").ok();
        assertTrue(all.stdout().contains("All configs for broker 1 are:"), all.toString());
        Set<String> allConfigs = configLines(all);
        assertTrue(allConfigs.contains("broker.id=1"), all.toString());
        assertTrue(allConfigs.contains("advertised.listeners=PLAINTEXT://" + bs), all.toString());
    }

    @Test
    void getOffsetsAndDeleteRecords() throws Exception {
        String topic = Clients.unique("tools-offsets");
        tool(TOPICS, "--create", "--topic", topic, "--partitions", "2").ok();
        long base = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < 3; i++) { // partition 0: base, base + 1 s, base + 2 s
                p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "a" + i)).get();
            }
            for (int i = 0; i < 2; i++) { // partition 1: base + 5 s, base + 6 s
                p.send(new ProducerRecord<>(topic, 1, base + 5000 + i * 1000L, "k", "b" + i)).get();
            }
        }

        assertEquals(List.of(topic + ":0:0", topic + ":1:0"),
                tool(GET_OFFSETS, "--topic", topic, "--time", "-2").ok().lines());
        assertEquals(List.of(topic + ":0:3", topic + ":1:2"),
                tool(GET_OFFSETS, "--topic", topic, "--time", "-1").ok().lines());
        // By timestamp: the first offset whose timestamp is at or after it.
        assertEquals(List.of(topic + ":0:1", topic + ":1:0"),
                tool(GET_OFFSETS, "--topic", topic, "--time", Long.toString(base + 1000)).ok().lines());

        Path json = Files.createTempFile("vltava-delete-records-", ".json");
        try {
            Files.writeString(json, "{\"version\":1,\"partitions\":[{\"topic\":\"" + topic
                    + "\",\"partition\":0,\"offset\":2}]}");
            Tools.Result deleted = tool(DELETE_RECORDS, "--offset-json-file", json.toString()).ok();
            assertTrue(deleted.stdout().contains("partition: " + topic + "-0\tlow_watermark: 2"), deleted.toString());
        } finally {
            Files.deleteIfExists(json);
        }
        assertEquals(List.of(topic + ":0:2", topic + ":1:0"),
                tool(GET_OFFSETS, "--topic", topic, "--time", "-2").ok().lines());
        assertEquals(List.of(topic + ":0:3", topic + ":1:2"),
                tool(GET_OFFSETS, "--topic", topic, "--time", "-1").ok().lines());
    }
}
