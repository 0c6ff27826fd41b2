package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wiretap records the API key and version of every request its clients write, read from the
// request headers on the wire (plaintext connections only), so the transaction scenarios can
// show which request versions franz-go chose.
type wiretap struct {
	mu   sync.Mutex
	seen map[int16]map[int16]int // API key -> version -> requests written
}

func newWiretap() *wiretap {
	return &wiretap{seen: map[int16]map[int16]int{}}
}

// dialer is a kgo option that routes a client's connections through the tap.
func (w *wiretap) dialer() kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &tapConn{Conn: c, tap: w}, nil
	})
}

func (w *wiretap) record(key, version int16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[key] == nil {
		w.seen[key] = map[int16]int{}
	}
	w.seen[key][version]++
}

// versions are the versions written for key, lowest first (none if no such request was written).
func (w *wiretap) versions(key kmsg.Key) []int16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.seen[int16(key)]))
}

func (w *wiretap) count(key kmsg.Key) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.seen[int16(key)] {
		n += c
	}
	return n
}

// describe is "Name v1,v2 xN" for each key.
func (w *wiretap) describe(keys ...kmsg.Key) string {
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %v x%d", k.Name(), w.versions(k), w.count(k))
	}
	return out
}

// tapConn parses the size-prefixed request frames a client writes: each starts with
// int32 size, int16 API key, int16 API version.
type tapConn struct {
	net.Conn
	tap  *wiretap
	mu   sync.Mutex
	head []byte // the first bytes of the frame being written, until its key and version are known
	skip int64  // bytes of the current frame still to pass over
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.observe(p[:n])
	return n, err
}

func (c *tapConn) observe(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 {
		if c.skip > 0 {
			k := min(c.skip, int64(len(p)))
			c.skip -= k
			p = p[k:]
			continue
		}
		k := min(8-len(c.head), len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
		if len(c.head) < 8 {
			return
		}
		size := int64(int32(binary.BigEndian.Uint32(c.head[0:4])))
		c.tap.record(int16(binary.BigEndian.Uint16(c.head[4:6])), int16(binary.BigEndian.Uint16(c.head[6:8])))
		c.skip = size - 4 // the key and version were part of the frame
		c.head = c.head[:0]
	}
}
