"""Sarama (Go), as Debian 12 packages it (1.22.1), driven by compat-tests/go/sarama_compat.go.

The Go program does the checking (admin, idempotent producer, partition consumer, a consumer group
of two with a rebalance, a restart that resumes at the committed offsets) and exits non-zero with
the reason on the first failure; this test builds it, runs it against a broker, and shows its output.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "compat-tests" / "go" / "sarama_compat.go"
GROUP_CONFIG = "group_initial_rebalance_delay_ms = 0\n"


@pytest.fixture(scope="session")
def sarama_bin() -> str:
    out = os.path.join(tempfile.mkdtemp(prefix="vltava-sarama-"), "sarama-compat")
    # GOPATH mode over Debian's Go source packages: no module download.
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="")
    built = subprocess.run(["go", "build", "-o", out, str(SOURCE)], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture
def gbroker(broker_factory):
    cfg = os.path.join(tempfile.mkdtemp(prefix="vltava-sarama-cfg-"), "vltava.toml")
    with open(cfg, "w") as f:
        f.write(GROUP_CONFIG)
    return broker_factory(extra_args=["--config", cfg])


def test_sarama_admin_producer_consumer_and_group(sarama_bin, gbroker):
    suffix = uuid.uuid4().hex[:8]
    run = subprocess.run(
        [sarama_bin, gbroker.bootstrap, f"sarama-{suffix}", f"sarama-g-{suffix}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok:"), run.stdout
