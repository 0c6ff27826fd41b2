"""Replication factor 3 with every Python-driven client against a 3-node cluster on 127.0.0.1-3.

One cluster (``cluster.py``) serves the module. Per client library (confluent-kafka-python,
kafka-python, kcat, and the Go clients Sarama and franz-go through ``go/sarama-cluster`` and
``go/franz-cluster``): a topic of 3 partitions with replication factor 3 and min.insync.replicas=2,
created through the client's admin API (kcat has none: confluent-kafka-python's), 300 records
produced with acks=all and idempotence bootstrapping from node 1, then read by a consumer group
bootstrapping from node 2: every acknowledged record exactly once, per partition at the offsets it
was acknowledged at (kcat: in the order it was written), and the client's Metadata shows 3 replicas
and an ISR of 3 for every partition. Last, the negative check: a follower of a topic with
min.insync.replicas=3 killed, the ISR down to 2, an acks=all produce of confluent-kafka-python and
of kafka-python fails with NOT_ENOUGH_REPLICAS;
the follower restarted, the ISR is 3 again.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from cluster import Cluster
from conftest import deadline
from test_kcat import KCAT, kcat

N = 300
PARTITIONS = 3
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster(request):
    c = Cluster(3)
    yield c
    if request.session.testsfailed:
        print(f"\n--- cluster output ---\n{c.log_text()}\n--- end ---")
    c.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def await_replicated(describe, topic: str, partitions: int = PARTITIONS, isr: int = 3) -> None:
    """Polls `describe()` -> {partition: (replicas, isr)} until there are `partitions` partitions, each
    with 3 replicas and an ISR of `isr` (followers may need a fetch round to be counted in sync)."""
    end = deadline(TIMEOUT)
    seen = None
    while True:
        seen = describe()
        if sorted(seen) == list(range(partitions)) and all(
            len(r) == 3 and len(i) == isr and set(i) <= set(r) for r, i in seen.values()
        ):
            return
        assert time.monotonic() < end, f"{topic}: want 3 replicas and an ISR of {isr}: {seen}"
        time.sleep(0.2)  # polling Metadata with a deadline


def check_exactly_once(acked: dict[int, list[tuple[int, bytes]]], consumed: list[tuple[int, int, bytes]]):
    """Every acknowledged (partition, offset, value) read once; nothing else read."""
    per_partition: dict[int, list[tuple[int, bytes]]] = {}
    for p, off, v in consumed:
        per_partition.setdefault(p, []).append((off, v))
    want = {p: sorted(recs) for p, recs in acked.items() if recs}
    assert sum(map(len, want.values())) == N
    assert per_partition == want, {
        p: (len(per_partition.get(p, [])), len(want.get(p, []))) for p in set(want) | set(per_partition)
    }


# --- confluent-kafka-python -------------------------------------------------------------------------


def confluent_describe(bootstrap: str, topic: str):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p.id: (list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def confluent_create(bootstrap: str, topic: str, partitions: int, min_isr: int) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, partitions, 3, config={"min.insync.replicas": str(min_isr)})
    admin.create_topics([new], operation_timeout=30)[topic].result(timeout=TIMEOUT)
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(timeout=TIMEOUT)
    assert configs["min.insync.replicas"].value == str(min_isr), configs["min.insync.replicas"]


def confluent_consume_group(bootstrap: str, topic: str, n: int) -> list[tuple[int, int, bytes]]:
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("g"),
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([topic])
    got = []
    end = deadline(TIMEOUT)
    try:
        while len(got) < n:
            assert time.monotonic() < end, f"consumed {len(got)} of {n}"
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.value()))
        # Anything past the n acknowledged records would be a duplicate: one more short poll.
        extra = c.poll(1.0)
        assert extra is None or extra.error() is not None, (extra.partition(), extra.offset())
    finally:
        c.close()
    return got


def test_confluent_kafka_python_rf3(cluster):
    from confluent_kafka import Producer

    topic = unique("cl-confluent")
    confluent_create(cluster.bootstrap(1), topic, PARTITIONS, 2)
    await_replicated(lambda: confluent_describe(cluster.bootstrap(1), topic), topic)

    acked: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.partition()].append((msg.offset(), msg.value()))

    p = Producer({"bootstrap.servers": cluster.bootstrap(1), "acks": "all", "enable.idempotence": True})
    for i in range(N):
        p.produce(topic, key=f"k{i % 17}".encode(), value=f"v{i}".encode(), on_delivery=report)
    assert p.flush(TIMEOUT) == 0
    assert not errors, errors

    got = confluent_consume_group(cluster.bootstrap(2), topic, N)
    check_exactly_once(acked, got)
    for via in (1, 2, 3):
        await_replicated(lambda: confluent_describe(cluster.bootstrap(via), topic), topic)


# --- kafka-python -----------------------------------------------------------------------------------


def kafka_python_describe(admin, topic: str):
    [t] = admin.describe_topics([topic])
    out = {}
    for p in t["partitions"]:
        idx = p.get("partition_index", p.get("partition"))
        out[idx] = (list(p.get("replica_nodes", p.get("replicas"))), list(p.get("isr_nodes", p.get("isr"))))
    return out


def test_kafka_python_rf3(cluster):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = unique("cl-kafka-python")
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(1))
    try:
        admin.create_topics(
            [NewTopic(topic, PARTITIONS, 3, topic_configs={"min.insync.replicas": "2"})], timeout_ms=30_000
        )
        await_replicated(lambda: kafka_python_describe(admin, topic), topic)

        p = KafkaProducer(bootstrap_servers=cluster.bootstrap(1), acks="all", enable_idempotence=True)
        futures = [p.send(topic, key=f"k{i % 17}".encode(), value=f"v{i}".encode()) for i in range(N)]
        acked: dict[int, list[tuple[int, bytes]]] = {q: [] for q in range(PARTITIONS)}
        for i, f in enumerate(futures):
            md = f.get(timeout=TIMEOUT)
            acked[md.partition].append((md.offset, f"v{i}".encode()))
        p.close()

        c = KafkaConsumer(
            topic,
            bootstrap_servers=cluster.bootstrap(2),
            group_id=unique("g"),
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        got = []
        end = deadline(TIMEOUT)
        while len(got) < N:
            assert time.monotonic() < end, f"consumed {len(got)} of {N}"
            for tp, records in c.poll(timeout_ms=500).items():
                got.extend((tp.partition, r.offset, r.value) for r in records)
        extra = c.poll(timeout_ms=1000)
        c.close()
        assert not any(extra.values()), extra
        check_exactly_once(acked, got)
        await_replicated(lambda: kafka_python_describe(admin, topic), topic)
    finally:
        admin.close()


# --- kcat -------------------------------------------------------------------------------------------


def kcat_describe(bootstrap: str, topic: str):
    md = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic))
    [t] = [t for t in md["topics"] if t["topic"] == topic]
    return {
        p["partition"]: ([r["id"] for r in p["replicas"]], [r["id"] for r in p["isrs"]]) for p in t["partitions"]
    }


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_rf3(cluster):
    topic, group = unique("cl-kcat"), unique("g")
    confluent_create(cluster.bootstrap(1), topic, PARTITIONS, 2)
    await_replicated(lambda: kcat_describe(cluster.bootstrap(1), topic), topic)
    lines = [f"k{i % 17}:v{i}" for i in range(N)]
    r = subprocess.run(
        [KCAT, "-b", cluster.bootstrap(1), "-P", "-t", topic, "-K:", "-X", "acks=all",
         "-X", "enable.idempotence=true"],
        input=("\n".join(lines) + "\n").encode(),
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(
        [KCAT, "-b", cluster.bootstrap(2), "-G", group, "-o", "beginning", "-c", str(N), "-J",
         "-X", "session.timeout.ms=6000", topic],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
    assert len(got) == N
    per_partition: dict[int, list[dict]] = {}
    for m in got:
        per_partition.setdefault(m["partition"], []).append(m)
    key_partition = {}
    for p, ms in per_partition.items():
        offsets = [m["offset"] for m in ms]
        assert offsets == sorted(set(offsets)), f"partition {p}: offsets {offsets}"
        for m in ms:
            assert key_partition.setdefault(m["key"], p) == p, f"key {m['key']} in two partitions"
    # Each partition holds its keys' lines once, in the order they were written.
    for p, ms in per_partition.items():
        written = [line.split(":", 1)[1] for line in lines if key_partition.get(line.split(":", 1)[0]) == p]
        assert [m["payload"] for m in ms] == written, f"partition {p}"
    await_replicated(lambda: kcat_describe(cluster.bootstrap(3), topic), topic)


# --- Go: Sarama and franz-go ------------------------------------------------------------------------


def run_go(program, cluster, name: str) -> None:
    done = subprocess.run(
        [str(program), cluster.bootstrap(1), cluster.bootstrap(2), unique(name), unique("g"), str(N)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.splitlines()[-1].startswith("ok:"), done.stdout


def test_sarama_rf3(go_bins, cluster):
    run_go(go_bins / "sarama-cluster", cluster, "cl-sarama")


def test_franz_go_rf3(go_bins, cluster):
    run_go(go_bins / "franz-cluster", cluster, "cl-franz")


# --- negative: min.insync.replicas=3 with a follower dead ------------------------------------------


def test_acks_all_below_min_insync_replicas_is_not_enough_replicas(cluster):
    """Runs last in the module: it kills a node (and starts it again)."""
    from confluent_kafka import KafkaError, Producer

    topic = unique("cl-min-isr")
    confluent_create(cluster.bootstrap(1), topic, 1, 3)
    await_replicated(lambda: confluent_describe(cluster.bootstrap(1), topic), topic, partitions=1)
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": cluster.bootstrap(1)}).list_topics(topic, timeout=10)
    part = md.topics[topic].partitions[0]
    leader = part.leader
    follower = next(r for r in part.replicas if r != leader)
    cluster.kill9(follower)
    try:
        await_replicated(
            lambda: confluent_describe(cluster.bootstrap(leader), topic), topic, partitions=1, isr=2
        )
        results = []
        p = Producer(
            {
                "bootstrap.servers": cluster.bootstrap(leader),
                "acks": "all",
                "enable.idempotence": False,
                "retries": 0,
                "message.timeout.ms": 20_000,
            }
        )
        p.produce(topic, value=b"below-min-isr", partition=0, on_delivery=lambda err, msg: results.append(err))
        assert p.flush(TIMEOUT) == 0
        assert len(results) == 1 and results[0] is not None, results
        assert results[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, results[0]

        from kafka import KafkaProducer
        from kafka.errors import NotEnoughReplicasError

        kp = KafkaProducer(bootstrap_servers=cluster.bootstrap(leader), acks="all", retries=0)
        try:
            with pytest.raises(NotEnoughReplicasError):
                kp.send(topic, b"below-min-isr", partition=0).get(timeout=TIMEOUT)
        finally:
            kp.close()
    finally:
        cluster.start_nodes([follower])
    await_replicated(lambda: confluent_describe(cluster.bootstrap(leader), topic), topic, partitions=1)
