package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Committed offsets, seeking, offsets by time, pause/resume and end offsets. */
class ConsumerOffsetsTest {
    private static final long BASE_TS = System.currentTimeMillis() - 60_000;
    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start();
    }

    @AfterAll
    static void stop() {
        broker.close();
    }

    /** A topic with {@code n} records per partition, record i at BASE_TS + i * 1000. */
    private static String topicWith(int partitions, int n) throws Exception {
        String topic = Clients.unique("offsets");
        Clients.createTopic(broker, topic, partitions);
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < n; i++) {
                    p.send(new ProducerRecord<>(topic, part, BASE_TS + i * 1000L, "k" + i, "p" + part + "-" + i));
                }
            }
            p.flush();
        }
        return topic;
    }

    @Test
    void commitSyncAndCommitAsyncThenANewConsumerResumesAtTheCommittedOffset() throws Exception {
        String topic = topicWith(1, 20);
        String group = Clients.unique("g-commit");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            c.subscribe(List.of(topic));
            Clients.pollRecords(c, 1);
            c.commitSync(Map.of(tp, new OffsetAndMetadata(7, "sync-meta")));
            OffsetAndMetadata committed = c.committed(Set.of(tp)).get(tp);
            assertEquals(7, committed.offset());
            assertEquals("sync-meta", committed.metadata());

            CompletableFuture<Exception> done = new CompletableFuture<>();
            c.commitAsync(Map.of(tp, new OffsetAndMetadata(12)), (offsets, e) -> done.complete(e));
            // The callback runs inside poll (or commitSync): poll until it has.
            Clients.waitUntil("commitAsync callback", () -> {
                c.poll(Duration.ofMillis(100));
                return done.isDone();
            });
            assertNull(done.get(), "commitAsync succeeded");
            assertEquals(12, c.committed(Set.of(tp)).get(tp).offset());
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollRecords(c, 8);
            assertEquals(12, got.get(0).offset(), "resumes at the committed offset");
            assertEquals(19, got.get(got.size() - 1).offset());
        }
    }

    @Test
    void seekSeekToBeginningAndOffsetsForTimes() throws Exception {
        String topic = topicWith(1, 10);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            c.assign(List.of(tp));
            c.seek(tp, 6);
            assertEquals(6, Clients.pollRecords(c, 1).get(0).offset());
            c.seekToBeginning(List.of(tp));
            assertEquals(0, c.position(tp));
            assertEquals(0, Clients.pollRecords(c, 1).get(0).offset());

            Map<TopicPartition, OffsetAndTimestamp> at = c.offsetsForTimes(Map.of(tp, BASE_TS + 4_500));
            assertEquals(5, at.get(tp).offset(), "first record at or after the time");
            assertEquals(BASE_TS + 5_000, at.get(tp).timestamp());
            assertEquals(0, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset());
            assertNull(c.offsetsForTimes(Map.of(tp, BASE_TS + 60_000)).get(tp), "nothing at or after");
            c.seek(tp, at.get(tp).offset());
            ConsumerRecord<String, String> r = Clients.pollRecords(c, 1).get(0);
            assertEquals(5, r.offset());
            assertEquals(BASE_TS + 5_000, r.timestamp());
        }
    }

    @Test
    void beginningAndEndOffsets() throws Exception {
        String topic = topicWith(2, 5);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p1 = new TopicPartition(topic, 1);
            assertEquals(Map.of(p0, 5L, p1, 5L), c.endOffsets(List.of(p0, p1)));
            assertEquals(Map.of(p0, 0L, p1, 0L), c.beginningOffsets(List.of(p0, p1)));
        }
    }

    @Test
    void pausedPartitionIsNotFetchedUntilResumed() throws Exception {
        String topic = topicWith(2, 5);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            c.assign(List.of(p0, p1));
            c.seekToBeginning(List.of(p0, p1));
            c.pause(List.of(p1));
            assertEquals(Set.of(p1), c.paused());
            List<ConsumerRecord<String, String>> got = Clients.pollRecords(c, 5);
            assertTrue(got.stream().allMatch(r -> r.partition() == 0), "only the unpaused partition");
            // Nothing more arrives from the paused partition while it stays paused: its position is unmoved.
            c.poll(Duration.ofMillis(300));
            assertEquals(0, c.position(p1));
            c.resume(List.of(p1));
            List<ConsumerRecord<String, String>> rest = Clients.pollRecords(c, 5);
            assertEquals(Set.of(1), rest.stream().map(ConsumerRecord::partition).collect(Collectors.toSet()));
            assertEquals(5, c.position(p1, Duration.ofSeconds(30)));
        }
    }
}
