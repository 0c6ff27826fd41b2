package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Transactions on a compacted topic: the cleaner drops aborted records without letting them count
 * as a key's latest value, and cleans nothing at or past an open transaction.
 */
class TransactionsCompactionTest {
    private static final String RC = Txn.READ_COMMITTED;
    private static final String RU = Txn.READ_UNCOMMITTED;
    private static final int KEYS = 10;

    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start(Txn.BROKER_CONFIG + "log_cleaner_backoff_ms = 200\n");
    }

    @AfterAll
    static void stop() {
        if (broker != null) {
            broker.close();
        }
    }

    @Test
    void cleanerDropsAbortedRecordsAndKeepsTheCommittedLatest() throws Exception {
        String topic = Clients.unique("txn-compact");
        try (Admin admin = Clients.admin(broker)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of(
                    "cleanup.policy", "compact", "segment.bytes", "2048",
                    "min.cleanable.dirty.ratio", "0.01")))).all().get();
        }
        String pad = "p".repeat(60);
        try (KafkaProducer<String, String> p = Txn.producer(broker, Clients.unique("tid-compact"));
                KafkaProducer<String, String> open = Txn.producer(broker, Clients.unique("tid-compact-open"))) {
            p.initTransactions();
            open.initTransactions();
            transaction(p, topic, "v1-", 0, KEYS, pad, true);
            transaction(p, topic, "aborted-", 0, KEYS, pad, false);
            transaction(p, topic, "v3-", 0, KEYS / 2, pad, true);
            // Committed filler on other keys, so the segments above are sealed and cleanable.
            for (int round = 0; round < 3; round++) {
                p.beginTransaction();
                for (int i = 0; i < 20; i++) {
                    p.send(new ProducerRecord<>(topic, 0, "filler-" + i, "f" + round + pad));
                }
                p.commitTransaction();
            }
            Txn.awaitStable(broker, topic, 1);
            // An open transaction on key k0, then more sealed segments after it.
            open.beginTransaction();
            open.send(new ProducerRecord<>(topic, 0, "k0", "open-0" + pad)).get();
            for (int round = 3; round < 6; round++) {
                p.beginTransaction();
                for (int i = 0; i < 20; i++) {
                    p.send(new ProducerRecord<>(topic, 0, "filler-" + i, "f" + round + pad));
                }
                p.commitTransaction();
            }

            Clients.waitUntil("the cleaner removed the aborted records", () -> Txn.readAll(broker, topic, 1, RU)
                    .stream().noneMatch(r -> r.value().startsWith("aborted-")));
            Map<String, String> expected = new TreeMap<>();
            for (int i = 0; i < KEYS; i++) {
                expected.put("k" + i, (i < KEYS / 2 ? "v3-" : "v1-") + i + pad);
            }
            for (int i = 0; i < 20; i++) {
                // read_committed stops at the open transaction (the LSO): fillers 3-5 come after it.
                expected.put("filler-" + i, "f2" + pad);
            }
            assertEquals(expected, latest(Txn.readAll(broker, topic, 1, RC)), "read_committed after cleaning");
            List<ConsumerRecord<String, String>> raw = Txn.readAll(broker, topic, 1, RU);
            assertTrue(raw.stream().anyMatch(r -> r.value().startsWith("open-0")),
                    "the open transaction's record is still in the log");
            assertTrue(raw.stream().filter(r -> r.key().startsWith("filler-")).count() > 20,
                    "nothing past the open transaction was cleaned: " + raw.size() + " records");

            open.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 1);
        Map<String, String> after = latest(Txn.readAll(broker, topic, 1, RC));
        assertEquals("open-0" + pad, after.get("k0"));
        assertEquals("f5" + pad, after.get("filler-0"));
        assertEquals("v1-9" + pad, after.get("k9"));
    }

    /** Keys k{from}..k{to-1} with values prefix + i + pad in one transaction, committed or aborted. */
    private static void transaction(KafkaProducer<String, String> p, String topic, String prefix, int from, int to,
            String pad, boolean commit) {
        p.beginTransaction();
        for (int i = from; i < to; i++) {
            p.send(new ProducerRecord<>(topic, 0, "k" + i, prefix + i + pad));
        }
        p.flush();
        if (commit) {
            p.commitTransaction();
        } else {
            p.abortTransaction();
        }
    }

    private static Map<String, String> latest(List<ConsumerRecord<String, String>> records) {
        Map<String, String> out = new TreeMap<>();
        records.forEach(r -> out.put(r.key(), r.value()));
        return out;
    }
}
