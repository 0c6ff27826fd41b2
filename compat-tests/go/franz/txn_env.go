package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pollPause is the pause between two looks at broker state that has no event to wait for (a
// transaction's markers, the last stable offset); every such poll has a deadline.
const pollPause = 20 * time.Millisecond

// txnEnv is what the transaction scenarios share: an admin client and one deadline that
// outlasts the waits inside them (each bounded by timeout).
type txnEnv struct {
	bootstrap string
	admCl     *kgo.Client
	adm       *kadm.Client
	ctx       context.Context
}

func (e *txnEnv) createTopic(name string, parts int32) {
	if _, err := e.adm.CreateTopic(e.ctx, parts, 1, nil, name); err != nil {
		fail("create %s: %v", name, err)
	}
}

// producer is a transactional client for txnID whose requests the tap sees; records go to the
// partition they name.
func (e *txnEnv) producer(txnID string, tap *wiretap) *kgo.Client {
	return newClient(e.bootstrap,
		kgo.TransactionalID(txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		tap.dialer(),
	)
}

// initProducer loads the producer id and epoch (InitProducerId), as Java's initTransactions does.
func (e *txnEnv) initProducer(cl *kgo.Client, who string) (int64, int16) {
	id, epoch, err := cl.ProducerID(e.ctx)
	if err != nil {
		fail("%s: init producer id: %v", who, err)
	}
	return id, epoch
}

// produceTxn sends per records to each of parts partitions of topic (value <tag>-p<partition>-<i>)
// inside the client's open transaction and returns them as acknowledged.
func produceTxn(ctx context.Context, cl *kgo.Client, topic, tag string, parts int32, per int) []*kgo.Record {
	var rs []*kgo.Record
	for p := range parts {
		for i := range per {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s-p%d-%d", tag, p, i)})
		}
	}
	out := make([]*kgo.Record, 0, len(rs))
	for _, r := range cl.ProduceSync(ctx, rs...) {
		if r.Err != nil {
			fail("produce %s in a transaction: %v", tag, r.Err)
		}
		out = append(out, r.Record)
	}
	return out
}

func (e *txnEnv) describeTxn(txnID string) kadm.DescribedTransaction {
	ds, err := e.adm.DescribeTransactions(e.ctx, txnID)
	if err != nil {
		fail("describe transaction %s: %v", txnID, err)
	}
	d, ok := ds[txnID]
	if !ok || d.Err != nil {
		fail("describe transaction %s: %+v (%v)", txnID, d, ok)
	}
	return d
}

// expectOngoing: the coordinator has an ongoing transaction at epoch over exactly the partitions
// of topic it produced to (under Transactions V2 the partition leaders added them).
func (e *txnEnv) expectOngoing(txnID string, id int64, epoch int16, topic string, parts []int32) {
	d := e.describeTxn(txnID)
	got := slices.Sorted(func(yield func(int32) bool) {
		for p := range d.Topics[topic] {
			if !yield(p) {
				return
			}
		}
	})
	if d.State != "Ongoing" || d.ProducerID != id || d.ProducerEpoch != epoch || len(d.Topics) != 1 ||
		!slices.Equal(got, parts) {
		fail("transaction %s: %s, producer %d epoch %d, partitions %v; want Ongoing, %d epoch %d, %s %v",
			txnID, d.State, d.ProducerID, d.ProducerEpoch, d.Topics, id, epoch, topic, parts)
	}
}

// expectEnded waits until the coordinator finished the transaction (state CompleteCommit or
// CompleteAbort), then checks the producer id and epoch it holds.
func (e *txnEnv) expectEnded(txnID, state string, id int64, epoch int16) kadm.DescribedTransaction {
	deadline := time.Now().Add(timeout)
	for {
		d := e.describeTxn(txnID)
		if d.State == state {
			if d.ProducerID != id || d.ProducerEpoch != epoch {
				fail("transaction %s %s: producer %d epoch %d, want %d epoch %d", txnID, state, d.ProducerID,
					d.ProducerEpoch, id, epoch)
			}
			return d
		}
		if time.Now().After(deadline) {
			fail("transaction %s: %s (producer %d epoch %d, partitions %v) after %v, want %s", txnID, d.State,
				d.ProducerID, d.ProducerEpoch, d.Topics, timeout, state)
		}
		time.Sleep(pollPause)
	}
}

// waitStable polls until the last stable offset of every partition of topic is its high
// watermark (no transaction open on it, every marker written), and returns the high watermarks.
func (e *txnEnv) waitStable(topic string) map[int32]int64 {
	deadline := time.Now().Add(timeout)
	for {
		ends, err := e.adm.ListEndOffsets(e.ctx, topic)
		if err != nil || ends.Error() != nil {
			fail("list end offsets of %s: %v %v", topic, err, ends.Error())
		}
		stable, err := e.adm.ListCommittedOffsets(e.ctx, topic)
		if err != nil || stable.Error() != nil {
			fail("list committed (last stable) offsets of %s: %v %v", topic, err, stable.Error())
		}
		hw, same := map[int32]int64{}, true
		ends.Each(func(o kadm.ListedOffset) {
			hw[o.Partition] = o.Offset
			s, ok := stable.Lookup(topic, o.Partition)
			same = same && ok && s.Offset == o.Offset
		})
		if same {
			return hw
		}
		if time.Now().After(deadline) {
			fail("%s: last stable offsets %v never reached the high watermarks %v", topic, stable, ends)
		}
		time.Sleep(pollPause)
	}
}

// consumeUntil reads every partition of topic from its start (no group) at the isolation level
// until done holds for what came so far, per partition in offset order.
func consumeUntil(bootstrap, topic string, level kgo.IsolationLevel, done func(map[int32][]*kgo.Record) bool) map[int32][]*kgo.Record {
	cl := newClient(bootstrap,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level),
	)
	defer cl.Close()
	ctx, cancel := bounded()
	defer cancel()
	got := map[int32][]*kgo.Record{}
	for !done(got) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("read %s: %d records within %v, not all that were expected", topic, total(got), timeout)
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if prev := got[r.Partition]; len(prev) > 0 && r.Offset <= prev[len(prev)-1].Offset {
				fail("%s/%d: offset %d after %d", topic, r.Partition, r.Offset, prev[len(prev)-1].Offset)
			}
			got[r.Partition] = append(got[r.Partition], r)
		})
	}
	return got
}

