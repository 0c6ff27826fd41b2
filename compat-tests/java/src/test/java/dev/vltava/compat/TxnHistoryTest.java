package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The transaction checker of the fault suite finds each anomaly it claims to, on made-up histories. */
class TxnHistoryTest {
    private final TxnHistory h = new TxnHistory();
    private final List<TxnHistory.Read> rc = new ArrayList<>();
    private final List<TxnHistory.Read> ru = new ArrayList<>();
    private long next;

    /** A transaction of two records (partitions 0 and 1), delivered at the next offsets, and its outcome. */
    private TxnHistory.Txn txn(String name, TxnHistory.Outcome o, long groupOffset) {
        TxnHistory.Txn t = h.begin(name, 1, "pid 0 epoch 0");
        for (int p = 0; p < 2; p++) {
            String v = name + "-" + p;
            h.sent(t, v, p);
            h.delivered(v, next, null);
        }
        next++;
        if (groupOffset >= 0) {
            h.groupOffset(t, groupOffset);
        }
        h.end(t, o, o == TxnHistory.Outcome.COMMITTED ? "" : "test");
        return t;
    }

    /** Both records of {@code t} in the log, and at read_committed if {@code visible}. */
    private void read(TxnHistory.Txn t, boolean visible) {
        for (int p = 0; p < 2; p++) {
            TxnHistory.Read x = new TxnHistory.Read(p, t.records.get(p).offset, t.name + "-" + p);
            ru.add(x);
            if (visible) {
                rc.add(x);
            }
        }
    }

    @Test
    void aCleanHistoryHasNoAnomaly() {
        TxnHistory.Txn a = txn("a", TxnHistory.Outcome.COMMITTED, 1);
        TxnHistory.Txn b = txn("b", TxnHistory.Outcome.ABORTED, 2);
        TxnHistory.Txn c = txn("c", TxnHistory.Outcome.UNKNOWN, 3);
        TxnHistory.Txn d = txn("d", TxnHistory.Outcome.UNKNOWN, -1);
        read(a, true);
        read(b, false);
        read(c, true);
        read(d, false);
        TxnHistory.Report r = h.check(rc, ru, new TxnHistory.GroupOffset(3, "c"));
        assertTrue(r.ok(), r.toString());
        assertEquals(1, r.committed);
        assertEquals(2, r.unknown);
        assertEquals(1, r.unknownVisible);
        assertEquals(2, r.abortedInLog);
    }

    @Test
    void eachAnomalyIsCounted() {
        TxnHistory.Txn partial = txn("partial", TxnHistory.Outcome.COMMITTED, -1);
        TxnHistory.Txn aborted = txn("aborted", TxnHistory.Outcome.ABORTED, -1);
        TxnHistory.Txn never = txn("never", TxnHistory.Outcome.NEVER_COMMITTED, -1);
        TxnHistory.Txn unknown = txn("unknown", TxnHistory.Outcome.UNKNOWN, -1);
        TxnHistory.Txn ok = txn("ok", TxnHistory.Outcome.COMMITTED, 7);
        TxnHistory.Txn later = txn("later", TxnHistory.Outcome.ABORTED, 9);
        TxnHistory.Txn open = h.begin("open", 1, "?");
        rc.add(new TxnHistory.Read(0, partial.records.get(0).offset, "partial-0"));
        ru.add(new TxnHistory.Read(0, partial.records.get(0).offset, "partial-0"));
        read(aborted, true);
        rc.add(new TxnHistory.Read(1, never.records.get(1).offset, "never-1"));
        rc.add(new TxnHistory.Read(0, unknown.records.get(0).offset, "unknown-0"));
        read(ok, true);
        rc.add(new TxnHistory.Read(1, 99, "ok-1")); // a duplicate, and misplaced
        rc.add(new TxnHistory.Read(2, 100, "stranger"));
        read(later, false);
        TxnHistory.Report r = h.check(rc, ru, new TxnHistory.GroupOffset(9, "later"), List.of("2: LSO 5 < HW 7"));
        assertEquals(1, r.count(TxnHistory.COMMITTED_NOT_WHOLE), r.toString());
        assertEquals(2, r.count(TxnHistory.ABORTED_VISIBLE), r.toString());
        assertEquals(1, r.count(TxnHistory.UNKNOWN_PARTIAL), r.toString());
        assertEquals(1, r.count(TxnHistory.DUPLICATES), r.toString());
        assertEquals(1, r.count(TxnHistory.NEVER_SENT), r.toString());
        assertEquals(1, r.count(TxnHistory.MISSING_UNCOMMITTED), r.toString());
        assertEquals(1, r.count(TxnHistory.MISPLACED), r.toString());
        assertEquals(1, r.count(TxnHistory.GROUP_OFFSET), r.toString());
        assertEquals(1, r.count(TxnHistory.NO_OUTCOME), r.toString());
        assertEquals(1, r.count(TxnHistory.HANGING), r.toString());
        assertTrue(!r.ok() && open.outcome() == TxnHistory.Outcome.OPEN);
    }

    @Test
    void noGroupOffsetIsExpectedWithoutACommittedTransactionThatSentOne() {
        TxnHistory.Txn a = txn("a", TxnHistory.Outcome.COMMITTED, -1);
        TxnHistory.Txn b = txn("b", TxnHistory.Outcome.UNKNOWN, 4);
        read(a, true);
        read(b, false);
        assertTrue(h.check(rc, ru, null).ok());
        assertEquals(1, h.check(rc, ru, new TxnHistory.GroupOffset(4, "b")).count(TxnHistory.GROUP_OFFSET));
    }
}
