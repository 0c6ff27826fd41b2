"""TLS on the listener (Kafka's SSL and SASL_SSL) with real clients: confluent-kafka-python
(librdkafka), kafka-python and Debian's kcat verify the broker's certificate, produce and consume;
with a client CA configured they must present a certificate (ssl.client.auth=required)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import REPO, deadline, kafka_python_round_trip

TIMEOUT = 30.0
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.fixture(scope="module")
def certs() -> str:
    d = tempfile.mkdtemp(prefix="vltava-certs-")
    subprocess.run(["bash", str(REPO / "compat-tests" / "tls" / "make-certs.sh"), d], check=True)
    return d


def tls_broker(broker_factory, certs: str, extra: str = ""):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-tls-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(f'[tls]\ncert_file = "{certs}/server.pem"\nkey_file = "{certs}/server.key"\n{extra}')
    return broker_factory(extra_args=["--config", cfg])


def round_trip(conf: dict, topic: str) -> None:
    p = Producer({**conf, "linger.ms": 5})
    for i in range(5):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    assert p.flush(TIMEOUT) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    end = deadline(TIMEOUT)
    while len(got) < 5:
        assert time.monotonic() < end, got
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [f"v{i}".encode() for i in range(5)]


def test_confluent_over_ssl_and_sasl_ssl(broker_factory, certs, topic):
    b = tls_broker(broker_factory, certs)
    round_trip({"bootstrap.servers": b.bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": f"{certs}/ca.pem"}, topic)

    b = tls_broker(broker_factory, certs,
                   '[sasl]\nmechanisms = ["SCRAM-SHA-256"]\n[sasl.users]\nalice = "alice-secret"\n')
    round_trip({"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_SSL",
                "ssl.ca.location": f"{certs}/ca.pem", "sasl.mechanism": "SCRAM-SHA-256",
                "sasl.username": "alice", "sasl.password": "alice-secret"}, topic)


def test_confluent_rejects_a_broker_it_cannot_verify_and_a_plaintext_client_is_closed(broker_factory, certs):
    b = tls_broker(broker_factory, certs)
    errors = []
    # No CA given: the broker's certificate cannot be verified against the system store.
    p = Producer({"bootstrap.servers": b.bootstrap, "security.protocol": "SSL", "error_cb": errors.append})
    end = deadline(TIMEOUT)
    while not any(e.code() == KafkaError._SSL for e in errors):
        assert time.monotonic() < end, errors
        p.poll(0.2)
    # A PLAINTEXT client gets no answer from a TLS listener; the broker stays up for the next one.
    errors.clear()
    p = Producer({"bootstrap.servers": b.bootstrap, "error_cb": errors.append})
    end = deadline(TIMEOUT)
    while not errors:
        assert time.monotonic() < end
        p.poll(0.2)
    round_trip({"bootstrap.servers": b.bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": f"{certs}/ca.pem"}, "after-plaintext")


def test_client_certificates_are_required_with_a_client_ca(broker_factory, certs, topic):
    b = tls_broker(broker_factory, certs, f'client_ca_file = "{certs}/ca.pem"\n')
    base = {"bootstrap.servers": b.bootstrap, "security.protocol": "SSL", "ssl.ca.location": f"{certs}/ca.pem"}
    errors = []
    p = Producer({**base, "error_cb": errors.append})
    end = deadline(TIMEOUT)
    while not any(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
                  for e in errors):
        assert time.monotonic() < end, errors
        p.poll(0.2)
    round_trip({**base, "ssl.certificate.location": f"{certs}/client.pem",
                "ssl.key.location": f"{certs}/client.key"}, topic)


def test_kafka_python_over_ssl(broker_factory, certs, topic):
    b = tls_broker(broker_factory, certs)
    conf = dict(bootstrap_servers=b.bootstrap, security_protocol="SSL", ssl_cafile=f"{certs}/ca.pem")
    kafka_python_round_trip(conf, topic, 3)


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (.ci/run installs it)")
def test_kcat_over_ssl(broker_factory, certs, topic):
    b = tls_broker(broker_factory, certs)
    base = [KCAT, "-b", b.bootstrap, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs}/ca.pem"]
    r = subprocess.run([*base, "-P", "-t", topic, "-p", "0"], input=b"one\ntwo\n", capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*base, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"one", b"two"]
