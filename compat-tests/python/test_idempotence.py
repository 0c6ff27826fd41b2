"""Idempotent producers (confluent-kafka-python, kafka-python) against vltava, including a SIGKILL and
restart of the broker while the producer has requests in flight (at most five per connection). Afterwards every acknowledged
record must be in the log exactly once, in send order per partition."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import deadline

TIMEOUT = 60.0


def create_topic(bs: str, topic: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": bs})
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=TIMEOUT)
    fs[topic].result(timeout=TIMEOUT)


def read_partitions(bs: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    """Everything in the topic, per partition as (offset, value), up to each high watermark."""
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": "vltava-compat-unused",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1] for p in range(partitions)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        end = deadline(TIMEOUT)
        while any(len(got[p]) < highs[p] for p in got):
            assert time.monotonic() < end, f"read {[len(v) for v in got.values()]} of {highs}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got[m.partition()].append((m.offset(), m.value()))
        return got
    finally:
        c.close()


def assert_exactly_once_in_order(got, acked, partitions):
    """`acked`: partition -> list of (offset, value) from delivery reports, in send order."""
    for p in range(partitions):
        values = [v for _, v in got[p]]
        sent = [v for _, v in acked[p]]
        assert len(values) == len(set(values)), f"partition {p}: duplicates in the log"
        assert values == sent, f"partition {p}: log holds {len(values)} records, {len(sent)} acknowledged"
        assert [o for o, _ in got[p]] == list(range(len(values)))
        assert [o for o, _ in acked[p]] == list(range(len(sent))), f"partition {p}: acknowledged offsets"


def test_confluent_idempotent_producer_across_kill9(broker_factory, topic):
    partitions = 3
    b = broker_factory(flush_always=True)
    create_topic(b.bootstrap, topic, partitions)
    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 1,
            "batch.num.messages": 20,
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 20,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 500,
        }
    )
    acked: dict[int, list[tuple[int, bytes]]] = {q: [] for q in range(partitions)}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.partition()].append((msg.offset(), msg.value()))

    n = 6000
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=f"m-{i:05}".encode(), partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i == n // 2:
            # Once a quarter is acknowledged the producer is busy with the rest: SIGKILL with requests in
            # flight, then start again on the same data dir.
            end = deadline(TIMEOUT)
            while sum(len(v) for v in acked.values()) < n // 4:
                assert time.monotonic() < end and not errors, f"no progress before the kill: {errors[:3]}"
                p.poll(0.05)
            b.restart()
    assert p.flush(TIMEOUT * 2) == 0, "undelivered messages"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert sum(len(v) for v in acked.values()) == n
    # Delivery reports come in send order per partition.
    for q in range(partitions):
        assert [v for _, v in acked[q]] == [f"m-{i:05}".encode() for i in range(q, n, partitions)]
    assert_exactly_once_in_order(read_partitions(b.bootstrap, topic, partitions), acked, partitions)


def test_kafka_python_idempotent_producer(broker_factory, topic):
    from kafka import KafkaProducer

    partitions = 2
    b = broker_factory(flush_always=True)
    create_topic(b.bootstrap, topic, partitions)
    kp = KafkaProducer(
        bootstrap_servers=b.bootstrap,
        enable_idempotence=True,
        acks="all",
        max_in_flight_requests_per_connection=5,
        linger_ms=1,
        batch_size=2048,
        retries=1000,
        retry_backoff_ms=20,
        request_timeout_ms=30000,
    )
    try:
        acked: dict[int, list[tuple[int, bytes]]] = {q: [] for q in range(partitions)}
        n = 2000
        futures = [kp.send(topic, value=f"k-{i:05}".encode(), partition=i % partitions) for i in range(n // 2)]
        # Once the first quarter is acknowledged, SIGKILL while the second quarter is still being sent.
        futures[n // 4].get(timeout=TIMEOUT)
        b.restart()
        futures += [kp.send(topic, value=f"k-{i:05}".encode(), partition=i % partitions) for i in range(n // 2, n)]
        kp.flush(TIMEOUT)
        for i, f in enumerate(futures):
            md = f.get(timeout=TIMEOUT)
            acked[md.partition].append((md.offset, f"k-{i:05}".encode()))
    finally:
        kp.close(timeout=10)
    assert_exactly_once_in_order(read_partitions(b.bootstrap, topic, partitions), acked, partitions)
