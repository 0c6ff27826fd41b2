// sarama-cluster drives Sarama (github.com/IBM/sarama, the version in ../go.mod) against a 3-node
// cluster: ClusterAdmin creates a topic with replication factor 3 and min.insync.replicas=2, an
// idempotent acks=all producer bootstrapping from one node sends n keyed records, a consumer group
// bootstrapping from another node reads every acknowledged record exactly once at the offset it was
// acknowledged at, and Metadata shows 3 replicas and an ISR of 3 for every partition. Run by
// compat-tests/python/test_cluster.py.
//
// Usage: sarama-cluster <producer-bootstrap> <consumer-bootstrap> <topic> <group> <n>.
// Exits 1 with the reason on the first failure.
package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

const (
	partitions = 3
	timeout    = 60 * time.Second
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "sarama-cluster"
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Retry.Max = 5
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Return.Errors = true
	return cfg
}

type record struct {
	Offset int64
	Value  string
}

// awaitReplicated polls Metadata until every partition has 3 replicas and an ISR of 3.
func awaitReplicated(admin sarama.ClusterAdmin, topic string) {
	deadline := time.Now().Add(timeout)
	for {
		mds, err := admin.DescribeTopics([]string{topic})
		ok := err == nil && len(mds) == 1 && mds[0].Err == sarama.ErrNoError && len(mds[0].Partitions) == partitions
		desc := fmt.Sprint(err)
		if err == nil && len(mds) == 1 {
			desc = fmt.Sprintf("topic error %v:", mds[0].Err)
			for _, p := range mds[0].Partitions {
				desc += fmt.Sprintf(" p%d replicas %v isr %v;", p.ID, p.Replicas, p.Isr)
				ok = ok && len(p.Replicas) == 3 && len(p.Isr) == 3
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

type handler struct {
	mu   sync.Mutex
	got  map[int32][]record
	n    int
	done chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.got[m.Partition] = append(h.got[m.Partition], record{m.Offset, string(m.Value)})
		h.n++
		if h.n == cap(h.done) {
			close(h.done)
		}
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: sarama-cluster <producer-bootstrap> <consumer-bootstrap> <topic> <group> <n>")
	}
	pAddrs, cAddrs, topic, group := []string{os.Args[1]}, []string{os.Args[2]}, os.Args[3], os.Args[4]
	n, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fail("n: %v", err)
	}

	admin, err := sarama.NewClusterAdmin(pAddrs, config())
	if err != nil {
		fail("admin: %v", err)
	}
	defer admin.Close()
	two := "2"
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 3,
		ConfigEntries: map[string]*string{"min.insync.replicas": &two}}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		fail("create topic: %v", err)
	}
	awaitReplicated(admin, topic)

	p, err := sarama.NewSyncProducer(pAddrs, config())
	if err != nil {
		fail("producer: %v", err)
	}
	acked := map[int32][]record{}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("v%d", i)
		part, off, err := p.SendMessage(&sarama.ProducerMessage{
			Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%17)), Value: sarama.StringEncoder(v),
		})
		if err != nil {
			fail("send %d: %v", i, err)
		}
		acked[part] = append(acked[part], record{off, v})
	}
	p.Close()

	h := &handler{got: map[int32][]record{}, done: make(chan struct{}, n)}
	g, err := sarama.NewConsumerGroup(cAddrs, group, config())
	if err != nil {
		fail("consumer group: %v", err)
	}
	go func() {
		for err := range g.Errors() {
			fmt.Fprintf(os.Stderr, "group error: %v\n", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil {
				fail("consume: %v", err)
			}
		}
	}()
	select {
	case <-h.done:
	case <-time.After(timeout):
		h.mu.Lock()
		fail("consumed %d of %d", h.n, n)
	}
	cancel()
	<-consumed
	if err := g.Close(); err != nil {
		fail("close group: %v", err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for part, recs := range acked {
		sort.Slice(recs, func(i, j int) bool { return recs[i].Offset < recs[j].Offset })
		if !reflect.DeepEqual(h.got[part], recs) {
			fail("partition %d: consumed %d records, acknowledged %d; they differ", part, len(h.got[part]), len(recs))
		}
	}
	if len(h.got) != len(acked) || h.n != n {
		fail("consumed %d records over %d partitions, acknowledged %d over %d", h.n, len(h.got), n, len(acked))
	}
	awaitReplicated(admin, topic)
	fmt.Printf("ok: %d records with acks=all through one node, read once each through another; RF 3, ISR 3\n", n)
}
