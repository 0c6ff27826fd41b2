package main

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// tracker records which group member consumed each partition/offset and which partitions each
// member owns; every change wakes waitUntil.
type tracker struct {
	mu    sync.Mutex
	by    map[string]string          // "partition/offset" -> member that consumed it
	first map[string]map[int32]int64 // member -> partition -> first offset it consumed
	owned map[string]map[int32]bool  // member -> partitions it owns now
	news  chan struct{}
}

func newTracker() *tracker {
	return &tracker{
		by:    map[string]string{},
		first: map[string]map[int32]int64{},
		owned: map[string]map[int32]bool{},
		news:  make(chan struct{}, 1),
	}
}

func (t *tracker) wake() {
	select {
	case t.news <- struct{}{}:
	default:
	}
}

// consumed fails on a record that any member of the group consumed before.
func (t *tracker) consumed(member string, partition int32, offset int64) {
	t.mu.Lock()
	key := fmt.Sprintf("%d/%d", partition, offset)
	if prev, dup := t.by[key]; dup {
		t.mu.Unlock()
		fail("%s consumed %s, which %s consumed before", member, key, prev)
	}
	t.by[key] = member
	if t.first[member] == nil {
		t.first[member] = map[int32]int64{}
	}
	if _, ok := t.first[member][partition]; !ok {
		t.first[member][partition] = offset
	}
	t.mu.Unlock()
	t.wake()
}

func (t *tracker) own(member string, partitions []int32, owned bool) {
	t.mu.Lock()
	if t.owned[member] == nil {
		t.owned[member] = map[int32]bool{}
	}
	for _, p := range partitions {
		if owned {
			t.owned[member][p] = true
		} else {
			delete(t.owned[member], p)
		}
	}
	t.mu.Unlock()
	t.wake()
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.by)
}

func (t *tracker) consumedBy(member string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.by {
		if m == member {
			n++
		}
	}
	return n
}

func (t *tracker) owns(member string) []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.owned[member]))
}

func (t *tracker) firstOffsets(member string) map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.first[member])
}

// waitUntil re-checks cond after every change the members report, for at most the timeout.
func (t *tracker) waitUntil(what string, cond func() bool) {
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-t.news:
		case <-deadline:
			fail("%s: not within %v (%d records consumed)", what, timeout, t.count())
		}
	}
}
