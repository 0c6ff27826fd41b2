# Vltava: build, test, lint, bench.
#
#   make build   broker (debug)
#   make test    installs client deps (compat-tests/install-deps.sh), broker unit/integration
#                tests, then the real-client compatibility
#                suites (rdkafka, confluent-kafka-python, kafka-python, kcat, kafkajs, the Java client)
#   make test-java-faults  the Java client's fault scenarios alone (FaultsTest ~4 min, TransactionsFaultsTest ~1 min)
#   make lint    rustfmt --check + clippy -D warnings (whole workspace)
#   make bench   release broker + benchmark driver, then run it (BENCH_ARGS=--quick for a short run)
#   make bench-partitions  release broker hosting 1k, 10k, 20k partitions under ulimit -n 20000:
#                descriptors, maps, RSS, produce/fetch to every partition, SIGTERM time (BENCH_ARGS=--quick)
#   make bench-kafka  Apache Kafka 4.x (Maven jars, bench/kafka) and the release broker side by side,
#                3 alternating rounds: vltava-bench, Kafka's Producer/ConsumerPerformance, start-up, RSS, CPU
#                (~3 min; BENCH_ARGS e.g. --rounds 5 --small 2000000; not in CI)
#   make cluster local 3-node cluster on 127.0.0.1-3 (NODES=5 for five), data in ./vltava-cluster
#   make fuzz    bounded fuzz run of every hostile-input target (FUZZ_SECONDS each, ~2.5 min in all)
#
# `make -k test` runs every suite even when an earlier one fails (CI does this).

CARGO  ?= cargo
PYTHON ?= python3
NPM    ?= npm
NODE   ?= node
MVN    ?= mvn

ROOT        := $(CURDIR)
DEBUG_BIN   := $(ROOT)/target/debug/vltava
RELEASE_BIN := $(ROOT)/target/release/vltava
BENCH_ARGS  ?=

.PHONY: all build build-release deps test test-broker test-rdkafka test-python test-js test-java test-java-faults \
        lint fmt bench bench-partitions bench-kafka fuzz cluster clean help

all: build

cluster: build-release
	NODES=$(or $(NODES),3) bash tools/cluster.sh

help:
	@sed -n '1,19p' Makefile

build:
	$(CARGO) build -p vltava

build-release:
	$(CARGO) build --release -p vltava

test: deps build test-broker test-rdkafka test-python test-js test-java

# kcat and C build tools (apt), Python clients (pip), kafkajs (npm); skips what is installed.
deps:
	bash compat-tests/install-deps.sh

# Unit tests and tests/ of the broker crate.
test-broker: build
	$(CARGO) test -p vltava

# rdkafka (librdkafka built from source) against the debug broker: one broker, and a 3-node cluster on
# 127.0.0.1-3 (tests/cluster.rs), and the fault suites (tests/faults.rs: kill -9, nftables, SIGSTOP;
# tests/faults_txn.rs: the same faults under transactions, read back at read_committed).
test-rdkafka: deps build
	VLTAVA_BIN=$(DEBUG_BIN) $(CARGO) test -p vltava-compat

# confluent-kafka-python, kafka-python, kcat, and the Go clients Sarama and franz-go (pytest); each also
# against a 3-node cluster on 127.0.0.1-3 with an RF=3 topic (test_cluster.py).
test-python: deps build
	cd compat-tests/python && VLTAVA_BIN=$(DEBUG_BIN) $(PYTHON) -m pytest

# kafkajs via node's built-in test runner (test/cluster.test.js: a 3-node cluster, an RF=3 topic).
test-js: deps build
	cd compat-tests/js && VLTAVA_BIN=$(DEBUG_BIN) $(NPM) test

# The Apache Kafka Java client (kafka-clients 4.4.0) and Kafka Streams 4.4.0 via Maven Surefire (JUnit 5).
# Also Kafka's command-line tools (kafka-tools 4.4.0), the client over SASL and TLS, and against a
# 3-node cluster on 127.0.0.1-3 (ClusterTest), and issue 12's fault scenarios on an RF=3 topic with
# a history check (FaultsTest, HistoryTest), and transactions under faults (TransactionsFaultsTest, TxnHistoryTest).
test-java: deps build
	cd compat-tests/java && VLTAVA_BIN=$(DEBUG_BIN) $(MVN) -B --no-transfer-progress -Dstyle.color=never test

# Only the fault scenarios (kill -9 / SIGSTOP of the leader, rolling SIGTERM, losing followers; and under
# Transactions V2: kill -9 / SIGSTOP of the transaction coordinator, kill -9 of a data leader) and their checkers.
test-java-faults: build
	cd compat-tests/java && VLTAVA_BIN=$(DEBUG_BIN) $(MVN) -B --no-transfer-progress -Dstyle.color=never \
	  test -Dtest='HistoryTest,FaultsTest,TxnHistoryTest,TransactionsFaultsTest'

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: build-release
	$(CARGO) build --release -p vltava-compat --bin vltava-bench
	VLTAVA_BIN=$(RELEASE_BIN) $(ROOT)/target/release/vltava-bench $(BENCH_ARGS)

bench-partitions: build-release
	$(CARGO) build --release -p vltava-compat --bin vltava-partitions-bench
	VLTAVA_BIN=$(RELEASE_BIN) $(ROOT)/target/release/vltava-partitions-bench $(BENCH_ARGS)

# Kafka's jars come from Maven Central (bench/kafka/pom.xml); the classpath file lists them.
bench-kafka: build-release
	$(CARGO) build --release -p vltava-compat --bin vltava-bench --bin vltava-vs-kafka
	cd bench/kafka && $(MVN) -B --no-transfer-progress -q -Dstyle.color=never \
	  dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
	VLTAVA_BIN=$(RELEASE_BIN) $(ROOT)/target/release/vltava-vs-kafka \
	  --classpath-file $(ROOT)/bench/kafka/target/classpath.txt $(BENCH_ARGS)

# The fuzz driver is plain stable Rust (examples/fuzz.rs). If it cannot be built, the regression
# corpus is still replayed, and the message says so. A crash leaves its input in target/fuzz/<target>/crash.
FUZZ_SECONDS ?= 50
fuzz:
	@if $(CARGO) build --release -p vltava --example fuzz; then \
	  for t in request decode batches; do \
	    $(ROOT)/target/release/examples/fuzz $$t --seconds $(FUZZ_SECONDS) || { \
	      echo "fuzz: $$t crashed; input saved in target/fuzz/$$t/crash (add it to fuzz/corpus/)"; exit 1; }; \
	  done; \
	else \
	  echo "fuzz: the fuzz driver could not be built here: replaying the regression corpus only"; \
	  $(CARGO) test -p vltava --test fuzz_corpus; \
	fi

clean:
	$(CARGO) clean
	rm -rf compat-tests/js/node_modules
