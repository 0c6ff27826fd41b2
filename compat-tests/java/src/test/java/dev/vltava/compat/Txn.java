package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/** Transactional producers, read_committed/read_uncommitted readers and LSO waits shared by the transaction tests. */
public final class Txn {
    public static final String READ_COMMITTED = "read_committed";
    public static final String READ_UNCOMMITTED = "read_uncommitted";
    /**
     * Broker settings for transaction tests: a small transaction state topic, and the timed-out
     * transaction sweep every 500 ms so a dead producer's transaction is aborted soon after its
     * transaction.timeout.ms.
     */
    public static final String BROKER_CONFIG = "transaction_state_log_num_partitions = 3\n"
            + "transaction_abort_timed_out_transaction_cleanup_interval_ms = 500\n";

    private Txn() {}

    public static KafkaProducer<String, String> producer(Broker b, String transactionalId) {
        return Clients.producer(b, Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId,
                ProducerConfig.MAX_BLOCK_MS_CONFIG, 60_000));
    }

    /** A consumer without a group reading with {@code isolation}. */
    public static KafkaConsumer<String, String> reader(Broker b, String isolation) {
        return reader(b.bootstrap(), isolation);
    }

    public static KafkaConsumer<String, String> reader(String bootstrap, String isolation) {
        return Clients.consumer(bootstrap, null, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
    }

    /** One transaction of {@code n} records to partition 0, committed. */
    public static void produceCommitted(Broker b, String topic, String tid, String prefix, int n) {
        try (KafkaProducer<String, String> p = producer(b, tid)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", prefix + i));
            }
            p.commitTransaction();
        }
    }

    public static List<TopicPartition> partitions(String topic, int n) {
        return IntStream.range(0, n).mapToObj(i -> new TopicPartition(topic, i)).toList();
    }

    public static long endOffset(KafkaConsumer<String, String> c, TopicPartition tp) {
        return c.endOffsets(List.of(tp)).get(tp);
    }

    /** Waits until every partition's LSO equals its log end offset (no transaction open or unmarked). */
    public static void awaitStable(Broker b, String topic, int n) {
        awaitStable(b.bootstrap(), topic, n);
    }

    public static void awaitStable(String bootstrap, String topic, int n) {
        List<TopicPartition> tps = partitions(topic, n);
        try (KafkaConsumer<String, String> rc = reader(bootstrap, READ_COMMITTED);
                KafkaConsumer<String, String> ru = reader(bootstrap, READ_UNCOMMITTED)) {
            Clients.waitUntil(topic + ": LSO = log end offset", () -> rc.endOffsets(tps).equals(ru.endOffsets(tps)));
        }
    }

    /** Everything a fresh consumer with {@code isolation} reads from the beginning up to its end offsets. */
    public static List<ConsumerRecord<String, String>> readAll(Broker b, String topic, int n, String isolation) {
        return readAll(b.bootstrap(), topic, n, isolation);
    }

    public static List<ConsumerRecord<String, String>> readAll(String bootstrap, String topic, int n, String isolation) {
        List<TopicPartition> tps = partitions(topic, n);
        try (KafkaConsumer<String, String> c = reader(bootstrap, isolation)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = c.endOffsets(tps);
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            Instant end = Instant.now().plus(Clients.DEADLINE);
            while (!tps.stream().allMatch(tp -> c.position(tp) >= ends.get(tp))) {
                assertTrue(Instant.now().isBefore(end), isolation + " read of " + topic + " reaches " + ends
                        + "; got " + values(got));
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            return got;
        }
    }

    public static List<String> values(List<ConsumerRecord<String, String>> records) {
        return records.stream().map(ConsumerRecord::value).toList();
    }
}
