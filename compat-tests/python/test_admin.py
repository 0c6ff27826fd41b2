"""Admin APIs with real clients: DescribeConfigs through confluent-kafka-python's (librdkafka) and
kafka-python's admin clients, for a topic with overrides and for the broker."""

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
