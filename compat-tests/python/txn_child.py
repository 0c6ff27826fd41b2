"""A transactional producer in a process of its own, so that a test can SIGKILL it mid-transaction:
`python3 txn_child.py LIB BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TIMEOUT_MS` (LIB: confluent or
kafka-python). It begins a transaction, produces COUNT records `dead-<i>` to partition 0 and, once all
are acknowledged, prints `produced FIRST LAST` and waits on stdin for ever without committing."""

import sys

from txn_clients import txn_producer


def main() -> None:
    lib, bs, tid, topic, count, timeout_ms = sys.argv[1:]
    p = txn_producer(lib, bs, tid, int(timeout_ms))
    p.init()
    p.begin()
    offsets = p.send(topic, 0, [f"dead-{i}" for i in range(int(count))])
    print(f"produced {offsets[0]} {offsets[-1]}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
