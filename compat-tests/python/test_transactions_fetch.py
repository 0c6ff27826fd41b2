"""Large transactions read in small fetches, confluent-kafka-python and kafka-python against vltava: an
aborted transaction of many batches, a committed one, a plain record, another aborted one and a small
committed one on one partition of 16 KiB segments, read with 2 KiB fetches (each fetch answer must list the
aborted transactions its range overlaps), read_committed and read_uncommitted, from the start and from
inside the first aborted transaction."""

from __future__ import annotations

import uuid

import pytest

from test_transactions import send_plain, txn_broker, txn_producer_plain  # noqa: F401 (txn_broker: a fixture)
from txn_clients import COMMITTED, LIBS, UNCOMMITTED, Reader, txn_producer


def batches(p, topic: str, tag: str, n: int, per: int = 100) -> list[tuple[int, str]]:
    """n records `tag-i` (padded) sent `per` at a time (several batches); (offset, value) of each."""
    out: list[tuple[int, str]] = []
    for first in range(0, n, per):
        vals = [f"{tag}-{i}-{'p' * 40}" for i in range(first, min(n, first + per))]
        out.extend(zip(p.send(topic, 0, vals), vals))
    return out


@pytest.mark.parametrize("lib", LIBS)
def test_large_transactions_in_small_fetches(lib, txn_broker, topic):  # noqa: F811
    bs = txn_broker.bootstrap
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bs})
    fs = admin.create_topics([NewTopic(topic, 1, 1, config={"segment.bytes": "16384"})])
    fs[topic].result(timeout=60)
    p = txn_producer(lib, bs, f"tid-{uuid.uuid4().hex[:8]}")
    p.init()
    p.begin()
    aborted1 = batches(p, topic, "a1", 1200)
    p.abort()
    p.begin()
    committed1 = batches(p, topic, "c1", 1200)
    p.commit()
    plain_off = send_plain(txn_producer_plain(bs), topic, ["plain"])[0]
    p.begin()
    aborted2 = batches(p, topic, "a2", 300)
    p.abort()
    p.begin()
    committed2 = batches(p, topic, "c2", 10)
    p.commit()
    p.close()
    end = committed2[-1][0] + 2  # the last commit marker
    assert aborted1[0][0] == 0 and plain_off == committed1[-1][0] + 2
    expected = committed1 + [(plain_off, "plain")] + committed2
    everything = aborted1 + committed1 + [(plain_off, "plain")] + aborted2 + committed2
    for level, want in ((COMMITTED, expected), (UNCOMMITTED, everything)):
        for start in (0, 700):
            r = Reader(lib, bs, level, fetch_bytes=2048)
            try:
                got = r.read(topic, {0: start}, {0: end})[0]
            finally:
                r.close()
            want_from = [(o, v) for o, v in want if o >= start]
            assert len(got) == len(want_from) and got == want_from, (level, start, len(got), len(want_from))
