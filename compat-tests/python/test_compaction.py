"""Compacted topics (cleanup.policy=compact) with confluent-kafka-python (librdkafka).

The broker runs its cleaner every 50 ms; tests wait for its "compacted log" line for the topic, an
event, not a delay. Topics use tiny segments so that most records sit in sealed (cleanable) segments.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import deadline

TIMEOUT = 60.0
KEYS, ROUNDS = 20, 10


@pytest.fixture
def cbroker(broker_factory):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-compact-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write("log_cleaner_backoff_ms = 50\n")
    return broker_factory(extra_args=["--config", cfg])


def create_compacted(bs: str, topic: str) -> None:
    config = {"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
    admin = AdminClient({"bootstrap.servers": bs})
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)])
    fs[topic].result(timeout=TIMEOUT)


def produce_rounds(bs: str, topic: str) -> dict[tuple[str, str], int]:
    """KEYS keys written ROUNDS times each (value "<key>:<round>"); the offset of each write."""
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "enable.idempotence": True})
    offsets: dict[tuple[str, str], int] = {}
    errors: list = []

    def report(err, msg):
        if err:
            errors.append(err)
        else:
            offsets[(msg.key().decode(), msg.value().decode())] = msg.offset()

    for r in range(ROUNDS):
        for k in range(KEYS):
            p.produce(topic, key=f"k{k}", value=f"k{k}:{r}", on_delivery=report)
        p.flush(TIMEOUT)
    assert not errors and len(offsets) == KEYS * ROUNDS
    return offsets


def read_all(bs: str, topic: str, end: int) -> list[tuple[int, str, str | None]]:
    c = Consumer({"bootstrap.servers": bs, "group.id": f"read-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    t_end = deadline(TIMEOUT)
    try:
        while (not out or out[-1][0] < end - 1) and deadline(0) < t_end:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            value = m.value().decode() if m.value() is not None else None
            out.append((m.offset(), m.key().decode(), value))
    finally:
        c.close()
    return out


def test_compaction_keeps_the_latest_value_of_each_key_at_its_offset(cbroker):
    bs, topic = cbroker.bootstrap, f"compact-{uuid.uuid4().hex[:8]}"
    create_compacted(bs, topic)
    written = produce_rounds(bs, topic)
    assert cbroker.wait_for_log(rf"compacted log.*{re.escape(topic)}-0", TIMEOUT), "the cleaner never ran"

    records = read_all(bs, topic, KEYS * ROUNDS)
    check_compacted(records, written)

    # A restarted broker (SIGKILL, full recovery scan) serves the compacted log: no removed record comes
    # back, no latest value is lost. (Its cleaner may have removed more since.)
    cbroker.restart()
    again = read_all(cbroker.bootstrap, topic, KEYS * ROUNDS)
    check_compacted(again, written)
    assert set(again) <= set(records)


def check_compacted(records, written) -> None:
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets increase"
    assert len(records) < KEYS * ROUNDS, "compaction removed superseded records"
    # Every record served is one that was written, at the offset it was written to.
    assert all(written[(k, v)] == o for o, k, v in records)
    latest = {}
    for _, k, v in records:
        latest[k] = v
    assert latest == {f"k{k}": f"k{k}:{ROUNDS - 1}" for k in range(KEYS)}


def test_compacted_topic_refuses_records_without_a_key(cbroker):
    bs, topic = cbroker.bootstrap, f"compact-{uuid.uuid4().hex[:8]}"
    create_compacted(bs, topic)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "retries": 0})
    results: list = []
    # One at a time: a batch holding both would be refused as a whole.
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: results.append(err))
    p.flush(TIMEOUT)
    p.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: results.append(err))
    p.flush(TIMEOUT)
    assert results[0] is not None and results[0].code() == KafkaError.INVALID_RECORD, results
    assert results[1] is None, results


def test_python_clients_read_a_compacted_log_with_gaps_and_emptied_batches(cbroker):
    """An idempotent producer's batches all superseded: its last batch stays with no records (as in
    Kafka, for its sequence), the others go, and offsets have gaps. confluent-kafka and kafka-python
    consumers must read past all of it to the end."""
    from kafka import KafkaConsumer, TopicPartition as KpTopicPartition

    bs, topic = cbroker.bootstrap, f"compact-{uuid.uuid4().hex[:8]}"
    create_compacted(bs, topic)
    first = Producer({"bootstrap.servers": bs, "linger.ms": 0, "enable.idempotence": True})
    for k in range(KEYS):
        first.produce(topic, key=f"k{k}", value="old")
        first.flush(TIMEOUT)  # one batch per record
    later = Producer({"bootstrap.servers": bs, "linger.ms": 0, "enable.idempotence": False})
    for k in range(KEYS):
        later.produce(topic, key=f"k{k}", value="new")
    assert later.flush(TIMEOUT) == 0
    # Small batches, so that segments roll and the new values end up in a sealed (cleanable) one.
    for i in range(200):
        later.produce(topic, key=f"filler{i % 10}", value=f"f{i}")
        if i % 20 == 19:
            assert later.flush(TIMEOUT) == 0
    end = 2 * KEYS + 200

    def confluent_read():
        return read_all(bs, topic, end)

    records = None
    deadline_at = deadline(TIMEOUT)
    while deadline(0) < deadline_at:
        compacted = cbroker.watch(rf"compacted log.*{re.escape(topic)}-0")
        try:
            records = confluent_read()
            if not any(v == "old" for _, _, v in records):
                break
            assert compacted.wait(TIMEOUT), "no further compaction pass"
        finally:
            cbroker.unwatch(compacted)
    assert records is not None and not any(v == "old" for _, _, v in records), records[:5]
    assert records[-1][0] == end - 1
    assert {k: v for _, k, v in records if k.startswith("k")} == {f"k{k}": "new" for k in range(KEYS)}

    consumer = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, consumer_timeout_ms=10_000)
    tp = KpTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    seen = []
    for m in consumer:
        seen.append((m.offset, m.key.decode(), m.value.decode()))
        if m.offset >= end - 1:
            break
    consumer.close()
    # The cleaner may have run again in between; whatever it removed was superseded.
    assert seen[-1][0] == end - 1
    assert set(seen) <= set(records)
    assert {k: v for _, k, v in seen if k.startswith("k")} == {f"k{k}": "new" for k in range(KEYS)}
