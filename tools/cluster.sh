#!/usr/bin/env bash
# Starts a local vltava cluster in the foreground: nodes 1..NODES (3 or 5) from config/cluster/, node N on
# 127.0.0.N:9092 (Kafka) and 127.0.0.N:9093 (controller), data in ./vltava-cluster/. Ctrl-C stops them all
# (SIGTERM: controlled shutdown). With NODES=5 the voter set is the five-node one.
set -euo pipefail
BIN=${BIN:-target/release/vltava}
NODES=${NODES:-3}
case "$NODES" in 3|5) ;; *) echo "NODES must be 3 or 5" >&2; exit 2 ;; esac
conf=config/cluster
if [ "$NODES" = 5 ]; then
  tmp=$(mktemp -d)
  for n in 1 2 3 4 5; do
    sed 's/^controller.quorum.voters=.*/controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093,4@127.0.0.4:9093,5@127.0.0.5:9093/' \
      "$conf/node$n.properties" > "$tmp/node$n.properties"
  done
  conf=$tmp
fi
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM
for n in $(seq 1 "$NODES"); do
  "$BIN" --config "$conf/node$n.properties" > >(sed -u "s/^/[node$n] /") 2>&1 &
  pids+=($!)
done
echo "cluster starting: bootstrap.servers=$(seq -s, -f '127.0.0.%g:9092' 1 "$NODES")"
wait
