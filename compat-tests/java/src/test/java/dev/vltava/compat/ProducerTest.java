package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The default producer (idempotent, acks=all): record shapes and compression codecs, read back. */
class ProducerTest {
    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start();
    }

    @AfterAll
    static void stop() {
        broker.close();
    }

    private static List<ConsumerRecord<String, String>> readAll(String topic, int partition, int n) {
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            TopicPartition tp = new TopicPartition(topic, partition);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            return Clients.pollRecords(c, n);
        }
    }

    @Test
    void defaultProducerIsIdempotentAndWritesKeysNullKeysNullValuesAndHeaders() throws Exception {
        String topic = Clients.unique("shapes");
        Clients.createTopic(broker, topic, 1);
        RecordHeaders headers = new RecordHeaders();
        headers.add(new RecordHeader("h1", "v1".getBytes(StandardCharsets.UTF_8)));
        headers.add(new RecordHeader("h1", "v1-again".getBytes(StandardCharsets.UTF_8)));
        headers.add(new RecordHeader("empty", null));
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            List<RecordMetadata> md = new ArrayList<>();
            md.add(p.send(new ProducerRecord<>(topic, 0, "k1", "v1")).get());
            md.add(p.send(new ProducerRecord<>(topic, 0, null, "no-key")).get());
            md.add(p.send(new ProducerRecord<>(topic, 0, "tombstone", null)).get());
            md.add(p.send(new ProducerRecord<>(topic, 0, "with-headers", "h", headers)).get());
            for (int i = 0; i < md.size(); i++) {
                assertEquals(i, md.get(i).offset(), "offsets are assigned in order from 0");
            }
        }
        List<ConsumerRecord<String, String>> got = readAll(topic, 0, 4);
        assertEquals("k1", got.get(0).key());
        assertEquals("v1", got.get(0).value());
        assertNull(got.get(1).key());
        assertEquals("no-key", got.get(1).value());
        assertEquals("tombstone", got.get(2).key());
        assertNull(got.get(2).value());
        var h = got.get(3).headers().toArray();
        assertEquals(3, h.length);
        assertEquals("h1", h[0].key());
        assertArrayEquals("v1".getBytes(StandardCharsets.UTF_8), h[0].value());
        assertArrayEquals("v1-again".getBytes(StandardCharsets.UTF_8), h[1].value());
        assertEquals("empty", h[2].key());
        assertNull(h[2].value());
    }

    @ParameterizedTest
    @ValueSource(strings = {"gzip", "snappy", "lz4", "zstd"})
    void everyCodecRoundTrips(String codec) throws Exception {
        String topic = Clients.unique("codec-" + codec);
        Clients.createTopic(broker, topic, 1);
        int n = 500;
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec, ProducerConfig.LINGER_MS_CONFIG, 20))) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                sent.add(p.send(new ProducerRecord<>(topic, 0, "key-" + i, "value-" + i + "-" + "x".repeat(i % 50))));
            }
            p.flush();
            for (Future<RecordMetadata> f : sent) {
                f.get();
            }
        }
        List<ConsumerRecord<String, String>> got = readAll(topic, 0, n);
        assertEquals(n, got.size());
        for (int i = 0; i < n; i++) {
            assertEquals(i, got.get(i).offset());
            assertEquals("key-" + i, got.get(i).key());
            assertEquals("value-" + i + "-" + "x".repeat(i % 50), got.get(i).value());
        }
    }

    @Test
    void recordNearMaxMessageBytesIsAcceptedAndOneOverItIsRefused() throws Exception {
        String topic = Clients.unique("large");
        Clients.createTopic(broker, topic, 1);
        // Broker default message.max.bytes is 1048588 (the whole batch); the client's own
        // max.request.size is raised so the broker, not the client, judges the record.
        Map<String, Object> cfg = Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024,
                ProducerConfig.BUFFER_MEMORY_CONFIG, 16 * 1024 * 1024);
        try (KafkaProducer<String, String> p = Clients.producer(broker, cfg)) {
            String near = "n".repeat(1_048_588 - 200);
            RecordMetadata md = p.send(new ProducerRecord<>(topic, 0, "near", near)).get();
            assertEquals(0, md.offset());
            String over = "o".repeat(1_048_588 + 1024);
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, 0, "over", over)).get());
            assertInstanceOf(RecordTooLargeException.class, e.getCause(), e.toString());
            // The producer is still usable after the refusal.
            assertEquals(1, p.send(new ProducerRecord<>(topic, 0, "after", "small")).get().offset());
        }
        List<ConsumerRecord<String, String>> got = readAll(topic, 0, 2);
        assertEquals(1_048_588 - 200, got.get(0).value().length());
        assertEquals("small", got.get(1).value());
        assertTrue(got.stream().noneMatch(r -> "over".equals(r.key())));
    }
}
