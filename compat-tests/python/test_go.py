"""Go clients: Sarama (github.com/IBM/sarama) and franz-go (kgo, kadm), the versions in
compat-tests/go/go.mod, driven by the programs in compat-tests/go/sarama and compat-tests/go/franz.

Each program does its own checking and exits non-zero with the reason on the first failure:
- Sarama: admin, idempotent producer, partition consumer, a consumer group of two with a rebalance, a
  restart that resumes at the committed offsets.
- franz-go: kadm admin (topics with configs, topic and broker configs, start/end offsets, cluster and
  brokers, delete), an idempotent acks=all producer with every codec read back in order, and a
  cooperative-sticky group that a second member joins and leaves, each record consumed once, then a
  new member resuming at the committed offsets.
The programs are built once per session by the `go_bins` fixture of conftest.py (`go build` in the
module; modules come from the Go module proxy into the default module cache, checked against the
committed go.sum). test_cluster.py runs the cluster programs of the same build.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

GROUP_CONFIG = "group_initial_rebalance_delay_ms = 0\n"
RUN_TIMEOUT = 300


@pytest.fixture
def gbroker(broker_factory):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-go-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(GROUP_CONFIG)
    return broker_factory(extra_args=["--config", cfg])


def run(program: Path, bootstrap: str, name: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    done = subprocess.run(
        [str(program), bootstrap, f"{name}-{suffix}", f"{name}-g-{suffix}"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("ok:"), done.stdout


def test_sarama_admin_producer_consumer_and_group(go_bins, gbroker):
    run(go_bins / "sarama", gbroker.bootstrap, "sarama")


def test_franz_go_admin_codecs_and_cooperative_group(go_bins, gbroker):
    run(go_bins / "franz", gbroker.bootstrap, "franz")
