package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkGroup: member a consumes alone, b joins (cooperative-sticky: a gives b some partitions
// without stopping the rest), both consume, b leaves and a takes everything back; a stops, and a
// new member c resumes at the committed offsets. Each record is consumed once by the group.
// Returns how many records the group consumed.
func checkGroup(bootstrap, topic, group string) int {
	admCl := newClient(bootstrap)
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	// Admin calls share one deadline that outlasts the waits between them (each bounded by timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 8*timeout)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		fail("create %s: %v", topic, err)
	}
	p := producer(bootstrap, kgo.ZstdCompression())
	defer p.Close()
	t := newTracker()
	all := []int32{0, 1, 2, 3}
	produced := 0
	produce := func(tag string, n int) {
		produceRange(p, topic, tag, produced, produced+n)
		produced += n
	}

	produce("alone", 200)
	a := join(bootstrap, group, topic, "a", t)
	t.waitUntil("a consumes everything alone", func() bool { return t.count() == produced })
	step("group: a consumed %d records alone", produced)

	b := join(bootstrap, group, topic, "b", t)
	t.waitUntil("b is given partitions and a keeps the rest", func() bool {
		oa, ob := t.owns("a"), t.owns("b")
		return len(ob) > 0 && slices.Equal(slices.Sorted(slices.Values(append(oa, ob...))), all)
	})
	step("group: a owns %v, b owns %v", t.owns("a"), t.owns("b"))
	describeGroup(ctx, adm, group, "Stable", 2)
	produce("shared", 200)
	t.waitUntil("a and b consume the new records", func() bool { return t.count() == produced })
	if t.consumedBy("b") == 0 {
		fail("b owns %v but consumed nothing", t.owns("b"))
	}

	b.leave()
	t.waitUntil("a owns every partition after b left", func() bool { return slices.Equal(t.owns("a"), all) })
	produce("after-leave", 100)
	t.waitUntil("a consumes what came after b left", func() bool { return t.count() == produced })
	a.leave()
	describeGroup(ctx, adm, group, "Empty", 0)
	step("group: a and b left after %d records", produced)

	// Committed offsets are the end of every partition; a new member starts exactly there.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		fail("list end offsets: %v %v", err, ends.Error())
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil || committed.Error() != nil {
		fail("fetch offsets of %s: %v %v", group, err, committed.Error())
	}
	for _, part := range all {
		e, _ := ends.Lookup(topic, part)
		c, ok := committed.Lookup(topic, part)
		if (ok || e.Offset != 0) && c.At != e.Offset {
			fail("partition %d: committed %d (%v), end %d", part, c.At, ok, e.Offset)
		}
	}
	produce("restart", 100)
	c := join(bootstrap, group, topic, "c", t)
	t.waitUntil("c consumes the records produced while the group was empty", func() bool { return t.count() == produced })
	c.leave()
	for part, off := range t.firstOffsets("c") {
		if at, _ := committed.Lookup(topic, part); off != at.At {
			fail("c started partition %d at %d, committed %d", part, off, at.At)
		}
	}
	if t.consumedBy("c") != 100 {
		fail("c consumed %d records, want the 100 new ones", t.consumedBy("c"))
	}
	return produced
}

// describeGroup checks the group through ListGroups and DescribeGroups.
func describeGroup(ctx context.Context, adm *kadm.Client, group, state string, members int) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		fail("list groups: %v", err)
	}
	if l, ok := listed[group]; !ok || l.State != state || l.ProtocolType != "consumer" {
		fail("list groups: %s is %+v (%v), want %s", group, l, ok, state)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil || described.Error() != nil {
		fail("describe group %s: %v %v", group, err, described.Error())
	}
	d := described[group]
	want := "cooperative-sticky"
	if members == 0 {
		want = ""
	}
	if d.State != state || len(d.Members) != members || d.Protocol != want || d.ProtocolType != "consumer" {
		fail("describe group %s: %s, protocol %q/%q, %d members; want %s, %q, %d", group, d.State,
			d.ProtocolType, d.Protocol, len(d.Members), state, want, members)
	}
	// The members' assignments, as the leader sent them in SyncGroup, share the partitions out.
	var assigned []int32
	for _, m := range d.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			fail("describe group %s: member %s has no consumer assignment", group, m.MemberID)
		}
		for _, t := range a.Topics {
			assigned = append(assigned, t.Partitions...)
		}
	}
	if members > 0 && !slices.Equal(slices.Sorted(slices.Values(assigned)), []int32{0, 1, 2, 3}) {
		fail("describe group %s: members are assigned %v, want each partition once", group, assigned)
	}
	fmt.Printf("group %s: %s with %d members\n", group, state, members)
}
