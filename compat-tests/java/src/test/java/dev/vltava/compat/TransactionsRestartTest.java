package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Transactions across a kill -9 and restart of the broker: the log's transaction state (aborted
 * transactions, an open transaction holding the LSO) is rebuilt on recovery, and the coordinator
 * reloads the open transaction from __transaction_state and aborts it after its timeout.
 */
class TransactionsRestartTest {
    private static final String RC = Txn.READ_COMMITTED;
    private static final String RU = Txn.READ_UNCOMMITTED;

    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start(Txn.BROKER_CONFIG);
    }

    @AfterAll
    static void stop() {
        if (broker != null) {
            broker.close();
        }
    }

    @Test
    void transactionStateSurvivesABrokerKill() throws Exception {
        String topic = Clients.unique("txn-restart");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String tid = Clients.unique("tid-restart");
        try (KafkaProducer<String, String> p = Txn.producer(broker, tid)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "c-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "a-" + i));
            }
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            for (int i = 0; i < 2; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "d-" + i));
            }
            p.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 1);
        List<String> committed = List.of("c-0", "c-1", "c-2", "d-0", "d-1");
        assertEquals(committed, Txn.values(Txn.readAll(broker, topic, 1, RC)));

        // A producer in its own JVM opens a transaction and is killed; then the broker is killed.
        int timeoutMs = 10_000;
        String deadTid = Clients.unique("tid-dead");
        long first;
        long last;
        Instant opened;
        try (ChildJvm child = ChildJvm.start(AbandonedTxnProducer.class.getName(), broker.bootstrap(), deadTid,
                topic, "3", Integer.toString(timeoutMs))) {
            String[] open = child.awaitEvent(l -> l.startsWith("@open "), Clients.DEADLINE).split(" ");
            opened = Instant.now();
            first = Long.parseLong(open[1]);
            last = Long.parseLong(open[2]);
            child.kill();
        }
        assertEquals(11, first, "3 + marker, 3 + marker, 2 + marker before the open transaction");
        broker.restart();
        long restartMs = Duration.between(opened, Instant.now()).toMillis();
        System.out.println("broker restarted " + restartMs + " ms after the transaction was opened");

        try (KafkaConsumer<String, String> rc = Txn.reader(broker, RC);
                KafkaConsumer<String, String> ru = Txn.reader(broker, RU)) {
            assertEquals(last + 1, Txn.endOffset(ru, tp), "the log end offset after recovery");
            if (Duration.between(opened, Instant.now()).toMillis() < timeoutMs - 2000) {
                assertEquals(first, Txn.endOffset(rc, tp),
                        "after recovery the LSO is still held at the open transaction's first offset");
            }
            // The aborted transaction stays hidden, the open one is not visible.
            assertEquals(committed, Txn.values(Txn.readAll(broker, topic, 1, RC)));
            Clients.waitUntil("the reloaded open transaction aborted after its timeout (LSO = log end offset "
                    + (last + 2) + ")", () -> Txn.endOffset(rc, tp) == last + 2 && Txn.endOffset(ru, tp) == last + 2);
            System.out.println("aborted " + Duration.between(opened, Instant.now()).toMillis()
                    + " ms after it was opened (timeout " + timeoutMs + " ms)");
        }
        assertEquals(committed, Txn.values(Txn.readAll(broker, topic, 1, RC)));
        assertEquals(11, Txn.readAll(broker, topic, 1, RU).size(), "every record (3 + 3 + 2 + 3) is in the log");

        // Both transactional ids carry on with new producers (epoch bumps from the reloaded state).
        Txn.produceCommitted(broker, topic, deadTid, "e-", 1);
        Txn.produceCommitted(broker, topic, tid, "f-", 1);
        Txn.awaitStable(broker, topic, 1);
        List<String> after = new ArrayList<>(committed);
        after.addAll(List.of("e-0", "f-0"));
        assertEquals(after, Txn.values(Txn.readAll(broker, topic, 1, RC)));
    }

    /**
     * A live producer's transaction across a broker kill: after the restart it writes more to the
     * same partition (its sequence continues from the recovered producer state) and commits (the
     * coordinator reloaded the Ongoing transaction with its partitions).
     */
    @Test
    void openTransactionCarriesOnAndCommitsAfterABrokerKill() throws Exception {
        String topic = Clients.unique("txn-live-restart");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> p = Txn.producer(broker, Clients.unique("tid-live"))) {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "a-0")).get();
            p.send(new ProducerRecord<>(topic, 1, "k", "b-0")).get();
            broker.restart();
            p.send(new ProducerRecord<>(topic, 0, "k", "a-1")).get();
            p.send(new ProducerRecord<>(topic, 1, "k", "b-1")).get();
            p.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 2);
        assertEquals(List.of("a-0", "a-1", "b-0", "b-1"),
                Txn.values(Txn.readAll(broker, topic, 2, RC)).stream().sorted().toList());
    }

    /**
     * The broker is killed as soon as commitTransaction returns (the decision is logged, the markers
     * may not be): after the restart the commit completes, every record becomes visible, and the
     * producer carries on with its next transaction.
     */
    @Test
    void commitDecidedBeforeABrokerKillCompletesAfterTheRestart() throws Exception {
        String topic = Clients.unique("txn-commit-restart");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> p = Txn.producer(broker, Clients.unique("tid-commit-restart"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 6; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k", "x-" + i));
            }
            p.commitTransaction();
            broker.restart();
            Txn.awaitStable(broker, topic, 2);
            assertEquals(List.of("x-0", "x-1", "x-2", "x-3", "x-4", "x-5"),
                    Txn.values(Txn.readAll(broker, topic, 2, RC)).stream().sorted().toList());
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "y-0"));
            p.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 2);
        assertEquals(7, Txn.readAll(broker, topic, 2, RC).size());
    }

    /**
     * An aborted transaction interleaved with a committed one over several small segments
     * (segment.bytes=4096): read_committed from the start and from the middle of the aborted
     * transaction (whose first offset lies in an earlier segment) sees exactly the committed
     * records, before and after a broker kill (the aborted transactions rebuilt on recovery).
     */
    @Test
    void abortedTransactionAcrossSegmentsBeforeAndAfterRestart() throws Exception {
        String topic = Clients.unique("txn-segments");
        try (Admin admin = Clients.admin(broker)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of("segment.bytes", "4096")))).all().get();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        String pad = "p".repeat(100);
        try (KafkaProducer<String, String> aborter = Txn.producer(broker, Clients.unique("tid-seg-a"));
                KafkaProducer<String, String> committer = Txn.producer(broker, Clients.unique("tid-seg-c"))) {
            aborter.initTransactions();
            committer.initTransactions();
            aborter.beginTransaction();
            committer.beginTransaction();
            for (int i = 0; i < 60; i++) {
                aborter.send(new ProducerRecord<>(topic, 0, "a", "a-" + i + pad)).get();
                committer.send(new ProducerRecord<>(topic, 0, "c", "c-" + i + pad)).get();
            }
            aborter.abortTransaction();
            committer.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 1);
        List<ConsumerRecord<String, String>> all = Txn.readAll(broker, topic, 1, RU);
        assertEquals(120, all.size());
        long middle = all.get(61).offset();
        List<String> committedAll = all.stream().map(ConsumerRecord::value).filter(v -> v.startsWith("c-")).toList();
        List<String> committedFromMiddle = all.stream().filter(r -> r.offset() >= middle)
                .map(ConsumerRecord::value).filter(v -> v.startsWith("c-")).toList();
        assertEquals(60, committedAll.size());
        long segments;
        try (Stream<Path> files = Files.walk(broker.dataDir())) {
            segments = files.filter(f -> f.getParent().getFileName().toString().equals(topic + "-0")
                    && f.getFileName().toString().endsWith(".log")).count();
        }
        assertTrue(segments >= 4, "the transactions span several segments: " + segments);
        for (int round = 0; round < 2; round++) {
            String when = round == 0 ? "before the restart" : "after the restart";
            assertEquals(committedAll, Txn.values(Txn.readAll(broker, topic, 1, RC)), when);
            assertEquals(committedFromMiddle, readFrom(tp, middle), "from offset " + middle + " " + when);
            if (round == 0) {
                broker.restart();
            }
        }
    }

    /** read_committed from {@code offset} to the end. */
    private static List<String> readFrom(TopicPartition tp, long offset) {
        try (KafkaConsumer<String, String> c = Txn.reader(broker, RC)) {
            c.assign(List.of(tp));
            c.seek(tp, offset);
            long end = Txn.endOffset(c, tp);
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            Clients.waitUntil("read_committed from " + offset + " reaches " + end, () -> {
                c.poll(Duration.ofMillis(100)).forEach(got::add);
                return c.position(tp) >= end;
            });
            return Txn.values(got);
        }
    }
}
