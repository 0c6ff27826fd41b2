package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * Transactions V2: an abort right after the previous transaction ended, of a transaction whose
 * records are all still in the producer's buffer (so the coordinator has nothing open: Kafka's
 * "empty abort", which bumps the epoch), must succeed, as in Kafka since KAFKA-18464, while the
 * coordinator is still writing the previous transaction's markers. Found by TransactionsFaultsTest.
 *
 * <p>Kafka marks CompleteCommit/CompleteAbort pending before it answers the EndTxn and sends the
 * markers, so an EndTxn meanwhile gets CONCURRENT_TRANSACTIONS (retriable), and so does vltava for
 * a transaction in Prepare*; before that was so, the bumped epoch was taken for a stale one and
 * fenced (PRODUCER_FENCED, fatal) in every round.
 */
class TransactionsEmptyAbortTest {
    private static final int PARTITIONS = 3;
    private static final int ROUNDS = 10;

    @Test
    void anEmptyAbortRightAfterAnEndIsNotFenced() throws Exception {
        try (Cluster c = Cluster.start(3, Map.of(
                "transaction.state.log.num.partitions", "3",
                "transaction.state.log.replication.factor", "3",
                "transaction.state.log.min.isr", "2",
                "min.insync.replicas", "2"));
                Admin admin = Clients.admin(c.bootstrapAll())) {
            String topic = Clients.unique("txn-empty-abort");
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 3))).all().get();
            List<String> failures = new ArrayList<>();
            for (int round = 0; round < ROUNDS; round++) {
                // A long linger keeps the second transaction's record in the buffer until the abort.
                try (KafkaProducer<String, String> p = Clients.producer(c.bootstrapAll(), Map.of(
                        ProducerConfig.TRANSACTIONAL_ID_CONFIG, topic + "-tid",
                        ProducerConfig.LINGER_MS_CONFIG, 5_000,
                        ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000))) {
                    p.initTransactions();
                    p.beginTransaction();
                    for (int part = 0; part < PARTITIONS; part++) {
                        p.send(new ProducerRecord<>(topic, part, "k", "c-" + round + "-" + part));
                    }
                    p.commitTransaction();
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(topic, 0, "k", "a-" + round));
                    try {
                        p.abortTransaction();
                    } catch (RuntimeException e) {
                        failures.add("round " + round + ": " + e);
                    }
                }
            }
            assertEquals(List.of(), failures, "empty aborts right after a commit\n" + c.allLogs());
        }
    }
}
