package main

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// checkAdmin creates topics with configs, describes their configs and the broker's, lists offsets
// after a produce, describes the cluster and its brokers, and deletes the topics.
func checkAdmin(bootstrap, prefix string) {
	cl := newClient(bootstrap)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := bounded()
	defer cancel()

	configured, plain := prefix+"-configured", prefix+"-plain"
	retention, policy := "3600000", "compact"
	created, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{
		"retention.ms": &retention, "cleanup.policy": &policy,
	}, configured)
	if err != nil || created.Error() != nil {
		fail("create %s: %v %v", configured, err, created.Error())
	}
	if r := created[configured]; r.NumPartitions != 3 || r.ReplicationFactor != 1 || r.ID == (kadm.TopicID{}) {
		fail("created %s: %d partitions, replication %d, id %v", configured, r.NumPartitions, r.ReplicationFactor, r.ID)
	}
	// CreateTopics v5+ answers with the topic's configs, as DescribeConfigs would.
	for name, want := range map[string]string{"retention.ms": retention, "cleanup.policy": policy} {
		if c := created[configured].Configs[name]; c.MaybeValue() != want {
			fail("created %s: %s=%s in the response, want %s", configured, name, c.MaybeValue(), want)
		}
	}
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, plain); err != nil {
		fail("create %s with the broker's defaults: %v", plain, err)
	}
	again, err := adm.CreateTopic(ctx, 1, 1, nil, plain)
	if err == nil || !errors.Is(again.Err, kerr.TopicAlreadyExists) {
		fail("creating %s twice: %v (%v), want TOPIC_ALREADY_EXISTS", plain, err, again.Err)
	}

	checkTopicConfigs(ctx, adm, configured, retention, policy)
	brokers := checkCluster(ctx, cl, adm)
	bcs, err := adm.DescribeBrokerConfigs(ctx, brokers[0])
	if err != nil || len(bcs) != 1 || bcs[0].Err != nil || len(bcs[0].Configs) == 0 {
		fail("describe broker %d configs: %v %+v", brokers[0], err, bcs)
	}

	// Offsets: 0 at the start, the number produced at the end of each partition.
	p := producer(bootstrap, kgo.NoCompression())
	acked := produceRange(p, configured, "admin", 0, 30)
	p.Close()
	perPartition := map[int32]int64{}
	for _, r := range acked {
		perPartition[r.Partition]++
	}
	starts, err := adm.ListStartOffsets(ctx, configured)
	if err != nil || starts.Error() != nil {
		fail("list start offsets: %v %v", err, starts.Error())
	}
	ends, err := adm.ListEndOffsets(ctx, configured)
	if err != nil || ends.Error() != nil {
		fail("list end offsets: %v %v", err, ends.Error())
	}
	for part := range int32(3) {
		s, _ := starts.Lookup(configured, part)
		e, _ := ends.Lookup(configured, part)
		if s.Offset != 0 || e.Offset != perPartition[part] {
			fail("partition %d: offsets %d..%d, want 0..%d", part, s.Offset, e.Offset, perPartition[part])
		}
	}

	// By time: the first record at or after millisecond 0 is each partition's first, at offset 0.
	after, err := adm.ListOffsetsAfterMilli(ctx, 0, configured)
	if err != nil || after.Error() != nil {
		fail("list offsets after 0: %v %v", err, after.Error())
	}
	for part := range int32(3) {
		a, _ := after.Lookup(configured, part)
		if perPartition[part] > 0 && a.Offset != 0 {
			fail("partition %d: first offset at or after time 0 is %d, want 0", part, a.Offset)
		}
	}

	deleted, err := adm.DeleteTopics(ctx, configured, plain)
	if err != nil || deleted.Error() != nil {
		fail("delete topics: %v %v", err, deleted.Error())
	}
	// kadm's ListTopics answers from kgo's metadata cache (MetadataMinAge): ask the broker itself.
	md := kmsg.NewPtrMetadataRequest()
	md.AllowAutoTopicCreation = false
	for _, name := range []string{configured, plain} {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		md.Topics = append(md.Topics, t)
	}
	resp, err := md.RequestWith(ctx, cl)
	if err != nil {
		fail("metadata after deleting: %v", err)
	}
	for _, t := range resp.Topics {
		if !errors.Is(kerr.ErrorForCode(t.ErrorCode), kerr.UnknownTopicOrPartition) {
			fail("metadata after deleting %s: error %v, want UNKNOWN_TOPIC_OR_PARTITION", *t.Topic, kerr.ErrorForCode(t.ErrorCode))
		}
	}
}

// checkTopicConfigs: the configs given at creation are the topic's own (DYNAMIC_TOPIC_CONFIG),
// the others come from defaults.
func checkTopicConfigs(ctx context.Context, adm *kadm.Client, topic, retention, policy string) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
		fail("describe %s configs: %v %+v", topic, err, rcs)
	}
	own := map[string]string{"retention.ms": retention, "cleanup.policy": policy}
	seen := 0
	for _, c := range rcs[0].Configs {
		want, mine := own[c.Key]
		switch {
		case mine && (c.MaybeValue() != want || c.Source != kmsg.ConfigSourceDynamicTopicConfig):
			fail("%s: %s=%s from %v, want %s from the topic", topic, c.Key, c.MaybeValue(), c.Source, want)
		case mine:
			seen++
		case c.Source == kmsg.ConfigSourceDynamicTopicConfig:
			fail("%s: %s=%s is the topic's own, but was not given", topic, c.Key, c.MaybeValue())
		}
	}
	if seen != len(own) || len(rcs[0].Configs) < 10 {
		fail("%s: %d of its configs described (%d in all)", topic, seen, len(rcs[0].Configs))
	}
}

// checkCluster: Metadata and DescribeCluster agree on one broker, the controller and the cluster id.
func checkCluster(ctx context.Context, cl *kgo.Client, adm *kadm.Client) []int32 {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil || md.Cluster == "" || len(md.Brokers) != 1 || md.Controller != md.Brokers[0].NodeID {
		fail("metadata: %v cluster %q controller %d brokers %+v", err, md.Cluster, md.Controller, md.Brokers)
	}
	listed, err := adm.ListBrokers(ctx)
	if err != nil || len(listed) != 1 || listed[0] != md.Brokers[0] {
		fail("list brokers: %v %+v", err, listed)
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		fail("describe cluster: %v", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		fail("describe cluster: %v", err)
	}
	if resp.ClusterID != md.Cluster || resp.ControllerID != md.Controller || len(resp.Brokers) != 1 ||
		resp.Brokers[0].NodeID != md.Brokers[0].NodeID || resp.Brokers[0].Port != md.Brokers[0].Port {
		fail("describe cluster %q controller %d brokers %+v, metadata says %+v", resp.ClusterID,
			resp.ControllerID, resp.Brokers, md)
	}
	return []int32{md.Brokers[0].NodeID}
}
