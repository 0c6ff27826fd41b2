package main

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkFencing: producers a, b and c share one transactional id. b's InitProducerId fences a in
// the middle of a transaction: a's commit fails with PRODUCER_FENCED and its records are
// aborted. c's fences b: b's next produce, to a partition its transaction had not touched (so
// the partition leader must add it to the transaction under V2), fails with
// INVALID_PRODUCER_EPOCH. c's own transaction commits, and only its records are committed.
func checkFencing(e *txnEnv, topic, txnID string) {
	e.createTopic(topic, 2)
	begin := func(cl *kgo.Client, who string) {
		if err := cl.BeginTransaction(); err != nil {
			fail("%s: begin: %v", who, err)
		}
	}

	a := e.producer(txnID, newWiretap())
	defer a.Close()
	id, epochA := e.initProducer(a, "a")
	begin(a, "a")
	aRecs := produceTxn(e.ctx, a, topic, "a", 2, 2)
	e.expectOngoing(txnID, id, epochA, topic, []int32{0, 1})

	b := e.producer(txnID, newWiretap())
	defer b.Close()
	idB, epochB := e.initProducer(b, "b")
	if idB != id || epochB <= epochA {
		fail("b initialised as producer %d epoch %d, want %d with an epoch above a's %d", idB, epochB, id, epochA)
	}
	d := e.expectEnded(txnID, "Empty", id, epochB)
	step("fence: b's InitProducerId aborted a's transaction: a had epoch %d, b has %d (%s)", epochA, epochB, d.State)

	err := a.EndTransaction(e.ctx, kgo.TryCommit)
	step("fence: a's commit after b initialised: %v", err)
	if !errors.Is(err, kerr.ProducerFenced) {
		fail("a's commit after being fenced: %v, want PRODUCER_FENCED", err)
	}
	// franz-go keeps the transaction open after a failed commit so that it can be aborted.
	err = a.EndTransaction(e.ctx, kgo.TryAbort)
	step("fence: a's abort: %v", err)
	err = a.BeginTransaction()
	step("fence: a's next begin: %v", err)
	if !errors.Is(err, kerr.ProducerFenced) {
		fail("a's begin after being fenced: %v, want a fatal PRODUCER_FENCED", err)
	}

	begin(b, "b")
	bRecs := produceTxn(e.ctx, b, topic, "b", 1, 2) // partition 0 only
	e.expectOngoing(txnID, id, epochB, topic, []int32{0})
	cTap := newWiretap()
	c := e.producer(txnID, cTap)
	defer c.Close()
	_, epochC := e.initProducer(c, "c")
	if epochC <= epochB {
		fail("c initialised at epoch %d, not above b's %d", epochC, epochB)
	}
	e.expectEnded(txnID, "Empty", id, epochC)
	late := b.ProduceSync(e.ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("b-late")})
	err = late.FirstErr()
	step("fence: b's produce to partition 1 after c initialised (epoch %d -> %d): %v", epochB, epochC, err)
	if !errors.Is(err, kerr.InvalidProducerEpoch) {
		fail("b's produce after being fenced: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	err = b.EndTransaction(e.ctx, kgo.TryCommit)
	step("fence: b's commit after the failed produce: %v", err)
	if !errors.Is(err, kerr.OperationNotAttempted) {
		fail("b's commit after its produce was fenced: %v, want OPERATION_NOT_ATTEMPTED", err)
	}
	err = b.EndTransaction(e.ctx, kgo.TryAbort)
	step("fence: b's abort: %v", err)
	if !errors.Is(err, kerr.ProducerFenced) {
		fail("b's abort after being fenced: %v, want PRODUCER_FENCED (EndTxn at b's epoch)", err)
	}
	err = b.BeginTransaction()
	step("fence: b's next begin: %v", err)

	begin(c, "c")
	cRecs := produceTxn(e.ctx, c, topic, "c", 2, 2)
	if err := c.EndTransaction(e.ctx, kgo.TryCommit); err != nil {
		fail("c: commit: %v", err)
	}
	expectV2Wire("fence: c", cTap, 1, false)
	e.expectEnded(txnID, "CompleteCommit", id, epochC+1)

	e.waitStable(topic)
	want := byPartition(cRecs)
	expectRecords("read_committed "+topic, consumeUntil(e.bootstrap, topic, kgo.ReadCommitted(), reached(want)), want)
	wantAll := byPartition(append(append(aRecs, bRecs...), cRecs...))
	expectRecords("read_uncommitted "+topic, consumeUntil(e.bootstrap, topic, kgo.ReadUncommitted(), reached(wantAll)), wantAll)
	step("fence: only c's %d records are committed; a's %d and b's %d were aborted", len(cRecs), len(aRecs), len(bRecs))
}
