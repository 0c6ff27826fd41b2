package dev.vltava.compat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * A history of one topic for the fault tests (after Jepsen's Kafka checker): every send of a unique
 * value with its outcome (acknowledged at partition/offset, failed with an exception class, or still
 * unknown), every record read while the faults ran ("live") and in the full read after healing
 * ("final"), and the checks over them.
 *
 * <p>The checks: <b>lost</b> (acknowledged, absent from the final read), <b>duplicates</b> (a value at
 * more than one offset), <b>inconsistent</b> (an offset that showed two values), <b>wrong offset</b>
 * (read somewhere other than where it was acknowledged), <b>never sent</b> (a value read that no send
 * made), <b>vanished</b> (read live, absent from the final read: a read of data that was later
 * truncated), <b>non-monotonic</b> (the live reader's next offset in a partition was not the one after
 * its last: it went back, e.g. reset to the earliest offset after an OFFSET_OUT_OF_RANGE, or skipped
 * ahead; it is assigned, not in a group, and the topic has neither transactions nor compaction, so
 * neither is legitimate). Failed sends that were read anyway are counted but are no error: a
 * timed-out send is indefinite in Kafka.
 */
public final class History {
    /** Where a send stands. */
    public enum Outcome { UNKNOWN, ACKED, FAILED }

    /** One send: its value, and once the client answered, its outcome. */
    public static final class Send {
        public final String value;
        Outcome outcome = Outcome.UNKNOWN;
        int partition = -1;
        long offset = -1;
        String error;

        Send(String value) {
            this.value = value;
        }
    }

    /** A record read: where, and what. */
    public record Read(int partition, long offset, String value) {
        String at() {
            return partition + "@" + offset;
        }
    }

    private final Map<String, Send> sends = new LinkedHashMap<>();
    private final List<Read> live = new ArrayList<>();
    private final List<Read> fin = new ArrayList<>();
    private boolean finalComplete;

    /** Records a send about to be made; a value must be new. */
    public synchronized void sent(String value) {
        if (sends.putIfAbsent(value, new Send(value)) != null) {
            throw new IllegalArgumentException("value sent twice: " + value);
        }
    }

    public synchronized void acked(String value, int partition, long offset) {
        Send s = known(value);
        s.outcome = Outcome.ACKED;
        s.partition = partition;
        s.offset = offset;
    }

    /** A send the client gave up on; {@code e}'s class (and its cause's) is kept. */
    public synchronized void failed(String value, Throwable e) {
        Send s = known(value);
        s.outcome = Outcome.FAILED;
        s.error = errorName(e);
    }

    private Send known(String value) {
        Send s = sends.get(value);
        if (s == null) {
            throw new IllegalArgumentException("outcome of a value never sent: " + value);
        }
        return s;
    }

    /** "SimpleName" or "SimpleName<-CauseName" for an exception with a different cause. */
    static String errorName(Throwable e) {
        String name = e.getClass().getSimpleName();
        Throwable c = e.getCause();
        return c == null || c == e ? name : name + "<-" + c.getClass().getSimpleName();
    }

    public synchronized void readLive(int partition, long offset, String value) {
        live.add(new Read(partition, offset, value));
    }

    public synchronized void readFinal(int partition, long offset, String value) {
        fin.add(new Read(partition, offset, value));
    }

    /** The final read reached every partition's end offset (else "lost" and "vanished" mean little). */
    public synchronized void finalReadComplete() {
        finalComplete = true;
    }

    public synchronized long count(Outcome o) {
        return sends.values().stream().filter(s -> s.outcome == o).count();
    }

    /** Failed sends by error name, e.g. {"TimeoutException": 12}. */
    public synchronized Map<String, Long> errors() {
        return sends.values().stream().filter(s -> s.outcome == Outcome.FAILED)
                .collect(Collectors.groupingBy(s -> s.error, TreeMap::new, Collectors.counting()));
    }

    /** The checks over the history as it stands. */
    public synchronized Report check() {
        List<Read> all = new ArrayList<>(live);
        all.addAll(fin);
        Map<String, Set<String>> whereRead = new TreeMap<>();
        Map<String, Set<String>> whatAt = new TreeMap<>();
        for (Read r : all) {
            whereRead.computeIfAbsent(r.value(), v -> new TreeSet<>()).add(r.at());
            whatAt.computeIfAbsent(r.at(), a -> new TreeSet<>()).add(r.value());
        }
        Set<String> inFinal = fin.stream().map(Read::value).collect(Collectors.toSet());

        List<String> lost = new ArrayList<>();
        List<String> wrongOffset = new ArrayList<>();
        List<String> failedRead = new ArrayList<>();
        for (Send s : sends.values()) {
            Set<String> at = whereRead.get(s.value);
            if (s.outcome == Outcome.ACKED) {
                String acked = s.partition + "@" + s.offset;
                if (!inFinal.contains(s.value)) {
                    lost.add(s.value + " acked at " + acked);
                }
                if (at != null && !at.equals(Set.of(acked))) {
                    wrongOffset.add(s.value + " acked at " + acked + ", read at " + at);
                }
            } else if (s.outcome == Outcome.FAILED && at != null) {
                failedRead.add(s.value + " failed (" + s.error + "), read at " + at);
            }
        }
        List<String> duplicates = whereRead.entrySet().stream().filter(e -> e.getValue().size() > 1)
                .map(e -> e.getKey() + " at " + e.getValue()).collect(Collectors.toList());
        List<String> inconsistent = whatAt.entrySet().stream().filter(e -> e.getValue().size() > 1)
                .map(e -> e.getKey() + " holds " + e.getValue()).collect(Collectors.toList());
        List<String> neverSent = whereRead.entrySet().stream().filter(e -> !sends.containsKey(e.getKey()))
                .map(e -> e.getKey() + " at " + e.getValue()).collect(Collectors.toList());
        List<String> vanished = live.stream().filter(r -> !inFinal.contains(r.value()))
                .map(r -> r.value() + " read live at " + r.at()).distinct().collect(Collectors.toList());
        List<String> nonMonotonic = new ArrayList<>();
        Map<Integer, Long> lastLive = new TreeMap<>();
        for (Read r : live) {
            long prev = lastLive.getOrDefault(r.partition(), -1L);
            if (r.offset() != prev + 1) {
                nonMonotonic.add(r.partition() + "@" + prev + " -> " + r.at());
            }
            lastLive.put(r.partition(), r.offset());
        }
        return new Report(sends.size(), (int) count(Outcome.ACKED), (int) count(Outcome.FAILED),
                (int) count(Outcome.UNKNOWN), live.size(), fin.size(), finalComplete, errors(),
                lost, duplicates, inconsistent, wrongOffset, neverSent, vanished, nonMonotonic, failedRead);
    }

    /** The result of {@link #check()}: counts, and the offending values with where they were seen. */
    public record Report(int sent, int acked, int failed, int unknown, int liveReads, int finalReads,
            boolean finalComplete, Map<String, Long> errors, List<String> lost, List<String> duplicates,
            List<String> inconsistent, List<String> wrongOffset, List<String> neverSent, List<String> vanished,
            List<String> nonMonotonic, List<String> failedRead) {
        /** True when no check found an error (failed sends read anyway are allowed). */
        public boolean ok() {
            return finalComplete && lost.isEmpty() && duplicates.isEmpty() && inconsistent.isEmpty()
                    && wrongOffset.isEmpty() && neverSent.isEmpty() && vanished.isEmpty() && nonMonotonic.isEmpty();
        }

        @Override
        public String toString() {
            StringBuilder b = new StringBuilder();
            b.append(String.format("sent %d: acked %d, failed %d %s, unknown %d; read live %d, final %d%s%n",
                    sent, acked, failed, errors, unknown, liveReads, finalReads,
                    finalComplete ? "" : " (INCOMPLETE)"));
            section(b, "lost", lost);
            section(b, "duplicates", duplicates);
            section(b, "inconsistent", inconsistent);
            section(b, "wrong offset", wrongOffset);
            section(b, "never sent", neverSent);
            section(b, "vanished", vanished);
            section(b, "non-monotonic live reads", nonMonotonic);
            section(b, "failed but read (allowed)", failedRead);
            return b.toString();
        }

        private static void section(StringBuilder b, String name, List<String> items) {
            b.append(String.format("  %s: %d", name, items.size()));
            if (!items.isEmpty()) {
                List<String> some = items.size() <= 10 ? items
                        : Collections.unmodifiableList(items.subList(0, 10));
                b.append(" e.g. ").append(some);
            }
            b.append('\n');
        }
    }
}
