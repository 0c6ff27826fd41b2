"""Transactions with confluent-kafka-python (librdkafka) and kafka-python 3.x against vltava: commit and
abort as read_committed and read_uncommitted readers of the same library see them (exact records at exact
offsets, each control marker taking an offset), the last stable offset held by an open transaction,
fencing by a second producer with the same transactional.id, send_offsets_to_transaction, and a producer
SIGKILLed mid-transaction that the coordinator aborts after its transaction timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from txn_clients import COMMITTED, LIBS, TIMEOUT, UNCOMMITTED, Reader, at, end_offset, read_all, txn_producer

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def txn_broker(broker_factory, tmp_path):
    """A broker scanning for timed-out transactions every 200 ms, its groups without the initial delay."""
    cfg = tmp_path / "vltava.toml"
    cfg.write_text(
        "group_initial_rebalance_delay_ms = 0\ntransaction_abort_timed_out_transaction_cleanup_interval_ms = 200\n"
    )
    return broker_factory(extra_args=["--config", str(cfg)])


def create_topic(bs: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bs})  # kept alive until the result is in
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=TIMEOUT
    )
    fs[topic].result(timeout=TIMEOUT)


def values(tag: str, n: int) -> list[str]:
    return [f"{tag}-{i}" for i in range(n)]


def tid() -> str:
    return f"tid-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("lib", LIBS)
def test_committed_transaction_over_two_partitions(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic, 2)
    p = txn_producer(lib, bs, tid())
    p.init()
    p.begin()
    a, b = values("p0", 6), values("p1", 4)
    assert p.send(topic, 0, a) == list(range(6))
    assert p.send(topic, 1, b) == list(range(4))
    p.commit()
    p.close()
    # Each partition: its records, then the commit marker.
    for level in (COMMITTED, UNCOMMITTED):
        assert read_all(lib, bs, level, topic, {0: 7, 1: 5}) == {0: at(0, a), 1: at(0, b)}, level
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 7


@pytest.mark.parametrize("lib", LIBS)
def test_aborted_transaction_hidden_from_read_committed_only(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    p = txn_producer(lib, bs, tid())
    p.init()
    aborted, committed = values("aborted", 5), values("committed", 3)
    p.begin()
    assert p.send(topic, 0, aborted) == list(range(5))
    p.abort()
    p.begin()  # the abort marker is at 5
    assert p.send(topic, 0, committed) == [6, 7, 8]
    p.commit()
    p.close()
    assert read_all(lib, bs, COMMITTED, topic, {0: 10}) == {0: at(6, committed)}
    assert read_all(lib, bs, UNCOMMITTED, topic, {0: 10}) == {0: at(0, aborted) + at(6, committed)}
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 10


@pytest.mark.parametrize("lib", LIBS)
def test_open_transaction_holds_the_last_stable_offset(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    plain = txn_producer_plain(bs)
    before, inside, after = values("before", 3), values("inside", 5), values("after", 2)
    assert send_plain(plain, topic, before) == [0, 1, 2]
    p = txn_producer(lib, bs, tid())
    p.init()
    p.begin()
    assert p.send(topic, 0, inside) == list(range(3, 8))
    assert send_plain(plain, topic, after) == [8, 9]
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 3, "LSO while open"
    assert end_offset(lib, bs, UNCOMMITTED, topic, 0) == 10, "high watermark while open"
    r = Reader(lib, bs, COMMITTED)
    try:
        assert r.read(topic, {0: 0}, {0: 3}) == {0: at(0, before)}, "read_committed while open"
        p.commit()
        assert r.read(topic, {0: 3}, {0: 11}) == {0: at(3, inside) + at(8, after)}, "after the commit"
    finally:
        r.close()
    p.close()
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 11


def txn_producer_plain(bs: str):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bs, "enable.idempotence": False, "acks": "all", "linger.ms": 5})


def send_plain(p, topic: str, vals: list[str]) -> list[int]:
    offsets = []

    def cb(err, msg):
        assert err is None, err
        offsets.append(msg.offset())

    for v in vals:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=cb)
    assert p.flush(TIMEOUT) == 0
    return offsets


@pytest.mark.parametrize("lib", LIBS)
def test_second_producer_with_the_same_id_fences_the_first(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    same = tid()
    first = txn_producer(lib, bs, same)
    first.init()
    first.begin()
    assert first.send(topic, 0, values("zombie", 4)) == list(range(4))
    # The second producer's InitProducerId bumps the epoch and aborts the first one's transaction.
    second = txn_producer(lib, bs, same)
    second.init()
    with pytest.raises(Exception) as fenced:
        first.commit()
    assert first.is_fenced(fenced.value), f"not a fatal fencing error: {fenced.value!r}"
    second.begin()  # abort marker at 4
    good = values("good", 3)
    assert second.send(topic, 0, good) == [5, 6, 7]
    second.commit()
    second.close()
    assert read_all(lib, bs, COMMITTED, topic, {0: 9}) == {0: at(5, good)}
    assert read_all(lib, bs, UNCOMMITTED, topic, {0: 9}) == {0: at(0, values("zombie", 4)) + at(5, good)}


@pytest.mark.parametrize("lib", LIBS)
def test_a_fenced_producers_next_record_is_refused(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    same = tid()
    first = txn_producer(lib, bs, same)
    first.init()
    first.begin()
    assert first.send(topic, 0, values("zombie", 2)) == [0, 1]
    second = txn_producer(lib, bs, same)
    second.init()  # aborts the first one's transaction: marker at 2
    # Its partition already in the transaction, the zombie's next record goes straight to the partition
    # leader with the old epoch. (kafka-python then asks for an epoch bump with the old epoch: refused
    # with PRODUCER_FENCED, so it cannot fence the second producer in turn.)
    ok, late = first.try_send(topic, 0, "late")
    assert not ok, f"the fenced producer's record was accepted at {late}"
    second.begin()
    good = values("good", 2)
    assert second.send(topic, 0, good) == [3, 4]
    second.commit()  # marker at 5
    second.close()
    assert read_all(lib, bs, UNCOMMITTED, topic, {0: 6}) == {0: at(0, values("zombie", 2)) + at(3, good)}
    assert read_all(lib, bs, COMMITTED, topic, {0: 6}) == {0: at(3, good)}


@pytest.mark.parametrize("lib", LIBS)
def test_interleaved_transactions_on_one_partition(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    a, b, plain = txn_producer(lib, bs, tid()), txn_producer(lib, bs, tid()), txn_producer_plain(bs)
    a.init()
    b.init()
    a.begin()
    b.begin()
    a1, b1, x, a2, b2 = values("a1", 2), values("b1", 2), values("x", 1), values("a2", 2), values("b2", 2)
    assert a.send(topic, 0, a1) == [0, 1]
    assert b.send(topic, 0, b1) == [2, 3]
    assert send_plain(plain, topic, x) == [4]
    assert a.send(topic, 0, a2) == [5, 6]
    assert b.send(topic, 0, b2) == [7, 8]
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 0, "LSO with both open"
    a.abort()  # marker at 9
    assert end_offset(lib, bs, COMMITTED, topic, 0, until=2) == 2, "LSO with b open"
    b.commit()  # marker at 10
    a.close()
    b.close()
    committed = at(2, b1) + at(4, x) + at(7, b2)
    assert read_all(lib, bs, COMMITTED, topic, {0: 11}) == {0: committed}
    # From inside the aborted transaction (past its first offset): its records at 5..6 stay hidden.
    for start in (1, 2, 5, 6):
        r = Reader(lib, bs, COMMITTED)
        try:
            assert r.read(topic, {0: start}, {0: 11}) == {0: [(o, v) for o, v in committed if o >= start]}, start
        finally:
            r.close()
    everything = at(0, a1) + at(2, b1) + at(4, x) + at(5, a2) + at(7, b2)
    assert read_all(lib, bs, UNCOMMITTED, topic, {0: 11}) == {0: everything}


def group_member(lib: str, bs: str, group: str, topic: str):
    if lib == "confluent":
        from confluent_kafka import Consumer

        c = Consumer(
            {
                "bootstrap.servers": bs,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": COMMITTED,
            }
        )
        c.subscribe([topic])
        return c
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic, bootstrap_servers=bs, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level=COMMITTED,
    )


def consume_n(lib: str, c, n: int) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + TIMEOUT
    while len(got) < n:
        assert time.monotonic() < end, f"consumed only {got}"
        if lib == "confluent":
            m = c.poll(0.5)
            if m is not None:
                assert not m.error(), m.error()
                got.append(m.value().decode())
        else:
            for records in c.poll(timeout_ms=500).values():
                got.extend(r.value.decode() for r in records)
    return got


def committed_offset(lib: str, bs: str, group: str, topic: str, until=None):
    """The group's committed offset of partition 0 (None: nothing committed). With `until`, asks
    again (round trips on one client, TIMEOUT bound) until that is the answer: the commit's markers,
    the one on __consumer_offsets included, follow EndTxn's answer, and an OffsetFetch without
    require_stable (kafka-python) does not wait for pending transactional offsets."""
    end = time.monotonic() + TIMEOUT
    if lib == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bs, "group.id": group})

        def ask():
            o = c.committed([TopicPartition(topic, 0)], timeout=TIMEOUT)[0].offset
            return o if o >= 0 else None
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bs, group_id=group, enable_auto_commit=False)

        def ask():
            return c.committed(TopicPartition(topic, 0), timeout_ms=int(TIMEOUT * 1000))
    try:
        while True:
            got = ask()
            if until is None or got == until or time.monotonic() > end:
                return got
    finally:
        c.close()


@pytest.mark.parametrize("lib", LIBS)
def test_send_offsets_to_transaction(lib, txn_broker, topic):
    bs = txn_broker.bootstrap
    source, group = f"{topic}-in", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bs, source)
    create_topic(bs, topic)
    inputs = values("in", 10)
    assert send_plain(txn_producer_plain(bs), source, inputs) == list(range(10))
    member = group_member(lib, bs, group, source)
    try:
        assert consume_n(lib, member, 10) == inputs
        outputs = [f"out-{v}" for v in inputs]
        p = txn_producer(lib, bs, tid())
        p.init()
        p.begin()  # aborted: neither the outputs nor the offsets count
        p.send(topic, 0, outputs[:5])
        p.send_offsets(member, source, 0, 10)
        p.abort()
        assert committed_offset(lib, bs, group, source) is None, "after the abort"
        p.begin()  # committed: outputs at 6..15 (abort marker at 5), the group at 10
        assert p.send(topic, 0, outputs) == list(range(6, 16))
        p.send_offsets(member, source, 0, 10)
        p.commit()
        p.close()
    finally:
        member.close()
    assert committed_offset(lib, bs, group, source, until=10) == 10, "after the commit"
    assert read_all(lib, bs, COMMITTED, topic, {0: 17}) == {0: at(6, outputs)}


@pytest.mark.parametrize("lib", LIBS)
def test_producer_killed_mid_transaction_is_aborted_after_its_timeout(lib, txn_broker, topic):
    txn_timeout_ms = 3000
    bs = txn_broker.bootstrap
    create_topic(bs, topic)
    same = tid()
    spawned = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "txn_child.py"), lib, bs, same, topic, "5", str(txn_timeout_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(child.stdout.readline().strip()), daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        assert line == ["produced 0 4"], f"child said {line}"
        after = values("after", 3)
        assert send_plain(txn_producer_plain(bs), topic, after) == [5, 6, 7]
        assert end_offset(lib, bs, COMMITTED, topic, 0) == 0, "LSO while open"
    finally:
        child.kill()
        child.wait()
    # Aborted by the coordinator after transaction.timeout.ms (marker at 8): read_committed moves on to 9.
    assert read_all(lib, bs, COMMITTED, topic, {0: 9}) == {0: at(5, after)}
    visible = time.monotonic() - spawned
    assert visible >= txn_timeout_ms / 1000, f"the LSO moved after {visible:.2f}s, before the timeout"
    assert end_offset(lib, bs, COMMITTED, topic, 0) == 9
    assert read_all(lib, bs, UNCOMMITTED, topic, {0: 9}) == {0: at(0, values("dead", 5)) + at(5, after)}
    # The id is usable again.
    p = txn_producer(lib, bs, same)
    p.init()
    p.begin()
    again = values("again", 2)
    assert p.send(topic, 0, again) == [9, 10]
    p.commit()
    p.close()
    assert read_all(lib, bs, COMMITTED, topic, {0: 12}) == {0: at(5, after) + at(9, again)}
