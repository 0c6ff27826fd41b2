//! A local vltava cluster of real processes for the client tests: node N listens on 127.0.0.N (a Kafka
//! listener and a controller listener, each on a port free on that address) and is configured by a Kafka
//! KRaft `server.properties` file; every node is a broker and a voter of the metadata quorum.
//!
//! Nodes start together (each waits for its quorum before it serves) and are ready at their
//! `accepting connections addr=` line, read from their output as it comes. Nodes can be killed (-9),
//! terminated (SIGTERM) and started again on the same data directory and ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::{broker_bin, pump, LogRing, DEFAULT_READY_TIMEOUT};

pub mod faults;

/// One node: its addresses, its properties file, and its process while it runs.
struct Node {
    id: i32,
    ip: String,
    kafka_port: u16,
    controller_port: u16,
    properties: PathBuf,
    child: Option<Child>,
    logs: LogRing,
    starts: u32,
}

/// A running cluster; dropping it kills every node (and prints their last lines if a test panicked).
pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

/// Ports are drawn below Linux's ephemeral range (32768-60999), so no outgoing connection of a client
/// running meanwhile can take one between this check and the node's bind.
const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A port free on `ip` now, drawn at random from `PORTS` (the listener is dropped at once; the node binds
/// it moments later).
fn free_port(ip: &str) -> anyhow::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..100 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = PORTS.start + (h.finish() % u64::from(PORTS.end - PORTS.start)) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on {ip} in {PORTS:?}")
}

/// The group the nodes run as (their user stays root): nftables rules in [`faults`] match
/// packets of the nodes' own sockets by it, which leaves the test's clients (on the same loopback
/// addresses) alone.
pub const NODE_GID: u32 = 65_534;

/// How many times a cluster start is tried on fresh ports when a port was taken meanwhile.
const START_ATTEMPTS: usize = 3;

