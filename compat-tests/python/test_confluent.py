"""confluent-kafka-python (bundled librdkafka) against vltava."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from conftest import deadline

TIMEOUT = 30.0


def admin(bs: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bs})


def producer(bs: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bs,
        "enable.idempotence": False,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    }
    conf.update(extra)
    return Producer(conf)


def consumer(bs: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bs,
            # Required by the client; these tests assign() (group tests: test_groups.py).
            "group.id": "vltava-compat-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100,
        }
    )


def create_topic(bs: str, topic: str, partitions: int = 1, config=None) -> None:
    a = admin(bs)  # keep the client alive until the future resolves
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=TIMEOUT,
    )
    fs[topic].result(timeout=TIMEOUT)


def produce_all(p: Producer, topic: str, recs: list[dict]) -> list[tuple[int, int]]:
    """Produce records (dicts with partition/key/value/headers/timestamp) and
    return (partition, offset) per record from the delivery callbacks."""
    results: list = [None] * len(recs)

    def cb_for(i):
        def cb(err, msg):
            results[i] = err if err is not None else (msg.partition(), msg.offset())

        return cb

    for i, r in enumerate(recs):
        kw = {"partition": r.get("partition", 0), "on_delivery": cb_for(i)}
        if r.get("key") is not None:
            kw["key"] = r["key"]
        if r.get("value") is not None:
            kw["value"] = r["value"]
        if r.get("headers"):
            kw["headers"] = r["headers"]
        if r.get("timestamp") is not None:
            kw["timestamp"] = r["timestamp"]
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)  # serve delivery callbacks to free queue space
        p.poll(0)
    remaining = p.flush(TIMEOUT)
    assert remaining == 0, f"{remaining} messages still undelivered after flush"
    errors = [(i, r) for i, r in enumerate(results) if not isinstance(r, tuple)]
    assert not errors, f"delivery errors: {errors[:5]}"
    return results


def consume(bs: str, topic: str, starts: list[tuple[int, int]], count: int, timeout=60.0):
    c = consumer(bs)
    try:
        c.assign([TopicPartition(topic, p, o) for p, o in starts])
        out = []
        end = deadline(timeout)
        while len(out) < count:
            assert time.monotonic() < end, f"consumed only {len(out)} of {count} from {topic}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append(
                {
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "key": m.key(),
                    "value": m.value(),
                    "headers": m.headers() or [],
                    "timestamp": m.timestamp(),
                }
            )
        return out
    finally:
        c.close()


def records(n: int, partition: int = 0, tag: str = "r") -> list[dict]:
    recs = []
    for i in range(n):
        r = {
            "partition": partition,
            "key": None if i % 5 == 2 else f"{tag}-key-{i}".encode(),
            "value": (f"{tag} value {i} " * (1 + i % 9)).encode() if i % 6 else b"",
            "headers": [("i", str(i).encode()), ("tag", tag.encode())] if i % 3 == 0 else [],
        }
        recs.append(r)
    return recs


def assert_exact(got: list[dict], expected: list[dict], first_offset: int = 0):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g["offset"] == first_offset + i, f"record #{i}"
        assert g["partition"] == e.get("partition", 0), f"record #{i}"
        assert g["key"] == e.get("key"), f"record #{i} key"
        assert g["value"] == e.get("value"), f"record #{i} value"
        assert g["headers"] == list(e.get("headers") or []), f"record #{i} headers"
        if e.get("timestamp") is not None:
            assert g["timestamp"] == (1, e["timestamp"]), f"record #{i} timestamp"  # 1 = CreateTime


def test_admin_create_list_delete_topics(broker, topic):
    a = admin(broker.bootstrap)
    fs = a.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=3,
                replication_factor=1,
                config={"retention.ms": "3600000", "cleanup.policy": "delete"},
            )
        ],
        operation_timeout=TIMEOUT,
    )
    assert fs[topic].result(timeout=TIMEOUT) is None

    md = a.list_topics(timeout=TIMEOUT)
    assert topic in md.topics, f"{topic} missing from {sorted(md.topics)}"
    assert md.topics[topic].error is None
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [broker.bootstrap]

    # Creating it again fails with TOPIC_ALREADY_EXISTS.
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, ei.value

    fs = a.delete_topics([topic], operation_timeout=TIMEOUT)
    assert fs[topic].result(timeout=TIMEOUT) is None
    md = a.list_topics(timeout=TIMEOUT)
    assert topic not in md.topics, f"{topic} still listed after delete"

    # Deleting it again: UNKNOWN_TOPIC_OR_PART.
    fs = a.delete_topics([topic], operation_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


def test_create_topic_rejects_invalid_partition_count(broker, topic):
    a = admin(broker.bootstrap)
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=0, replication_factor=1)], operation_timeout=TIMEOUT
    )
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS, ei.value


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_with_delivery_callbacks_and_consume(broker, topic, codec):
    bs = broker.bootstrap
    create_topic(bs, topic, 3)
    recs = []
    for p in range(3):
        recs += records(150, p, f"p{p}")
    # interleave partitions in send order
    recs.sort(key=lambda r: (int(r["key"].split(b"-")[-1]) if r["key"] else -1, r["partition"]))
    deliveries = produce_all(producer(bs, **{"compression.type": codec}), topic, recs)
    nxt = {0: 0, 1: 0, 2: 0}
    for i, (p, off) in enumerate(deliveries):
        assert p == recs[i]["partition"]
        assert off == nxt[p], f"record #{i} on partition {p}"
        nxt[p] += 1

    got = consume(bs, topic, [(p, OFFSET_BEGINNING) for p in range(3)], len(recs))
    for p in range(3):
        assert_exact([g for g in got if g["partition"] == p], [r for r in recs if r["partition"] == p])


def test_null_and_empty_keys_values(broker, topic):
    bs = broker.bootstrap
    recs = [
        {"key": None, "value": None},
        {"key": b"", "value": b""},
        {"key": b"k", "value": None},
        {"key": None, "value": b"v"},
        {"key": b"", "value": None, "headers": [("h", None), ("e", b"")]},
    ]
    produce_all(producer(bs), topic, recs)  # auto-created topic
    assert_exact(consume(bs, topic, [(0, OFFSET_BEGINNING)], len(recs)), recs)


def test_assign_at_offset_inside_batch(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic, 1)
    recs = records(60, 0, "mid")
    # One batch: long linger, flush sends it at once.
    produce_all(producer(bs, **{"linger.ms": 5000, "compression.type": "lz4"}), topic, recs)
    got = consume(bs, topic, [(0, 23)], len(recs) - 23)
    assert got[0]["offset"] == 23
    assert_exact(got, recs[23:], 23)


def test_watermarks_and_list_offsets(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic, 2)
    t0 = int(time.time() * 1000) - 600_000
    recs = [{"key": f"k{i}".encode(), "value": b"v", "timestamp": t0 + 1000 * i} for i in range(8)]
    # One batch (long linger; flush sends it): timestamp lookups must resolve
    # to the exact record inside the batch, not to the batch's base offset.
    produce_all(producer(bs, **{"linger.ms": 5000}), topic, recs)

    c = consumer(bs)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (0, 8)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=TIMEOUT) == (0, 0)
        # offsets_for_times on the consumer
        res = c.offsets_for_times([TopicPartition(topic, 0, t0 + 2500)], timeout=TIMEOUT)
        assert res[0].error is None and res[0].offset == 3
        res = c.offsets_for_times([TopicPartition(topic, 0, t0 + 100_000)], timeout=TIMEOUT)
        assert res[0].offset == OFFSET_END  # -1: no record that late
    finally:
        c.close()

    a = admin(bs)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    cases = {
        "earliest": (OffsetSpec.earliest(), 0),
        "latest": (OffsetSpec.latest(), 8),
        "t0": (OffsetSpec.for_timestamp(t0), 0),
        "t0+3000": (OffsetSpec.for_timestamp(t0 + 3000), 3),
        "t0+3001": (OffsetSpec.for_timestamp(t0 + 3001), 4),
    }
    for name, (spec, want) in cases.items():
        fs = a.list_offsets({tp0: spec}, request_timeout=TIMEOUT)
        res = fs[tp0].result(timeout=TIMEOUT)
        assert res.offset == want, f"list_offsets {name}: got {res.offset}, want {want}"
    res = a.list_offsets({tp1: OffsetSpec.latest()}, request_timeout=TIMEOUT)[tp1].result(timeout=TIMEOUT)
    assert res.offset == 0


def test_list_offsets_max_timestamp(broker, topic):
    """OffsetSpec.max_timestamp() needs ListOffsets v7 (KIP-734)."""
    bs = broker.bootstrap
    create_topic(bs, topic, 1)
    t0 = int(time.time() * 1000) - 600_000
    # The maximum timestamp is in the middle of the log.
    ts = [t0, t0 + 5000, t0 + 1000, t0 + 2000]
    produce_all(producer(bs, **{"linger.ms": 5000}), topic, [{"key": b"k", "value": b"v", "timestamp": t} for t in ts])
    tp = TopicPartition(topic, 0)
    a = admin(bs)
    res = a.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=TIMEOUT)[tp].result(timeout=TIMEOUT)
    assert (res.offset, res.timestamp) == (1, t0 + 5000)


def test_kill9_keeps_acked_records(broker_factory, topic):
    b = broker_factory(flush_always=True)
    create_topic(b.bootstrap, topic, 2)
    recs = records(400, 0, "a") + records(300, 1, "b")
    produce_all(producer(b.bootstrap, **{"compression.type": "gzip"}), topic, recs)
    b.restart()  # SIGKILL + start on the same data dir
    got = consume(b.bootstrap, topic, [(0, OFFSET_BEGINNING), (1, OFFSET_BEGINNING)], len(recs))
    for p in (0, 1):
        assert_exact([g for g in got if g["partition"] == p], [r for r in recs if r["partition"] == p])
    more = records(5, 1, "after")
    d = produce_all(producer(b.bootstrap), topic, more)
    assert [o for _, o in d] == [300, 301, 302, 303, 304]


def test_timestamps_too_far_ahead_are_refused_as_kafka_does(broker, topic):
    """KIP-937 with Kafka's default message.timestamp.after.max.ms (1 hour): a record stamped two
    hours ahead gets INVALID_TIMESTAMP; one stamped now is written."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False, "retries": 0})
    results = []
    now_ms = int(time.time() * 1000)
    for ts in (now_ms + 2 * 3600 * 1000, now_ms):
        p.produce(topic, value=b"x", partition=0, timestamp=ts,
                  on_delivery=lambda err, m: results.append((err.code() if err else None, m.offset())))
        p.flush(TIMEOUT)
    assert results[0][0] == KafkaError.INVALID_TIMESTAMP, results
    assert results[1] == (None, 0), results
