package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Transactions V2 across a 3-node cluster with the Java client: partitions led by all three
 * brokers are added by their leaders (AddPartitionsToTxn v5 to the coordinator on another node),
 * offsets by the group coordinator, every transaction's end bumps the epoch, and the transaction
 * coordinator's node is killed -9 right after a commit (its markers possibly still in flight): its
 * successor replays the bumped epoch from {@code __transaction_state}, completes the commit, and
 * the producer goes on. Read_committed then sees each committed transaction whole and no aborted
 * record, and the group's offset is the last committed transaction's.
 */
class TransactionsClusterTest {
    private static final int PARTITIONS = 3;
    private static final int TRANSACTIONS = 9;
    private static final int KILL_AFTER = 3;

    private Cluster cluster;

    @RegisterExtension
    final TestWatcher dumpLogsOnFailure = new ClusterLogsOnFailure(() -> cluster);

    @Test
    void transactionsGoOnAcrossTheCoordinatorsKill() throws Exception {
        cluster = Cluster.start(3, Map.of(
                "transaction.state.log.num.partitions", "3",
                "transaction.state.log.replication.factor", "3",
                "transaction.state.log.min.isr", "2",
                "offsets.topic.replication.factor", "3",
                "min.insync.replicas", "2"));
        try (Cluster c = cluster; Admin admin = Clients.admin(c.bootstrapAll())) {
            String topic = Clients.unique("txn-v2-cluster");
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 3))).all().get();
            Set<Integer> leaders = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic)
                    .partitions().stream().map(TopicPartitionInfo::leader)
                    .map(n -> n == null ? -1 : n.id()).collect(Collectors.toCollection(TreeSet::new));
            assertEquals(Set.of(1, 2, 3), leaders, "one partition led by each broker");

            String tid = Clients.unique("tid-v2-cluster");
            String group = Clients.unique("g-v2-cluster");
            TopicPartition source = new TopicPartition(topic, 0);
            List<String> committed = new ArrayList<>();
            List<Integer> epochs = new ArrayList<>();
            int killed = -1;
            try (KafkaProducer<String, String> p = Clients.producer(c.bootstrapAll(), Map.of(
                    ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid,
                    ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000,
                    ProducerConfig.MAX_BLOCK_MS_CONFIG, 120_000))) {
                p.initTransactions();
                epochs.add(describe(admin, tid).producerEpoch());
                for (int t = 0; t < TRANSACTIONS; t++) {
                    boolean commit = t % 3 != 2;
                    p.beginTransaction();
                    List<String> values = new ArrayList<>();
                    for (int part = 0; part < PARTITIONS; part++) {
                        for (int i = 0; i < 2; i++) {
                            String v = (commit ? "c" : "a") + "-" + t + "-" + part + "-" + i;
                            p.send(new ProducerRecord<>(topic, part, "k", v));
                            values.add(v);
                        }
                    }
                    p.sendOffsetsToTransaction(Map.of(source, new OffsetAndMetadata(t)),
                            new ConsumerGroupMetadata(group));
                    if (commit) {
                        p.commitTransaction();
                        committed.addAll(values);
                    } else {
                        p.abortTransaction();
                    }
                    if (t == KILL_AFTER) {
                        killed = describe(admin, tid).coordinatorId();
                        c.kill9(killed);
                        epochs.add(-1); // the epoch is read again once the successor answers
                    } else {
                        epochs.add(describe(admin, tid).producerEpoch());
                    }
                }
                // The last end, as the successor coordinator tells it.
                TransactionDescription last = describe(admin, tid);
                epochs.set(epochs.size() - 1, last.producerEpoch());
                assertTrue(killed > 0 && last.coordinatorId() != killed,
                        "coordinator " + last.coordinatorId() + " took over from " + killed);
            }
            int first = epochs.get(0);
            for (int t = 0; t < epochs.size(); t++) {
                if (epochs.get(t) != -1) {
                    assertEquals(first + t, epochs.get(t), "epoch after " + t + " ends: " + epochs);
                }
            }

            Txn.awaitStable(c.bootstrapAll(), topic, PARTITIONS);
            List<String> read = Txn.values(Txn.readAll(c.bootstrapAll(), topic, PARTITIONS, Txn.READ_COMMITTED));
            assertEquals(new TreeSet<>(committed), new TreeSet<>(read), "read_committed");
            assertEquals(committed.size(), read.size(), "each committed record once: " + read);
            int lastCommitted = IntStream.range(0, TRANSACTIONS).filter(t -> t % 3 != 2).max().orElseThrow();
            OffsetAndMetadata offset = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get().get(source);
            assertEquals(lastCommitted, offset.offset(), "the group's offset");
            assertTrue(read.stream().noneMatch(v -> v.startsWith("a-")), "no aborted record: " + read);
        }
    }

    private static TransactionDescription describe(Admin admin, String tid) throws Exception {
        return admin.describeTransactions(List.of(tid)).description(tid).get();
    }
}
