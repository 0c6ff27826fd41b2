package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.TransactionCoordinatorFencedException;
import org.apache.kafka.common.errors.TransactionalIdNotFoundException;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

/**
 * The transaction admin APIs of KIP-664 with the Kafka 4.4 Admin client and kafka-transactions.sh
 * ({@code TransactionsCommand}): ListTransactions (filters by state, producer id and duration),
 * DescribeTransactions, DescribeProducers of a partition with an open transaction, and aborting a
 * transaction whose producer is gone (WriteTxnMarkers from the admin client) — one the coordinator
 * still tracks, and a hanging one the coordinator lost, as {@code find-hanging} finds it — or
 * refusing it with stale epochs; and the same requests routed across a three-node cluster.
 */
class TransactionsAdminTest extends TxnBrokerSuite {
    /** Far beyond the test: the coordinator never aborts these transactions by itself meanwhile. */
    private static final int LONG_TIMEOUT_MS = 600_000;


    /**
     * Three transactional ids (one Empty, one CompleteCommit, one Ongoing over two partitions) as
     * listTransactions with each filter, describeTransactions, and {@code list} / {@code describe}
     * show them; an unknown id is TransactionalIdNotFoundException.
     */
    @Test
    void listAndDescribeTransactions() throws Exception {
        String topic = Clients.unique("txadm-list");
        Clients.createTopic(broker, topic, 2);
        String tidEmpty = Clients.unique("tid-empty");
        String tidDone = Clients.unique("tid-done");
        String tidOpen = Clients.unique("tid-open");
        Txn.produceCommitted(broker, topic, tidDone, "done-", 2);
        try (KafkaProducer<String, String> empty = Txn.producer(broker, tidEmpty);
                KafkaProducer<String, String> open = Clients.producer(broker, Map.of(
                        ProducerConfig.TRANSACTIONAL_ID_CONFIG, tidOpen,
                        ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 90_000))) {
            empty.initTransactions();
            open.initTransactions();
            long beforeBegin = System.currentTimeMillis();
            open.beginTransaction();
            open.send(new ProducerRecord<>(topic, 0, "k", "open-0")).get();
            open.send(new ProducerRecord<>(topic, 1, "k", "open-1")).get();
            long afterSends = System.currentTimeMillis();

            Map<String, TransactionListing> all = byId(admin.listTransactions().all().get());
            assertEquals(TransactionState.EMPTY, all.get(tidEmpty).state(), "listing " + all);
            assertEquals(TransactionState.COMPLETE_COMMIT, all.get(tidDone).state());
            assertEquals(TransactionState.ONGOING, all.get(tidOpen).state());
            long pidOpen = all.get(tidOpen).producerId();
            assertEquals(3, Stream.of(tidEmpty, tidDone, tidOpen).map(t -> all.get(t).producerId()).distinct().count(),
                    "three producer ids: " + all);
            Map<Integer, Collection<TransactionListing>> byBroker = admin.listTransactions().allByBrokerId().get();
            int nodeId = admin.describeCluster().nodes().get().iterator().next().id();
            assertEquals(Set.of(nodeId), byBroker.keySet(), "one coordinator answers");

            Map<String, TransactionListing> ongoing = byId(admin.listTransactions(
                    new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING))).all().get());
            assertTrue(ongoing.containsKey(tidOpen), "Ongoing filter: " + ongoing);
            assertFalse(ongoing.containsKey(tidDone) || ongoing.containsKey(tidEmpty), "Ongoing filter: " + ongoing);
            assertTrue(ongoing.values().stream().allMatch(l -> l.state() == TransactionState.ONGOING), "" + ongoing);
            Map<String, TransactionListing> committed = byId(admin.listTransactions(new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.COMPLETE_COMMIT))).all().get());
            assertTrue(committed.containsKey(tidDone), "CompleteCommit filter: " + committed);
            assertFalse(committed.containsKey(tidOpen) || committed.containsKey(tidEmpty), "" + committed);
            Collection<TransactionListing> byPid = admin.listTransactions(
                    new ListTransactionsOptions().filterProducerIds(List.of(pidOpen))).all().get();
            assertEquals(List.of(new TransactionListing(tidOpen, pidOpen, TransactionState.ONGOING)),
                    List.copyOf(byPid));

            TransactionDescription d = admin.describeTransactions(List.of(tidOpen)).description(tidOpen).get();
            assertEquals(TransactionState.ONGOING, d.state());
            assertEquals(nodeId, d.coordinatorId());
            assertEquals(pidOpen, d.producerId());
            assertEquals(90_000, d.transactionTimeoutMs());
            assertEquals(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)), d.topicPartitions());
            long startMs = d.transactionStartTimeMs().orElseThrow();
            assertTrue(startMs >= beforeBegin && startMs <= afterSends,
                    "transaction start " + startMs + " within [" + beforeBegin + ", " + afterSends + "]");
            TransactionDescription done = admin.describeTransactions(List.of(tidDone)).description(tidDone).get();
            assertEquals(TransactionState.COMPLETE_COMMIT, done.state());
            assertEquals(Set.of(), done.topicPartitions());
            assertEquals(all.get(tidDone).producerId(), done.producerId());
            assertTrue(done.transactionStartTimeMs().isPresent(), "a completed transaction keeps its start: " + done);
            TransactionDescription idle = describe(tidEmpty);
            assertEquals(TransactionState.EMPTY, idle.state());
            assertEquals(0, idle.producerEpoch(), "a new id's first epoch");
            assertEquals(OptionalLong.empty(), idle.transactionStartTimeMs(), "no transaction yet: " + idle);
            ExecutionException unknown = assertThrows(ExecutionException.class,
                    () -> admin.describeTransactions(List.of(Clients.unique("tid-unknown"))).all().get());
            assertInstanceOf(TransactionalIdNotFoundException.class, unknown.getCause());

            // kafka-transactions.sh list / describe.
            Map<String, List<String>> listed = rowsByColumn(transactions("list").ok(),
                    List.of("TransactionalId", "Coordinator", "ProducerId", "TransactionState"), 0);
            assertEquals(List.of(tidOpen, Integer.toString(nodeId), Long.toString(pidOpen), "Ongoing"),
                    listed.get(tidOpen), "list: " + listed);
            assertEquals("CompleteCommit", listed.get(tidDone).get(3));
            assertEquals("Empty", listed.get(tidEmpty).get(3));
            List<String> described = rowsByColumn(transactions("describe", "--transactional-id", tidOpen).ok(),
                    List.of("CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                            "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                            "TopicPartitions"), 1).get(tidOpen);
            assertEquals(List.of(Integer.toString(nodeId), tidOpen, Long.toString(pidOpen),
                    Integer.toString(d.producerEpoch()), "Ongoing", "90000", Long.toString(startMs)),
                    described.subList(0, 7), "describe: " + described);
            assertEquals(Set.of(topic + "-0", topic + "-1"), Set.of(described.get(8).split(",")));

            // Duration filter (ListTransactions v1, KIP-994): only transactions open longer than it.
            long openAtLeast = System.currentTimeMillis() - afterSends;
            long openAtMost = System.currentTimeMillis() - beforeBegin;
            assertTrue(openAtLeast > 100, "the tool runs took time: " + openAtLeast);
            Set<String> longerThanHalf = byId(admin.listTransactions(new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING)).filterOnDuration(openAtLeast / 2))
                    .all().get()).keySet();
            assertTrue(longerThanHalf.contains(tidOpen), "open for more than " + openAtLeast / 2 + ": " + longerThanHalf);
            Set<String> longerThanAnHour = byId(admin.listTransactions(new ListTransactionsOptions()
                    .filterOnDuration(openAtMost + 3_600_000)).all().get()).keySet();
            assertFalse(longerThanAnHour.contains(tidOpen), "open for over an hour: " + longerThanAnHour);

            open.commitTransaction();
            Clients.waitUntil(tidOpen + " CompleteCommit", () -> describe(tidOpen).state()
                    == TransactionState.COMPLETE_COMMIT);
            assertEquals(Set.of(), describe(tidOpen).topicPartitions());
            assertFalse(byId(admin.listTransactions(new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING))).all().get()).containsKey(tidOpen));
        }
    }

    /**
     * describeProducers on a partition: the producer's id and epoch (those of describeTransactions),
     * last sequence and the first offset of its open transaction; none once it commits (Transactions
     * V2: the commit bumps the epoch, and sequences start again at 0).
     */
    @Test
    void describeProducersShowsTheOpenTransaction() throws Exception {
        String topic = Clients.unique("txadm-producers");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String tid = Clients.unique("tid-producers");
        long before = System.currentTimeMillis();
        try (KafkaProducer<String, String> p = Txn.producer(broker, tid);
                KafkaConsumer<String, String> rc = Txn.reader(broker, Txn.READ_COMMITTED);
                KafkaConsumer<String, String> ru = Txn.reader(broker, Txn.READ_UNCOMMITTED)) {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "c-0"));
            p.send(new ProducerRecord<>(topic, 0, "k", "c-1"));
            p.commitTransaction();
            Txn.awaitStable(broker, topic, 1);
            TransactionDescription d = describe(tid);
            ProducerState committed = onlyProducer(tp);
            assertEquals(d.producerId(), committed.producerId());
            assertEquals(d.producerEpoch(), committed.producerEpoch());
            // Transactions V2: the commit marker carries the producer's next epoch, which has
            // written nothing yet (as Kafka shows it: no last sequence).
            assertEquals(-1, committed.lastSequence(), "after the commit marker: " + committed);
            assertTrue(committed.currentTransactionStartOffset().isEmpty(), "committed: " + committed);
            assertTrue(committed.coordinatorEpoch().isPresent(), "the commit marker's coordinator epoch: " + committed);

            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "o-" + i));
            }
            p.flush();
            long afterSends = System.currentTimeMillis();
            ProducerState open = onlyProducer(tp);
            assertEquals(d.producerId(), open.producerId());
            assertEquals(describe(tid).producerEpoch(), open.producerEpoch());
            assertEquals(2, open.lastSequence(), "three records of the new epoch, sequences 0 to 2");
            assertEquals(3, open.currentTransactionStartOffset().orElseThrow(),
                    "after 2 records and a commit marker: " + open);
            assertEquals(committed.coordinatorEpoch(), open.coordinatorEpoch());
            assertTrue(open.lastTimestamp() >= before && open.lastTimestamp() <= afterSends,
                    "last timestamp " + open.lastTimestamp() + " within [" + before + ", " + afterSends + "]");
            assertEquals(3, Txn.endOffset(rc, tp), "the LSO is the open transaction's first offset");
            assertEquals(6, Txn.endOffset(ru, tp));

            // kafka-transactions.sh describe-producers.
            List<String> row = rowsByColumn(transactions("describe-producers", "--topic", topic, "--partition", "0").ok(),
                    List.of("ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                            "CurrentTransactionStartOffset"), 0).get(Long.toString(d.producerId()));
            assertEquals(List.of(Long.toString(open.producerId()), Integer.toString(open.producerEpoch()),
                    Integer.toString(open.coordinatorEpoch().orElse(-1)), "2", Long.toString(open.lastTimestamp()), "3"),
                    row);

            p.commitTransaction();
            Txn.awaitStable(broker, topic, 1);
            ProducerState after = onlyProducer(tp);
            assertTrue(after.currentTransactionStartOffset().isEmpty(), "after the commit: " + after);
            assertEquals(-1, after.lastSequence(), "the commit marker moved it to its next epoch: " + after);
            assertEquals(open.producerEpoch() + 1, after.producerEpoch());
            assertEquals(7, Txn.endOffset(rc, tp), "the LSO passes the commit marker");
        }
    }

    /**
     * A producer in its own JVM opens a transaction (a 10-minute timeout), writes 5 records and is
     * killed. The admin client aborts it on the partition with describeProducers' producer id,
     * epoch and coordinator epoch: the LSO reaches the log end offset at once, read_committed never
     * sees the records, and the partition takes new transactions.
     */
    @Test
    void adminAbortsTheTransactionOfAKilledProducer() throws Exception {
        String topic = Clients.unique("txadm-abort");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        Txn.produceCommitted(broker, topic, Clients.unique("tid-before"), "before-", 2);
        Txn.awaitStable(broker, topic, 1);
        String deadTid = Clients.unique("tid-killed");
        long[] open = openAndKill(broker, deadTid, topic, 5);
        long first = open[0];
        long last = open[1];
        assertEquals(3, first, "2 records and a marker before the killed producer's transaction");
        try (KafkaConsumer<String, String> rc = Txn.reader(broker, Txn.READ_COMMITTED);
                KafkaConsumer<String, String> ru = Txn.reader(broker, Txn.READ_UNCOMMITTED)) {
            assertEquals(first, Txn.endOffset(rc, tp), "the LSO is held by the dead transaction");
            TransactionDescription d = describe(deadTid);
            assertEquals(TransactionState.ONGOING, d.state(), "the coordinator still waits for it: " + d);
            ProducerState dead = openTransactionAt(tp, first);
            assertEquals(d.producerId(), dead.producerId());
            assertEquals(d.producerEpoch(), dead.producerEpoch());
            assertEquals(OptionalInt.empty(), dead.coordinatorEpoch(), "no marker yet for this producer: " + dead);

            admin.abortTransaction(new AbortTransactionSpec(tp, dead.producerId(), (short) dead.producerEpoch(),
                    dead.coordinatorEpoch().orElse(0))).all().get();
            assertEquals(last + 2, Txn.endOffset(ru, tp), "the abort marker after the 5 records");
            assertEquals(last + 2, Txn.endOffset(rc, tp), "the LSO reaches the log end offset once the abort returns");
            ProducerState aborted = producers(tp).get(dead.producerId());
            assertTrue(aborted.currentTransactionStartOffset().isEmpty(), "after the abort: " + aborted);
            assertEquals(OptionalInt.of(0), aborted.coordinatorEpoch(), "the admin's marker's: " + aborted);
        }
        assertEquals(List.of("before-0", "before-1"), Txn.values(Txn.readAll(broker, topic, 1, Txn.READ_COMMITTED)));
        assertEquals(7, Txn.readAll(broker, topic, 1, Txn.READ_UNCOMMITTED).size(), "the aborted records stay in the log");
        Txn.produceCommitted(broker, topic, Clients.unique("tid-after"), "after-", 2);
        Txn.awaitStable(broker, topic, 1);
        assertEquals(List.of("before-0", "before-1", "after-0", "after-1"),
                Txn.values(Txn.readAll(broker, topic, 1, Txn.READ_COMMITTED)));
    }

    /**
     * abortTransaction with an older producer epoch than the partition's (INVALID_PRODUCER_EPOCH) or
     * an older coordinator epoch than its last marker's (TRANSACTION_COORDINATOR_FENCED) is refused
     * and writes nothing; the open transaction is then committed as usual.
     */
    @Test
    void adminAbortWithStaleEpochsIsRefused() throws Exception {
        String topic = Clients.unique("txadm-stale");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String tid = Clients.unique("tid-stale");
        Txn.produceCommitted(broker, topic, tid, "c-", 1);
        Txn.awaitStable(broker, topic, 1);
        ProducerState first = onlyProducer(tp);
        int coordinatorEpoch = first.coordinatorEpoch().orElseThrow();
        try (KafkaProducer<String, String> p = Txn.producer(broker, tid);
                KafkaConsumer<String, String> rc = Txn.reader(broker, Txn.READ_COMMITTED);
                KafkaConsumer<String, String> ru = Txn.reader(broker, Txn.READ_UNCOMMITTED)) {
            p.initTransactions(); // the same id again: the epoch is bumped
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "o-0")).get();
            ProducerState open = onlyProducer(tp);
            assertEquals(first.producerId(), open.producerId());
            assertEquals(first.producerEpoch() + 1, open.producerEpoch(), "epoch bumped: " + open);
            assertEquals(2, open.currentTransactionStartOffset().orElseThrow());

            ExecutionException staleProducer = assertThrows(ExecutionException.class, () -> admin.abortTransaction(
                    new AbortTransactionSpec(tp, open.producerId(), (short) first.producerEpoch(), coordinatorEpoch))
                    .all().get());
            assertInstanceOf(InvalidProducerEpochException.class, staleProducer.getCause());
            ExecutionException staleCoordinator = assertThrows(ExecutionException.class, () -> admin.abortTransaction(
                    new AbortTransactionSpec(tp, open.producerId(), (short) open.producerEpoch(), coordinatorEpoch - 1))
                    .all().get());
            assertInstanceOf(TransactionCoordinatorFencedException.class, staleCoordinator.getCause());
            assertEquals(3, Txn.endOffset(ru, tp), "no marker written");
            assertEquals(2, Txn.endOffset(rc, tp), "the transaction still open");
            assertEquals(open, onlyProducer(tp));

            p.commitTransaction();
        }
        Txn.awaitStable(broker, topic, 1);
        assertEquals(List.of("c-0", "o-0"), Txn.values(Txn.readAll(broker, topic, 1, Txn.READ_COMMITTED)));
    }

    /**
     * A hanging transaction: a killed producer's open transaction whose coordinator state is lost
     * (the broker killed and its {@code __transaction_state} logs deleted), so no timeout will ever
     * abort it. {@code find-hanging} does not report it while the coordinator tracks it, reports it
     * once lost, and {@code abort --start-offset} ends it: the LSO moves on.
     */
    @Test
    void cliFindsAndAbortsAHangingTransaction() throws Exception {
        try (Broker b = Broker.start(Txn.BROKER_CONFIG); Admin a = Clients.admin(b)) {
            String topic = Clients.unique("txadm-hanging");
            Clients.createTopic(b, topic, 1);
            TopicPartition tp = new TopicPartition(topic, 0);
            int nodeId = a.describeCluster().nodes().get().iterator().next().id();
            long[] open = openAndKill(b, Clients.unique("tid-hanging"), topic, 3);
            assertEquals(0, open[0]);
            String[] findHanging = {"find-hanging", "--broker-id", Integer.toString(nodeId),
                "--max-transaction-timeout", "0"};
            List<String> hangingHeader = List.of("Topic", "Partition", "ProducerId", "ProducerEpoch",
                    "CoordinatorEpoch", "StartOffset", "LastTimestamp", "Duration(min)");
            assertEquals(Map.of(), rowsByColumn(transactionsOn(b, findHanging).ok(), hangingHeader, 0),
                    "not hanging while its coordinator still tracks it");

            b.restartAfter(() -> deleteTransactionStateLogs(b.dataDir()));
            Map<String, List<String>> hanging = rowsByColumn(transactionsOn(b, findHanging).ok(), hangingHeader, 0);
            List<String> row = hanging.get(topic);
            assertEquals(Set.of(topic), hanging.keySet(), "find-hanging: " + hanging);
            assertEquals(List.of(topic, "0"), row.subList(0, 2));
            assertEquals("0", row.get(5), "start offset: " + row);

            transactionsOn(b, "abort", "--topic", topic, "--partition", "0", "--start-offset", "0").ok();
            try (KafkaConsumer<String, String> rc = Txn.reader(b, Txn.READ_COMMITTED)) {
                assertEquals(open[1] + 2, Txn.endOffset(rc, tp), "the LSO past the abort marker");
            }
            assertEquals(List.of(), Txn.values(Txn.readAll(b, topic, 1, Txn.READ_COMMITTED)));
            Txn.produceCommitted(b, topic, Clients.unique("tid-after"), "after-", 1);
            Txn.awaitStable(b, topic, 1);
            assertEquals(List.of("after-0"), Txn.values(Txn.readAll(b, topic, 1, Txn.READ_COMMITTED)));
        }
    }

    /**
     * Three nodes: listTransactions asks every broker and each transactional id is listed by its
     * coordinator (the leader of its {@code __transaction_state} partition, as Kafka places it),
     * which describeTransactions reaches; abortTransaction reaches the partition's leader and the
     * LSO reaches the log end offset.
     */
    @Test
    void adminAcrossACluster() throws Exception {
        int stateLogPartitions = 6;
        try (Cluster c = Cluster.start(3, Map.of("transaction.state.log.num.partitions",
                        Integer.toString(stateLogPartitions)));
                Admin a = Clients.admin(c.bootstrapAll())) {
            String topic = Clients.unique("txadm-cluster");
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 3))).all().get();
            List<String> tids = IntStream.range(0, 6).mapToObj(i -> Clients.unique("tid-c" + i)).toList();
            List<KafkaProducer<String, String>> producers = new ArrayList<>();
            try {
                for (int i = 0; i < tids.size(); i++) {
                    KafkaProducer<String, String> p = Clients.producer(c.bootstrapAll(),
                            Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tids.get(i)));
                    producers.add(p);
                    p.initTransactions();
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(topic, i % 3, "k", "v" + i)).get();
                }
                Map<String, Integer> listedBy = new HashMap<>();
                a.listTransactions().allByBrokerId().get().forEach((node, listings) -> listings.forEach(
                        l -> assertNull(listedBy.put(l.transactionalId(), node), "listed twice: " + l)));
                List<Integer> stateLeaders = a.describeTopics(List.of("__transaction_state")).allTopicNames().get()
                        .get("__transaction_state").partitions().stream()
                        .sorted(Comparator.comparingInt(TopicPartitionInfo::partition))
                        .map(info -> info.leader().id()).toList();
                assertEquals(stateLogPartitions, stateLeaders.size());
                Map<String, TransactionDescription> described = a.describeTransactions(tids).all().get();
                for (int i = 0; i < tids.size(); i++) {
                    String tid = tids.get(i);
                    int coordinator = stateLeaders.get(Utils.abs(tid.hashCode()) % stateLogPartitions);
                    assertEquals(coordinator, listedBy.get(tid), tid + " listed by its coordinator: " + listedBy);
                    TransactionDescription d = described.get(tid);
                    assertEquals(coordinator, d.coordinatorId(), "" + d);
                    assertEquals(TransactionState.ONGOING, d.state());
                    assertEquals(Set.of(new TopicPartition(topic, i % 3)), d.topicPartitions());
                }

                TopicPartition tp = new TopicPartition(topic, 0);
                Collection<ProducerState> open = a.describeProducers(List.of(tp)).partitionResult(tp).get()
                        .activeProducers();
                assertEquals(Set.of(0L, 1L), open.stream().map(s -> s.currentTransactionStartOffset().orElse(-1))
                        .collect(Collectors.toSet()), "the transactions of tids 0 and 3: " + open);
                for (ProducerState s : open) {
                    a.abortTransaction(new AbortTransactionSpec(tp, s.producerId(), (short) s.producerEpoch(),
                            s.coordinatorEpoch().orElse(0))).all().get();
                }
                try (KafkaConsumer<String, String> rc = Clients.consumer(c.bootstrapAll(), null,
                        Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, Txn.READ_COMMITTED))) {
                    assertEquals(4, Txn.endOffset(rc, tp), "the LSO past both abort markers");
                }
            } finally {
                producers.forEach(p -> p.close(Duration.ZERO));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------

    private static TransactionDescription describe(String tid) {
        try {
            return admin.describeTransactions(List.of(tid)).description(tid).get();
        } catch (Exception e) {
            throw new AssertionError("describeTransactions " + tid + ": " + e, e);
        }
    }

    private static Map<String, TransactionListing> byId(Collection<TransactionListing> listings) {
        return listings.stream().collect(Collectors.toMap(TransactionListing::transactionalId, Function.identity()));
    }

    private static Map<Long, ProducerState> producers(TopicPartition tp) throws Exception {
        return admin.describeProducers(List.of(tp)).partitionResult(tp).get().activeProducers().stream()
                .collect(Collectors.toMap(ProducerState::producerId, Function.identity()));
    }

    private static ProducerState onlyProducer(TopicPartition tp) throws Exception {
        Map<Long, ProducerState> all = producers(tp);
        assertEquals(1, all.size(), "one producer wrote to " + tp + ": " + all);
        return all.values().iterator().next();
    }

    private static ProducerState openTransactionAt(TopicPartition tp, long startOffset) throws Exception {
        Map<Long, ProducerState> all = producers(tp);
        return all.values().stream()
                .filter(s -> s.currentTransactionStartOffset().orElse(-1) == startOffset).findFirst()
                .orElseThrow(() -> new AssertionError("no transaction open at " + startOffset + ": " + all));
    }

    /** Runs {@link AbandonedTxnProducer} ({@code n} records, a long timeout), kills it; its [first, last] offsets. */
    private static long[] openAndKill(Broker b, String tid, String topic, int n) {
        try (ChildJvm child = ChildJvm.start(AbandonedTxnProducer.class.getName(), b.bootstrap(), tid, topic,
                Integer.toString(n), Integer.toString(LONG_TIMEOUT_MS))) {
            String[] open = child.awaitEvent(l -> l.startsWith("@open "), Clients.DEADLINE).split(" ");
            child.kill();
            return new long[] {Long.parseLong(open[1]), Long.parseLong(open[2])};
        }
    }

    private static void deleteTransactionStateLogs(Path dataDir) {
        try (Stream<Path> dirs = Files.list(dataDir)) {
            List<Path> logs = dirs.filter(d -> d.getFileName().toString().startsWith("__transaction_state-")).toList();
            assertFalse(logs.isEmpty(), "__transaction_state logs in " + dataDir);
            for (Path dir : logs) {
                try (Stream<Path> walk = Files.walk(dir)) {
                    for (Path f : walk.sorted(Comparator.reverseOrder()).toList()) {
                        Files.delete(f);
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Tools.Result transactions(String... args) {
        return transactionsOn(broker, args);
    }

    private static Tools.Result transactionsOn(Broker b, String... args) {
        String[] all = Stream.concat(Stream.of("--bootstrap-server", b.bootstrap()), Arrays.stream(args))
                .toArray(String[]::new);
        return Tools.run(Tools.TRANSACTIONS, null, all);
    }

    /**
     * A table printed by the tool: checks its header is {@code header}, and returns its rows (cells
     * split on white space) by the cell in column {@code key}.
     */
    private static Map<String, List<String>> rowsByColumn(Tools.Result r, List<String> header, int key) {
        List<String> lines = r.lines();
        assertFalse(lines.isEmpty(), "a table: " + r);
        assertEquals(header, List.of(lines.get(0).trim().split("\\s+")), "header: " + r);
        Map<String, List<String>> rows = new HashMap<>();
        for (String line : lines.subList(1, lines.size())) {
            List<String> cells = List.of(line.trim().split("\\s+"));
            assertEquals(header.size(), cells.size(), "row " + line + " of " + r);
            assertNull(rows.put(cells.get(key), cells), "one row per key: " + r);
        }
        return rows;
    }
}
