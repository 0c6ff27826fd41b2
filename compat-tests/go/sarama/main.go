// sarama-compat drives Sarama (github.com/IBM/sarama, the version in ../go.mod) against a broker:
// admin, idempotent producer, partition consumer, consumer group with a rebalance, and a restart of the
// group that resumes exactly at its committed offsets. Run by compat-tests/python/test_go.py.
//
// Usage: sarama-compat <bootstrap> <topic> <group>. Exits 1 with the reason on the first failure.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

const (
	partitions = 3
	firstRound = 300
	secondRun  = 30
	timeout    = 60 * time.Second
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "sarama-compat"
	cfg.Version = sarama.V4_0_0_0 // Kafka 4's protocol versions (the broker serves Kafka 4's ranges)
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Retry.Max = 5
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Return.Errors = true
	return cfg
}

// produce sends n keyed messages and returns the offset the broker acknowledged for each, per partition.
func produce(addrs []string, topic string, from, n int) map[int32][]int64 {
	p, err := sarama.NewSyncProducer(addrs, config())
	if err != nil {
		fail("producer: %v", err)
	}
	defer p.Close()
	acked := map[int32][]int64{}
	for i := from; i < from+n; i++ {
		msg := &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("k%d", i%17)),
			Value: sarama.StringEncoder(fmt.Sprintf("v%d", i)),
		}
		part, off, err := p.SendMessage(msg)
		if err != nil {
			fail("send %d: %v", i, err)
		}
		acked[part] = append(acked[part], off)
	}
	return acked
}

// handler records every message a group member is given and marks it consumed.
type handler struct {
	mu   sync.Mutex
	seen map[string]int // "partition/offset" -> times delivered
	news chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[fmt.Sprintf("%d/%d", m.Partition, m.Offset)]++
		h.mu.Unlock()
		s.MarkMessage(m, "")
		select {
		case h.news <- struct{}{}:
		default:
		}
	}
	return nil
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// member runs one group member until ctx ends; the group is closed (offsets committed) on return.
func member(ctx context.Context, addrs []string, group, topic string, h *handler, wg *sync.WaitGroup) {
	defer wg.Done()
	g, err := sarama.NewConsumerGroup(addrs, group, config())
	if err != nil {
		fail("consumer group: %v", err)
	}
	go func() {
		for err := range g.Errors() {
			fmt.Fprintf(os.Stderr, "group error: %v\n", err)
		}
	}()
	for ctx.Err() == nil {
		if err := g.Consume(ctx, []string{topic}, h); err != nil {
			fail("consume: %v", err)
		}
	}
	if err := g.Close(); err != nil {
		fail("close group: %v", err)
	}
}

// waitFor waits for h to have seen `want` distinct messages, woken by each delivery.
func waitFor(h *handler, want int, what string) {
	deadline := time.After(timeout)
	for h.count() < want {
		select {
		case <-h.news:
		case <-deadline:
			fail("%s: %d of %d messages", what, h.count(), want)
		}
	}
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: sarama-compat <bootstrap> <topic> <group>")
	}
	addrs, topic, group := []string{os.Args[1]}, os.Args[2], os.Args[3]

	admin, err := sarama.NewClusterAdmin(addrs, config())
	if err != nil {
		fail("admin: %v", err)
	}
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		fail("create topic: %v", err)
	}
	if err := admin.CreateTopic(topic, detail, false); err == nil {
		fail("creating the topic twice succeeded")
	}

	// Idempotent producer: each partition's offsets are 0, 1, 2, ... in send order.
	acked := produce(addrs, topic, 0, firstRound)
	total := 0
	for p, offs := range acked {
		for i, o := range offs {
			if o != int64(i) {
				fail("partition %d: message %d acknowledged at offset %d", p, i, o)
			}
		}
		total += len(offs)
	}
	if len(acked) != partitions || total != firstRound {
		fail("acknowledged %d messages over %d partitions", total, len(acked))
	}

	// A plain consumer reads each partition back from the start, in order.
	client, err := sarama.NewClient(addrs, config())
	if err != nil {
		fail("client: %v", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		fail("consumer: %v", err)
	}
	for p, offs := range acked {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil || newest != int64(len(offs)) {
			fail("partition %d: newest offset %d (%v), want %d", p, newest, err, len(offs))
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail("consume partition %d: %v", p, err)
		}
		for i := range offs {
			select {
			case m := <-pc.Messages():
				if m.Offset != int64(i) {
					fail("partition %d: message %d at offset %d", p, i, m.Offset)
				}
			case <-time.After(timeout):
				fail("partition %d: message %d never came", p, i)
			}
		}
		pc.Close()
	}
	consumer.Close()

	// Two group members share the topic: the second one's arrival rebalances the first. Every message
	// is consumed; one consumed twice is allowed only around the rebalance (not yet committed).
	h := &handler{seen: map[string]int{}, news: make(chan struct{}, 1)}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go member(ctx, addrs, group, topic, h, &wg)
	go member(ctx, addrs, group, topic, h, &wg)
	waitFor(h, firstRound, "group of two")
	stop()
	wg.Wait()

	// The group comes back: it resumes at its committed offsets, so it gets exactly the new messages.
	more := produce(addrs, topic, firstRound, secondRun)
	again := &handler{seen: map[string]int{}, news: make(chan struct{}, 1)}
	ctx, stop = context.WithCancel(context.Background())
	wg.Add(1)
	go member(ctx, addrs, group, topic, again, &wg)
	waitFor(again, secondRun, "restarted group")
	stop()
	wg.Wait()
	for p, offs := range more {
		for _, o := range offs {
			if again.seen[fmt.Sprintf("%d/%d", p, o)] == 0 {
				fail("restarted group missed %d/%d", p, o)
			}
		}
	}
	if len(again.seen) != secondRun {
		fail("restarted group got %d messages, want only the %d new ones", len(again.seen), secondRun)
	}

	if err := admin.DeleteTopic(topic); err != nil {
		fail("delete topic: %v", err)
	}
	admin.Close()
	client.Close()
	fmt.Printf("ok: %d messages produced, read back and consumed by a group of two; %d more after its restart\n",
		firstRound, secondRun)
}