impl Cluster {
    /// Writes the properties of `n` nodes (short liveness timers, no initial rebalance delay, a
    /// 3-partition offsets topic) plus `extra` lines, starts them all, and returns once every node
    /// serves and lists every broker; panics with the nodes' output otherwise.
    pub fn start(n: i32, extra: &[(&str, &str)]) -> Cluster {
        Self::try_start(n, extra).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_start(n: i32, extra: &[(&str, &str)]) -> anyhow::Result<Cluster> {
        let mut attempt = 1;
        loop {
            match Self::start_once(n, extra) {
                Err(e)
                    if attempt < START_ATTEMPTS && format!("{e:#}").contains("already in use") =>
                {
                    eprintln!(
                        "cluster start attempt {attempt}: a port was taken; again on other ports"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(n: i32, extra: &[(&str, &str)]) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("vltava-compat-cluster-")
            .tempdir()?;
        let mut nodes = Vec::new();
        let mut controller_ports = Vec::new();
        for id in 1..=n {
            let ip = format!("127.0.0.{id}");
            let controller_port = free_port(&ip)?;
            controller_ports.push(controller_port);
            nodes.push(Node {
                id,
                kafka_port: free_port(&ip)?,
                controller_port,
                properties: dir.path().join(format!("node{id}.properties")),
                ip,
                child: None,
                logs: LogRing::default(),
                starts: 0,
            });
        }
        let voters: Vec<String> = nodes
            .iter()
            .zip(&controller_ports)
            .map(|(s, cp)| format!("{}@{}:{cp}", s.id, s.ip))
            .collect();
        for (s, cp) in nodes.iter().zip(&controller_ports) {
            let mut text = format!(
                "process.roles=broker,controller\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://{ip}:{kp},CONTROLLER://{ip}:{cp}\n\
                 advertised.listeners=PLAINTEXT://{ip}:{kp}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={data}\n\
                 broker.heartbeat.interval.ms=500\n\
                 broker.session.timeout.ms=4000\n\
                 group.initial.rebalance.delay.ms=0\n\
                 offsets.topic.num.partitions=3\n",
                id = s.id,
                voters = voters.join(","),
                ip = s.ip,
                kp = s.kafka_port,
                data = dir.path().join(format!("data{}", s.id)).display(),
            );
            for (k, v) in extra {
                text.push_str(&format!("{k}={v}\n"));
            }
            std::fs::write(&s.properties, text)?;
        }
        let mut cluster = Cluster { dir, nodes };
        let ids: Vec<i32> = (1..=n).collect();
        cluster.start_nodes(&ids)?;
        cluster.await_brokers(&ids, DEFAULT_READY_TIMEOUT)?;
        Ok(cluster)
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|s| s.id).collect()
    }

    /// The Kafka listener of node `id`, `ip:port`.
    pub fn bootstrap(&self, id: i32) -> String {
        let s = self.node(id);
        format!("{}:{}", s.ip, s.kafka_port)
    }

    /// `bootstrap.servers` naming every node.
    pub fn bootstrap_all(&self) -> String {
        let all: Vec<String> = self
            .ids()
            .into_iter()
            .map(|id| self.bootstrap(id))
            .collect();
        all.join(",")
    }

    pub fn is_running(&mut self, id: i32) -> bool {
        match self.node_mut(id).child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the given (stopped) nodes at once on their data directories and waits until each serves:
    /// a node of a forming quorum is ready only once enough of the others are up.
    pub fn start_nodes(&mut self, ids: &[i32]) -> anyhow::Result<()> {
        let bin = broker_bin();
        if !bin.exists() {
            bail!(
                "broker binary {} does not exist: run `cargo build -p vltava` or set VLTAVA_BIN",
                bin.display()
            );
        }
        let cwd = self.dir.path().to_path_buf();
        let mut waiting = Vec::new();
        for &id in ids {
            let s = self.node_mut(id);
            let mut child = Command::new(&bin)
                .gid(NODE_GID)
                .arg("--config")
                .arg(&s.properties)
                .current_dir(&cwd)
                .env(
                    "RUST_LOG",
                    std::env::var("VLTAVA_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("spawning node {id}"))?;
            s.starts += 1;
            let (tx, rx) = mpsc::channel::<Option<String>>();
            if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
                pump(out, s.logs.clone(), s.starts, Some(tx.clone()));
                pump(err, s.logs.clone(), s.starts, Some(tx));
            }
            s.child = Some(child);
            waiting.push((id, rx));
        }
        let deadline = Instant::now() + DEFAULT_READY_TIMEOUT;
        for (id, rx) in waiting {
            let mut eofs = 0;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Some(_addr)) => break,
                    Ok(None) => {
                        eofs += 1;
                        if eofs == 2 {
                            bail!(
                                "node {id} exited before it was ready\n{}",
                                self.node_logs(id)
                            );
                        }
                    }
                    Err(_) => bail!(
                        "node {id} printed no readiness line within {DEFAULT_READY_TIMEOUT:?}\n{}",
                        self.logs()
                    ),
                }
            }
        }
        Ok(())
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self, id: i32) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `id` again on its data directory and ports (killing it first if it runs).
    pub fn restart(&mut self, id: i32) -> anyhow::Result<()> {
        self.kill9(id);
        self.start_nodes(&[id])
    }

    /// SIGTERM, then wait up to `timeout` for the exit (after which it is killed and this fails).
    pub fn terminate(&mut self, id: i32, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut c = self
            .node_mut(id)
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let pid = c.id() as libc::pid_t;
        // SAFETY: signalling a child process this harness spawned and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let st = c.wait();
            let _ = tx.send(());
            st
        });
        if rx.recv_timeout(timeout).is_err() {
            // SAFETY: as above; the waiter thread still owns the child and reaps it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = waiter.join();
            bail!(
                "node {id} did not exit within {timeout:?} of SIGTERM\n{}",
                self.logs()
            );
        }
        let st = waiter
            .join()
            .map_err(|_| anyhow!("waiter thread panicked"))??;
        Ok(st)
    }

    /// The last lines of node `id`.
    pub fn node_logs(&self, id: i32) -> String {
        format!("--- node {id} ---\n{}", self.node(id).logs.dump())
    }

    /// The last lines of every node.
    pub fn logs(&self) -> String {
        let all: Vec<String> = self
            .ids()
            .into_iter()
            .map(|id| self.node_logs(id))
            .collect();
        all.join("\n")
    }

    /// The node coordinating `group`, as node `via` answers FindCoordinator (v2). Retries, as clients
    /// do, while the answer is COORDINATOR_NOT_AVAILABLE (15: e.g. the offsets topic is being created)
    /// or COORDINATOR_LOAD_IN_PROGRESS (14), for at most 30 s.
    pub fn group_coordinator(&self, via: i32, group: &str) -> anyhow::Result<i32> {
        self.coordinator(via, group, 0)
    }

    /// The node coordinating `transactional_id` (FindCoordinator key type 1), as
    /// [`Self::group_coordinator`] finds a group's.
    pub fn txn_coordinator(&self, via: i32, transactional_id: &str) -> anyhow::Result<i32> {
        self.coordinator(via, transactional_id, 1)
    }

    fn coordinator(&self, via: i32, key: &str, key_type: i8) -> anyhow::Result<i32> {
        let group = key;
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r: FindCoordinatorResponse =
                raw_request(&self.bootstrap(via), ApiKey::FindCoordinator, 2, &req)?;
            match r.error_code {
                0 => return Ok(r.node_id.0),
                14 | 15 if Instant::now() < until => thread::sleep(Duration::from_millis(100)),
                code => bail!("FindCoordinator({group}) via node {via}: error {code}"),
            }
        }
    }

