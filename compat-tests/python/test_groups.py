"""Consumer groups with real clients: confluent-kafka-python (librdkafka), kafka-python and kcat -G.

Each test starts its own broker through the ``broker_factory`` fixture with a small config file:
no initial rebalance delay (Kafka's 3 s default would only slow the tests down) and few offsets
partitions. Waits poll the clients (which is how they make progress) under a deadline; nothing
sleeps to synchronise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import deadline

TIMEOUT = 60.0
KCAT = shutil.which("kcat") or shutil.which("kafkacat")

GROUP_CONFIG = """
group_initial_rebalance_delay_ms = 0
offsets_topic_num_partitions = 5
"""


@pytest.fixture
def gbroker(broker_factory):
    """A broker with fast group settings."""
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-groups-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(GROUP_CONFIG)
    return broker_factory(extra_args=["--config", cfg])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bs: str, topic: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": bs})
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    fs[topic].result(timeout=TIMEOUT)


def produce(bs: str, topic: str, partitions: int, n: int, tag: str) -> set[bytes]:
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": False, "linger.ms": 5})
    values = set()
    for i in range(n):
        v = f"{tag}-{i}".encode()
        values.add(v)
        p.produce(topic, value=v, partition=i % partitions)
    assert p.flush(TIMEOUT) == 0
    return values


class GroupConsumer:
    """A confluent-kafka consumer that commits each record synchronously after consuming it and
    remembers what it was assigned and which commits failed."""

    def __init__(self, bs: str, group: str, topic: str, **extra):
        conf = {
            "bootstrap.servers": bs,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        }
        conf.update(extra)
        self.c = Consumer(conf)
        self.assigned: set[int] = set()
        self.assignments = 0
        self.fatal: KafkaError | None = None
        self.cooperative = conf.get("partition.assignment.strategy") == "cooperative-sticky"

        def on_assign(c, parts):
            self.assignments += 1
            if self.cooperative:
                self.assigned |= {p.partition for p in parts}
            else:
                self.assigned = {p.partition for p in parts}

        def on_revoke(c, parts):
            if self.cooperative:
                self.assigned -= {p.partition for p in parts}
            else:
                self.assigned = set()

        self.c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)

    def poll(self, seen: list, failed_commits: set):
        m = self.c.poll(0.05)
        if m is None:
            return
        if m.error():
            if m.error().fatal() or m.error().code() == KafkaError._FATAL:
                self.fatal = m.error()
                return
            if m.error().code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(m.error())
        seen.append((m.partition(), m.offset(), m.value()))
        try:
            self.c.commit(message=m, asynchronous=False)
        except KafkaException:
            # A commit racing a rebalance may fail (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION):
            # this record may then be delivered again to the partition's next owner.
            failed_commits.add((m.partition(), m.offset()))


def run_until(consumers, cond, seen, failed, what: str, timeout=TIMEOUT):
    end = deadline(timeout)
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}; seen {len(seen)}"
        for c in consumers:
            c.poll(seen, failed)


def test_eager_group_rebalances_as_members_come_and_go(gbroker):
    bs, topic, group = gbroker.bootstrap, unique("grp"), unique("g")
    create_topic(bs, topic, 4)
    seen: list = []
    failed: set = set()
    expected = produce(bs, topic, 4, 200, "a")
    c1 = GroupConsumer(bs, group, topic)
    c2 = GroupConsumer(bs, group, topic)
    values = lambda: {v for _, _, v in seen}  # noqa: E731
    run_until(
        [c1, c2],
        lambda: values() >= expected and c1.assigned and c2.assigned
        and c1.assigned | c2.assigned == {0, 1, 2, 3},
        seen, failed, "two members to split the topic",
    )
    assert not (c1.assigned & c2.assigned)

    c3 = GroupConsumer(bs, group, topic)
    expected |= produce(bs, topic, 4, 200, "b")
    run_until(
        [c1, c2, c3],
        lambda: values() >= expected and all(c.assigned for c in (c1, c2, c3))
        and c1.assigned | c2.assigned | c3.assigned == {0, 1, 2, 3},
        seen, failed, "a third member to get partitions",
    )

    c1.c.close()
    expected |= produce(bs, topic, 4, 200, "c")
    run_until(
        [c2, c3],
        lambda: values() >= expected and c2.assigned | c3.assigned == {0, 1, 2, 3},
        seen, failed, "the remaining members to take over",
    )
    positions = [(p, o) for p, o, _ in seen]
    dupes = {po for po in positions if positions.count(po) > 1}
    assert dupes <= failed, f"records consumed twice although committed: {sorted(dupes - failed)[:10]}"
    assert values() == expected
    c2.c.close()
    c3.c.close()


VICTIM = """
import sys
from confluent_kafka import Consumer

