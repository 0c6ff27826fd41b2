package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// member is one consumer of the group, polling in its own goroutine until stopped.
type member struct {
	name string
	cl   *kgo.Client
	stop context.CancelFunc
	done sync.WaitGroup
}

// join starts a member with the cooperative-sticky balancer. Rebalances wait for each poll's
// records to be handled (BlockRebalanceOnPoll), and a member commits what it consumed before it
// gives partitions up, so no record is consumed twice across the group.
func join(bootstrap, group, topic, name string, t *tracker) *member {
	m := &member{name: name}
	revoke := func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			fail("%s: commit before giving up %v: %v", name, lost, err)
		}
		t.own(name, lost[topic], false)
	}
	m.cl = newClient(bootstrap,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, got map[string][]int32) {
			t.own(name, got[topic], true)
		}),
		kgo.OnPartitionsRevoked(revoke),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			fail("%s lost partitions %v (session or generation lost)", name, lost)
		}),
	)
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.done.Add(1)
	go m.poll(ctx, t)
	return m
}

func (m *member) poll(ctx context.Context, t *tracker) {
	defer m.done.Done()
	for {
		fs := m.cl.PollFetches(ctx)
		// Records polled count as consumed (they are committed at the next revoke), even when
		// the poll also reports that it was stopped.
		fs.EachRecord(func(r *kgo.Record) { t.consumed(m.name, r.Partition, r.Offset) })
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
				fail("%s: fetch %s/%d: %v", m.name, topic, p, err)
			}
		})
		m.cl.AllowRebalance()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
	}
}

// leave stops polling, then leaves the group (committing in the final revoke) and closes.
func (m *member) leave() {
	m.stop()
	m.done.Wait()
	m.cl.CloseAllowingRebalance()
}

func (m *member) String() string { return fmt.Sprintf("member %s", m.name) }
