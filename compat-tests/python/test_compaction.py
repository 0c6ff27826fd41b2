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
