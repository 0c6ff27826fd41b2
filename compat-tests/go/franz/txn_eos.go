package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkConsumeTransformProduce: a GroupTransactSession consumes in, produces a transformed copy
// of each record to out and commits the group's offsets in the same transaction. A committed
// transaction moves the group's offsets to the end of in; an aborted one leaves them where they
// were, and the session reads the same records again; out holds each input's copy once at
// read_committed.
func checkConsumeTransformProduce(e *txnEnv, in, out, txnID, group string) {
	e.createTopic(in, 2)
	e.createTopic(out, 2)
	src := producer(e.bootstrap, kgo.NoCompression())
	defer src.Close()
	tap := newWiretap()
	s, err := kgo.NewGroupTransactSession(clientOpts(e.bootstrap,
		kgo.TransactionalID(txnID),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		tap.dialer(),
	)...)
	if err != nil {
		fail("transact session: %v", err)
	}
	defer s.Close()
	id, epoch := e.initProducer(s.Client(), txnID)
	step("eos: producer %d epoch %d for %s in group %s", id, epoch, txnID, group)

	// round polls n new records, produces their copies and ends the transaction.
	var committed, everything []*kgo.Record
	ends := 0
	round := func(n int, commit kgo.TransactionEndTry) []*kgo.Record {
		polled := pollN(s, n)
		if err := s.Begin(); err != nil {
			fail("begin: %v", err)
		}
		copies := make([]*kgo.Record, 0, n)
		for _, r := range polled {
			copies = append(copies, &kgo.Record{Topic: out, Key: r.Key, Value: append([]byte("out-"), r.Value...)})
		}
		var acked []*kgo.Record
		for _, r := range s.ProduceSync(e.ctx, copies...) {
			if r.Err != nil {
				fail("produce %s: %v", r.Record.Value, r.Err)
			}
			acked = append(acked, r.Record)
		}
		ok, err := s.End(e.ctx, commit)
		if err != nil || ok != bool(commit) {
			fail("end transaction (commit %v): committed %v, %v", commit, ok, err)
		}
		ends++
		expectV2Wire(fmt.Sprintf("eos: transaction %d", ends), tap, ends, bool(commit))
		everything = append(everything, acked...)
		state := "CompleteAbort"
		if commit {
			committed = append(committed, acked...)
			state = "CompleteCommit"
		}
		e.expectEnded(txnID, state, id, epoch+1)
		epoch++
		if gotID, gotEpoch := e.initProducer(s.Client(), txnID); gotID != id || gotEpoch != epoch {
			fail("after %s franz-go holds producer %d epoch %d, want %d epoch %d", state, gotID, gotEpoch, id, epoch)
		}
		step("eos: %d records copied, %s, epoch now %d", n, state, epoch)
		return polled
	}

	produceRange(src, in, "in", 0, 20)
	round(20, kgo.TryCommit)
	first := expectGroupAtEnd(e, group, in, "after the first commit")

	produceRange(src, in, "in", 20, 30)
	aborted := round(10, kgo.TryAbort)
	if now := fetchOffsets(e, group, in); !maps.Equal(now, first) {
		fail("group offsets moved to %v in an aborted transaction, were %v", now, first)
	}
	step("eos: after the abort the group's offsets are still %v", first)
	again := round(10, kgo.TryCommit)
	if !slices.EqualFunc(sortedPositions(aborted), sortedPositions(again), func(a, b string) bool { return a == b }) {
		fail("after the abort the session read %v, want the aborted transaction's input %v",
			sortedPositions(again), sortedPositions(aborted))
	}
	expectGroupAtEnd(e, group, in, "after the second commit")
	expectV2Wire("eos", tap, 3, true)
	step("eos: requests written: %s", tap.describe(txnKeys...))

	e.waitStable(out)
	want := byPartition(committed)
	expectRecords("read_committed "+out, consumeUntil(e.bootstrap, out, kgo.ReadCommitted(), reached(want)), want)
	wantAll := byPartition(everything)
	expectRecords("read_uncommitted "+out, consumeUntil(e.bootstrap, out, kgo.ReadUncommitted(), reached(wantAll)), wantAll)
	step("eos: %s holds %d copies at read_committed, %d with the aborted ones", out, len(committed), len(everything))
}

// pollN polls until n records came, failing on fetch errors and on more than n.
func pollN(s *kgo.GroupTransactSession, n int) []*kgo.Record {
	ctx, cancel := bounded()
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := s.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("polled %d of %d records within %v", len(got), n, timeout)
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		fail("polled %d records, want %d: %v", len(got), n, sortedPositions(got))
	}
	return got
}

func sortedPositions(rs []*kgo.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
	}
	slices.Sort(out)
	return out
}

// fetchOffsets is the group's committed offset per partition of topic (OffsetFetch with
// require_stable: no transactional commit of the group may be pending).
func fetchOffsets(e *txnEnv, group, topic string) map[int32]int64 {
	os, err := e.adm.FetchOffsets(kadm.RequireStable(e.ctx), group)
	if err != nil || os.Error() != nil {
		fail("fetch offsets of %s: %v %v", group, err, os.Error())
	}
	out := map[int32]int64{}
	for p, o := range os[topic] {
		out[p] = o.At
	}
	return out
}

// expectGroupAtEnd: the group's committed offsets are the high watermarks of every partition.
func expectGroupAtEnd(e *txnEnv, group, topic, when string) map[int32]int64 {
	ends, err := e.adm.ListEndOffsets(e.ctx, topic)
	if err != nil || ends.Error() != nil {
		fail("list end offsets of %s: %v %v", topic, err, ends.Error())
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 { // a group commits no offset for a partition it never consumed from
			want[o.Partition] = o.Offset
		}
	})
	got := fetchOffsets(e, group, topic)
	if !maps.Equal(got, want) {
		fail("%s: group %s committed %v, want the end offsets %v", when, group, got, want)
	}
	step("eos: %s the group's committed offsets are the end offsets %v", when, got)
	return got
}
