package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.apache.kafka.common.errors.NotEnoughReplicasException;
import org.apache.kafka.common.errors.TimeoutException;
import org.junit.jupiter.api.Test;

/** The fault tests' history checker on synthetic histories: a clean one passes, each fault is found. */
class HistoryTest {
    /** a, b, c acked at 0@0..0@2; d failed; e never answered. */
    private static History base() {
        History h = new History();
        for (String v : List.of("a", "b", "c", "d", "e")) {
            h.sent(v);
        }
        h.acked("a", 0, 0);
        h.acked("b", 0, 1);
        h.acked("c", 0, 2);
        h.failed("d", new TimeoutException("expired", new NotEnoughReplicasException("isr 1")));
        return h;
    }

    private static void finalRead(History h, String... values) {
        for (int i = 0; i < values.length; i++) {
            h.readFinal(0, i, values[i]);
        }
        h.finalReadComplete();
    }

    @Test
    void aCleanHistoryPasses() {
        History h = base();
        h.readLive(0, 0, "a");
        h.readLive(0, 1, "b");
        finalRead(h, "a", "b", "c");
        History.Report r = h.check();
        assertTrue(r.ok(), r.toString());
        assertEquals(5, r.sent());
        assertEquals(3, r.acked());
        assertEquals(1, r.failed());
        assertEquals(1, r.unknown());
        assertEquals(Map.of("TimeoutException<-NotEnoughReplicasException", 1L), r.errors());
    }

    @Test
    void anAcknowledgedValueMissingFromTheFinalReadIsLost() {
        History h = base();
        finalRead(h, "a", "b");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("c acked at 0@2"), r.lost());
    }

    @Test
    void aValueAtTwoOffsetsIsADuplicate() {
        History h = base();
        finalRead(h, "a", "b", "c", "c");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("c at [0@2, 0@3]"), r.duplicates());
    }

    @Test
    void anOffsetThatShowedTwoValuesIsInconsistent() {
        History h = base();
        h.readLive(0, 2, "e"); // read before a truncation, then overwritten by c
        finalRead(h, "a", "b", "c");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("0@2 holds [c, e]"), r.inconsistent());
        assertEquals(List.of("e read live at 0@2"), r.vanished());
        assertTrue(r.lost().isEmpty());
    }

    @Test
    void aValueReadElsewhereThanAcknowledgedIsAtTheWrongOffset() {
        History h = base();
        finalRead(h, "a", "c", "b");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("b acked at 0@1, read at [0@2]", "c acked at 0@2, read at [0@1]"), r.wrongOffset());
    }

    @Test
    void aValueNobodySentIsReported() {
        History h = base();
        finalRead(h, "a", "b", "c", "zz");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("zz at [0@3]"), r.neverSent());
    }

    @Test
    void aLiveReaderGoingBackOrSkippingIsNonMonotonic() {
        History h = base();
        h.readLive(0, 0, "a");
        h.readLive(0, 1, "b");
        h.readLive(0, 0, "a"); // reset to the earliest offset
        h.readLive(0, 2, "c"); // skipped b
        finalRead(h, "a", "b", "c");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertEquals(List.of("0@1 -> 0@0", "0@0 -> 0@2"), r.nonMonotonic());
        assertTrue(r.duplicates().isEmpty(), "reading an offset again is no duplicate");
    }

    @Test
    void aFailedSendReadAnywayIsCountedButAllowed() {
        History h = base();
        finalRead(h, "a", "b", "c", "d");
        History.Report r = h.check();
        assertTrue(r.ok(), r.toString());
        assertEquals(1, r.failedRead().size());
    }

    @Test
    void anIncompleteFinalReadFails() {
        History h = base();
        h.readFinal(0, 0, "a");
        History.Report r = h.check();
        assertFalse(r.ok());
        assertFalse(r.finalComplete());
    }

    @Test
    void valuesMustBeUniqueAndKnown() {
        History h = base();
        assertThrows(IllegalArgumentException.class, () -> h.sent("a"));
        assertThrows(IllegalArgumentException.class, () -> h.acked("nope", 0, 9));
    }
}
