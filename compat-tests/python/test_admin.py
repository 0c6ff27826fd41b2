"""Admin APIs with real clients, confluent-kafka-python's (librdkafka) and kafka-python's admin
clients: DescribeConfigs for a topic with overrides and for the broker, DeleteRecords,
CreatePartitions, IncrementalAlterConfigs and AlterConfigs."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

TIMEOUT = 30.0


def test_confluent_describe_configs_of_a_topic_and_the_broker(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    nt = NewTopic(topic, num_partitions=1, replication_factor=1,
                  config={"retention.ms": "1000", "cleanup.policy": "compact"})
    a.create_topics([nt])[topic].result(timeout=TIMEOUT)

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=TIMEOUT)
    r = configs["retention.ms"]
    assert (r.value, r.source, r.is_read_only, r.is_default) == (
        "1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False, False)
    # librdkafka asks for synonyms: the topic's own value first, then the broker's default.
    assert list(r.synonyms) == ["retention.ms", "log.retention.ms"]
    assert r.synonyms["log.retention.ms"].value == "604800000"
    assert configs["cleanup.policy"].value == "compact"
    s = configs["segment.bytes"]
    assert (s.value, s.source, s.is_default) == ("1073741824", ConfigSource.DEFAULT_CONFIG.value, True)

    node = ConfigResource(ConfigResource.Type.BROKER, "1")
    bc = a.describe_configs([node])[node].result(timeout=TIMEOUT)
    assert bc["num.partitions"].value == "1"
    assert bc["num.partitions"].is_read_only
    assert bc["advertised.listeners"].value == f"PLAINTEXT://{broker.bootstrap}"
    assert bc["log.retention.ms"].value == "604800000"

    missing = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic")
    with pytest.raises(KafkaException) as e:
        a.describe_configs([missing])[missing].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_kafka_python_describe_configs(broker, topic):
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KNewTopic(topic, 2, 1, topic_configs={"max.message.bytes": "65536"})])
        res = KConfigResource(ConfigResourceType.TOPIC, topic)
        every = a.describe_configs([res], config_filter="all")["topic"][topic]
        m = every["max.message.bytes"]
        assert (m["value"], m["config_source"], m["config_type"]) == ("65536", "DYNAMIC_TOPIC_CONFIG", "INT")
        assert every["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
        # kafka-python's default filter keeps what differs from the defaults.
        assert list(a.describe_configs([res])["topic"][topic]) == ["max.message.bytes"]
        node = KConfigResource(ConfigResourceType.BROKER, "1")
        b = a.describe_configs([node], config_filter="all")["broker"]["1"]
        assert b["auto.create.topics.enable"]["value"] == "true"
        assert b["auto.create.topics.enable"]["read_only"] is True
    finally:
        a.close()


def test_confluent_delete_records_moves_the_low_watermark(broker, topic):
    from confluent_kafka import Consumer, Producer, TopicPartition

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=TIMEOUT)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(10):
        for part in (0, 1):
            p.produce(topic, value=f"v{i}".encode(), partition=part)
        p.flush(TIMEOUT)  # one batch per record, so the deletion point falls between batches

    futures = a.delete_records([TopicPartition(topic, 0, 4), TopicPartition(topic, 1, -1)])
    lows = {tp.partition: f.result(timeout=TIMEOUT).low_watermark for tp, f in futures.items()}
    assert lows == {0: 4, 1: 10}

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (4, 10)
    assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=TIMEOUT) == (10, 10)
    c.assign([TopicPartition(topic, 0, 4)])
    got = []
    while len(got) < 6:
        m = c.poll(TIMEOUT)
        assert m is not None and m.error() is None, m and m.error()
        got.append((m.offset(), m.value()))
    assert got == [(i, f"v{i}".encode()) for i in range(4, 10)]
    c.close()

    with pytest.raises(KafkaException) as e:
        a.delete_records([TopicPartition(topic, 0, 11)])[TopicPartition(topic, 0, 11)].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


def test_kafka_python_delete_records(broker, topic):
    from kafka import KafkaProducer, TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KNewTopic(topic, 1, 1)])
        p = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for i in range(5):
            p.send(topic, f"k{i}".encode(), partition=0).get(timeout=TIMEOUT)
        p.close()
        got = a.delete_records({KTopicPartition(topic, 0): 3})
        assert got[KTopicPartition(topic, 0)]["low_watermark"] == 3
    finally:
        a.close()


def test_confluent_create_partitions_and_incremental_alter_configs(broker, topic):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, NewPartitions

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=TIMEOUT)
    a.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=TIMEOUT)
    assert len(a.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions) == 3
    p = Producer({"bootstrap.servers": broker.bootstrap})
    delivered = []
    p.produce(topic, value=b"new", partition=2, on_delivery=lambda err, m: delivered.append((err, m.partition())))
    p.flush(TIMEOUT)
    assert delivered == [(None, 2)]
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=TIMEOUT)
    got = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    configs = list(got.values())[0].result(timeout=TIMEOUT)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_kafka_python_create_partitions_and_alter_configs(broker, topic):
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient
    from kafka.admin import NewPartitions as KNewPartitions
    from kafka.admin import NewTopic as KNewTopic

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KNewTopic(topic, 1, 1, topic_configs={"retention.ms": "1000"})])
        a.create_partitions({topic: KNewPartitions(4)})
        assert len(a.describe_topics([topic])[0]["partitions"]) == 4
        modified = lambda: a.describe_configs(  # noqa: E731
            [KConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
        # The default path is IncrementalAlterConfigs: a SET keeps the other overrides.
        a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "1048576"})])
        got = modified()
        assert {k: v["value"] for k, v in got.items()} == {"retention.ms": "1000", "segment.bytes": "1048576"}
        a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": ("DELETE", None)})])
        assert sorted(modified()) == ["segment.bytes"]
        # AlterConfigs (legacy) replaces the whole set; kafka-python sends the other modified keys too.
        a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "2000"})],
                        incremental=False)
        assert {k: v["value"] for k, v in modified().items()} == {"retention.ms": "2000", "segment.bytes": "1048576"}
    finally:
        a.close()


def test_confluent_describe_cluster(broker):
    # librdkafka answers describe_cluster from a Metadata request.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = a.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT)
    host, port = broker.bootstrap.rsplit(":", 1)
    assert [(n.id, n.host, n.port) for n in d.nodes] == [(1, host, int(port))]
    assert d.controller.id == 1
    assert len(d.cluster_id) == 22
    assert d.authorized_operations


def test_kafka_python_describe_cluster(broker):
    # kafka-python sends DescribeCluster (KIP-700).
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        d = a.describe_cluster()
    finally:
        a.close()
    host, port = broker.bootstrap.rsplit(":", 1)
    assert [(b["broker_id"], b["host"], b["port"], b["is_fenced"]) for b in d["brokers"]] == [(1, host, int(port), False)]
    assert d["controller_id"] == 1
    assert len(d["cluster_id"]) == 22


def test_kafka_python_describe_log_dirs(broker, topic):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KNewTopic(topic, 2, 1)])
        p = KafkaProducer(bootstrap_servers=broker.bootstrap)
        p.send(topic, b"x" * 100, partition=1).get(timeout=TIMEOUT)
        p.close()
        [got] = a.describe_log_dirs(topic_partitions=[topic])
    finally:
        a.close()
    assert got["broker"] == 1
    [d] = got["log_dirs"]
    assert d["error_code"] == 0 and d["total_bytes"] > 0 and 0 < d["usable_bytes"] <= d["total_bytes"]
    [t] = d["topics"]
    sizes = {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
    assert t["name"] == topic and sizes[0] == 0 and sizes[1] > 100


def test_confluent_acl_operations_get_security_disabled(broker):
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    match_all = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    # librdkafka 2.x reads DescribeAcls' top-level error but does not raise it: no bindings.
    assert a.describe_acls(match_all).result(timeout=TIMEOUT) == []
    for call in (lambda: a.create_acls([binding])[binding].result(timeout=TIMEOUT),
                 lambda: a.delete_acls([match_all])[match_all].result(timeout=TIMEOUT)):
        with pytest.raises(KafkaException) as e:
            call()
        assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
