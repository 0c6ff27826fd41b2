// franz-compat drives franz-go (kgo and kadm, the versions in ../go.mod) against a broker: admin
// through kadm, an idempotent acks=all producer with every codec read back in order, and a consumer
// group with the cooperative-sticky balancer that a second member joins and leaves, then restarts at
// its committed offsets. Run by compat-tests/python/test_go.py. With txn first, the transaction
// scenarios of txn*.go instead (Transactions V2; run by compat-tests/python/test_go_transactions.py).
//
// Usage: franz-compat [txn] <bootstrap> <topic-prefix> <group>. Exits 1 with the reason on the first failure.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	partitions = 4
	timeout    = 60 * time.Second
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func step(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// bounded is a context that ends after the common timeout.
func bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

// clientOpts are every client's options, then opts.
func clientOpts(bootstrap string, opts ...kgo.Opt) []kgo.Opt {
	base := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("franz-compat"),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		// Warnings and errors go to stderr (the test prints them); FRANZ_LOG=debug for everything.
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, logLevel(), nil)),
	}
	return append(base, opts...)
}

func newClient(bootstrap string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(clientOpts(bootstrap, opts...)...)
	if err != nil {
		fail("client: %v", err)
	}
	return cl
}

func main() {
	if len(os.Args) == 5 && os.Args[1] == "txn" {
		checkTransactions(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	if len(os.Args) != 4 {
		fail("usage: franz-compat [txn] <bootstrap> <topic-prefix> <group>")
	}
	bootstrap, prefix, group := os.Args[1], os.Args[2], os.Args[3]

	checkAdmin(bootstrap, prefix)
	step("admin: ok")
	produced := checkCodecs(bootstrap, prefix+"-codecs")
	step("codecs: %d records produced and read back", produced)
	n := checkGroup(bootstrap, prefix+"-group", group)
	step("group: ok")
	fmt.Printf("ok: admin, %d records over every codec, a cooperative-sticky group consuming %d records once each\n",
		produced, n)
}

func logLevel() kgo.LogLevel {
	switch os.Getenv("FRANZ_LOG") {
	case "debug":
		return kgo.LogLevelDebug
	case "info":
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}