bootstrap, group, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe([topic], on_assign=lambda _c, parts: print(
    "assigned", ",".join(str(p.partition) for p in parts), flush=True))
while True:
    c.poll(0.1)
"""


def test_member_killed_without_leaving_loses_its_partitions_after_session_timeout(gbroker):
    """A member whose process is SIGKILLed never sends LeaveGroup: the coordinator must notice the
    silence (session.timeout.ms), rebalance, and give its partitions to the member that is left."""
    import sys
    import threading

    bs, topic, group = gbroker.bootstrap, unique("kill"), unique("g")
    create_topic(bs, topic, 4)
    seen: list = []
    failed: set = set()
    survivor = GroupConsumer(bs, group, topic)
    run_until([survivor], lambda: survivor.assigned == {0, 1, 2, 3}, seen, failed, "survivor owns all")

    victim = subprocess.Popen([sys.executable, "-c", VICTIM, bs, group, topic],
                              stdout=subprocess.PIPE, text=True)
    victim_parts: set = set()
    victim_assigned = threading.Event()

    def read_victim():
        for line in victim.stdout:
            parts = line.split()[1:] if line.startswith("assigned") else []
            if parts and parts[0]:
                victim_parts.update(int(p) for p in parts[0].split(","))
                victim_assigned.set()

    threading.Thread(target=read_victim, daemon=True).start()
    try:
        run_until([survivor],
                  lambda: victim_assigned.is_set() and len(survivor.assigned) == 2,
                  seen, failed, "the second member to take half the partitions")
        assert victim_parts and not (victim_parts & survivor.assigned)
    finally:
        victim.kill()  # SIGKILL: no LeaveGroup
        victim.wait()

    expected = produce(bs, topic, 4, 200, "k")
    run_until([survivor],
              lambda: survivor.assigned == {0, 1, 2, 3} and {v for _, _, v in seen} >= expected,
              seen, failed, "the survivor to take over the dead member's partitions")
    positions = [(p, o) for p, o, _ in seen]
    dupes = {po for po in positions if positions.count(po) > 1}
    assert dupes <= failed, f"records consumed twice although committed: {sorted(dupes - failed)[:10]}"
    survivor.c.close()


def test_cooperative_sticky_group(gbroker):
    bs, topic, group = gbroker.bootstrap, unique("coop"), unique("g")
    create_topic(bs, topic, 4)
    expected = produce(bs, topic, 4, 100, "x")
    seen: list = []
    failed: set = set()
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    c1 = GroupConsumer(bs, group, topic, **extra)
    run_until([c1], lambda: c1.assigned == {0, 1, 2, 3}, seen, failed, "c1 owns all")
    c2 = GroupConsumer(bs, group, topic, **extra)
    run_until(
        [c1, c2],
        lambda: {v for _, _, v in seen} >= expected and len(c1.assigned) == 2 and len(c2.assigned) == 2,
        seen, failed, "incremental rebalance to 2+2",
    )
    assert c1.assigned | c2.assigned == {0, 1, 2, 3}
    c1.c.close()
    c2.c.close()


def test_committed_offsets_survive_kill9(broker_factory):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-groups-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(GROUP_CONFIG)
    b = broker_factory(extra_args=["--config", cfg])
    topic, group = unique("dur"), unique("g")
    create_topic(b.bootstrap, topic, 2)
    produce(b.bootstrap, topic, 2, 20, "d")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(
        offsets=[TopicPartition(topic, 0, 6, metadata="six"), TopicPartition(topic, 1, 3)],
        asynchronous=False,
    )
    c.close()

    b.restart()  # kill -9, then start on the same data directory
    c = Consumer(
        {
            "bootstrap.servers": b.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=TIMEOUT)
    assert [(tp.partition, tp.offset) for tp in got] == [(0, 6), (1, 3)]
    assert got[0].metadata == "six"
    c.subscribe([topic])
    first: dict[int, int] = {}
    end = deadline(TIMEOUT)
    while len(first) < 2:
        assert time.monotonic() < end, f"resumed only {first}"
        m = c.poll(0.2)
        if m is None or m.error():
            assert m is None or m.error().code() == KafkaError._PARTITION_EOF, m and m.error()
            continue
        first.setdefault(m.partition(), m.offset())
    assert first == {0: 6, 1: 3}
    c.close()


def test_static_membership(gbroker):
    bs, topic, group = gbroker.bootstrap, unique("static"), unique("g")
    create_topic(bs, topic, 2)
    produce(bs, topic, 2, 10, "s")
    seen: list = []
    failed: set = set()
    a = GroupConsumer(bs, group, topic, **{"group.instance.id": "inst-a"})
    run_until([a], lambda: a.assigned == {0, 1}, seen, failed, "static member assigned")
    admin = AdminClient({"bootstrap.servers": bs})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert [m.group_instance_id for m in desc.members] == ["inst-a"]

    # A second consumer with the same group.instance.id takes over; the first is fenced.
    b = GroupConsumer(bs, group, topic, **{"group.instance.id": "inst-a"})
    end = deadline(TIMEOUT)
    while a.fatal is None or b.assigned != {0, 1}:
        assert time.monotonic() < end, f"fenced={a.fatal} b={b.assigned}"
        a.poll(seen, failed)
        b.poll(seen, failed)
    # librdkafka raises the fencing as its fatal error (code _FATAL, naming the broker's error).
    assert "fenced" in a.fatal.str().lower(), a.fatal
    desc = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert [m.group_instance_id for m in desc.members] == ["inst-a"]
    assert str(desc.state).endswith("STABLE")
    b.c.close()
    a.c.close()


def test_static_member_restarted_within_session_timeout_gets_its_partitions_back_without_rebalance(gbroker):
    """KIP-345: a static member that closes (librdkafka sends no LeaveGroup for static members) and
    comes back with the same group.instance.id before its session times out is handed its old
    partitions; the other member is never revoked nor reassigned."""
    bs, topic, group = gbroker.bootstrap, unique("restart"), unique("g")
    create_topic(bs, topic, 4)
    seen: list = []
    failed: set = set()
    values = lambda: {v for _, _, v in seen}  # noqa: E731

    def static(instance: str) -> dict:
        return {"group.instance.id": instance, "session.timeout.ms": 30000}

    a = GroupConsumer(bs, group, topic, **static("inst-a"))
    b = GroupConsumer(bs, group, topic, **static("inst-b"))
    expected = produce(bs, topic, 4, 100, "before")
    run_until(
        [a, b],
        lambda: len(a.assigned) == 2 and len(b.assigned) == 2
        and a.assigned | b.assigned == {0, 1, 2, 3} and values() >= expected,
        seen, failed, "two static members to split the topic",
    )
    a_parts, b_parts, b_assignments = set(a.assigned), set(b.assigned), b.assignments
    admin = AdminClient({"bootstrap.servers": bs})
    before = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    a_old_id = next(m.member_id for m in before.members if m.group_instance_id == "inst-a")

    a.c.close()
    # The departed static member still holds its partitions: nothing has rebalanced.
    gone = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert str(gone.state).endswith("STABLE")
    assert sorted(m.group_instance_id for m in gone.members) == ["inst-a", "inst-b"]

    expected |= produce(bs, topic, 4, 100, "after")
    a2 = GroupConsumer(bs, group, topic, **static("inst-a"))
    run_until(
        [a2, b],
        lambda: a2.assigned == a_parts and values() >= expected,
        seen, failed, "the restarted static member to get its partitions back",
    )
    assert (b.assigned, b.assignments) == (b_parts, b_assignments), "the other member was rebalanced"
    after = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert str(after.state).endswith("STABLE")
    members = {m.group_instance_id: m for m in after.members}
    assert sorted(members) == ["inst-a", "inst-b"]
    assert members["inst-a"].member_id != a_old_id, "the restarted member has a new member id"
    assert {tp.partition for tp in members["inst-a"].assignment.topic_partitions} == a_parts
    positions = [(p, o) for p, o, _ in seen]
    dupes = {po for po in positions if positions.count(po) > 1}
    assert dupes <= failed, f"records consumed twice although committed: {sorted(dupes - failed)[:10]}"
    a2.c.close()
    b.c.close()


def test_admin_client_group_operations(gbroker):
    bs, topic, group = gbroker.bootstrap, unique("adm"), unique("g")
    create_topic(bs, topic, 3)
    produce(bs, topic, 3, 30, "m")
    seen: list = []
    failed: set = set()
    c = GroupConsumer(bs, group, topic)
    run_until([c], lambda: len(seen) == 30, seen, failed, "all records")
    admin = AdminClient({"bootstrap.servers": bs})

    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    assert group in [g.group_id for g in listed.valid]
    desc = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert len(desc.members) == 1
    assert {tp.partition for tp in desc.members[0].assignment.topic_partitions} == {0, 1, 2}
    assert desc.partition_assignor == "range"
    assert str(desc.state).endswith("STABLE")

    from confluent_kafka import ConsumerGroupTopicPartitions

    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(
        timeout=TIMEOUT
    )
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 10), (1, 10), (2, 10)]

    # Deleting or altering offsets of a group with members is refused; after it empties, both work.
    fs = admin.delete_consumer_groups([group])
    with pytest.raises(KafkaException) as e:
        fs[group].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    c.c.close()
    altered = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1, 4)])]
    )[group].result(timeout=TIMEOUT)
    assert [(tp.partition, tp.offset, tp.error) for tp in altered.topic_partitions] == [(1, 4, None)]
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])]
    )[group].result(timeout=TIMEOUT)
    assert [(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(1, 4)]
    from confluent_kafka import ConsumerGroupState

    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=TIMEOUT)
    assert group in [g.group_id for g in empty.valid]
    admin.delete_consumer_groups([group])[group].result(timeout=TIMEOUT)
    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    assert group not in [g.group_id for g in listed.valid]


def test_kafka_python_group_default_assignors(gbroker):
    """kafka-python's poll() may block in JoinGroup, so each consumer polls on its own thread (as
    applications do); the main thread waits on a condition the pollers signal.

    poll() uses a 1 s timeout: with 100 ms, kafka-python 3.0.12 sometimes loses the wake-up of its
    own event loop when poll() times out while a JoinGroup is in flight. The consumer thread then
    waits forever in ensure_coordinator_ready without sending anything (thread dump; the broker had
    answered every request within a millisecond). About 1 run in 10; 0 in 40 with 1 s."""
    import threading

    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.errors import CommitFailedError, RebalanceInProgressError

    bs, topic, group = gbroker.bootstrap, unique("kp"), unique("g")
    create_topic(bs, topic, 4)
    expected = produce(bs, topic, 4, 80, "k")
    got: set = set()
    assignments: dict[int, set] = {}
    changed = threading.Condition()
    stop = threading.Event()
    errors: list = []

    def run(i: int):
        c = KafkaConsumer(
            topic,
            bootstrap_servers=bs,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        try:
            while not stop.is_set():
                batch = c.poll(timeout_ms=1000)
                if batch:  # commit what was processed, as applications do
                    try:
                        c.commit()
                    except (CommitFailedError, RebalanceInProgressError):
                        pass  # the group is rebalancing: the next poll() rejoins, then we commit again
                with changed:
                    for recs in batch.values():
                        got.update(r.value for r in recs)
                    assignments[i] = {tp.partition for tp in c.assignment()}
                    changed.notify_all()
        except Exception as e:  # surfaced by the main thread
            errors.append(e)
            with changed:
                changed.notify_all()
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()

    def done():
        parts = [assignments.get(i, set()) for i in range(2)]
        return errors or (got >= expected and all(parts) and parts[0] | parts[1] == {0, 1, 2, 3}
                          and not parts[0] & parts[1])

    with changed:
        ok = changed.wait_for(done, timeout=TIMEOUT)
    if not ok:
        # Show where each client thread is stuck (kafka-python has had heartbeat-thread deadlocks).
        import faulthandler
        import sys

        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    stop.set()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    assert ok, f"got {len(got)} of {len(expected)}; assignments {assignments}"
    check = KafkaConsumer(bootstrap_servers=bs, group_id=group, enable_auto_commit=False)
    assert [check.committed(KTP(topic, p)) for p in range(4)] == [20, 20, 20, 20]
    check.close()


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_balanced_consumer(gbroker):
    bs, topic, group = gbroker.bootstrap, unique("kcat"), unique("g")
    create_topic(bs, topic, 2)
    expected = produce(bs, topic, 2, 20, "c")
    r = subprocess.run(
        [KCAT, "-b", bs, "-G", group, "-o", "beginning", "-c", "20", "-f", "%s\\n", "-X",
         "session.timeout.ms=6000", topic],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert set(r.stdout.split()) == expected
    admin = AdminClient({"bootstrap.servers": bs})
    from confluent_kafka import ConsumerGroupTopicPartitions

    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(
        timeout=TIMEOUT
    )
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 10), (1, 10)]


class KafkaPythonWire:
    """One connection speaking requests through kafka-python's protocol classes, which kafka-python
    generates from Kafka's own JSON message schemas: an encoder and decoder independent of ours, and
    the only client codec here that has OffsetCommit/OffsetFetch v10 (its consumer stops at v8)."""

    def __init__(self, bootstrap: str):
        import socket

        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.correlation = 0

    def call(self, request, response_class, version: int):
        import struct

        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="kafka-python-wire")
        self.sock.sendall(request.encode(version=version, header=True, framed=True))
        size = struct.unpack(">i", self._read(4))[0]
        response = response_class.decode(self._read(size), version=version, header=True)
        assert response.header.correlation_id == self.correlation
        return response

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "broker closed the connection"
            data += chunk
        return data


def test_kafka_python_codec_commits_and_fetches_offsets_by_topic_id_v10(gbroker):
    """OffsetCommit/OffsetFetch v10 (KIP-848) name topics by id; offsets committed that way are the
    topic's offsets for every reader, here a librdkafka consumer of the same group."""
    from kafka.protocol.consumer import (
        OffsetCommitRequest,
        OffsetCommitResponse,
        OffsetFetchRequest,
        OffsetFetchResponse,
    )
    from kafka.protocol.metadata import (
        ApiVersionsRequest,
        ApiVersionsResponse,
        MetadataRequest,
        MetadataResponse,
    )

    bs, topic, group = gbroker.bootstrap, unique("v10"), unique("g")
    create_topic(bs, topic, 2)
    wire = KafkaPythonWire(bs)
    advertised = wire.call(ApiVersionsRequest(), ApiVersionsResponse, 3)
    assert {k.api_key: k.max_version for k in advertised.api_keys if k.api_key in (8, 9)} == {8: 10, 9: 10}
    md = wire.call(
        MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False),
        MetadataResponse,
        12,
    )
    topic_id, stranger = md.topics[0].topic_id, uuid.uuid4()
    assert topic_id.int != 0

    Topic = OffsetCommitRequest.OffsetCommitRequestTopic
    Part = Topic.OffsetCommitRequestPartition

    def part(p: int, offset: int):
        return Part(partition_index=p, committed_offset=offset, committed_leader_epoch=-1, committed_metadata="by-id")

    committed = wire.call(
        OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=-1,
            member_id="",
            group_instance_id=None,
            topics=[
                Topic(topic_id=topic_id, partitions=[part(0, 3), part(1, 5)]),
                Topic(topic_id=stranger, partitions=[part(0, 1)]),
            ],
        ),
        OffsetCommitResponse,
        10,
    )
    answered = {t.topic_id: sorted((p.partition_index, p.error_code) for p in t.partitions) for t in committed.topics}
    assert answered == {topic_id: [(0, 0), (1, 0)], stranger: [(0, 100)]}, "UNKNOWN_TOPIC_ID for an unknown id"

    Group = OffsetFetchRequest.OffsetFetchRequestGroup
    GroupTopic = Group.OffsetFetchRequestTopics

    def fetch(topics):
        r = wire.call(
            OffsetFetchRequest(
                groups=[Group(group_id=group, member_id=None, member_epoch=-1, topics=topics)], require_stable=False
            ),
            OffsetFetchResponse,
            10,
        )
        assert r.groups[0].error_code == 0
        return {
            t.topic_id: sorted((p.partition_index, p.committed_offset, p.metadata, p.error_code) for p in t.partitions)
            for t in r.groups[0].topics
        }

    ours = [(0, 3, "by-id", 0), (1, 5, "by-id", 0)]
    assert fetch(None) == {topic_id: ours}
    asked = [GroupTopic(topic_id=topic_id, partition_indexes=[0, 1]), GroupTopic(topic_id=stranger, partition_indexes=[2])]
    assert fetch(asked) == {topic_id: ours, stranger: [(2, -1, "", 100)]}

    # A librdkafka member of the group reads the same committed offsets (by name, OffsetFetch <= v9).
    # Its metadata is not compared: confluent-kafka-python reads librdkafka's metadata buffer, which is
    # not NUL-terminated, as a C string and returns bytes past its end.
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=TIMEOUT)
        assert sorted((tp.partition, tp.offset, tp.error) for tp in got) == [(0, 3, None), (1, 5, None)]
    finally:
        c.close()
