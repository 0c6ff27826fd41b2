"""pytest harness: spawn the vltava broker binary per test.

Readiness is event-driven: a reader thread follows the broker's output line by
line until it logs ``accepting connections addr=HOST:PORT``; the address is
taken from that line. Nothing here sleeps to wait for the broker.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"accepting connections.*?addr=[\"']?([^\s\"',]+:\d+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
READY_TIMEOUT = 60.0
# Makes the broker fsync before acknowledging (crash tests).
FLUSH_ALWAYS_ARGS = ["--flush", "always"]


def broker_bin() -> str:
    return os.environ.get("VLTAVA_BIN") or str(REPO / "target" / "debug" / "vltava")


class BrokerError(RuntimeError):
    pass


class Broker:
    """A vltava process on an ephemeral port with its own data directory."""

    def __init__(self, flush_always: bool = False, extra_args=None):
        self.bin = broker_bin()
        if not os.path.exists(self.bin):
            raise BrokerError(f"broker binary {self.bin} missing: run `cargo build` or set VLTAVA_BIN")
        self.tmp = tempfile.mkdtemp(prefix="vltava-py-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.flush_always = flush_always
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.addr: str | None = None
        self.logs: collections.deque[str] = collections.deque(maxlen=int(os.environ.get("VLTAVA_TEST_LOG_LINES", "400")))
        self.startup_seconds = 0.0
        self._generation = 0
        self._watch_lock = threading.Lock()
        self._watchers: list[tuple[re.Pattern, threading.Event]] = []
        self._start("127.0.0.1:0")

    @property
    def bootstrap(self) -> str:
        assert self.addr
        return self.addr

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def _start(self, listen: str) -> None:
        cmd = [self.bin, "--listen", listen, "--data-dir", self.data_dir]
        if self.flush_always:
            cmd += FLUSH_ALWAYS_ARGS
        cmd += self.extra_args
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("VLTAVA_TEST_RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        self._generation += 1
        gen = self._generation
        started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        ready = threading.Event()
        found: list[str] = []
        proc = self.proc

        def pump():
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = ANSI_RE.sub("", raw.decode("utf-8", "replace")).rstrip()
                self.logs.append(f"[{gen}] {line}")
                with self._watch_lock:
                    for pattern, event in self._watchers:
                        if pattern.search(line):
                            event.set()
                if not found:
                    m = READY_RE.search(line)
                    if m:
                        found.append(m.group(1))
                        ready.set()
            ready.set()  # EOF: the process is gone

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(READY_TIMEOUT):
            self.kill9()
            raise BrokerError(f"no readiness line within {READY_TIMEOUT}s: {cmd}\n{self.log_text()}")
        if not found:
            code = proc.wait()
            raise BrokerError(f"broker exited ({code}) before it was ready: {cmd}\n{self.log_text()}")
        self.addr = found[0]
        self.startup_seconds = time.monotonic() - started

    def log_text(self) -> str:
        return "\n".join(self.logs)

    def wait_for_log(self, pattern: str, timeout: float) -> bool:
        """Waits until the broker logs a line matching `pattern` from now on (or already did)."""
        regex = re.compile(pattern)
        with self._watch_lock:
            if any(regex.search(line) for line in self.logs):
                return True
        event = self.watch(pattern)
        try:
            return event.wait(timeout)
        finally:
            self.unwatch(event)

    def watch(self, pattern: str) -> threading.Event:
        """An event set by the next broker log line matching `pattern` (register it before the action
        whose outcome it reports); `unwatch` it when done."""
        event = threading.Event()
        with self._watch_lock:
            self._watchers.append((re.compile(pattern), event))
        return event

    def unwatch(self, event: threading.Event) -> None:
        with self._watch_lock:
            self._watchers = [(p, e) for p, e in self._watchers if e is not event]

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def restart(self) -> None:
        """SIGKILL, then start again on the same data dir (same port if it can be bound)."""
        self.kill9()
        try:
            self._start(self.bootstrap)
        except BrokerError as e:
            if "in use" in str(e) or "AddrInUse" in str(e):
                self._start("127.0.0.1:0")
            else:
                raise

    def close(self) -> None:
        self.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _attach_logs(request, brokers):
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for b in brokers:
            print(f"\n--- broker {b.addr} output ---\n{b.log_text()}\n--- end ---")


@pytest.fixture
def broker(request):
    """A fresh broker for one test."""
    b = Broker()
    yield b
    _attach_logs(request, [b])
    b.close()


@pytest.fixture
def broker_factory(request):
    """Start brokers with options, e.g. ``broker_factory(flush_always=True)``."""
    made: list[Broker] = []

    def make(**kw) -> Broker:
        b = Broker(**kw)
        made.append(b)
        return b

    yield make
    _attach_logs(request, made)
    for b in made:
        b.close()


@pytest.fixture
def topic(request) -> str:
    """A unique topic name for the test."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:120]
    return f"{name}-{uuid.uuid4().hex[:8]}"


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def kafka_python_round_trip(conf: dict, topic: str, n: int, timeout: float = 30.0) -> None:
    """kafka-python with `conf` produces n records to partition 0 of `topic` and reads them back."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    p = KafkaProducer(**conf)
    offsets = [p.send(topic, f"v{i}".encode(), partition=0).get(timeout=timeout).offset for i in range(n)]
    p.close()
    assert offsets == list(range(n))
    c = KafkaConsumer(**conf, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    end = deadline(timeout)
    while len(got) < n:
        assert time.monotonic() < end, got
        for records in c.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    c.close()
    assert got == [f"v{i}".encode() for i in range(n)]


MODULE = REPO / "compat-tests" / "go"
GO_BUILD_TIMEOUT = 900  # a first build downloads the modules and compiles them on a small machine


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
        timeout=GO_BUILD_TIMEOUT,
    )
    assert built.returncode == 0, built.stderr
    yield out
    shutil.rmtree(out, ignore_errors=True)
