"""A local vltava cluster of real processes for the Python (and Go, kcat) cluster tests.

Node N listens on 127.0.0.N (a Kafka listener and a controller listener on ports free on that address)
and is configured by a Kafka KRaft ``server.properties`` file, like ``compat-tests/src/cluster.rs``:
every node is a broker and a voter of the metadata quorum. The nodes start together (each waits for
its quorum before it serves); a node is ready at its ``accepting connections addr=`` line, and the
cluster once every node's Metadata lists every broker.
"""

from __future__ import annotations

import collections
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from conftest import ANSI_RE, READY_RE, READY_TIMEOUT, broker_bin

# Below Linux's ephemeral range (32768-60999): no client connection made meanwhile takes one of these
# between the check and the node's bind.
PORTS = (20_000, 32_767)
START_ATTEMPTS = 3
# Short liveness timers, so that a dead node leaves the ISR within seconds, and an RF=3 offsets topic.
PROPERTIES = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
    "replica.lag.time.max.ms": "3000",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "3",
    "offsets.topic.replication.factor": "3",
}


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when pytest dies without tearing the cluster down."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ClusterError(RuntimeError):
    pass


def free_port(ip: str) -> int:
    for _ in range(100):
        port = random.randint(*PORTS)
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free port on {ip} in {PORTS}")


class Node:
    """One node: its addresses and properties file, and its process while it runs."""

    def __init__(self, node_id: int, properties: str, kafka_port: int, cwd: str):
        self.id = node_id
        self.ip = f"127.0.0.{node_id}"
        self.kafka_port = kafka_port
        self.properties = properties
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.logs: collections.deque[str] = collections.deque(maxlen=300)
        self.starts = 0
        self.ready = threading.Event()
        self.ready_addr: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.ip}:{self.kafka_port}"

    def spawn(self) -> None:
        env = dict(os.environ, RUST_LOG=os.environ.get("VLTAVA_TEST_RUST_LOG", "info"), NO_COLOR="1")
        self.starts += 1
        start = self.starts
        self.ready = threading.Event()
        self.ready_addr = None
        ready = self.ready
        self.proc = proc = subprocess.Popen(
            [broker_bin(), "--config", self.properties],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
        )

        def pump():
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = ANSI_RE.sub("", raw.decode("utf-8", "replace")).rstrip()
                self.logs.append(f"[node {self.id}#{start}] {line}")
                if not ready.is_set():
                    m = READY_RE.search(line)
                    if m:
                        self.ready_addr = m.group(1)
                        ready.set()
            ready.set()  # EOF: the process is gone

        threading.Thread(target=pump, daemon=True).start()

    def await_ready(self, until: float) -> None:
        if not self.ready.wait(max(0.0, until - time.monotonic())):
            raise ClusterError(f"node {self.id} printed no readiness line in time\n{self.log_text()}")
        if self.ready_addr is None:
            code = self.proc.wait() if self.proc else None
            raise ClusterError(f"node {self.id} exited ({code}) before it was ready\n{self.log_text()}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def log_text(self) -> str:
        return "\n".join(self.logs)


class Cluster:
    """`n` nodes on 127.0.0.1..n; `close()` kills them all and removes their data."""

    def __init__(self, n: int = 3, extra: dict[str, str] | None = None):
        for attempt in range(1, START_ATTEMPTS + 1):
            self._build(n, extra or {})
            try:
                self._start_all()
                return
            except ClusterError as e:
                self.close()
                if attempt == START_ATTEMPTS or "in use" not in str(e).lower():
                    raise

    def _build(self, n: int, extra: dict[str, str]) -> None:
        self.tmp = tempfile.mkdtemp(prefix="vltava-py-cluster-")
        ids = range(1, n + 1)
        controller = {i: free_port(f"127.0.0.{i}") for i in ids}
        kafka = {i: free_port(f"127.0.0.{i}") for i in ids}
        voters = ",".join(f"{i}@127.0.0.{i}:{controller[i]}" for i in ids)
        self.nodes: list[Node] = []
        for i in ids:
            ip = f"127.0.0.{i}"
            props = {
                "process.roles": "broker,controller",
                "node.id": str(i),
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://{ip}:{kafka[i]},CONTROLLER://{ip}:{controller[i]}",
                "advertised.listeners": f"PLAINTEXT://{ip}:{kafka[i]}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": os.path.join(self.tmp, f"data{i}"),
                **PROPERTIES,
                **extra,
            }
            path = os.path.join(self.tmp, f"node{i}.properties")
            with open(path, "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in props.items())
            self.nodes.append(Node(i, path, kafka[i], self.tmp))

    def _start_all(self) -> None:
        if not os.path.exists(broker_bin()):
            raise ClusterError(f"broker binary {broker_bin()} missing: run `cargo build` or set VLTAVA_BIN")
        self.start_nodes([n.id for n in self.nodes])

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def bootstrap(self, node_id: int) -> str:
        return self.node(node_id).bootstrap

    def start_nodes(self, ids: list[int]) -> None:
        """Starts the given stopped nodes together and waits until each serves and every running
        node's Metadata lists all the running brokers."""
        for i in ids:
            self.node(i).spawn()
        until = time.monotonic() + READY_TIMEOUT
        for i in ids:
            self.node(i).await_ready(until)
        self.await_brokers(until)

    def await_brokers(self, until: float) -> None:
        from confluent_kafka.admin import AdminClient

        live = sorted(n.id for n in self.nodes if n.running())
        for n in self.nodes:
            if not n.running():
                continue
            admin = AdminClient({"bootstrap.servers": n.bootstrap})
            seen = None
            while True:
                try:
                    seen = sorted(admin.list_topics(timeout=5).brokers)
                except Exception as e:  # noqa: BLE001 - a node still joining may not answer yet
                    seen = repr(e)
                if seen == live:
                    break
                if time.monotonic() > until:
                    raise ClusterError(f"node {n.id} lists brokers {seen}, not {live}\n{self.log_text()}")
                time.sleep(0.2)  # polling Metadata with a deadline

    def kill9(self, node_id: int) -> None:
        self.node(node_id).kill9()

    def log_text(self) -> str:
        return "\n".join(f"--- node {n.id} ---\n{n.log_text()}" for n in self.nodes)

    def close(self) -> None:
        for n in self.nodes:
            n.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)
