#!/usr/bin/env python3
"""Writes the hand-made regression corpus in fuzz/corpus/ (known crashers and edge cases).

request/  a client's byte stream: size-prefixed frames (or broken prefixes)
batches/  a Produce records blob (concatenated record batches)

The fuzz driver adds what it finds to the same directories; `cargo test` replays all of them
(tests/fuzz_corpus.rs). The zstd bomb needs the `zstd` command.
"""
import gzip
import os
import struct
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus")


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def zigzag(n):
    return uvarint((n << 1) ^ (n >> 63))


def record(offset_delta, value):
    body = b"\x00" + zigzag(0) + zigzag(offset_delta) + zigzag(-1) + zigzag(len(value)) + value + uvarint(0)
    return zigzag(len(body)) + body


def batch(records_blob, count, codec=0, crc_ok=True, last_delta=None):
    last_delta = count - 1 if last_delta is None else last_delta
    after_crc = struct.pack(">hiqqqhii", codec, last_delta, 1_700_000_000_000, 1_700_000_000_000,
                            -1, -1, -1, count) + records_blob
    crc = crc32c(after_crc) ^ (0 if crc_ok else 1)
    body = struct.pack(">ibI", -1, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def header(key, version, flexible_header=False):
    h = struct.pack(">hhih", key, version, 1, -1)  # null client id
    return h + (b"\x00" if flexible_header else b"")


def write(kind, name, data):
    os.makedirs(os.path.join(ROOT, kind), exist_ok=True)
    with open(os.path.join(ROOT, kind, name), "wb") as f:
        f.write(data)


def main():
    r = lambda name, data: write("request", name, data)
    r("empty-stream", b"")
    for n in (1, 2, 3):
        r(f"size-prefix-{n}-bytes", b"\x00" * n)
    r("empty-frame", frame(b""))
    for n in (1, 3, 7):
        r(f"frame-{n}-bytes", frame(b"\x00\x12\x00\x03\x00\x00\x00"[:n]))
    r("negative-size", b"\xff\xff\xff\xff")
    r("size-i32-min", b"\x80\x00\x00\x00")
    r("size-above-limit", b"\x7f\xff\xff\xff" + b"\x00" * 16)
    r("size-then-nothing", struct.pack(">i", 1000) + b"\x00\x03")
    # The 14-byte request that made kafka-protocol reserve 2^31 array elements.
    r("metadata-v1-huge-array-14-bytes", frame(header(3, 1) + struct.pack(">i", 0x7FFFFFFF)))
    r("metadata-v12-compact-huge-array", frame(header(3, 12, True) + b"\xff\xff\xff\xff\x0f"))
    r("apiversions-v3-huge-tag-count", frame(header(18, 3, True) + b"\xff\xff\xff\xff\x0f"))
    r("produce-v3-huge-topic-array", frame(header(0, 3) + struct.pack(">hhii", -1, 1, 1000, 0x7FFFFFF0)))
    r("fetch-v4-huge-partition-array",
      frame(header(1, 4) + struct.pack(">iiiib", -1, 0, 1, 1 << 20, 0) + struct.pack(">i", 1)
            + struct.pack(">h", 1) + b"t" + struct.pack(">i", 0x7FFFFFFF)))
    r("negative-string-length", frame(struct.pack(">hhih", 3, 1, 1, -2)))
    r("unknown-api-key", frame(header(999, 0)))
    r("unsupported-version", frame(header(3, 99)))
    r("apiversions-v99", frame(header(18, 99)))
    ok = frame(header(18, 3, True) + b"\x02a\x021\x00")
    r("apiversions-then-garbage", ok + ok + frame(b"\x00\x12\x00\x03garbage"))
    # CreateTopics v7 asking for 2^31-1 partitions: refused by limits.max_partitions before allocating.
    topic = b"\x02" + uvarint(2) + b"t" + struct.pack(">ih", 0x7FFFFFFF, 1) + b"\x01\x01\x00"
    r("createtopics-v7-i32max-partitions",
      frame(header(19, 7, True) + topic + struct.pack(">ib", 5000, 0) + b"\x00"))
    # Produce v3 with batches that are wrong in each way validation checks.
    good = batch(record(0, b"hello"), 1)

    def produce(blob):
        topic = struct.pack(">h", 1) + b"p" + struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(blob)) + blob
        return frame(header(0, 3) + struct.pack(">hhi", -1, 1, 1000) + struct.pack(">i", 1) + topic)
    r("produce-v3-bad-crc", produce(batch(record(0, b"hello"), 1, crc_ok=False)))
    r("produce-v3-count-mismatch", produce(batch(record(0, b"hello"), 5)))
    r("produce-v3-good-batch", produce(good))

    b = lambda name, data: write("batches", name, data)
    b("empty", b"")
    b("one-byte", b"\x00")
    b("eleven-bytes", b"\x00" * 11)
    b("huge-batch-length", struct.pack(">qi", 0, 0x7FFFFFFF) + b"\x00" * 60)
    b("negative-batch-length", struct.pack(">qi", 0, -5) + b"\x00" * 60)
    b("magic-1", struct.pack(">qiib", 0, 60, 0, 1) + b"\x00" * 60)
    b("good", good)
    b("good-then-truncated", good + good[:30])
    b("bad-crc", batch(record(0, b"hello"), 1, crc_ok=False))
    b("count-mismatch", batch(record(0, b"x"), 3))
    b("negative-last-offset-delta", batch(record(0, b"x"), 1, last_delta=-1))
    b("unknown-codec", batch(record(0, b"x"), 1, codec=6))
    # Decompression bombs with valid CRCs: 64 MiB of zeros in one record.
    zeros = record(0, b"\x00" * (64 << 20))
    b("gzip-bomb", batch(gzip.compress(zeros, 9), 1, codec=1))
    try:
        z = subprocess.run(["zstd", "-19", "-c", "-q"], input=zeros, capture_output=True, check=True).stdout
        b("zstd-bomb", batch(z, 1, codec=4))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"zstd bomb skipped: {e}", file=sys.stderr)


main()
