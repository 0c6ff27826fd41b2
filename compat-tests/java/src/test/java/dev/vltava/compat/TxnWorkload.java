package dev.vltava.compat;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TimeoutException;

/**
 * A transactional producer (Transactions V2 with a Kafka 4.x client and broker) running transactions
 * back to back on its own thread, each recorded in a {@link TxnHistory}: every transaction writes
 * unique values to every partition of the topic, every other one also sends a group offset
 * (sendOffsetsToTransaction), and one in five is aborted on purpose (every other one of those after a
 * flush, so its records are in the log; the others with records possibly still in the producer's
 * buffer); the rest are committed.
 *
 * <p>Errors: an error before the commit, or a commit that fails with an error other than a timeout,
 * makes the workload abort; if abortTransaction returns, the transaction is aborted. A commit that
 * times out (or whose abort then fails) leaves the outcome unknown; a failed abort of a transaction
 * never committed leaves it never committed. In both cases the producer is closed and a new one with
 * the same transactional.id is initialised, which fences the old one and ends what it left open.
 */
final class TxnWorkload implements AutoCloseable {
    /** Bounds each blocking call (init, send's metadata wait, sendOffsets, commit, abort). */
    private static final int MAX_BLOCK_MS = 10_000;
    private static final int REQUEST_TIMEOUT_MS = 4_000;
    /** A replacement producer must be initialised within this. */
    private static final Duration INIT_DEADLINE = Duration.ofSeconds(60);

    private final TxnHistory history;
    private final String bootstrap;
    private final String topic;
    private final int partitions;
    private final int perPartition;
    private final String transactionalId;
    private final String group;
    private final Thread thread;
    private volatile boolean stopping;
    private volatile Throwable died;
    private long committed;
    private long commitsBegun;
    private int generation;
    private KafkaProducer<String, String> producer;

    /** Starts the loop. */
    TxnWorkload(TxnHistory history, String bootstrap, String topic, int partitions, int perPartition,
            String transactionalId, String group) {
        this.history = history;
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.partitions = partitions;
        this.perPartition = perPartition;
        this.transactionalId = transactionalId;
        this.group = group;
        this.thread = new Thread(this::run, "txn-workload-" + transactionalId);
        this.thread.setDaemon(true);
        this.thread.start();
    }

    public synchronized long committed() {
        return committed;
    }

    /** The group whose offsets the transactions send, and the partition they are for. */
    TopicPartition source() {
        return new TopicPartition(topic, 0);
    }

    /** Waits until {@code n} transactions have been committed in all. */
    void awaitCommitted(long n, Duration patience, Supplier<String> logs) throws InterruptedException {
        awaitState(() -> committed >= n, patience,
                () -> "committed " + committed + " transactions, wanted " + n, logs);
    }

    /** Waits until the next commitTransaction call begins (the fault then lands in the commit). */
    void awaitCommitBegun(Duration patience, Supplier<String> logs) throws InterruptedException {
        long begun;
        synchronized (this) {
            begun = commitsBegun;
        }
        awaitState(() -> commitsBegun > begun, patience, () -> "no commit began", logs);
    }

