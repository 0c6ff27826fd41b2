"""SASL on the listener (SASL_PLAINTEXT) with real clients: confluent-kafka-python (librdkafka),
kafka-python and Debian's kcat (librdkafka 2.0.2) authenticate with PLAIN, SCRAM-SHA-256 and
SCRAM-SHA-512, produce and consume; a wrong password is refused with an authentication error."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import deadline, kafka_python_round_trip

TIMEOUT = 30.0
KCAT = shutil.which("kcat") or shutil.which("kafkacat")
USERS = {"alice": "alice-secret", "bob": "b0b,=pass"}
SASL_CONFIG = """
[sasl]
mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
[sasl.users]
alice = "alice-secret"
bob = "b0b,=pass"
"""


@pytest.fixture
def sbroker(broker_factory):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-sasl-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(SASL_CONFIG)
    return broker_factory(extra_args=["--config", cfg])


def creds(bs: str, mechanism: str, user: str, password: str) -> dict:
    return {"bootstrap.servers": bs, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_authenticates_produces_and_consumes(sbroker, topic, mechanism):
    user = "bob" if mechanism == "SCRAM-SHA-512" else "alice"
    conf = creds(sbroker.bootstrap, mechanism, user, USERS[user])
    p = Producer({**conf, "linger.ms": 5})
    for i in range(10):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0)
    assert p.flush(TIMEOUT) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    end = deadline(TIMEOUT)
    while len(got) < 10:
        assert time.monotonic() < end, got
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.key(), m.value()))
    c.close()
    assert got == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_confluent_wrong_password_is_an_authentication_error(sbroker, mechanism):
    errors = []
    p = Producer({**creds(sbroker.bootstrap, mechanism, "alice", "nope"), "error_cb": errors.append})
    end = deadline(TIMEOUT)
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        assert time.monotonic() < end, errors
        p.poll(0.2)
    auth = next(e for e in errors if e.code() == KafkaError._AUTHENTICATION)
    assert "Authentication failed" in auth.str(), auth.str()


def test_kafka_python_scram_sha_512_and_a_wrong_password(sbroker, topic, caplog):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KPError

    conf = dict(bootstrap_servers=sbroker.bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="bob", sasl_plain_password=USERS["bob"])
    kafka_python_round_trip(conf, topic, 5)

    # kafka-python logs the broker's SASL_AUTHENTICATION_FAILED and keeps retrying until its
    # bootstrap deadline.
    with pytest.raises(KPError):
        KafkaProducer(**{**conf, "sasl_plain_password": "nope", "bootstrap_timeout_ms": 3000})
    refused = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert refused and "invalid credentials with SASL mechanism SCRAM-SHA-512" in refused[0], refused


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (.ci/run installs it)")
def test_kcat_lists_metadata_with_scram_sha_256(sbroker, topic):
    base = [KCAT, "-b", sbroker.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice"]
    r = subprocess.run([*base, "-X", "sasl.password=alice-secret", "-P", "-t", topic, "-p", "0"],
                       input=b"one\ntwo\n", capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*base, "-X", "sasl.password=alice-secret", "-C", "-t", topic, "-p", "0", "-o",
                        "beginning", "-e", "-q"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"one", b"two"]
    r = subprocess.run([*base, "-X", "sasl.password=nope", "-L", "-m", "2"], capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"Authentication failed" in r.stderr, r.stderr
