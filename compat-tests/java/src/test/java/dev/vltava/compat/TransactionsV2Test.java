package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/**
 * Transactions V2 (KIP-890 part 2) with the Kafka 4.4 Java client, which uses it when the broker
 * finalizes {@code transaction.version} 2: every EndTxn (v5) bumps the producer epoch, partitions
 * are added by their leaders when the first Produce (v12) of a transaction reaches them, and the
 * offsets partition by the group coordinator on TxnOffsetCommit v5 (no AddOffsetsToTxn). A broker
 * configured at level 1 keeps the client on V1. The rest of the Java transaction suites run on V2
 * too, since it is the default.
 */
class TransactionsV2Test extends TxnBrokerSuite {

    @Test
    void theBrokerFinalizesTransactionVersion2() throws Exception {
        FeatureMetadata features = admin.describeFeatures().featureMetadata().get();
        FinalizedVersionRange finalized = features.finalizedFeatures().get("transaction.version");
        assertEquals(2, finalized.maxVersionLevel(), "finalized " + features.finalizedFeatures());
        assertEquals(2, finalized.minVersionLevel());
        SupportedVersionRange supported = features.supportedFeatures().get("transaction.version");
        assertEquals(0, supported.minVersion());
        assertEquals(2, supported.maxVersion());
        assertTrue(features.finalizedFeaturesEpoch().isPresent(), "finalized features carry an epoch");
    }

    /**
     * Commit, abort, commit: each end moves the producer to the next epoch (the coordinator's
     * describeTransactions shows it), and read_committed sees exactly the committed records.
     */
    @Test
    void everyTransactionEndBumpsTheEpoch() throws Exception {
        String topic = Clients.unique("txn-v2-epochs");
        Clients.createTopic(broker, topic, 2);
        String tid = Clients.unique("tid-v2-epochs");
        List<Integer> epochs = new ArrayList<>();
        try (KafkaProducer<String, String> p = Txn.producer(broker, tid)) {
            p.initTransactions();
            epochs.add(describe(tid).producerEpoch());
            String[] outcomes = {"commit", "abort", "commit"};
            for (int t = 0; t < outcomes.length; t++) {
                p.beginTransaction();
                for (int i = 0; i < 4; i++) {
                    p.send(new ProducerRecord<>(topic, i % 2, "k", outcomes[t] + "-" + t + "-" + i));
                }
                p.flush();
                // Both partitions were added by their leader, without AddPartitionsToTxn.
                assertEquals(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)),
                        Set.copyOf(describe(tid).topicPartitions()));
                if (outcomes[t].equals("commit")) {
                    p.commitTransaction();
                } else {
                    p.abortTransaction();
                }
                epochs.add(describe(tid).producerEpoch());
            }
        }
        int first = epochs.get(0);
        assertEquals(List.of(first, first + 1, first + 2, first + 3), epochs);
        Txn.awaitStable(broker, topic, 2);
        List<String> committed = Txn.values(Txn.readAll(broker, topic, 2, Txn.READ_COMMITTED));
        assertEquals(8, committed.size(), "committed: " + committed);
        assertTrue(committed.stream().allMatch(v -> v.startsWith("commit-")), "committed: " + committed);
    }

    /**
     * sendOffsetsToTransaction before any send: the TxnOffsetCommit (v5) alone opens the
     * transaction with the group's offsets partition in it; the commit makes the offsets visible.
     */
    @Test
    void offsetsAloneOpenTheTransaction() throws Exception {
        String topic = Clients.unique("txn-v2-offsets");
        Clients.createTopic(broker, topic, 1);
        String group = Clients.unique("g-v2");
        String tid = Clients.unique("tid-v2-offsets");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = Txn.producer(broker, tid)) {
            p.initTransactions();
            p.beginTransaction();
            p.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(42)), new ConsumerGroupMetadata(group));
            TransactionDescription open = describe(tid);
            assertEquals("Ongoing", open.state().toString(), "state " + open.state());
            assertEquals(1, open.topicPartitions().size(), "partitions " + open.topicPartitions());
            assertEquals("__consumer_offsets", open.topicPartitions().iterator().next().topic());
            p.commitTransaction();
        }
        Clients.waitUntil("the committed offset is visible", () -> {
            try {
                OffsetAndMetadata o = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get().get(tp);
                return o != null && o.offset() == 42;
            } catch (Exception e) {
                return false;
            }
        });
    }

    /** At {@code transaction_version = 1} the client stays on V1: the epoch is not bumped per end. */
    @Test
    void aBrokerAtLevel1KeepsTheClientOnTransactionsV1() throws Exception {
        try (Broker b = Broker.start(Txn.BROKER_CONFIG + "transaction_version = 1\n");
                Admin a = Clients.admin(b)) {
            FeatureMetadata features = a.describeFeatures().featureMetadata().get();
            assertEquals(1, features.finalizedFeatures().get("transaction.version").maxVersionLevel());
            String topic = Clients.unique("txn-v1");
            Clients.createTopic(b, topic, 1);
            String tid = Clients.unique("tid-v1");
            try (KafkaProducer<String, String> p = Txn.producer(b, tid)) {
                p.initTransactions();
                int initial = describe(a, tid).producerEpoch();
                for (int t = 0; t < 2; t++) {
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(topic, 0, "k", "v1-" + t)).get();
                    p.commitTransaction();
                }
                assertEquals(initial, describe(a, tid).producerEpoch());
            }
            Txn.awaitStable(b, topic, 1);
            assertEquals(List.of("v1-0", "v1-1"), Txn.values(Txn.readAll(b, topic, 1, Txn.READ_COMMITTED)));
        }
    }

    private static TransactionDescription describe(String tid) throws Exception {
        return describe(admin, tid);
    }

    private static TransactionDescription describe(Admin a, String tid) throws Exception {
        return a.describeTransactions(List.of(tid)).description(tid).get();
    }
}
