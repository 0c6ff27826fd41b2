package dev.vltava.compat;

import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The fault tests' load, recorded in a {@link History}: a paced stream of unique values through one
 * producer (bounded in flight, so an outage leaves a bounded number of undecided sends), a
 * read_uncommitted consumer reading the topic from the beginning while it runs, and the full read
 * after healing.
 */
final class Workload implements AutoCloseable {
    private final History history;
    private final String topic;
    private final String prefix;
    private final KafkaProducer<String, String> producer;
    private final Semaphore inFlight;
    private final Duration pace;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final Thread writer;
    private final Thread reader;
    private volatile Throwable readerError;

    /**
     * Starts writing {@code topic} with {@code producer} (which this owns from now on), a value every
     * {@code pace} at most and at most {@code maxInFlight} undecided, and reading it live through
     * {@code bootstrap}.
     */
    Workload(History history, String topic, String prefix, KafkaProducer<String, String> producer,
            int maxInFlight, Duration pace, String bootstrap) {
        this.history = history;
        this.topic = topic;
        this.prefix = prefix;
        this.producer = producer;
        this.inFlight = new Semaphore(maxInFlight);
        this.pace = pace;
        this.writer = new Thread(this::write, "faults-writer-" + prefix);
        this.reader = new Thread(() -> readLive(bootstrap), "faults-reader-" + prefix);
        writer.setDaemon(true);
        reader.setDaemon(true);
        writer.start();
        reader.start();
    }

    private void write() {
        long seq = 0;
        try {
            while (!stop.get()) {
                if (!inFlight.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    continue;
                }
                String value = prefix + "-" + seq++;
                history.sent(value);
                try {
                    producer.send(new ProducerRecord<>(topic, value, value), (md, e) -> {
                        if (e == null) {
                            history.acked(value, md.partition(), md.offset());
                        } else {
                            history.failed(value, e);
                        }
                        inFlight.release();
                    });
                } catch (RuntimeException e) {
                    // send() itself refused (e.g. no metadata within max.block.ms): nothing went out.
                    history.failed(value, e);
                    inFlight.release();
                }
                Thread.sleep(pace.toMillis()); // pacing the load, not a synchronisation
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void readLive(String bootstrap) {
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            List<TopicPartition> parts = partitions(c, topic);
            c.assign(parts);
            c.seekToBeginning(parts);
            while (!stop.get()) {
                try {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        history.readLive(r.partition(), r.offset(), r.value());
                    }
                } catch (RuntimeException e) {
                    // A fault may surface here (e.g. a detected truncation); the reader goes on.
                    readerError = e;
                    pauseAfterError();
                }
            }
        } catch (RuntimeException e) {
            readerError = e;
        }
    }

    private void pauseAfterError() {
        try {
            Thread.sleep(100); // not to spin on an error that repeats at once
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stop.set(true);
        }
    }

    static KafkaConsumer<String, String> consumer(String bootstrap) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5_000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10_000);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    private static List<TopicPartition> partitions(KafkaConsumer<String, String> c, String topic) {
        List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(30));
        return infos.stream().map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toList());
    }

    /** The last exception the live reader met, if any (for the failure report). */
    Throwable readerError() {
        return readerError;
    }

    /** Waits until {@code n} sends in all were acknowledged; fails with {@code diagnostics} if not in time. */
    void awaitAcked(long n, Duration timeout, Supplier<String> diagnostics) {
        Instant end = Instant.now().plus(timeout);
        while (history.count(History.Outcome.ACKED) < n) {
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("acknowledged " + history.count(History.Outcome.ACKED) + " < " + n
                        + " within " + timeout + "; errors " + history.errors() + "\n" + diagnostics.get());
            }
            sleepBriefly();
        }
    }

    long acked() {
        return history.count(History.Outcome.ACKED);
    }

    /**
     * Stops writing and waits (up to {@code timeout}) for every send to be decided; stops the live
     * reader. Sends still undecided stay UNKNOWN.
     */
    void stop(Duration timeout) {
        stop.set(true);
        try {
            writer.join(10_000);
            producer.close(timeout);
            reader.join(15_000);
            if (readerError != null) {
                System.err.println("live reader of " + topic + ": last error " + readerError);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        if (!stop.get()) {
            stop(Duration.ofSeconds(5));
        }
    }

    /**
     * The full read after healing: every partition from its beginning up to the end offsets seen at
     * the read's start, within {@code timeout}, into {@code history}'s final read.
     */
    static void readAll(History history, String bootstrap, String topic, Duration timeout) {
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            List<TopicPartition> parts = partitions(c, topic);
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> ends = new HashMap<>(c.endOffsets(parts, Duration.ofSeconds(30)));
            Instant end = Instant.now().plus(timeout);
            while (!ends.entrySet().stream().allMatch(e -> c.position(e.getKey()) >= e.getValue())) {
                if (Instant.now().isAfter(end)) {
                    Map<TopicPartition, Long> at = parts.stream().collect(Collectors.toMap(tp -> tp, c::position));
                    throw new AssertionError("final read: at " + at + ", ends " + ends + " after " + timeout);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    history.readFinal(r.partition(), r.offset(), r.value());
                }
            }
            history.finalReadComplete();
        }
    }

    private static void sleepBriefly() {
        try {
            Thread.sleep(50); // back-off between checks of a real condition, not a synchronisation
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }
}
