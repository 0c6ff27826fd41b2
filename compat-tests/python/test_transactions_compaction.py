"""Transactions on a compacted topic with confluent-kafka-python: the cleaner (every 50 ms, 2 KiB segments)
runs over committed, aborted and open transactions, and the latest committed value of every key survives:
an aborted record never supersedes a committed one, an open transaction's records do not supersede
anything while it may still abort (the cleaner stays below the LSO), and every record served is at the
offset it was written to. The cleaner's "compacted log" line for the topic is awaited (an event)."""

from __future__ import annotations

import re
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from txn_clients import COMMITTED, TIMEOUT, UNCOMMITTED, ConfluentTxn, confluent_consumer

KEYS = 10
PAD = "x" * 120


def create_compacted(bs: str, topic: str) -> None:
    config = {"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
    admin = AdminClient({"bootstrap.servers": bs})
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)])
    fs[topic].result(timeout=TIMEOUT)


class Writes:
    """Every record written, (key, value) -> offset, from delivery reports."""

    def __init__(self):
        self.offsets: dict[tuple[str, str], int] = {}
        self.errors: list = []

    def report(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.offsets[(msg.key().decode(), msg.value().decode())] = msg.offset()

    def round(self, p: Producer, topic: str, keys: list[str], tag: str) -> None:
        for k in keys:
            p.produce(topic, key=k, value=f"{k}:{tag}:{PAD}", partition=0, on_delivery=self.report)
        assert p.flush(TIMEOUT) == 0 and not self.errors, self.errors


def read_keyed(bs: str, level: str, topic: str, end: int) -> list[tuple[int, str, str]]:
    """(offset, key, value) of everything readable at `level` up to the partition EOF at `end`."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    c = confluent_consumer(bs, level)
    out: list[tuple[int, str, str]] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        t_end = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < t_end, f"not at {end}: {out[-3:]}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                if c.position([TopicPartition(topic, 0)])[0].offset == end:
                    return out
                continue
            out.append((m.offset(), m.key().decode(), m.value().decode()))
    finally:
        c.close()


def hw(bs: str, topic: str) -> int:
    from confluent_kafka import TopicPartition

    c = confluent_consumer(bs, UNCOMMITTED)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)[1]
    finally:
        c.close()


def test_cleaner_keeps_the_latest_committed_value_through_aborted_and_open_transactions(broker_factory, tmp_path):
    cfg = tmp_path / "vltava.toml"
    cfg.write_text("log_cleaner_backoff_ms = 50\ntransaction_abort_timed_out_transaction_cleanup_interval_ms = 200\n")
    b = broker_factory(extra_args=["--config", str(cfg)])
    bs, topic = b.bootstrap, f"txn-compact-{uuid.uuid4().hex[:8]}"
    create_compacted(bs, topic)
    keys = [f"k{i}" for i in range(KEYS)]
    w = Writes()
    t = ConfluentTxn(bs, f"tid-{uuid.uuid4().hex[:8]}")
    plain = Producer({"bootstrap.servers": bs, "linger.ms": 0, "enable.idempotence": True})
    t.init()
    t.begin()
    for r in range(5):
        w.round(t.p, topic, keys, f"c{r}")
    t.commit()
    pass_after_commit = b.watch(rf"compacted log.*{re.escape(topic)}-0")
    t.begin()
    for r in range(2):
        w.round(t.p, topic, keys, f"a{r}")
    t.abort()
    t.begin()  # left open while fillers (other keys, no transaction) seal its segments
    w.round(t.p, topic, keys, "o0")
    for r in range(3):
        w.round(plain, topic, [f"f{j}" for j in range(KEYS)], f"f{r}")
    try:
        assert pass_after_commit.wait(TIMEOUT), "the cleaner never ran over the transactions"
    finally:
        b.unwatch(pass_after_commit)
    pass_after_abort = b.watch(rf"compacted log.*{re.escape(topic)}-0")
    t.abort()  # the open transaction's records (the newest of each key) are aborted after all
    w.round(plain, topic, [f"f{j}" for j in range(KEYS)], "f3")
    try:
        assert pass_after_abort.wait(TIMEOUT), "no cleaning pass after the abort"
    finally:
        b.unwatch(pass_after_abort)

    end = hw(bs, topic)
    committed = read_keyed(bs, COMMITTED, topic, end)
    everything = read_keyed(bs, UNCOMMITTED, topic, end)
    for records in (committed, everything):
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets)), "offsets increase"
        assert all(w.offsets[(k, v)] == o for o, k, v in records), "a record away from its offset"
    latest: dict[str, str] = {}
    for _, k, v in committed:
        latest[k] = v.split(":")[1]
    assert {k: latest.get(k) for k in keys} == {k: "c4" for k in keys}, "the latest committed values"
    assert {latest.get(f"f{j}") for j in range(KEYS)} == {"f3"}
    assert not [v for _, _, v in committed if ":a" in v or ":o0" in v], "aborted records read_committed"
    # The cleaner removed superseded committed records (c0..c3 of the sealed segments).
    assert len(everything) < len(w.offsets), "nothing was cleaned"
