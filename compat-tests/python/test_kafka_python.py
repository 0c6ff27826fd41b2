"""kafka-python (pure Python client, 3.x) against vltava.

kafka-python 3 enables idempotence by default, which requires acks=all; these
tests also cover acks=0/1, so every producer here sets enable_idempotence=False
(test_idempotence.py covers the idempotent producer).
Consumers use assign()/seek() with no group_id (no consumer groups yet).
Only gzip and uncompressed batches: the other codecs need optional packages.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from conftest import deadline

TIMEOUT = 30


def producer(bs: str, **kw) -> KafkaProducer:
    conf = dict(
        bootstrap_servers=bs,
        enable_idempotence=False,
        acks="all",
        linger_ms=5,
        request_timeout_ms=TIMEOUT * 1000,
    )
    conf.update(kw)
    return KafkaProducer(**conf)


def consumer(bs: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",  # an out-of-range fetch must raise, not reset
        fetch_max_wait_ms=100,
        request_timeout_ms=TIMEOUT * 1000 + 5000,
    )


def create_topic(bs: str, topic: str, partitions: int) -> None:
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], timeout_ms=TIMEOUT * 1000)
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], timeout_ms=TIMEOUT * 1000)
    finally:
        a.close()


def records(n: int, partition: int, tag: str) -> list[dict]:
    return [
        {
            "partition": partition,
            "key": None if i % 4 == 1 else f"{tag}-{i}".encode(),
            "value": (f"{tag} value {i};" * (1 + i % 7)).encode(),
            "headers": [("n", str(i).encode()), ("empty", b"")] if i % 2 == 0 else [],
        }
        for i in range(n)
    ]


def send_all(p: KafkaProducer, topic: str, recs: list[dict]) -> list[tuple[int, int]]:
    futs = [
        p.send(topic, key=r["key"], value=r["value"], headers=r["headers"] or None, partition=r["partition"])
        for r in recs
    ]
    p.flush(timeout=TIMEOUT)
    out = []
    for f in futs:
        md = f.get(timeout=TIMEOUT)
        out.append((md.partition, md.offset))
    return out


def consume(c: KafkaConsumer, count: int, timeout=60.0) -> list:
    out = []
    end = deadline(timeout)
    while len(out) < count:
        assert time.monotonic() < end, f"consumed only {len(out)} of {count}"
        batch = c.poll(timeout_ms=500)
        for tp in sorted(batch, key=lambda t: t.partition):
            out.extend(batch[tp])
    return out


def assert_exact(got, expected, first_offset=0):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.offset == first_offset + i, f"record #{i}"
        assert g.partition == e["partition"]
        assert g.key == e["key"], f"record #{i} key"
        assert g.value == e["value"], f"record #{i} value"
        assert list(g.headers) == list(e["headers"]), f"record #{i} headers"


@pytest.mark.parametrize("codec", [None, "gzip"])
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_send_get_and_assign_consume(broker, topic, codec, acks):
    bs = broker.bootstrap
    create_topic(bs, topic, 2)
    recs = records(120, 0, "a") + records(80, 1, "b")
    d = send_all(producer(bs, compression_type=codec, acks=acks), topic, recs)
    if acks != 0:  # with acks=0 there is no response, hence no offsets
        for p in (0, 1):
            assert [o for (pp, o) in d if pp == p] == list(range(len([r for r in recs if r["partition"] == p])))

    c = consumer(bs)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = consume(c, len(recs))
    finally:
        c.close()
    for p in (0, 1):
        assert_exact([g for g in got if g.partition == p], [r for r in recs if r["partition"] == p])


def test_seek_inside_batch_and_offsets_apis(broker, topic):
    bs = broker.bootstrap
    t0 = int(time.time() * 1000) - 300_000
    p = producer(bs, linger_ms=2000, compression_type="gzip")
    futs = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), timestamp_ms=t0 + 10 * i) for i in range(50)]
    p.flush(timeout=TIMEOUT)
    offs = [f.get(timeout=TIMEOUT).offset for f in futs]
    assert offs == list(range(50))

    c = consumer(bs)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        assert c.beginning_offsets([tp], timeout_ms=TIMEOUT * 1000) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=TIMEOUT * 1000) == {tp: 50}
        ot = c.offsets_for_times({tp: t0 + 255}, timeout_ms=TIMEOUT * 1000)
        assert ot[tp] is not None and ot[tp].offset == 26 and ot[tp].timestamp == t0 + 260
        assert c.offsets_for_times({tp: t0 + 10_000}, timeout_ms=TIMEOUT * 1000) == {tp: None}

        c.seek(tp, 31)
        got = consume(c, 19)
        assert [g.offset for g in got] == list(range(31, 50))
        assert [g.key for g in got] == [f"k{i}".encode() for i in range(31, 50)]
        assert [g.timestamp for g in got] == [t0 + 10 * i for i in range(31, 50)]
        assert c.position(tp) == 50
    finally:
        c.close()
