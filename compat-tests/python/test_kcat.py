"""kcat (Debian package, librdkafka 2.0.2) driven through subprocess.

kcat's consumer (-C without -G) is a simple assign-style consumer, so it needs
no consumer groups. Every kcat run has a timeout so a hang fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
TIMEOUT = 60


def kcat(bs: str, *args: str, stdin: bytes | None = None) -> str:
    assert KCAT, "kcat is not installed (Debian package `kcat`; .ci/run installs it)"
    cmd = [KCAT, "-b", bs, *args]
    if "-P" in args:
        cmd += ["-X", "enable.idempotence=false"]
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\nstdout: {r.stdout[-2000:]!r}\nstderr: {r.stderr[-4000:]!r}"
    return r.stdout.decode()


def consume_json(bs: str, topic: str, *args: str) -> list[dict]:
    out = kcat(bs, "-C", "-t", topic, "-e", "-J", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def headers_of(m: dict) -> list[tuple[str, str]]:
    h = m.get("headers") or []
    return list(zip(h[0::2], h[1::2]))


def produce_lines(bs: str, topic: str, lines: list[str], *args: str) -> None:
    kcat(bs, "-P", "-t", topic, "-K:", *args, stdin=("\n".join(lines) + "\n").encode())


def test_metadata_lists_broker_and_topic(broker, topic):
    produce_lines(broker.bootstrap, topic, ["k:v"])  # auto-creates the topic
    md = json.loads(kcat(broker.bootstrap, "-L", "-J"))
    assert [b["name"] for b in md["brokers"]] == [broker.bootstrap], md["brokers"]
    node = md["brokers"][0]["id"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, sorted(topics)
    parts = topics[topic]["partitions"]
    assert [p["partition"] for p in parts] == [0]
    assert parts[0]["leader"] == node
    # Text output too
    text = kcat(broker.bootstrap, "-L", "-t", topic)
    assert f'topic "{topic}" with 1 partitions' in text, text
    assert f"broker {node} at {broker.bootstrap}" in text, text


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_keys_headers_and_consume_back(broker, topic, codec):
    bs = broker.bootstrap
    n = 40
    lines = [f"key-{i}:value number {i} " + "x" * (i % 13) for i in range(n)]
    produce_lines(bs, topic, lines, "-H", "source=kcat", "-H", "codec=" + codec, "-X", f"compression.codec={codec}")
    msgs = consume_json(bs, topic, "-o", "beginning")
    assert len(msgs) == n, msgs[-3:]
    for i, m in enumerate(msgs):
        k, v = lines[i].split(":", 1)
        assert (m["partition"], m["offset"], m["key"], m["payload"]) == (0, i, k, v)
        assert headers_of(m) == [("source", "kcat"), ("codec", codec)]
        assert m["tstype"] == "create"


def test_consume_from_offset_inside_batch_and_relative(broker, topic):
    bs = broker.bootstrap
    lines = [f"k{i}:v{i}" for i in range(30)]
    # A single kcat -P run with a long linger puts everything in one batch.
    produce_lines(bs, topic, lines, "-X", "linger.ms=1000", "-z", "lz4")

    msgs = consume_json(bs, topic, "-o", "17")
    assert [m["offset"] for m in msgs] == list(range(17, 30))
    assert [m["key"] for m in msgs] == [f"k{i}" for i in range(17, 30)]

    # -o -2: two messages before the end
    msgs = consume_json(bs, topic, "-o", "-2")
    assert [(m["offset"], m["payload"]) for m in msgs] == [(28, "v28"), (29, "v29")]

    # -c limits the count; plain-text format string
    out = kcat(bs, "-C", "-t", topic, "-o", "5", "-c", "3", "-f", "%o %k %s\n")
    assert out.splitlines() == ["5 k5 v5", "6 k6 v6", "7 k7 v7"]


def test_query_offset_for_timestamp(broker, topic):
    bs = broker.bootstrap
    produce_lines(bs, topic, [f"k{i}:v{i}" for i in range(5)])
    msgs = consume_json(bs, topic, "-o", "beginning")
    ts = [m["ts"] for m in msgs]
    # -Q -t topic:partition:timestamp prints the first offset with ts >= timestamp
    out = kcat(bs, "-Q", "-t", f"{topic}:0:{ts[2]}")
    first = next(i for i, t in enumerate(ts) if t >= ts[2])
    assert f"offset {first}" in out, out


def test_null_keys_and_values_with_Z(broker, topic):
    bs = broker.bootstrap
    # -Z: empty key/value fields are sent as NULL
    produce_lines(bs, topic, ["k1:", ":v2", "k3:v3"], "-Z")
    msgs = consume_json(bs, topic, "-o", "beginning")
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == [(0, "k1", None), (1, None, "v2"), (2, "k3", "v3")]
    assert all("headers" not in m or not m["headers"] for m in msgs)
