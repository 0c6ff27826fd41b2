package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams (4.4.0, at_least_once) word count against vltava: lines → flatMapValues to words →
 * groupBy word (a repartition topic) → count() into a RocksDB key-value store (a compacted
 * changelog topic) → an output topic of the latest count per word.
 *
 * <p>The output is read with a plain consumer that keeps the last value per key; because a word
 * always goes to the same output partition, that is the store's latest count of it.
 */
class StreamsWordCountTest {
    private static final Duration STREAMS_DEADLINE = Duration.ofSeconds(90);
    private static final String REPARTITION_NAME = "words";
    private static final String STORE = "counts";
    private static final int PARTITIONS = 2;
    private static final String[] VOCABULARY = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"
    };

    private Broker broker;
    private final List<Path> stateDirs = new ArrayList<>();

    @BeforeEach
    void start() {
        broker = Broker.start();
    }

    @AfterEach
    void stop() {
        broker.close();
        for (Path dir : stateDirs) {
            deleteTree(dir);
        }
    }

    /** One app instance, start to end: the latest count of every word is exactly its count in the input. */
    @Test
    void wordCountsAreExact() throws Exception {
        Topics t = topics("wc");
        List<String> lines = lines(0, 60);
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, lines);
            Map<String, Long> latest = awaitOutput(t.output, app, got -> got.equals(counts(lines)));
            assertEquals(counts(lines), latest);
        }
    }

    /**
     * The internal topics are there as Streams creates them: {@code <app>-words-repartition}
     * (cleanup.policy=delete, retention.ms=-1, segment.bytes=50 MiB, as many partitions as the
     * input) and {@code <app>-counts-changelog} (cleanup.policy=compact); the group is a classic
     * consumer group (Streams 4.4's default group.protocol) assigned by Streams' "stream" assignor.
     */
    @Test
    void internalTopicsAndGroupAreAsStreamsCreatesThem() throws Exception {
        assertEquals("classic", StreamsConfig.DEFAULT_GROUP_PROTOCOL, "Streams 4.4 defaults to the classic protocol");
        Topics t = topics("internal");
        List<String> lines = lines(0, 10);
        try (App app = App.start(broker, t, newStateDir()); Admin admin = Clients.admin(broker)) {
            produce(t.input, lines);
            awaitOutput(t.output, app, got -> got.equals(counts(lines)));

            String repartition = t.appId + "-" + REPARTITION_NAME + "-repartition";
            String changelog = t.appId + "-" + STORE + "-changelog";
            Set<String> names = admin.listTopics().names().get();
            assertTrue(names.contains(repartition), repartition + " in " + names);
            assertTrue(names.contains(changelog), changelog + " in " + names);

            Map<String, TopicDescription> described =
                    admin.describeTopics(List.of(repartition, changelog)).allTopicNames().get();
            assertEquals(PARTITIONS, described.get(repartition).partitions().size());
            assertEquals(PARTITIONS, described.get(changelog).partitions().size());

            ConfigResource rr = new ConfigResource(ConfigResource.Type.TOPIC, repartition);
            ConfigResource cr = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
            Map<ConfigResource, Config> configs = admin.describeConfigs(List.of(rr, cr)).all().get();
            assertEquals("delete", configs.get(rr).get("cleanup.policy").value());
            assertEquals("-1", configs.get(rr).get("retention.ms").value());
            assertEquals("52428800", configs.get(rr).get("segment.bytes").value());
            assertEquals("compact", configs.get(cr).get("cleanup.policy").value());

            // Streams purges what it consumed and committed of a repartition topic (DeleteRecords
            // up to the committed offset, every repartition.purge.interval.ms).
            List<TopicPartition> rtps = List.of(new TopicPartition(repartition, 0), new TopicPartition(repartition, 1));
            Clients.waitUntil("the repartition topic purged up to the committed offsets", () -> {
                try {
                    Map<TopicPartition, OffsetAndMetadata> committed =
                            admin.listConsumerGroupOffsets(t.appId).partitionsToOffsetAndMetadata().get();
                    Map<TopicPartition, ListOffsetsResultInfo> earliest = admin.listOffsets(
                            rtps.stream().collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.earliest())))
                            .all().get();
                    return rtps.stream().allMatch(tp -> committed.containsKey(tp)
                            && earliest.get(tp).offset() == committed.get(tp).offset())
                            && rtps.stream().anyMatch(tp -> earliest.get(tp).offset() > 0);
                } catch (Exception e) {
                    return false;
                }
            });

            ConsumerGroupDescription group =
                    admin.describeConsumerGroups(List.of(t.appId)).all().get().get(t.appId);
            assertEquals("stream", group.partitionAssignor());
            assertEquals(1, group.members().size());
        }
    }

    /**
     * A clean close mid-stream, then a new instance (same application.id, empty state directory)
     * that restores the store from the changelog and carries on: the counts are exact, because a
     * clean close commits the offsets of everything whose results (changelog, output) were written.
     */
    @Test
    void restartWithWipedStateRestoresFromChangelogExactly() throws Exception {
        Topics t = topics("restart");
        List<String> first = lines(0, 40);
        List<String> second = lines(40, 40);
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, first);
            awaitOutput(t.output, app, got -> !got.isEmpty());
        }
        List<String> all = new ArrayList<>(first);
        all.addAll(second);
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, second);
            Map<String, Long> latest = awaitOutput(t.output, app, got -> got.equals(counts(all)));
            assertEquals(counts(all), latest);
            assertTrue(app.restored.get() > 0, "the new instance restored its store from the changelog");
        }
    }

    /**
     * Streams' default close() on the classic protocol does not leave the group (it sets
     * internal.leave.group.on.close=false), as after a crash of the app: the new instance's join
     * waits until the old member's session (10 s) expires, then gets every task, restores the store
     * from the changelog and the counts are exact (the close committed what it had processed).
     */
    @Test
    void restartAfterCloseThatStaysInGroupIsExact() throws Exception {
        Topics t = topics("stay");
        List<String> first = lines(0, 40);
        List<String> second = lines(40, 40);
        App old = App.start(broker, t, newStateDir());
        try {
            produce(t.input, first);
            awaitOutput(t.output, old, got -> !got.isEmpty());
        } catch (Exception | AssertionError e) {
            old.close();
            throw e;
        }
        assertTrue(old.streams.close(Duration.ofSeconds(60)), "the Streams app closed within 60 s");
        List<String> all = new ArrayList<>(first);
        all.addAll(second);
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, second);
            Map<String, Long> latest = awaitOutput(t.output, app, got -> got.equals(counts(all)));
            assertEquals(counts(all), latest);
            assertTrue(app.restored.get() > 0, "the new instance restored its store from the changelog");
        }
    }

    /**
     * The broker is killed (-9) and restarted while the app runs; the app carries on, is closed, and
     * a new instance with an empty state directory finishes the input. at_least_once promises no
     * loss but allows duplicates after a failure (records processed, and their results written,
     * before the offsets were committed are processed again; Kafka behaves the same), so every
     * count is at least the expected one and no other word appears.
     */
    @Test
    void brokerCrashMidStreamLosesNoWord() throws Exception {
        Topics t = topics("crash");
        List<String> before = lines(0, 30);
        List<String> during = lines(30, 20);
        List<String> after = lines(50, 30);
        List<String> all = new ArrayList<>(before);
        all.addAll(during);
        all.addAll(after);
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, before);
            awaitOutput(t.output, app, got -> !got.isEmpty());
            broker.restart();
            assertEquals(2, broker.generation());
            produce(t.input, during);
            List<String> soFar = new ArrayList<>(before);
            soFar.addAll(during);
            awaitOutput(t.output, app, got -> atLeast(got, counts(soFar)));
        }
        try (App app = App.start(broker, t, newStateDir())) {
            produce(t.input, after);
            Map<String, Long> latest = awaitOutput(t.output, app, got -> atLeast(got, counts(all)));
            assertEquals(counts(all).keySet(), latest.keySet());
            assertTrue(atLeast(latest, counts(all)), "every count at least expected: " + latest);
        }
    }

    // ---------------------------------------------------------------------------------------------

    private record Topics(String appId, String input, String output) {}

    private Topics topics(String name) {
        Topics t = new Topics(Clients.unique("wc-" + name), Clients.unique(name + "-lines"),
                Clients.unique(name + "-counts"));
        Clients.createTopic(broker, t.input, PARTITIONS);
        Clients.createTopic(broker, t.output, PARTITIONS);
        return t;
    }

    private Path newStateDir() throws IOException {
        Path dir = Files.createTempDirectory("vltava-streams-");
        stateDirs.add(dir);
        return dir;
    }

    /** {@code n} lines starting at line {@code from}: each a few words of the vocabulary. */
    private static List<String> lines(int from, int n) {
        List<String> out = new ArrayList<>();
        for (int i = from; i < from + n; i++) {
            int words = 1 + i % 4;
            StringBuilder line = new StringBuilder();
            for (int w = 0; w < words; w++) {
                line.append(w == 0 ? "" : (w % 2 == 0 ? ", " : " "));
                line.append(w % 3 == 1 ? VOCABULARY[(i * 7 + w) % VOCABULARY.length].toUpperCase()
                        : VOCABULARY[(i * 7 + w) % VOCABULARY.length]);
            }
            out.add(line.toString());
        }
        return out;
    }

    private static List<String> words(String line) {
        return Arrays.stream(line.toLowerCase().split("\\W+")).filter(w -> !w.isEmpty()).toList();
    }

    private static Map<String, Long> counts(List<String> lines) {
        return lines.stream().flatMap(l -> words(l).stream())
                .collect(Collectors.groupingBy(w -> w, TreeMap::new, Collectors.counting()));
    }

    private static boolean atLeast(Map<String, Long> got, Map<String, Long> expected) {
        return expected.entrySet().stream().allMatch(e -> got.getOrDefault(e.getKey(), 0L) >= e.getValue());
    }

    private void produce(String topic, List<String> lines) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            int i = 0;
            for (String line : lines) {
                p.send(new ProducerRecord<>(topic, "line-" + i++, line));
            }
            p.flush();
        }
    }

    /**
     * Reads {@code topic} from the beginning, keeping the last count per word, until {@code done}
     * holds for it; fails early if the app died.
     */
    private Map<String, Long> awaitOutput(String topic, App app, Predicate<Map<String, Long>> done) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        Map<String, Long> latest = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            Instant end = Instant.now().plus(STREAMS_DEADLINE);
            while (!done.test(latest)) {
                app.assertAlive();
                if (Instant.now().isAfter(end)) {
                    throw new AssertionError("timed out after " + STREAMS_DEADLINE + "; latest counts " + latest
                            + "; app " + app.streams.state() + "\n" + broker.logText());
                }
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    latest.put(r.key(), r.value());
                }
            }
        }
        return latest;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            // a temp dir left behind is harmless
        }
    }

    /** A running word-count app; close() is a clean close that leaves the group. */
    private static final class App implements AutoCloseable {
        final KafkaStreams streams;
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final AtomicLong restored = new AtomicLong();

        private App(KafkaStreams streams) {
            this.streams = streams;
        }

        static App start(Broker broker, Topics t, Path stateDir) {
            StreamsBuilder b = new StreamsBuilder();
            b.stream(t.input, Consumed.with(Serdes.String(), Serdes.String()))
                    .flatMapValues(StreamsWordCountTest::words)
                    .groupBy((key, word) -> word, Grouped.with(REPARTITION_NAME, Serdes.String(), Serdes.String()))
                    .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(STORE))
                    .toStream()
                    .to(t.output, Produced.with(Serdes.String(), Serdes.Long()));

            Properties p = new Properties();
            p.put(StreamsConfig.APPLICATION_ID_CONFIG, t.appId);
            p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
            p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
            p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
            p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
            p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
            p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 200);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10_000);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1_000);
            p.put(StreamsConfig.producerPrefix("linger.ms"), 5);

            KafkaStreams streams = new KafkaStreams(b.build(), p);
            App app = new App(streams);
            streams.setUncaughtExceptionHandler(e -> {
                app.failure.compareAndSet(null, e);
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.setGlobalStateRestoreListener(new StateRestoreListener() {
                @Override
                public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}

                @Override
                public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
                    app.restored.addAndGet(n);
                }

                @Override
                public void onRestoreEnd(TopicPartition tp, String store, long total) {}
            });
            streams.start();
            return app;
        }

        void assertAlive() {
            Throwable f = failure.get();
            if (f != null) {
                throw new AssertionError("the Streams app failed: " + f, f);
            }
            KafkaStreams.State s = streams.state();
            if (s == KafkaStreams.State.ERROR || s == KafkaStreams.State.NOT_RUNNING) {
                throw new AssertionError("the Streams app is " + s);
            }
        }

        @Override
        public void close() {
            boolean closed = streams.close(CloseOptions.groupMembershipOperation(
                    CloseOptions.GroupMembershipOperation.LEAVE_GROUP).withTimeout(Duration.ofSeconds(60)));
            assertTrue(closed, "the Streams app closed within 60 s");
        }
    }
}
