package dev.vltava.compat;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Client factories and deadline-bounded waits shared by the tests. */
public final class Clients {
    /** Upper bound for anything a test waits for (2 shared cores, a debug broker). */
    public static final Duration DEADLINE = Duration.ofSeconds(60);

    private Clients() {}

    public static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** A producer with the client's defaults (idempotence on, acks=all) plus {@code extra}. */
    public static KafkaProducer<String, String> producer(Broker b, Map<String, Object> extra) {
        return producer(b.bootstrap(), extra);
    }

    /** A producer bootstrapped on {@code bootstrap} (e.g. one node of a {@link Cluster}). */
    public static KafkaProducer<String, String> producer(String bootstrap, Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        p.putAll(extra);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    public static KafkaProducer<String, String> producer(Broker b) {
        return producer(b, Map.of());
    }

    /** A consumer in {@code group} (null: no group), reading from the earliest offset. */
    public static KafkaConsumer<String, String> consumer(Broker b, String group, Map<String, Object> extra) {
        return consumer(b.bootstrap(), group, extra);
    }

    /** A consumer bootstrapped on {@code bootstrap}, in {@code group} (null: none), from the earliest offset. */
    public static KafkaConsumer<String, String> consumer(String bootstrap, String group, Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1_000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        p.putAll(extra);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    public static KafkaConsumer<String, String> consumer(Broker b, String group) {
        return consumer(b, group, Map.of());
    }

    public static Admin admin(Broker b) {
        return admin(b.bootstrap());
    }

    public static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        return Admin.create(p);
    }

    /** Creates a topic and waits until the admin client sees it. */
    public static void createTopic(Broker b, String topic, int partitions) {
        try (Admin admin = admin(b)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
            waitUntil("topic " + topic + " listed", () -> {
                try {
                    return admin.listTopics().names().get().contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
        } catch (Exception e) {
            throw new IllegalStateException("create topic " + topic + ": " + e, e);
        }
    }

    /** Polls until {@code cond} holds or the deadline passes (then fails with {@code what}). */
    public static void waitUntil(String what, BooleanSupplier cond) {
        Instant end = Instant.now().plus(DEADLINE);
        while (!cond.getAsBoolean()) {
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("timed out after " + DEADLINE + " waiting for: " + what);
            }
            try {
                Thread.sleep(50); // back-off between checks of a real condition, not a synchronisation
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for: " + what);
            }
        }
    }

    /** Polls {@code consumer} until {@code n} records arrived; returns them in arrival order. */
    public static List<ConsumerRecord<String, String>> pollRecords(KafkaConsumer<String, String> consumer, int n) {
        return pollUntil(consumer, got -> got.size() >= n, n + " records");
    }

    /** Polls until {@code done} holds for the records received so far. */
    public static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> consumer,
            Predicate<List<ConsumerRecord<String, String>>> done, String what) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        Instant end = Instant.now().plus(DEADLINE);
        while (!done.test(got)) {
            if (Instant.now().isAfter(end)) {
                throw new AssertionError("timed out waiting for " + what + "; got " + got.size() + " records");
            }
            consumer.poll(Duration.ofMillis(200)).forEach(got::add);
        }
        return got;
    }
}
