package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const txnPartitions = 3

// checkTransactions runs the transaction scenarios: committed and aborted transactions read at
// both isolation levels, consume-transform-produce with group offsets in the transaction, and
// fencing by a second producer with the same transactional id. Each checks on the wire and
// through DescribeTransactions that franz-go ran Transactions V2 (KIP-890 part 2): no
// AddPartitionsToTxn or AddOffsetsToTxn, EndTxn v5, and the producer epoch one higher after
// every ended transaction.
func checkTransactions(bootstrap, prefix, group string) {
	admCl := newClient(bootstrap)
	defer admCl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*timeout)
	defer cancel()
	e := &txnEnv{bootstrap: bootstrap, admCl: admCl, adm: kadm.NewClient(admCl), ctx: ctx}
	checkFeature(e)

	checkCommitAbort(e, prefix+"-txn", prefix+"-tx")
	step("txn: ok")
	checkConsumeTransformProduce(e, prefix+"-in", prefix+"-out", prefix+"-eos", group)
	step("eos: ok")
	checkFencing(e, prefix+"-fence", prefix+"-fenced")
	step("fence: ok")
	fmt.Println("ok: transactions V2 with franz-go: commit/abort at both isolation levels, " +
		"group offsets in transactions, epoch bumped per transaction, fencing")
}

// checkCommitAbort: a committed, an aborted and a committed transaction, each with records on
// every partition. read_committed sees exactly the committed records once each, read_uncommitted
// sees all of them; the epoch goes up by one per transaction.
func checkCommitAbort(e *txnEnv, topic, txnID string) {
	e.createTopic(topic, txnPartitions)
	tap := newWiretap()
	cl := e.producer(txnID, tap)
	defer cl.Close()
	id, epoch0 := e.initProducer(cl, txnID)
	step("txn: producer %d epoch %d for %s", id, epoch0, txnID)
	all := []int32{0, 1, 2}

	var committed, everything []*kgo.Record
	for i, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
		epoch := epoch0 + int16(i)
		if err := cl.BeginTransaction(); err != nil {
			fail("begin transaction %d: %v", i, err)
		}
		tag := fmt.Sprintf("t%d-abort", i)
		if commit {
			tag = fmt.Sprintf("t%d-commit", i)
		}
		acked := produceTxn(e.ctx, cl, topic, tag, txnPartitions, 4)
		for _, r := range acked {
			if r.ProducerID != id || r.ProducerEpoch != epoch {
				fail("%s acknowledged with producer %d epoch %d, want %d epoch %d", r.Value, r.ProducerID,
					r.ProducerEpoch, id, epoch)
			}
		}
		e.expectOngoing(txnID, id, epoch, topic, all)
		if err := cl.EndTransaction(e.ctx, commit); err != nil {
			fail("end transaction %d (commit %v): %v", i, commit, err)
		}
		expectV2Wire(fmt.Sprintf("txn: transaction %d", i), tap, i+1, false)
		everything = append(everything, acked...)
		state := "CompleteAbort"
		if commit {
			committed = append(committed, acked...)
			state = "CompleteCommit"
		}
		// Transactions V2: the coordinator bumped the epoch at the end (EndTxn v5 returned it).
		if gotID, gotEpoch := e.initProducer(cl, txnID); gotID != id || gotEpoch != epoch+1 {
			fail("after transaction %d franz-go holds producer %d epoch %d, want %d epoch %d", i, gotID, gotEpoch,
				id, epoch+1)
		}
		d := e.expectEnded(txnID, state, id, epoch+1)
		step("txn: transaction %d %s, DescribeTransactions: %s producer %d epoch %d", i, tag, d.State,
			d.ProducerID, d.ProducerEpoch)
	}
	step("txn: requests written: %s", tap.describe(txnKeys...))

	hw := e.waitStable(topic)
	step("txn: last stable offsets reached the high watermarks %v", hw)
	want := byPartition(committed)
	got := consumeUntil(e.bootstrap, topic, kgo.ReadCommitted(), reached(want))
	expectRecords("read_committed", got, want)
	step("txn: read_committed read the %d committed records once each, none of the aborted", total(got))
	wantAll := byPartition(everything)
	gotAll := consumeUntil(e.bootstrap, topic, kgo.ReadUncommitted(), reached(wantAll))
	expectRecords("read_uncommitted", gotAll, wantAll)
	step("txn: read_uncommitted read all %d records, the aborted ones too", total(gotAll))
	// The markers: each transaction ends with one control record per partition.
	for p, rs := range wantAll {
		if last := rs[len(rs)-1].Offset; hw[p] != last+2 {
			fail("partition %d: high watermark %d, last record at %d, want the commit marker at %d", p, hw[p], last, last+1)
		}
	}
}

// txnKeys are the requests whose versions tell Transactions V1 from V2.
var txnKeys = []kmsg.Key{kmsg.InitProducerID, kmsg.Produce, kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn,
	kmsg.TxnOffsetCommit, kmsg.EndTxn}

// expectV2Wire: the client ran Transactions V2 on the wire so far: every Produce v12 or newer (the
// partition leader adds the partition), every EndTxn v5 (ends of them), no AddPartitionsToTxn and
// no AddOffsetsToTxn, and with offsets, TxnOffsetCommit v5 or newer (it adds the offsets partition).
func expectV2Wire(what string, tap *wiretap, ends int, offsets bool) {
	produce, endTxn, txnOffsets := tap.versions(kmsg.Produce), tap.versions(kmsg.EndTxn), tap.versions(kmsg.TxnOffsetCommit)
	v2 := len(produce) > 0 && produce[0] >= 12 &&
		slices.Equal(endTxn, []int16{5}) && tap.count(kmsg.EndTxn) == ends &&
		tap.count(kmsg.AddPartitionsToTxn) == 0 && tap.count(kmsg.AddOffsetsToTxn) == 0 &&
		(!offsets || len(txnOffsets) > 0 && txnOffsets[0] >= 5)
	if !v2 {
		fail("%s: franz-go did not run Transactions V2 (want Produce v12+, EndTxn v5 x%d, no AddPartitionsToTxn or "+
			"AddOffsetsToTxn, TxnOffsetCommit v5+ if offsets %v); requests written: %s", what, ends, offsets,
			tap.describe(txnKeys...))
	}
}
