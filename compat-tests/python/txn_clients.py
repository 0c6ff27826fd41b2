"""Transactional producers and read_committed / read_uncommitted readers behind one interface, for
confluent-kafka-python (librdkafka) and kafka-python, used by test_transactions.py and by
txn_child.py (a producer in a process of its own, to be SIGKILLed).

Every blocking client call is bounded: confluent-kafka-python's take a timeout; kafka-python's
commit/abort/send_offsets wait without one, so they run in a thread joined with a deadline."""

from __future__ import annotations

import threading
import time

TIMEOUT = 60.0
COMMITTED = "read_committed"
UNCOMMITTED = "read_uncommitted"
LIBS = ["confluent", "kafka-python"]


def bounded(fn, timeout: float = TIMEOUT):
    """Runs fn() in a thread; returns its result, re-raises its exception, fails after `timeout`."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} did not return within {timeout}s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


class ConfluentTxn:
    def __init__(self, bs: str, tid: str, timeout_ms: int = 60000):
        from confluent_kafka import Producer

        self.p = Producer(
            {
                "bootstrap.servers": bs,
                "transactional.id": tid,
                "transaction.timeout.ms": timeout_ms,
                "linger.ms": 5,
                "reconnect.backoff.ms": 50,
            }
        )

    def init(self):
        self.p.init_transactions(TIMEOUT)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic: str, partition: int, values: list[str]) -> list[int]:
        """Produces values to partition and returns their offsets once all are acknowledged."""
        offsets: list = [None] * len(values)
        errors = []

        def report(i):
            def cb(err, msg):
                if err is not None:
                    errors.append(err)
                else:
                    offsets[i] = msg.offset()

            return cb

        for i, v in enumerate(values):
            self.p.produce(topic, value=v.encode(), partition=partition, on_delivery=report(i))
        assert self.p.flush(TIMEOUT) == 0, "undelivered records"
        assert not errors, errors
        return offsets

    def try_send(self, topic: str, partition: int, value: str):
        """(True, offset) once acknowledged, or (False, the error)."""
        out: list = []
        try:
            self.p.produce(topic, value=value.encode(), partition=partition, on_delivery=lambda e, m: out.append((e, m)))
        except Exception as e:  # noqa: BLE001 - a local refusal (e.g. a fatal error already raised)
            return False, e
        try:
            self.p.flush(TIMEOUT)
        except Exception as e:  # noqa: BLE001 - flush re-raises the fatal error the report carries too
            if not out:
                return False, e
        if not out:
            return False, "no delivery report"
        err, msg = out[0]
        return (False, err) if err is not None else (True, msg.offset())

    def commit(self):
        self.p.commit_transaction(TIMEOUT)

    def abort(self):
        self.p.abort_transaction(TIMEOUT)

    def send_offsets(self, consumer, topic: str, partition: int, offset: int):
        from confluent_kafka import TopicPartition

        self.p.send_offsets_to_transaction(
            [TopicPartition(topic, partition, offset)], consumer.consumer_group_metadata(), TIMEOUT
        )

    @staticmethod
    def is_fenced(e: BaseException) -> bool:
        from confluent_kafka import KafkaError, KafkaException

        if not isinstance(e, KafkaException):
            return False
        err = e.args[0]
        return err.fatal() and err.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        )

    def close(self):
        pass


class KafkaPythonTxn:
    def __init__(self, bs: str, tid: str, timeout_ms: int = 60000):
        from kafka import KafkaProducer

        self.p = KafkaProducer(
            bootstrap_servers=bs,
            transactional_id=tid,
            transaction_timeout_ms=timeout_ms,
            max_block_ms=int(TIMEOUT * 1000),
            linger_ms=5,
        )

    def init(self):
        bounded(self.p.init_transactions)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic: str, partition: int, values: list[str]) -> list[int]:
        futures = [self.p.send(topic, v.encode(), partition=partition) for v in values]
        self.p.flush(timeout=TIMEOUT)
        return [f.get(timeout=TIMEOUT).offset for f in futures]

    def try_send(self, topic: str, partition: int, value: str):
        """(True, offset) once acknowledged, or (False, the error)."""
        try:
            return True, self.p.send(topic, value.encode(), partition=partition).get(timeout=TIMEOUT).offset
        except Exception as e:  # noqa: BLE001 - the error is the result
            return False, e

    def commit(self):
        bounded(self.p.commit_transaction)

    def abort(self):
        bounded(self.p.abort_transaction)

    def send_offsets(self, consumer, topic: str, partition: int, offset: int):
        from kafka import OffsetAndMetadata, TopicPartition

        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)}
        bounded(lambda: self.p.send_offsets_to_transaction(offsets, consumer.group_metadata()))

    @staticmethod
    def is_fenced(e: BaseException) -> bool:
        from kafka.errors import InvalidProducerEpochError, ProducerFencedError

        return isinstance(e, (ProducerFencedError, InvalidProducerEpochError))

    def close(self):
        bounded(lambda: self.p.close(timeout=0), 30)


def txn_producer(lib: str, bs: str, tid: str, timeout_ms: int = 60000):
    return {"confluent": ConfluentTxn, "kafka-python": KafkaPythonTxn}[lib](bs, tid, timeout_ms)


def confluent_consumer(bs: str, level: str, **extra):
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": bs,
        "group.id": "vltava-compat-unused",
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        "isolation.level": level,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def end_offset(lib: str, bs: str, level: str, topic: str, partition: int, until=None) -> int:
    """ListOffsets' latest offset at `level`: the LSO for read_committed, else the high watermark.
    With `until`, asks again (request/response round trips on one client, TIMEOUT bound) until the
    answer is `until`: markers follow EndTxn's answer, so the LSO moves a moment after it."""
    end = time.monotonic() + TIMEOUT
    if lib == "confluent":
        from confluent_kafka import TopicPartition

        c = confluent_consumer(bs, level)
        ask = lambda: c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT, cached=False)[1]  # noqa: E731
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bs, isolation_level=level, enable_auto_commit=False)
        tp = TopicPartition(topic, partition)
        ask = lambda: c.end_offsets([tp], timeout_ms=int(TIMEOUT * 1000))[tp]  # noqa: E731
    try:
        while True:
            got = ask()
            if until is None or got == until or time.monotonic() > end:
                return got
    finally:
        c.close()


