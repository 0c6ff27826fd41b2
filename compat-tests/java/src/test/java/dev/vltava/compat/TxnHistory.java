package dev.vltava.compat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * A history of transactions under faults (after the Rust suite's {@code txn_history.rs}): every
 * transaction with its records (unique values, each with the partition it was sent to and the offset
 * of its delivery, if one came back), the group offset it sent (if any), the producer that ran it
 * (instance, producer id and epoch) and its outcome; and the checks of a read_committed and a
 * read_uncommitted read of every partition from the earliest offset, made after healing.
 *
 * <p>Outcomes: <b>committed</b> (commitTransaction returned), <b>aborted</b> (abortTransaction
 * returned, whether we chose to abort or an error made us), <b>never committed</b> (commitTransaction
 * was never called and the abort failed: the producer was replaced, which aborts it; nothing of it
 * may be visible), <b>unknown</b> (commitTransaction failed in a way that leaves the outcome open:
 * all of it or nothing may be visible).
 *
 * <p>Anomalies: a committed transaction not wholly visible at read_committed; a record of an aborted
 * or never committed transaction visible; an unknown transaction partly visible; a value at more than
 * one offset (in either read); a value read that was never sent; a committed value missing from the
 * read_uncommitted read; a committed value read on another partition or at another offset than its
 * delivery said; the group's committed offset not the one of the last committed transaction that
 * sent offsets; a transaction left without an outcome; a partition whose last stable offset never
 * reached its high watermark (a transaction left open).
 */
public final class TxnHistory {
    /** What the producer learnt about a transaction. */
    public enum Outcome { OPEN, COMMITTED, ABORTED, NEVER_COMMITTED, UNKNOWN }

    /** One record sent in a transaction. */
    public static final class Sent {
        public final String value;
        public final int partition;
        long offset = -1;
        String error;

        Sent(String value, int partition) {
            this.value = value;
            this.partition = partition;
        }

        @Override
        public String toString() {
            return value + "@" + partition + ":" + (offset >= 0 ? String.valueOf(offset) : error == null ? "?" : error);
        }
    }

    /** One transaction. */
    public static final class Txn {
        public final long seq;
        public final String name;
        /** Which producer instance of the workload ran it (a new one after each replacement). */
        public final int producer;
        /** The producer id and epoch as the client held them at beginTransaction. */
        public final String idAndEpoch;
        final List<Sent> records = new ArrayList<>();
        /** The group offset sent with it, or -1. */
        long groupOffset = -1;
        Outcome outcome = Outcome.OPEN;
        String reason = "";

        Txn(long seq, String name, int producer, String idAndEpoch) {
            this.seq = seq;
            this.name = name;
            this.producer = producer;
            this.idAndEpoch = idAndEpoch;
        }

        public Outcome outcome() {
            return outcome;
        }

        public String reason() {
            return reason;
        }

        @Override
        public String toString() {
            return name + " [producer " + producer + " " + idAndEpoch + ", " + outcome
                    + (reason.isEmpty() ? "" : " (" + reason + ")")
                    + (groupOffset >= 0 ? ", group offset " + groupOffset : "") + "] " + records;
        }
    }

    /** A record read back. */
    public record Read(int partition, long offset, String value) {}

    /** The group's committed offset as OffsetFetch returned it (null: none). */
    public record GroupOffset(long offset, String metadata) {}

    /** One kind of anomaly: how many, and the first few. */
    public static final class Anomaly {
        private static final int EXAMPLES = 8;
        int count;
        final List<String> examples = new ArrayList<>();

        void add(String example) {
            count++;
            if (examples.size() < EXAMPLES) {
                examples.add(example);
            }
        }

        public int count() {
            return count;
        }

        @Override
        public String toString() {
            return count + (examples.isEmpty() ? "" : " " + examples);
        }
    }

    /** The checker's findings. */
    public static final class Report {
        public int committed;
        public int aborted;
        public int neverCommitted;
        public int unknown;
        /** Unknown transactions the read shows whole: they committed after all. */
        public int unknownVisible;
        public int withOffsets;
        public int recordsSent;
        public int committedRead;
        public int uncommittedRead;
        /** Records of aborted or never committed transactions in the log (read_uncommitted). */
        public int abortedInLog;
        public final Map<String, Integer> reasons = new TreeMap<>();
        public GroupOffset groupOffset;
        public String expectedGroupOffset = "none";
        public final Map<String, Anomaly> anomalies = new LinkedHashMap<>();

        Report() {
            for (String kind : KINDS) {
                anomalies.put(kind, new Anomaly());
            }
        }

        public int count(String kind) {
            return anomalies.get(kind).count;
        }

        public boolean ok() {
            return anomalies.values().stream().allMatch(a -> a.count == 0);
        }

        @Override
        public String toString() {
            StringBuilder b = new StringBuilder();
            b.append("transactions: committed ").append(committed).append(", aborted ").append(aborted)
                    .append(", never committed ").append(neverCommitted).append(", unknown ").append(unknown)
                    .append(" (of which visible ").append(unknownVisible).append("), with offsets ")
                    .append(withOffsets).append("; records sent ").append(recordsSent)
                    .append(", read_committed ").append(committedRead).append(", read_uncommitted ")
                    .append(uncommittedRead).append(", aborted records in the log ").append(abortedInLog)
                    .append("; group offset ").append(groupOffset).append(" (expected ")
                    .append(expectedGroupOffset).append(")\n");
            if (!reasons.isEmpty()) {
                b.append("  reasons: ").append(reasons).append('\n');
            }
            anomalies.forEach((k, a) -> b.append("  ").append(k).append(": ").append(a).append('\n'));
            return b.toString();
        }
    }

    public static final String COMMITTED_NOT_WHOLE = "committed not wholly visible";
    public static final String ABORTED_VISIBLE = "aborted visible";
    public static final String UNKNOWN_PARTIAL = "unknown partly visible";
    public static final String DUPLICATES = "duplicates";
    public static final String NEVER_SENT = "never sent";
    public static final String MISSING_UNCOMMITTED = "committed missing at read_uncommitted";
    public static final String MISPLACED = "misplaced";
    public static final String GROUP_OFFSET = "group offset";
    public static final String NO_OUTCOME = "no outcome";
    public static final String HANGING = "hanging";
    static final List<String> KINDS = List.of(COMMITTED_NOT_WHOLE, ABORTED_VISIBLE, UNKNOWN_PARTIAL, DUPLICATES,
            NEVER_SENT, MISSING_UNCOMMITTED, MISPLACED, GROUP_OFFSET, NO_OUTCOME, HANGING);

    private final List<Txn> txns = new ArrayList<>();
    private final Map<String, Sent> byValue = new HashMap<>();

    public synchronized Txn begin(String name, int producer, String idAndEpoch) {
        Txn t = new Txn(txns.size(), name, producer, idAndEpoch);
        txns.add(t);
        return t;
    }

    /** Records a send about to be made in {@code t}; values must be unique. */
    public synchronized void sent(Txn t, String value, int partition) {
        Sent s = new Sent(value, partition);
        if (byValue.putIfAbsent(value, s) != null) {
            throw new IllegalArgumentException("value sent twice: " + value);
        }
        t.records.add(s);
    }

    /** The delivery of {@code value}: its offset, or (offset -1) the error's class. */
    public synchronized void delivered(String value, long offset, Exception error) {
        Sent s = byValue.get(value);
        if (s != null) {
            s.offset = offset;
            s.error = error == null ? null : error.getClass().getSimpleName();
        }
    }

    public synchronized void groupOffset(Txn t, long offset) {
        t.groupOffset = offset;
    }

    public synchronized void end(Txn t, Outcome o, String reason) {
        t.outcome = o;
        t.reason = reason;
    }

    public synchronized long count(Outcome o) {
        return txns.stream().filter(t -> t.outcome == o).count();
    }

    public synchronized List<Txn> transactions() {
        return List.copyOf(txns);
    }

    /** Checks the history against the reads after healing and the group's committed offset. */
    public synchronized Report check(List<Read> committedReads, List<Read> uncommittedReads, GroupOffset group) {
        return check(committedReads, uncommittedReads, group, List.of());
    }

    /**
     * As {@link #check(List, List, GroupOffset)}; {@code hanging} names the partitions whose last
     * stable offset never reached the high watermark (a transaction left open), one anomaly each.
     */
    public synchronized Report check(List<Read> committedReads, List<Read> uncommittedReads, GroupOffset group,
            List<String> hanging) {
        Report r = new Report();
        hanging.forEach(r.anomalies.get(HANGING)::add);
        r.committedRead = committedReads.size();
        r.uncommittedRead = uncommittedReads.size();
        r.groupOffset = group;
        Map<String, List<Read>> rc = positions(committedReads);
        Map<String, List<Read>> ru = positions(uncommittedReads);
        Txn lastWithOffsets = null;
        for (Txn t : txns) {
            r.recordsSent += t.records.size();
            if (t.groupOffset >= 0) {
                r.withOffsets++;
            }
            long visible = t.records.stream().filter(s -> rc.containsKey(s.value)).count();
            String summary = t + ": " + visible + " of " + t.records.size() + " visible "
                    + t.records.stream().map(s -> s.value + (rc.containsKey(s.value) ? "+" + rc.get(s.value) : "-"))
                    .collect(Collectors.toList());
            if (!t.reason.isEmpty() && t.outcome != Outcome.COMMITTED) {
                r.reasons.merge(t.outcome + ": " + t.reason, 1, Integer::sum);
            }
            boolean committed = false;
            switch (t.outcome) {
                case COMMITTED -> {
                    r.committed++;
                    committed = true;
                    if (visible < t.records.size()) {
                        r.anomalies.get(COMMITTED_NOT_WHOLE).add(summary);
                    }
                }
                case ABORTED, NEVER_COMMITTED -> {
                    if (t.outcome == Outcome.ABORTED) {
                        r.aborted++;
                    } else {
                        r.neverCommitted++;
                    }
                    if (visible > 0) {
                        r.anomalies.get(ABORTED_VISIBLE).add(summary);
                    }
                    r.abortedInLog += (int) t.records.stream().filter(s -> ru.containsKey(s.value)).count();
                }
                case UNKNOWN -> {
                    r.unknown++;
                    if (visible == t.records.size() && visible > 0) {
                        r.unknownVisible++;
                        committed = true;
                    } else if (visible > 0) {
                        r.anomalies.get(UNKNOWN_PARTIAL).add(summary);
                    }
                }
                case OPEN -> r.anomalies.get(NO_OUTCOME).add(summary);
            }
            if (!committed) {
                continue;
            }
            if (t.groupOffset >= 0) {
                lastWithOffsets = t;
            }
            for (Sent s : t.records) {
                if (!ru.containsKey(s.value)) {
                    r.anomalies.get(MISSING_UNCOMMITTED).add(s + " of " + t.name);
                }
                for (Read x : rc.getOrDefault(s.value, List.of())) {
                    if (x.partition() != s.partition || (s.offset >= 0 && x.offset() != s.offset)) {
                        r.anomalies.get(MISPLACED).add(s + " of " + t.name + " read at " + x);
                    }
                }
            }
        }
        for (Map<String, List<Read>> reads : List.of(rc, ru)) {
            String which = reads == rc ? "read_committed" : "read_uncommitted";
            reads.forEach((value, at) -> {
                if (at.size() > 1) {
                    r.anomalies.get(DUPLICATES).add(which + " " + value + " at " + at);
                }
                if (!byValue.containsKey(value)) {
                    r.anomalies.get(NEVER_SENT).add(which + " " + value + " at " + at);
                }
            });
        }
        GroupOffset expected = lastWithOffsets == null ? null
                : new GroupOffset(lastWithOffsets.groupOffset, lastWithOffsets.name);
        r.expectedGroupOffset = String.valueOf(expected) + (lastWithOffsets == null ? "" : " of " + lastWithOffsets);
        if (expected == null ? group != null : !expected.equals(group)) {
            r.anomalies.get(GROUP_OFFSET).add("committed " + group + ", expected " + r.expectedGroupOffset);
        }
        return r;
    }

    /** Value -> where it was read (distinct positions: a re-read of one offset is no duplicate). */
    private static Map<String, List<Read>> positions(List<Read> reads) {
        Map<String, List<Read>> m = new HashMap<>();
        for (Read x : reads) {
            List<Read> at = m.computeIfAbsent(x.value(), v -> new ArrayList<>());
            if (!at.contains(x)) {
                at.add(x);
            }
        }
        return m;
    }
}
