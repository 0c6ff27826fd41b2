package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Client features that lean on broker defaults: auto-creation, patterns, read_committed, topic ids. */
class ClientBehaviourTest {
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
    void producingToAnUnknownTopicAutoCreatesIt() throws Exception {
        String topic = Clients.unique("auto");
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            RecordMetadata md = p.send(new ProducerRecord<>(topic, "k", "v")).get();
            assertEquals(0, md.partition());
            assertEquals(0, md.offset());
        }
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        assertEquals(1, d.partitions().size(), "num.partitions default");
    }

    @Test
    void patternSubscriptionPicksUpATopicCreatedLater() throws Exception {
        String prefix = Clients.unique("pat");
        Clients.createTopic(broker, prefix + "-a", 1);
        try (KafkaProducer<String, String> p = Clients.producer(broker);
                KafkaConsumer<String, String> c = Clients.consumer(broker, Clients.unique("g-pat"),
                        Map.of(ConsumerConfig.METADATA_MAX_AGE_CONFIG, 500))) {
            c.subscribe(Pattern.compile(Pattern.quote(prefix) + "-.*"));
            p.send(new ProducerRecord<>(prefix + "-a", "k", "a")).get();
            assertEquals("a", Clients.pollRecords(c, 1).get(0).value());
            // The new topic brings an eager (range) rebalance that revokes every partition; without a
            // committed offset the consumer would reset to earliest and read "a" again, as Kafka's does.
            c.commitSync();
            Clients.createTopic(broker, prefix + "-b", 1);
            p.send(new ProducerRecord<>(prefix + "-b", "k", "b")).get();
            List<ConsumerRecord<String, String>> got = Clients.pollRecords(c, 1);
            assertEquals(prefix + "-b", got.get(0).topic());
            assertEquals(Set.of(prefix + "-a", prefix + "-b"),
                    c.assignment().stream().map(TopicPartition::topic).collect(Collectors.toSet()));
        }
    }

    @Test
    void readCommittedConsumerSeesEverythingWithoutTransactions() throws Exception {
        String topic = Clients.unique("rc");
        Clients.createTopic(broker, topic, 1);
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "v" + i)).get();
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            assertEquals("v4", Clients.pollRecords(c, 5).get(4).value());
            assertEquals(Map.of(tp, 5L), c.endOffsets(List.of(tp)), "last stable offset = high watermark");
        }
    }

    @Test
    void emptyPartitionOffsetsAndDeleteTopicById() throws Exception {
        String topic = Clients.unique("empty");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        assertEquals(0, admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset());
        assertEquals(0, admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get().offset());
        ListOffsetsResultInfo max = admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp).get();
        assertEquals(-1, max.offset(), "no record: -1, as Kafka answers");

        Uuid id = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId();
        assertNotNull(id);
        admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
        Clients.waitUntil("topic deleted by id", () -> {
            try {
                return !admin.listTopics().names().get().contains(topic);
            } catch (Exception e) {
                return false;
            }
        });
    }
}
