package main

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

// produceRange sends records from..to-1 (key k<i%31>, value <tag>-<i>) with acks=all through the
// idempotent producer (kgo's default) and returns them as acknowledged (partition and offset set).
func produceRange(cl *kgo.Client, topic, tag string, from, to int) []*kgo.Record {
	ctx, cancel := bounded()
	defer cancel()
	rs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{
			Topic: topic,
			Key:   fmt.Appendf(nil, "k%d", i%31),
			Value: fmt.Appendf(nil, "%s-%d", tag, i),
		})
	}
	out := make([]*kgo.Record, 0, len(rs))
	for _, r := range cl.ProduceSync(ctx, rs...) {
		if r.Err != nil {
			fail("produce %s: %v", tag, r.Err)
		}
		out = append(out, r.Record)
	}
	return out
}

// producer is an idempotent (kgo's default) acks=all producer with the given codec.
func producer(bootstrap string, codec kgo.CompressionCodec) *kgo.Client {
	return newClient(bootstrap,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.AllowAutoTopicCreation(),
	)
}

// checkCodecs produces records with every codec (auto-creating the topic) and reads every
// partition back from its start: each partition's offsets are 0..n-1 and carry, in order, the
// values acknowledged at them.
func checkCodecs(bootstrap, topic string) int {
	const per = 200
	byOffset := map[int32]map[int64]string{}
	total := 0
	for c, codec := range codecs {
		cl := producer(bootstrap, codec.codec)
		for _, r := range produceRange(cl, topic, codec.name, c*per, (c+1)*per) {
			if byOffset[r.Partition] == nil {
				byOffset[r.Partition] = map[int64]string{}
			}
			if prev, dup := byOffset[r.Partition][r.Offset]; dup {
				fail("%s: %s and %s both acknowledged at %d/%d", codec.name, prev, r.Value, r.Partition, r.Offset)
			}
			byOffset[r.Partition][r.Offset] = string(r.Value)
		}
		cl.Close()
		total += per
	}
	want := map[int32][]string{}
	for p, offs := range byOffset {
		for o := range int64(len(offs)) {
			v, ok := offs[o]
			if !ok {
				fail("partition %d: no record acknowledged at offset %d of %d", p, o, len(offs))
			}
			want[p] = append(want[p], v)
		}
	}
	got := readAll(bootstrap, topic, total)
	for p := range want {
		if !slices.Equal(got[p], want[p]) {
			fail("partition %d read back %d records %v, want %d", p, len(got[p]), head(got[p]), len(want[p]))
		}
	}
	if len(got) != len(want) {
		fail("records read from %d partitions, produced to %d", len(got), len(want))
	}
	return total
}

// readAll consumes every partition of topic from its start (no group) until n records came,
// checking that each partition's offsets are 0, 1, 2, ...; values per partition.
func readAll(bootstrap, topic string, n int) map[int32][]string {
	cl := newClient(bootstrap,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	defer cl.Close()
	ctx, cancel := bounded()
	defer cancel()
	got := map[int32][]string{}
	count := 0
	for count < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("read back %s: %d of %d records within %v", topic, count, n, timeout)
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(len(got[r.Partition])) {
				fail("partition %d: record at offset %d after %d records", r.Partition, r.Offset, len(got[r.Partition]))
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			count++
		})
	}
	return got
}

func head(s []string) []string {
	return s[:min(len(s), 5)]
}
