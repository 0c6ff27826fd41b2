"""Go clients: Sarama (github.com/IBM/sarama) and franz-go (kgo, kadm), the versions in
compat-tests/go/go.mod, driven by the programs in compat-tests/go/sarama and compat-tests/go/franz.

Each program does its own checking and exits non-zero with the reason on the first failure:
- Sarama: admin, idempotent producer, partition consumer, a consumer group of two with a rebalance, a
  restart that resumes at the committed offsets.
- franz-go: kadm admin (topics with configs, topic and broker configs, start/end offsets, cluster and
  brokers, delete), an idempotent acks=all producer with every codec read back in order, and a
  cooperative-sticky group that a second member joins and leaves, each record consumed once, then a
  new member resuming at the committed offsets.
The programs are built once per session (`go build` in the module; modules come from the Go module
proxy into the default module cache, checked against the committed go.sum).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "compat-tests" / "go"
GROUP_CONFIG = "group_initial_rebalance_delay_ms = 0\n"
BUILD_TIMEOUT = 900  # a first build downloads the modules and compiles them on a small machine
RUN_TIMEOUT = 300


def go_tool() -> str:
    """The first Go that can build the module: 1.21+ fetches the toolchain go.mod asks for by itself
    (GOTOOLCHAIN=auto). $GO, then `go` on PATH, then /usr/local/go (Debian 12's golang-go is 1.19)."""
    seen = []
    for go in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if not go or not os.path.exists(go):
            continue
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60)
        m = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
        if m and (int(m.group(1)), int(m.group(2))) >= (1, 21):
            return go
        seen.append(f"{go}: {out.stdout.strip() or out.stderr.strip()}")
    pytest.fail(f"no Go 1.21 or newer (found: {seen or 'none'})")


@pytest.fixture(scope="session")
def go_bins() -> Path:
    out = Path(tempfile.mkdtemp(prefix="vltava-go-"))
    env = dict(os.environ, GOFLAGS="-mod=readonly -buildvcs=false")
    built = subprocess.run(
        [go_tool(), "build", "-o", f"{out}/", "./..."],
        cwd=MODULE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert built.returncode == 0, built.stderr
    yield out
    shutil.rmtree(out, ignore_errors=True)


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