func total(rs map[int32][]*kgo.Record) int {
	n := 0
	for _, p := range rs {
		n += len(p)
	}
	return n
}

// byPartition groups acknowledged records by partition, in offset order.
func byPartition(rs []*kgo.Record) map[int32][]*kgo.Record {
	out := map[int32][]*kgo.Record{}
	for _, r := range rs {
		out[r.Partition] = append(out[r.Partition], r)
	}
	for _, p := range out {
		slices.SortFunc(p, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
	}
	return out
}

// expectRecords: got holds exactly want's records (offsets and values), partition by partition.
func expectRecords(what string, got, want map[int32][]*kgo.Record) {
	for p := range got {
		if _, ok := want[p]; !ok && len(got[p]) > 0 {
			fail("%s: partition %d gave %d records (first %s at %d), want none", what, p, len(got[p]),
				got[p][0].Value, got[p][0].Offset)
		}
	}
	for p, w := range want {
		g := got[p]
		if len(g) != len(w) {
			fail("%s: partition %d gave %d records %v, want %d %v", what, p, len(g), values(g), len(w), values(w))
		}
		for i := range w {
			if g[i].Offset != w[i].Offset || string(g[i].Value) != string(w[i].Value) {
				fail("%s: partition %d record %d is %s at %d, want %s at %d", what, p, i, g[i].Value, g[i].Offset,
					w[i].Value, w[i].Offset)
			}
		}
	}
}

func values(rs []*kgo.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, string(r.Value))
	}
	return head(out)
}

// reached is a done condition for consumeUntil: every partition of last came up to (at least)
// the offset of its last record there.
func reached(last map[int32][]*kgo.Record) func(map[int32][]*kgo.Record) bool {
	return func(got map[int32][]*kgo.Record) bool {
		for p, rs := range last {
			g := got[p]
			if len(g) == 0 || g[len(g)-1].Offset < rs[len(rs)-1].Offset {
				return false
			}
		}
		return true
	}
}
