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
import java.util.stream.Stream;
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
    private static final int LINES = 400;
    private static final String[] VOCABULARY = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"
    };

    private static Broker broker;
    private static Path stateDir;

    @BeforeAll
    static void start() throws IOException {
        broker = Broker.start("transaction_state_log_num_partitions = 3\n"
                + "transaction_abort_timed_out_transaction_cleanup_interval_ms = 500\n");
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
        List<String> lines = lines(LINES);
        Map<String, Long> expected = counts(lines);
        String[] args = {broker.bootstrap(), appId, input, output, stateDir.toString()};

        Instant t0 = Instant.now();
        AtomicInteger sent = new AtomicInteger();
        AtomicReference<Throwable> produceFailure = new AtomicReference<>();
        Thread feeder = new Thread(() -> feed(input, lines, sent, produceFailure), "eos-feeder");
        List<ConsumerRecord<String, Long>> seen = new ArrayList<>();
        try (KafkaConsumer<String, Long> out = outputReader(output, "read_committed");
                KafkaConsumer<String, Long> raw = outputReader(output, "read_uncommitted")) {
            int sentAtKill;
            int outputAtKill;
            try (ChildJvm first = ChildJvm.start(EosWordCountApp.class.getName(), args)) {
                first.awaitEvent(l -> l.equals("@state RUNNING"), DEADLINE);
                feeder.start();
                // Kill once the first instance has committed some output and has more of it in the
                // log in an open transaction (some output partition's LSO below its end offset).
                pollUntil(out, seen, first, got -> got.size() >= 60 && openOutput(out, raw),
                        "60 committed output records and an open transaction's output in the log");
                first.kill();
                sentAtKill = sent.get();
                outputAtKill = seen.size();
            }
            System.out.println("killed the first instance after " + Duration.between(t0, Instant.now()).toMillis()
                    + " ms: " + sentAtKill + "/" + LINES + " lines sent, " + outputAtKill + " committed updates read");
            assertTrue(openOutput(out, raw), "the killed instance left an open transaction with output in the log "
                    + "(it committed in the moment between the check and the kill: rerun)");
            assertTrue(outputAtKill < expected.values().stream().mapToLong(Long::longValue).sum(),
                    "killed before it finished");

            try (ChildJvm second = ChildJvm.start(EosWordCountApp.class.getName(), args)) {
                pollUntil(out, seen, second, got -> latest(got).equals(expected), "the exact final counts");
                feeder.join(DEADLINE.toMillis());
                assertNull(produceFailure.get(), "input producer");
                assertEquals(LINES, sent.get());
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
        }
        long uncommitted = readAllCount(output, "read_uncommitted");
        assertTrue(uncommitted > seen.size(), "the aborted transaction's output is in the log: " + uncommitted);
        System.out.println("whole test " + Duration.between(t0, Instant.now()).toMillis() + " ms; output "
                + seen.size() + " committed updates, " + uncommitted + " records read_uncommitted");
    }

    // ---------------------------------------------------------------------------------------------

    /** Sends the lines one by one, paced (about 4 s in all), so the app is killed mid-stream. */
    private static void feed(String topic, List<String> lines, AtomicInteger sent, AtomicReference<Throwable> failure) {
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            int i = 0;
            for (String line : lines) {
                p.send(new ProducerRecord<>(topic, "line-" + i++, line), (md, e) -> {
                    if (e != null) {
                        failure.compareAndSet(null, e);
                    } else {
                        sent.incrementAndGet();
                    }
                });
                Thread.sleep(10); // pacing of the input, not a synchronisation
            }
            p.flush();
        } catch (Throwable t) {
            failure.set(t);
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

    /** {@code n} lines of one to four words of the vocabulary, in mixed case and punctuation. */
    private static List<String> lines(int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder line = new StringBuilder();
            for (int w = 0; w < 1 + i % 4; w++) {
                line.append(w == 0 ? "" : (w % 2 == 0 ? ", " : " "));
                String word = VOCABULARY[(i * 7 + w) % VOCABULARY.length];
                line.append(w % 3 == 1 ? word.toUpperCase() : word);
            }
            out.add(line.toString());
        }
        return out;
    }

    private static Map<String, Long> counts(List<String> lines) {
        return lines.stream()
                .flatMap(l -> Arrays.stream(l.toLowerCase().split("\\W+")).filter(w -> !w.isEmpty()))
                .collect(Collectors.groupingBy(w -> w, TreeMap::new, Collectors.counting()));
    }
}