    /// (broker ids, controller id) as node `via` answers Metadata (v9, no topics).
    pub fn view(&self, via: i32) -> anyhow::Result<(Vec<i32>, i32)> {
        let req = MetadataRequest::default().with_topics(Some(Vec::new()));
        let r: MetadataResponse = raw_request(&self.bootstrap(via), ApiKey::Metadata, 9, &req)?;
        let mut brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort_unstable();
        Ok((brokers, r.controller_id.0))
    }

    /// Waits until every running node lists `ids` as the brokers and names a controller among them (a
    /// node serves once its own registration is committed; the others' may still be on their way).
    pub fn await_brokers(&mut self, ids: &[i32], timeout: Duration) -> anyhow::Result<()> {
        let mut want = ids.to_vec();
        want.sort_unstable();
        let until = Instant::now() + timeout;
        loop {
            let running: Vec<i32> = self
                .ids()
                .into_iter()
                .filter(|&id| self.is_running(id))
                .collect();
            let views: Vec<_> = running.iter().map(|&id| (id, self.view(id))).collect();
            let agreed = views.iter().all(|(_, v)| {
                matches!(v, Ok((brokers, controller)) if *brokers == want && want.contains(controller))
            });
            if agreed {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("the nodes did not all list brokers {want:?} within {timeout:?}: {views:?}");
            }
            // Registrations reach each node through the metadata log; only asking shows them.
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One request and its response on a fresh connection to `addr`, read within 10 s.
pub fn raw_request<Req: Encodable, Resp: Decodable>(
    addr: &str,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> anyhow::Result<Resp> {
    let mut stream = send_request(addr, key, version, req)?;
    read_response(&mut stream, key, version)
}

/// Connects to `addr` and writes one request, without waiting for the answer (on loopback the
/// request is in the node's socket when this returns, even if the node is stopped).
pub fn send_request<Req: Encodable>(
    addr: &str,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> anyhow::Result<TcpStream> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("vltava-compat-cluster")))
        .encode(&mut buf, key.request_header_version(version))?;
    req.encode(&mut buf, version)?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&(buf.len() as i32).to_be_bytes())?;
    stream.write_all(&buf)?;
    Ok(stream)
}

/// The answer to the request [`send_request`] wrote, read within 10 s.
pub fn read_response<Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
) -> anyhow::Result<Resp> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    stream.read_exact(&mut body)?;
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, key.response_header_version(version))?;
    Resp::decode(&mut body, version)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() && std::env::var_os("VLTAVA_QUIET_LOGS").is_none() {
            eprintln!("--- last output of the cluster ---\n{}", self.logs());
        }
        for id in self.ids() {
            self.kill9(id);
        }
    }
}
