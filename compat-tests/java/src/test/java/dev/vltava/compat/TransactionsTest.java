package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.InvalidTxnStateException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Test;

/**
 * Transactions with the Java client: commit and abort as read_committed and read_uncommitted
 * consumers see them, fencing by a second producer with the same transactional.id, the last
 * stable offset while a transaction is open, and producers that overrun their transaction timeout
 * or die mid-transaction (aborted after it). Offsets in transactions: {@link TransactionsOffsetsTest};
 * across broker restarts: {@link TransactionsRestartTest}.
 *
 * <p>EndTxn returns once the coordinator has decided; the markers land on the partitions a moment
 * later (as in Kafka), so what depends on them is awaited: the LSO reaching the log end offset.
 */
class TransactionsTest extends TxnBrokerSuite {
    private static final String READ_COMMITTED = Txn.READ_COMMITTED;
    private static final String READ_UNCOMMITTED = Txn.READ_UNCOMMITTED;


    @Test
    void committedTransactionIsVisibleToReadCommitted() throws Exception {
        String topic = Clients.unique("txn-commit");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-commit"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "c-" + i));
            }
            p.commitTransaction();
        }
        awaitStable(topic, 2);
        assertEquals(range("c-", 0, 10), sorted(values(readAll(topic, 2, READ_COMMITTED))));
        assertEquals(range("c-", 0, 10), sorted(values(readAll(topic, 2, READ_UNCOMMITTED))));
    }

    @Test
    void abortedTransactionIsNeverVisibleToReadCommitted() throws Exception {
        String topic = Clients.unique("txn-abort");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-abort"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 6; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "c-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 6; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "a-" + i));
            }
            p.flush(); // the aborted records are really in the log
            p.abortTransaction();
            p.beginTransaction();
            for (int i = 0; i < 6; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "d-" + i));
            }
            p.commitTransaction();
        }
        awaitStable(topic, 2);
        List<String> committed = new ArrayList<>(range("c-", 0, 6));
        committed.addAll(range("d-", 0, 6));
        List<ConsumerRecord<String, String>> rc = readAll(topic, 2, READ_COMMITTED);
        assertEquals(sorted(committed), sorted(values(rc)));
        // Per partition, the committed records in the order they were written.
        for (int part = 0; part < 2; part++) {
            int pp = part;
            List<String> expected = committed.stream()
                    .filter(v -> Integer.parseInt(v.substring(2)) % 2 == pp).toList();
            assertEquals(expected, rc.stream().filter(r -> r.partition() == pp).map(ConsumerRecord::value).toList());
        }
        List<String> all = new ArrayList<>(committed);
        all.addAll(range("a-", 0, 6));
        assertEquals(sorted(all), sorted(values(readAll(topic, 2, READ_UNCOMMITTED))));
    }

    /**
     * Two producers' transactions interleaved on one partition, one aborted and one committed, read
     * by a read_committed consumer whose fetches wait in the broker (fetch.min.bytes far above what
     * is there): the delayed fetch answers with the aborted transactions too (Kafka's
     * testDelayedFetchIncludesAbortedTransaction).
     */
    @Test
    void interleavedAbortedTransactionIsFilteredFromDelayedFetches() throws Exception {
        String topic = Clients.unique("txn-interleave");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p1 = txnProducer(Clients.unique("tid-p1"));
                KafkaProducer<String, String> p2 = txnProducer(Clients.unique("tid-p2"))) {
            p1.initTransactions();
            p2.initTransactions();
            p1.beginTransaction();
            p2.beginTransaction();
            p2.send(new ProducerRecord<>(topic, 0, "x", "x-1")).get();
            p1.send(new ProducerRecord<>(topic, 0, "y", "y-1"));
            p1.send(new ProducerRecord<>(topic, 0, "y", "y-2")).get();
            p2.send(new ProducerRecord<>(topic, 0, "x", "x-2")).get();
            p1.abortTransaction();
            p2.commitTransaction();
        }
        awaitStable(topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null, Map.of(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, READ_COMMITTED,
                ConsumerConfig.FETCH_MIN_BYTES_CONFIG, 100_000,
                ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100))) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = Clients.pollRecords(c, 2);
            assertEquals(List.of("x-1", "x-2"), values(got));
            assertEquals(List.of(0L, 3L), got.stream().map(ConsumerRecord::offset).toList());
            // Nothing else: polls up to the end bring no aborted record.
            Clients.waitUntil("the consumer at the end", () -> {
                c.poll(Duration.ofMillis(100)).forEach(got::add);
                return c.position(tp) == endOffset(c, tp);
            });
            assertEquals(List.of("x-1", "x-2"), values(got));
        }
    }

    /**
     * One large aborted transaction over 20 partitions of two topics (markers to every one of
     * them), then a committed one: read_committed sees exactly the committed records (Kafka's
     * testMultipleMarkersOneLeader, smaller).
     */
    @Test
    void largeAbortedTransactionOverManyPartitions() throws Exception {
        String a = Clients.unique("txn-many-a");
        String b = Clients.unique("txn-many-b");
        Clients.createTopic(broker, a, 10);
        Clients.createTopic(broker, b, 10);
        try (KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-many"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 4000; i++) {
                p.send(new ProducerRecord<>(i < 2000 ? a : b, Integer.toString(i), "aborted-" + i));
            }
            p.flush(); // abortTransaction drops what is not yet sent: have it all in the logs
            p.abortTransaction();
            p.beginTransaction();
            for (int i = 0; i < 1000; i++) {
                p.send(new ProducerRecord<>(a, Integer.toString(i), "committed-" + i));
            }
            p.commitTransaction();
        }
        awaitStable(a, 10);
        awaitStable(b, 10);
        List<String> rcA = values(readAll(a, 10, READ_COMMITTED));
        assertEquals(range("committed-", 0, 1000), rcA.stream().sorted((x, y) -> Integer.compare(
                Integer.parseInt(x.substring(10)), Integer.parseInt(y.substring(10)))).toList());
        assertEquals(List.of(), values(readAll(b, 10, READ_COMMITTED)));
        assertEquals(3000, readAll(a, 10, READ_UNCOMMITTED).size());
        assertEquals(2000, readAll(b, 10, READ_UNCOMMITTED).size());
    }

    /** transaction.timeout.ms above the broker's transaction.max.timeout.ms: INVALID_TRANSACTION_TIMEOUT. */
    @Test
    void transactionTimeoutAboveTheMaximumIsRefused() {
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, Clients.unique("tid-too-long"),
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 900_001))) {
            KafkaException e = assertThrows(KafkaException.class, p::initTransactions);
            assertTrue(e.getMessage().contains("transaction.max.timeout.ms"),
                    "the client's text for INVALID_TRANSACTION_TIMEOUT: " + e.getMessage());
        }
    }

    /** Kafka's testFencingOnCommit, made deterministic: p1's records are written before p2 starts. */
    @Test
    void secondProducerWithSameIdFencesTheFirstOnCommit() throws Exception {
        String topic = Clients.unique("txn-fence-commit");
        Clients.createTopic(broker, topic, 1);
        String tid = Clients.unique("tid-fence-commit");
        try (KafkaProducer<String, String> p1 = txnProducer(tid); KafkaProducer<String, String> p2 = txnProducer(tid)) {
            p1.initTransactions();
            p1.beginTransaction();
            p1.send(new ProducerRecord<>(topic, 0, "k", "p1-0")).get();
            p2.initTransactions(); // bumps the epoch, aborts p1's open transaction
            p2.beginTransaction();
            p2.send(new ProducerRecord<>(topic, 0, "k", "p2-0")).get();
            assertThrows(ProducerFencedException.class, p1::commitTransaction);
            p2.commitTransaction();
        }
        awaitStable(topic, 1);
        assertEquals(List.of("p2-0"), values(readAll(topic, 1, READ_COMMITTED)));
        assertEquals(List.of("p1-0", "p2-0"), values(readAll(topic, 1, READ_UNCOMMITTED)));
    }

    /**
     * p1 is fenced before its first send of a transaction. Under Transactions V2 (which the broker
     * finalizes and the 4.4 client uses) the partition leader adds the partition for it and the
     * coordinator answers PRODUCER_FENCED, which the leader reports as INVALID_PRODUCER_EPOCH (as
     * Kafka's AddPartitionsToTxnManager does): the send fails with InvalidProducerEpochException, an
     * abortable error, and the abort is then fenced for good (ProducerFencedException).
     */
    @Test
    void secondProducerWithSameIdFencesTheFirstOnSend() throws Exception {
        String topic = Clients.unique("txn-fence-send");
        Clients.createTopic(broker, topic, 1);
        String tid = Clients.unique("tid-fence-send");
        try (KafkaProducer<String, String> p1 = txnProducer(tid); KafkaProducer<String, String> p2 = txnProducer(tid)) {
            p1.initTransactions();
            p2.initTransactions();
            p1.beginTransaction();
            Throwable failure;
            try {
                p1.send(new ProducerRecord<>(topic, 0, "k", "p1-0")).get();
                failure = null;
            } catch (ExecutionException e) {
                failure = e.getCause();
            } catch (ProducerFencedException e) {
                failure = e;
            }
            assertInstanceOf(InvalidProducerEpochException.class, failure, "p1's send after p2's initTransactions");
            assertThrows(ProducerFencedException.class, p1::abortTransaction);
            p2.beginTransaction();
            p2.send(new ProducerRecord<>(topic, 0, "k", "p2-0"));
            p2.commitTransaction();
        }
        awaitStable(topic, 1);
        assertEquals(List.of("p2-0"), values(readAll(topic, 1, READ_COMMITTED)));
    }

    /**
     * While a transaction is open, read_committed endOffsets (and ListOffsets with isolation level
     * 1) is the LSO, the open transaction's first offset; a read_committed consumer gets nothing
     * from it until it commits.
     */
    @Test
    void openTransactionHoldsTheLastStableOffset() throws Exception {
        String topic = Clients.unique("txn-lso");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = txnProducer(Clients.unique("tid-lso"));
                KafkaConsumer<String, String> rc = reader(READ_COMMITTED);
                KafkaConsumer<String, String> ru = reader(READ_UNCOMMITTED)) {
            p.initTransactions();
            // Timestamps: the committed records' in the past, the open ones' a minute ahead, so
            // that no marker (stamped with the broker's clock) lies at or after the latter.
            long committedTs = System.currentTimeMillis() - 10_000;
            long openTs = System.currentTimeMillis() + 60_000;
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, committedTs, "k", "c-" + i));
            }
            p.commitTransaction();
            awaitStable(topic, 1);
            long stableEnd = endOffset(ru, tp);
            assertEquals(4, stableEnd, "3 records and a commit marker");

            p.beginTransaction();
            long firstOpen = p.send(new ProducerRecord<>(topic, 0, openTs, "k", "o-0")).get().offset();
            p.send(new ProducerRecord<>(topic, 0, openTs, "k", "o-1")).get();
            assertEquals(stableEnd, firstOpen);
            assertEquals(firstOpen + 2, endOffset(ru, tp), "the log end offset");
            assertEquals(firstOpen, endOffset(rc, tp), "read_committed endOffsets is the LSO");
            assertEquals(firstOpen, listOffset(tp, IsolationLevel.READ_COMMITTED));
            assertEquals(firstOpen + 2, listOffset(tp, IsolationLevel.READ_UNCOMMITTED));
            // Undecided records are not searchable by timestamp read_committed (Kafka's
            // testReadCommittedConsumerShouldNotSeeUndecidedData); committed ones are.
            assertEquals(firstOpen, ru.offsetsForTimes(Map.of(tp, openTs)).get(tp).offset());
            assertNull(rc.offsetsForTimes(Map.of(tp, openTs)).get(tp), "offsetsForTimes of undecided records");
            assertEquals(0, rc.offsetsForTimes(Map.of(tp, committedTs)).get(tp).offset());

            rc.assign(List.of(tp));
            rc.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            Instant end = Instant.now().plus(Clients.DEADLINE);
            while (rc.position(tp) < firstOpen) {
                assertTrue(Instant.now().isBefore(end), "read_committed reaches the LSO; got " + values(got));
                rc.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            // A few more fetches at the LSO: nothing of the open transaction comes back.
            for (int i = 0; i < 5; i++) {
                rc.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            assertEquals(List.of("c-0", "c-1", "c-2"), values(got));
            assertEquals(firstOpen, rc.position(tp));

            p.commitTransaction();
            got.addAll(Clients.pollRecords(rc, 2));
            assertEquals(List.of("c-0", "c-1", "c-2", "o-0", "o-1"), values(got));
            Clients.waitUntil("the LSO passes the commit marker", () -> endOffset(rc, tp) == firstOpen + 3);
        }
    }

    /**
     * A live producer that keeps its transaction open past transaction.timeout.ms: the coordinator
     * aborts it (bumping the epoch) and its records are never visible. Under Transactions V2 its
     * commit is then refused as Kafka refuses it: the transaction ended as an abort
     * (INVALID_TXN_STATE, not a fence: a V2 producer could abort and go on).
     */
    @Test
    void transactionPastItsTimeoutIsAbortedAndItsCommitFenced() throws Exception {
        String topic = Clients.unique("txn-expire");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of(
                        ProducerConfig.TRANSACTIONAL_ID_CONFIG, Clients.unique("tid-expire"),
                        ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 1000));
                KafkaConsumer<String, String> rc = reader(READ_COMMITTED)) {
            p.initTransactions();
            p.beginTransaction();
            long offset = p.send(new ProducerRecord<>(topic, 0, "k", "expired-0")).get().offset();
            assertEquals(0, offset);
            Clients.waitUntil("the timed-out transaction aborted (LSO past its abort marker)",
                    () -> endOffset(rc, tp) == 2);
            assertThrows(InvalidTxnStateException.class, p::commitTransaction);
        }
        assertEquals(List.of(), values(readAll(topic, 1, READ_COMMITTED)));
        assertEquals(List.of("expired-0"), values(readAll(topic, 1, READ_UNCOMMITTED)));
    }

    /**
     * A producer in its own JVM opens a transaction, writes and is killed (-9). The coordinator
     * aborts the transaction after transaction.timeout.ms: the LSO moves past it and its records
     * are never visible read_committed; the partition takes new transactions afterwards.
     */
    @Test
    void producerKilledMidTransactionIsAbortedAfterItsTimeout() throws Exception {
        String topic = Clients.unique("txn-dead");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        produceCommitted(topic, Clients.unique("tid-before"), "before-", 2);
        awaitStable(topic, 1);
        int timeoutMs = 5000;
        String deadTid = Clients.unique("tid-dead");
        long first;
        long last;
        Instant opened;
        try (ChildJvm child = ChildJvm.start(AbandonedTxnProducer.class.getName(), broker.bootstrap(), deadTid,
                topic, "5", Integer.toString(timeoutMs))) {
            String[] open = child.awaitEvent(l -> l.startsWith("@open "), Clients.DEADLINE).split(" ");
            opened = Instant.now();
            first = Long.parseLong(open[1]);
            last = Long.parseLong(open[2]);
            child.kill();
        }
        try (KafkaConsumer<String, String> rc = reader(READ_COMMITTED);
                KafkaConsumer<String, String> ru = reader(READ_UNCOMMITTED)) {
            assertEquals(3, first, "2 records and a marker before the dead transaction");
            assertEquals(first + 4, last);
            long lso = endOffset(rc, tp);
            if (Duration.between(opened, Instant.now()).toMillis() < timeoutMs / 2) {
                assertEquals(first, lso, "the LSO is held at the open transaction's first offset");
            }
            Clients.waitUntil("the dead producer's transaction aborted: the LSO reaches the log end offset "
                    + last + 2, () -> endOffset(rc, tp) == last + 2 && endOffset(ru, tp) == last + 2);
            long waited = Duration.between(opened, Instant.now()).toMillis();
            System.out.println("dead producer's transaction aborted " + waited + " ms after it was opened");
        }
        List<String> rcValues = values(readAll(topic, 1, READ_COMMITTED));
        assertEquals(List.of("before-0", "before-1"), rcValues);
        assertEquals(7, values(readAll(topic, 1, READ_UNCOMMITTED)).size(), "the dead records are in the log");

        produceCommitted(topic, Clients.unique("tid-after"), "after-", 2);
        awaitStable(topic, 1);
        assertEquals(List.of("before-0", "before-1", "after-0", "after-1"), values(readAll(topic, 1, READ_COMMITTED)));
    }

    // ---------------------------------------------------------------------------------------------

    private static KafkaProducer<String, String> txnProducer(String transactionalId) {
        return Txn.producer(broker, transactionalId);
    }

    private static KafkaConsumer<String, String> reader(String isolation) {
        return Txn.reader(broker, isolation);
    }

    private static void produceCommitted(String topic, String tid, String prefix, int n) {
        Txn.produceCommitted(broker, topic, tid, prefix, n);
    }

    private static List<TopicPartition> partitions(String topic, int n) {
        return Txn.partitions(topic, n);
    }

    private static long endOffset(KafkaConsumer<String, String> c, TopicPartition tp) {
        return Txn.endOffset(c, tp);
    }

    private static long listOffset(TopicPartition tp, IsolationLevel isolation) throws Exception {
        return admin.listOffsets(Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(isolation))
                .partitionResult(tp).get().offset();
    }

    private static void awaitStable(String topic, int n) {
        Txn.awaitStable(broker, topic, n);
    }

    private static List<ConsumerRecord<String, String>> readAll(String topic, int n, String isolation) {
        return Txn.readAll(broker, topic, n, isolation);
    }

    private static List<String> values(List<ConsumerRecord<String, String>> records) {
        return Txn.values(records);
    }

    private static List<String> sorted(List<String> values) {
        return values.stream().sorted().toList();
    }

    private static List<String> range(String prefix, int from, int to) {
        return IntStream.range(from, to).mapToObj(i -> prefix + i).toList();
    }
}
