package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/**
 * Consumed offsets committed in a transaction with the Java client ({@code sendOffsetsToTransaction}
 * with the consumer's group metadata: AddOffsetsToTxn, TxnOffsetCommit, KIP-447 checks, OffsetFetch
 * require_stable while they are pending).
 */
class TransactionsOffsetsTest extends TxnBrokerSuite {
    private static final String READ_COMMITTED = Txn.READ_COMMITTED;
    private static final String READ_UNCOMMITTED = Txn.READ_UNCOMMITTED;


    /**
     * Consume-transform-produce: the consumed offsets are committed in the transaction with the
     * consumer's group metadata (TxnOffsetCommit); after the commit the group's offsets are those
     * sent, an aborted round leaves them unchanged and its output invisible.
     */
    @Test
    void sendOffsetsToTransactionCommitsWithTheTransactionOnly() throws Exception {
        String in = Clients.unique("ctp-in");
        String out = Clients.unique("ctp-out");
        String group = Clients.unique("g-ctp");
        Clients.createTopic(broker, in, 2);
        Clients.createTopic(broker, out, 1);
        producePlain(in, "r1-", 10);
        List<TopicPartition> inTps = partitions(in, 2);
        Map<TopicPartition, Long> expected1;
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group,
                        Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, READ_COMMITTED));
                KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-ctp"))) {
            c.subscribe(List.of(in));
            p.initTransactions();

            List<ConsumerRecord<String, String>> round1 = Clients.pollRecords(c, 10);
            assertEquals(10, round1.size());
            p.beginTransaction();
            for (ConsumerRecord<String, String> r : round1) {
                p.send(new ProducerRecord<>(out, 0, r.key(), "T(" + r.value() + ")"));
            }
            Map<TopicPartition, OffsetAndMetadata> offsets1 = nextOffsets(round1);
            p.sendOffsetsToTransaction(offsets1, c.groupMetadata());
            p.commitTransaction();
            expected1 = plain(offsets1);
            assertEquals(2, expected1.size(), "both input partitions consumed: " + expected1);
            // A read_committed consumer's committed() sends require_stable and retries while the
            // transaction's offsets are pending, so it answers once the commit marker is applied.
            assertEquals(expected1, stableCommitted(group, inTps));
            assertEquals(expected1, groupOffsets(group, false));
            assertEquals(expected1, groupOffsets(group, true));

            producePlain(in, "r2-", 6);
            List<ConsumerRecord<String, String>> round2 = Clients.pollRecords(c, 6);
            assertEquals(6, round2.size());
            p.beginTransaction();
            for (ConsumerRecord<String, String> r : round2) {
                p.send(new ProducerRecord<>(out, 0, r.key(), "T(" + r.value() + ")"));
            }
            Map<TopicPartition, OffsetAndMetadata> offsets2 = nextOffsets(round2);
            p.sendOffsetsToTransaction(offsets2, c.groupMetadata());
            p.flush();
            // Pending transactional offsets are not the group's committed offsets.
            assertEquals(expected1, groupOffsets(group, false), "while round 2 is open");
            p.abortTransaction();
        }
        assertEquals(expected1, stableCommitted(group, inTps), "after the abort");
        awaitStable(out, 1);
        assertEquals(expected1, groupOffsets(group, false));
        assertEquals(expected1, groupOffsets(group, true));
        List<String> outValues = values(readAll(out, 1, READ_COMMITTED));
        assertEquals(10, outValues.size(), "only round 1's output is committed: " + outValues);
        assertTrue(outValues.stream().allMatch(v -> v.startsWith("T(r1-")), outValues.toString());
        assertEquals(16, readAll(out, 1, READ_UNCOMMITTED).size(), "round 2's output is in the log");
    }

    /**
     * KIP-447: offsets sent with the group metadata of a generation the group has moved past are
     * refused (ILLEGAL_GENERATION: CommitFailedException, abortable); the group's offsets stay.
     */
    @Test
    void sendOffsetsWithStaleGroupMetadataIsRefused() throws Exception {
        String in = Clients.unique("stale-in");
        String group = Clients.unique("g-stale");
        Clients.createTopic(broker, in, 2);
        Map<String, Object> cfg = Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, READ_COMMITTED);
        try (KafkaConsumer<String, String> c1 = Clients.consumer(broker, group, cfg);
                KafkaConsumer<String, String> c2 = Clients.consumer(broker, group, cfg);
                KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-stale"))) {
            c1.subscribe(List.of(in));
            Clients.waitUntil("c1 owns both partitions", () -> {
                c1.poll(Duration.ofMillis(100));
                return c1.assignment().size() == 2;
            });
            ConsumerGroupMetadata stale = c1.groupMetadata();
            c2.subscribe(List.of(in));
            Clients.waitUntil("a rebalance gives each consumer one partition", () -> {
                c1.poll(Duration.ofMillis(100));
                c2.poll(Duration.ofMillis(100));
                return c1.assignment().size() == 1 && c2.assignment().size() == 1;
            });
            assertTrue(c1.groupMetadata().generationId() > stale.generationId(),
                    "a new generation: " + stale + " -> " + c1.groupMetadata());

            p.initTransactions();
            p.beginTransaction();
            TopicPartition tp = c1.assignment().iterator().next();
            assertThrows(CommitFailedException.class,
                    () -> p.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(5)), stale));
            p.abortTransaction();

            // The current metadata is accepted.
            p.beginTransaction();
            p.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(7)), c1.groupMetadata());
            p.commitTransaction();
            assertEquals(Map.of(tp, 7L), stableCommitted(group, List.of(tp)));
        }
    }

    // ---------------------------------------------------------------------------------------------

    private static KafkaProducer<String, String> txnProducer(String transactionalId) {
        return Txn.producer(broker, transactionalId);
    }

    private static void producePlain(String topic, String prefix, int n) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, "k" + i, prefix + i)).get();
            }
        }
    }

    private static void awaitStable(String topic, int n) {
        Txn.awaitStable(broker, topic, n);
    }

    private static List<ConsumerRecord<String, String>> readAll(String topic, int n, String isolation) {
        return Txn.readAll(broker, topic, n, isolation);
    }

    private static List<TopicPartition> partitions(String topic, int n) {
        return Txn.partitions(topic, n);
    }

    private static List<String> values(List<ConsumerRecord<String, String>> records) {
        return Txn.values(records);
    }

    /** The group's committed offsets (OffsetFetch, require_stable as given). */
    private static Map<TopicPartition, Long> groupOffsets(String group, boolean requireStable) {
        try {
            Map<TopicPartition, OffsetAndMetadata> m = admin.listConsumerGroupOffsets(group,
                    new ListConsumerGroupOffsetsOptions().requireStable(requireStable))
                    .partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> out = new HashMap<>();
            m.forEach((tp, om) -> {
                if (om != null) {
                    out.put(tp, om.offset());
                }
            });
            return out;
        } catch (Exception e) {
            throw new AssertionError("OffsetFetch of " + group + ": " + e, e);
        }
    }

    /** The group's committed offsets as a read_committed consumer fetches them (require_stable). */
    private static Map<TopicPartition, Long> stableCommitted(String group, List<TopicPartition> tps) {
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, group,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, READ_COMMITTED))) {
            Map<TopicPartition, Long> out = new HashMap<>();
            c.committed(new HashSet<>(tps)).forEach((tp, om) -> {
                if (om != null) {
                    out.put(tp, om.offset());
                }
            });
            return out;
        }
    }

    private static Map<TopicPartition, OffsetAndMetadata> nextOffsets(List<ConsumerRecord<String, String>> records) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (ConsumerRecord<String, String> r : records) {
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            long next = r.offset() + 1;
            if (!out.containsKey(tp) || out.get(tp).offset() < next) {
                out.put(tp, new OffsetAndMetadata(next));
            }
        }
        return out;
    }

    private static Map<TopicPartition, Long> plain(Map<TopicPartition, OffsetAndMetadata> offsets) {
        return offsets.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset()));
    }
}
