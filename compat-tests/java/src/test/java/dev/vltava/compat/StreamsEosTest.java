package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams exactly_once_v2 across a crash: the word count of {@link EosWordCountApp} runs in
 * its own JVM, is killed with SIGKILL while input is still arriving (a transaction open), and is
 * started again on the same state directory (the same process id, so the same transactional.id,
 * whose InitProducerId fences and aborts the dead one's transaction). Read read_committed, the
 * output then holds, per word, exactly the counts 1, 2, ... n: nothing the dead instance wrote in
 * its open transaction is visible, nothing is counted twice, nothing is lost.
 */
class StreamsEosTest {
    private static final Duration DEADLINE = Duration.ofSeconds(90);
    private static final int PARTITIONS = 2;
    private static final String[] VOCABULARY = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"
    };

    private static Broker broker;
    private static Path stateDir;

    @BeforeAll
    static void start() throws IOException {
        broker = Broker.start(Txn.BROKER_CONFIG);
        // Under target/, not the OS temp directory (Streams warns that one may be cleaned).
        Path target = Paths.get("target");
        Files.createDirectories(target);
        stateDir = Files.createTempDirectory(target.toAbsolutePath(), "streams-eos-");
    }

    @AfterAll
    static void stop() {
        if (broker != null) {
            broker.close();
        }
        try (Stream<Path> walk = Files.walk(stateDir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            // a temp dir left behind is harmless
        }
    }

    @Test
    void killedMidStreamAndRestartedCountsExactlyOnce() throws Exception {
        String appId = Clients.unique("eos-wc");
        String input = Clients.unique("eos-lines");
        String output = Clients.unique("eos-counts");
        Clients.createTopic(broker, input, PARTITIONS);
        Clients.createTopic(broker, output, PARTITIONS);
        String[] args = {broker.bootstrap(), appId, input, output, stateDir.toString()};

        Instant t0 = Instant.now();
        List<ConsumerRecord<String, Long>> seen = new ArrayList<>();
        try (Feeder feeder = new Feeder(input);
                Admin admin = Clients.admin(broker);
                KafkaConsumer<String, Long> out = outputReader(output, "read_committed");
                KafkaConsumer<String, Long> raw = outputReader(output, "read_uncommitted")) {
            // Kill an instance once it has committed some output and has more in the log in an
            // open transaction (an output partition's LSO below its end offset). If the kill
            // landed just as that transaction was being committed (the coordinator no longer has
            // it Ongoing), start an instance and kill it again: the scenario needs an open one.
            boolean killedInTransaction = false;
            for (int attempt = 1; !killedInTransaction; attempt++) {
                assertTrue(attempt <= 3, "3 kills, none inside an open transaction");
                try (ChildJvm first = ChildJvm.start(EosWordCountApp.class.getName(), args)) {
                    first.awaitEvent(l -> l.equals("@state RUNNING"), DEADLINE);
                    feeder.start();
                    int target = seen.size() + 60;
                    pollUntil(out, seen, first, got -> got.size() >= target && openOutput(out, raw),
                            target + " committed output records and an open transaction's output in the log");
                    first.kill();
                }
                killedInTransaction = openOutput(out, raw) && ongoing(admin, appId);
                System.out.println("kill " + attempt + " after " + Duration.between(t0, Instant.now()).toMillis()
                        + " ms: " + feeder.sent() + " lines sent, " + seen.size() + " committed updates read, "
                        + (killedInTransaction ? "inside" : "not inside") + " an open transaction");
            }
            // More input after the crash, then no more: the counts have a final value to reach.
            feeder.stopAfter(100);
            Map<String, Long> expected = counts(lines(feeder.sent()));

            try (ChildJvm second = ChildJvm.start(EosWordCountApp.class.getName(), args)) {
                pollUntil(out, seen, second, got -> latest(got).equals(expected), "the exact final counts");
                // Every committed update per word: exactly 1, 2, ... n, in order.
                Map<String, List<Long>> updates = seen.stream().collect(Collectors.groupingBy(
                        ConsumerRecord::key, TreeMap::new, Collectors.mapping(ConsumerRecord::value, Collectors.toList())));
                for (Map.Entry<String, Long> e : expected.entrySet()) {
                    List<Long> want = Stream.iterate(1L, i -> i + 1).limit(e.getValue()).toList();
                    assertEquals(want, updates.get(e.getKey()), "committed updates of " + e.getKey());
                }
                assertEquals(expected.keySet(), updates.keySet());
                second.assertAlive();
            }
            long uncommitted = readAllCount(output, "read_uncommitted");
            assertTrue(uncommitted > seen.size(), "the aborted transaction's output is in the log: " + uncommitted);
            System.out.println("whole test " + Duration.between(t0, Instant.now()).toMillis() + " ms: "
                    + feeder.sent() + " lines, " + seen.size() + " committed updates, " + uncommitted
                    + " output records read_uncommitted");
        }
    }

    // ---------------------------------------------------------------------------------------------

    /** Whether the coordinator has an Ongoing transaction of the app (its producers' ids start with it). */
    private static boolean ongoing(Admin admin, String appId) throws Exception {
        return admin.listTransactions().all().get().stream()
                .anyMatch(t -> t.transactionalId().startsWith(appId + "-") && t.state() == TransactionState.ONGOING);
    }

    /**
     * Sends lines 0, 1, 2, ... of {@link #line} to the input, one every 10 ms, from {@link #start}
     * until {@link #stopAfter}; close() fails the test if a send failed.
     */
    private static final class Feeder implements AutoCloseable {
        private final String topic;
        private final KafkaProducer<String, String> producer = Clients.producer(broker);
        private final AtomicInteger sent = new AtomicInteger();
        private final AtomicInteger limit = new AtomicInteger(Integer.MAX_VALUE);
        private final AtomicReference<Throwable> failure = new AtomicReference<>();
        private Thread thread;

        Feeder(String topic) {
            this.topic = topic;
        }

        void start() {
            if (thread != null) {
                return;
            }
            thread = new Thread(this::run, "eos-feeder");
            thread.start();
        }

        private void run() {
            try {
                for (int i = 0; i < limit.get(); i++) {
                    producer.send(new ProducerRecord<>(topic, "line-" + i, line(i)), (md, e) -> {
                        if (e != null) {
                            failure.compareAndSet(null, e);
                        }
                    });
                    sent.set(i + 1);
                    Thread.sleep(10); // pacing of the input, not a synchronisation
                }
                producer.flush();
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        }

        /** Sends {@code n} more lines, then stops; returns once they are all acknowledged. */
        void stopAfter(int n) throws InterruptedException {
            limit.set(sent.get() + n);
            thread.join(DEADLINE.toMillis());
            assertTrue(!thread.isAlive(), "the feeder stopped");
            assertNull(failure.get(), "input producer");
        }

        int sent() {
            return sent.get();
        }

        @Override
        public void close() throws InterruptedException {
            limit.set(0);
            if (thread != null) {
                thread.join(DEADLINE.toMillis());
            }
            producer.close();
            assertNull(failure.get(), "input producer");
        }
    }

    /** Whether some output partition has records of an open transaction (its LSO below its end offset). */
    private static boolean openOutput(KafkaConsumer<String, Long> readCommitted, KafkaConsumer<String, Long> readUncommitted) {
        return !readCommitted.endOffsets(readCommitted.assignment())
                .equals(readUncommitted.endOffsets(readUncommitted.assignment()));
    }

    private static KafkaConsumer<String, Long> outputReader(String topic, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        KafkaConsumer<String, Long> c = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer());
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < PARTITIONS; i++) {
            tps.add(new TopicPartition(topic, i));
        }
        c.assign(tps);
        c.seekToBeginning(tps);
        return c;
    }

    private static long readAllCount(String topic, String isolation) {
        try (KafkaConsumer<String, Long> c = outputReader(topic, isolation)) {
            Map<TopicPartition, Long> ends = c.endOffsets(c.assignment());
            long n = 0;
            Instant end = Instant.now().plus(DEADLINE);
            while (!c.assignment().stream().allMatch(tp -> c.position(tp) >= ends.get(tp))) {
                assertTrue(Instant.now().isBefore(end), "read " + topic + " to " + ends);
                n += c.poll(Duration.ofMillis(200)).count();
            }
            return n;
        }
    }

    /** Polls {@code c} into {@code seen} until {@code done} holds; fails early if the app died. */
    private static void pollUntil(KafkaConsumer<String, Long> c, List<ConsumerRecord<String, Long>> seen, ChildJvm app,
            Predicate<List<ConsumerRecord<String, Long>>> done, String what) {
        Instant end = Instant.now().plus(DEADLINE);
        while (!done.test(seen)) {
            app.assertAlive();
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("timed out after " + DEADLINE + " waiting for " + what + "; latest "
                        + latest(seen) + "\n--- app ---\n" + app.output() + "\n--- broker ---\n" + broker.logText());
            }
            c.poll(Duration.ofMillis(200)).forEach(seen::add);
        }
    }

    private static Map<String, Long> latest(List<ConsumerRecord<String, Long>> records) {
        Map<String, Long> out = new TreeMap<>();
        records.forEach(r -> out.put(r.key(), r.value()));
        return out;
    }

    /** Line {@code i}: one to four words of the vocabulary, in mixed case and punctuation. */
    private static String line(int i) {
        StringBuilder line = new StringBuilder();
        for (int w = 0; w < 1 + i % 4; w++) {
            line.append(w == 0 ? "" : (w % 2 == 0 ? ", " : " "));
            String word = VOCABULARY[(i * 7 + w) % VOCABULARY.length];
            line.append(w % 3 == 1 ? word.toUpperCase() : word);
        }
        return line.toString();
    }

    private static List<String> lines(int n) {
        return IntStream.range(0, n).mapToObj(StreamsEosTest::line).toList();
    }

    private static Map<String, Long> counts(List<String> lines) {
        return lines.stream()
                .flatMap(l -> Arrays.stream(l.toLowerCase().split("\\W+")).filter(w -> !w.isEmpty()))
                .collect(Collectors.groupingBy(w -> w, TreeMap::new, Collectors.counting()));
    }
}