class Reader:
    """An assign()-only reader at `level` that reads from given offsets until each partition's
    position is at an exact end offset (confluent: a partition EOF there; kafka-python: its
    position). Records at or past an end are kept, so exact comparisons catch them."""

    def __init__(self, lib: str, bs: str, level: str, fetch_bytes: int | None = None):
        self.lib = lib
        if lib == "confluent":
            extra = {"max.partition.fetch.bytes": fetch_bytes, "fetch.max.bytes": fetch_bytes, "message.max.bytes": fetch_bytes}
            extra = extra if fetch_bytes else {}
            self.c = confluent_consumer(bs, level, **extra)
        else:
            from kafka import KafkaConsumer

            extra = {"max_partition_fetch_bytes": fetch_bytes, "fetch_max_bytes": fetch_bytes} if fetch_bytes else {}
            self.c = KafkaConsumer(
                bootstrap_servers=bs, isolation_level=level, enable_auto_commit=False, fetch_max_wait_ms=100, **extra
            )

    def read(self, topic: str, start: dict[int, int], ends: dict[int, int], timeout: float = TIMEOUT):
        got: dict[int, list[tuple[int, str]]] = {p: [] for p in start}
        end = time.monotonic() + timeout
        if self.lib == "confluent":
            from confluent_kafka import KafkaError, KafkaException, TopicPartition

            self.c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
            done: set[int] = set()
            while len(done) < len(start):
                assert time.monotonic() < end, f"not at {ends} within {timeout}s: read {got}"
                m = self.c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(m.error())
                    pos = self.c.position([TopicPartition(topic, m.partition())])[0].offset
                    if pos < 0:  # nothing consumed yet (no record, no control record): at the start
                        pos = start[m.partition()]
                    if pos == ends[m.partition()]:
                        done.add(m.partition())
                    continue
                got[m.partition()].append((m.offset(), m.value().decode()))
            return got
        from kafka import TopicPartition

        tps = {p: TopicPartition(topic, p) for p in start}
        self.c.assign(list(tps.values()))
        for p, o in start.items():
            self.c.seek(tps[p], o)
        while any(self.c.position(tps[p]) != ends[p] for p in start):
            assert time.monotonic() < end, f"not at {ends} within {timeout}s: read {got}"
            for tp, records in self.c.poll(timeout_ms=500).items():
                got[tp.partition].extend((r.offset, r.value.decode()) for r in records)
        return got

    def close(self):
        self.c.close()


def read_all(lib: str, bs: str, level: str, topic: str, ends: dict[int, int]):
    r = Reader(lib, bs, level)
    try:
        return r.read(topic, {p: 0 for p in ends}, ends)
    finally:
        r.close()


def at(first: int, values: list[str]) -> list[tuple[int, str]]:
    return [(first + i, v) for i, v in enumerate(values)]
