// franz-cluster drives franz-go (kgo and kadm, the versions in ../go.mod) against a 3-node cluster:
// kadm creates a topic with replication factor 3 and min.insync.replicas=2, an idempotent acks=all
// producer bootstrapping from one node sends n keyed records, a consumer group bootstrapping from
// another node reads every acknowledged record exactly once at the offset it was acknowledged at, and
// Metadata shows 3 replicas and an ISR of 3 for every partition. Run by
// compat-tests/python/test_cluster.py.
//
// Usage: franz-cluster <producer-bootstrap> <consumer-bootstrap> <topic> <group> <n>.
// Exits 1 with the reason on the first failure.
package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	partitions = 3
	timeout    = 60 * time.Second
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func newClient(bootstrap string, opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("franz-cluster"),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, nil)),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		fail("client: %v", err)
	}
	return cl
}

type record struct {
	Offset int64
	Value  string
}

// awaitReplicated polls Metadata (a request of its own: kadm's ListTopics may answer from kgo's
// cache) until every partition has 3 replicas and an ISR of 3.
func awaitReplicated(cl *kgo.Client, topic string) {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		ok := err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 &&
			len(resp.Topics[0].Partitions) == partitions
		desc := fmt.Sprint(err)
		if err == nil && len(resp.Topics) == 1 {
			desc = fmt.Sprintf("topic error %v:", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
			for _, p := range resp.Topics[0].Partitions {
				desc += fmt.Sprintf(" p%d replicas %v isr %v;", p.Partition, p.Replicas, p.ISR)
				ok = ok && len(p.Replicas) == 3 && len(p.ISR) == 3
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			fail("%s: want 3 replicas and an ISR of 3 everywhere: %s", topic, desc)
		}
		time.Sleep(200 * time.Millisecond) // polling Metadata with a deadline
	}
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: franz-cluster <producer-bootstrap> <consumer-bootstrap> <topic> <group> <n>")
	}
	pBoot, cBoot, topic, group := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	n, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fail("n: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// Idempotent (kgo's default) and acks=all.
	pcl := newClient(pBoot, kgo.RequiredAcks(kgo.AllISRAcks()))
	defer pcl.Close()
	two := "2"
	created, err := kadm.NewClient(pcl).CreateTopics(ctx, partitions, 3,
		map[string]*string{"min.insync.replicas": &two}, topic)
	if err != nil || created.Error() != nil {
		fail("create %s: %v %v", topic, err, created.Error())
	}
	if r := created[topic]; r.NumPartitions != partitions || r.ReplicationFactor != 3 {
		fail("created %s: %d partitions, replication %d", topic, r.NumPartitions, r.ReplicationFactor)
	}
	awaitReplicated(pcl, topic)

	rs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%17), Value: fmt.Appendf(nil, "v%d", i)})
	}
	acked := map[int32][]record{}
	for _, r := range pcl.ProduceSync(ctx, rs...) {
		if r.Err != nil {
			fail("produce: %v", r.Err)
		}
		acked[r.Record.Partition] = append(acked[r.Record.Partition], record{r.Record.Offset, string(r.Record.Value)})
	}

	ccl := newClient(cBoot,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
	)
	got := map[int32][]record{}
	total := 0
	for total < n {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consumed %d of %d: %v", total, n, ctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], record{r.Offset, string(r.Value)})
			total++
		})
	}
	defer ccl.Close()

	for part, recs := range acked {
		sort.Slice(recs, func(i, j int) bool { return recs[i].Offset < recs[j].Offset })
		if !reflect.DeepEqual(got[part], recs) {
			fail("partition %d: consumed %d records, acknowledged %d; they differ", part, len(got[part]), len(recs))
		}
	}
	if len(got) != len(acked) || total != n {
		fail("consumed %d records over %d partitions, acknowledged %d over %d", total, len(got), n, len(acked))
	}
	awaitReplicated(ccl, topic)
	fmt.Printf("ok: %d records with acks=all through one node, read once each through another; RF 3, ISR 3\n", n)
}