    private synchronized void awaitState(Supplier<Boolean> cond, Duration patience, Supplier<String> what,
            Supplier<String> logs) throws InterruptedException {
        long end = System.nanoTime() + patience.toNanos();
        while (!cond.get()) {
            if (died != null) {
                throw new AssertionError("the transactional workload died: " + died + "\n" + logs.get(), died);
            }
            long left = end - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError("within " + patience + ": " + what.get() + "; history: "
                        + history.count(TxnHistory.Outcome.COMMITTED) + " committed, "
                        + history.count(TxnHistory.Outcome.ABORTED) + " aborted, "
                        + history.count(TxnHistory.Outcome.UNKNOWN) + " unknown\n" + logs.get());
            }
            wait(Math.max(1, Math.min(left / 1_000_000, 1_000)));
        }
    }

    /** Lets the transaction under way end, then closes the producer; fails if the loop died. */
    void stop(Duration patience) throws InterruptedException {
        stopping = true;
        thread.join(patience.toMillis());
        if (thread.isAlive()) {
            throw new AssertionError("the transactional workload did not stop within " + patience);
        }
        if (died != null) {
            throw new AssertionError("the transactional workload died: " + died, died);
        }
    }

    @Override
    public void close() throws InterruptedException {
        stopping = true;
        thread.interrupt();
        thread.join(30_000);
    }

    private void run() {
        try {
            replaceProducer();
            for (long n = 0; !stopping; n++) {
                transaction(n);
            }
        } catch (Throwable t) {
            died = t;
        } finally {
            if (producer != null) {
                try {
                    producer.close(Duration.ofSeconds(5));
                } catch (RuntimeException e) {
                    // closing is best effort
                }
            }
            synchronized (this) {
                notifyAll();
            }
        }
    }

    private void transaction(long n) {
        String name = topic + "-t" + n;
        TxnHistory.Txn t = history.begin(name, generation, idAndEpoch(producer));
        boolean abort = n % 5 == 2;
        try {
            producer.beginTransaction();
            for (int p = 0; p < partitions; p++) {
                for (int i = 0; i < perPartition; i++) {
                    String value = name + "-p" + p + "-" + i;
                    history.sent(t, value, p);
                    producer.send(new ProducerRecord<>(topic, p, "k" + n, value),
                            (md, e) -> history.delivered(value, e == null ? md.offset() : -1, e));
                }
            }
            if (n % 2 == 0) {
                producer.sendOffsetsToTransaction(Map.of(source(), new OffsetAndMetadata(n, name)),
                        new ConsumerGroupMetadata(group));
                history.groupOffset(t, n);
            }
            if (abort && n % 10 == 2) {
                producer.flush();
            }
        } catch (RuntimeException e) {
            abortOrReplace(t, e, false);
            return;
        }
        if (abort) {
            abortOrReplace(t, null, false);
            return;
        }
        synchronized (this) {
            commitsBegun++;
            notifyAll();
        }
        try {
            producer.commitTransaction();
        } catch (TimeoutException e) {
            history.end(t, TxnHistory.Outcome.UNKNOWN, name(e));
            replaceProducer();
            return;
        } catch (RuntimeException e) {
            abortOrReplace(t, e, true);
            return;
        }
        history.end(t, TxnHistory.Outcome.COMMITTED, "");
        synchronized (this) {
            committed++;
            notifyAll();
        }
    }

    /**
     * Aborts {@code t} (we chose to when {@code cause} is null); if the abort fails, the transaction's
     * outcome is unknown when its commit was called, else it was never committed; the producer is
     * then replaced.
     */
    private void abortOrReplace(TxnHistory.Txn t, RuntimeException cause, boolean commitCalled) {
        String why = cause == null ? "chosen" : name(cause);
        try {
            producer.abortTransaction();
        } catch (RuntimeException e) {
            history.end(t, commitCalled ? TxnHistory.Outcome.UNKNOWN : TxnHistory.Outcome.NEVER_COMMITTED,
                    why + ", abort: " + name(e));
            replaceProducer();
            return;
        }
        history.end(t, TxnHistory.Outcome.ABORTED, why);
    }

    /**
     * Closes the producer (if any) and initialises a new one with the same transactional.id, retrying
     * the initialisation (and, after errors other than a timeout, with yet another producer) until it
     * succeeds or {@link #INIT_DEADLINE} passes.
     */
    private void replaceProducer() {
        Instant end = Instant.now().plus(INIT_DEADLINE);
        RuntimeException last = null;
        while (Instant.now().isBefore(end)) {
            if (Thread.currentThread().isInterrupted()) {
                throw new IllegalStateException("interrupted replacing the producer of " + transactionalId, last);
            }
            if (producer != null) {
                try {
                    producer.close(Duration.ofSeconds(2));
                } catch (RuntimeException e) {
                    // the old producer goes either way
                }
            }
            generation++;
            producer = Clients.producer(bootstrap, config());
            try {
                while (true) {
                    try {
                        producer.initTransactions();
                        return;
                    } catch (TimeoutException e) {
                        last = e; // may be retried on the same producer
                        if (!Instant.now().isBefore(end) || Thread.currentThread().isInterrupted()) {
                            throw e;
                        }
                    }
                }
            } catch (RuntimeException e) {
                last = e;
            }
        }
        throw new IllegalStateException("no producer of " + transactionalId + " initialised within "
                + INIT_DEADLINE, last);
    }

    private Map<String, Object> config() {
        Map<String, Object> c = new HashMap<>();
        c.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        c.put(ProducerConfig.ACKS_CONFIG, "all");
        c.put(ProducerConfig.LINGER_MS_CONFIG, 2);
        c.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, MAX_BLOCK_MS);
        c.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_TIMEOUT_MS);
        c.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 12_000);
        c.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 20_000);
        c.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 100);
        c.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 1_000);
        return c;
    }

    /** The exception's class, and its cause's. */
    static String name(Throwable e) {
        String s = e.getClass().getSimpleName();
        return e.getCause() == null || e.getCause() == e ? s : s + "<-" + e.getCause().getClass().getSimpleName();
    }

    /**
     * The producer id and epoch the client holds, for the evidence of a finding (read from the
     * client's transaction manager by reflection: the client has no public accessor).
     */
    static String idAndEpoch(KafkaProducer<?, ?> p) {
        try {
            Field f = KafkaProducer.class.getDeclaredField("transactionManager");
            f.setAccessible(true);
            Object tm = f.get(p);
            Method m = tm.getClass().getDeclaredMethod("producerIdAndEpoch");
            m.setAccessible(true);
            return String.valueOf(m.invoke(tm));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "?";
        }
    }
}
