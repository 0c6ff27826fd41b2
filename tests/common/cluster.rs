//! A local cluster of real `vltava` processes for tests: node N listens on 127.0.0.N (Kafka listener and
//! controller listener, each on a free port), configured by a Kafka `server.properties` file, data in a
//! temporary directory. Nodes can be killed (-9), stopped (SIGSTOP/SIGCONT), terminated and restarted.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{BrokerProcess, Client};

/// How a node's broker settings differ from the defaults the harness writes.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Extra `key=value` lines for every node's properties file.
    pub extra: Vec<(String, String)>,
    /// Nodes started as `process.roles=broker` (Raft learners) instead of `broker,controller`.
    pub broker_only: Vec<i32>,
}

pub struct NodeSpec {
    pub id: i32,
    pub ip: String,
    pub kafka_port: u16,
    pub controller_port: u16,
    pub properties: PathBuf,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub specs: Vec<NodeSpec>,
    nodes: Vec<Option<BrokerProcess>>,
}

/// A port free on `ip` now (the listener is dropped at once; the broker binds it moments later).
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

impl Cluster {
    /// Writes the properties of `n` nodes and starts them all at once (a node waits for its quorum before
    /// it serves, so they must start together); returns when every node accepts connections.
    pub fn start(n: i32, options: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let specs: Vec<NodeSpec> = (1..=n)
            .map(|id| {
                let ip = format!("127.0.0.{id}");
                NodeSpec {
                    id,
                    kafka_port: free_port(&ip),
                    controller_port: free_port(&ip),
                    properties: dir.path().join(format!("node{id}.properties")),
                    ip,
                }
            })
            .collect();
        let voters: Vec<String> = specs
            .iter()
            .filter(|s| !options.broker_only.contains(&s.id))
            .map(|s| format!("{}@{}:{}", s.id, s.ip, s.controller_port))
            .collect();
        for s in &specs {
            let roles = if options.broker_only.contains(&s.id) {
                "broker"
            } else {
                "broker,controller"
            };
            let mut text = format!(
                "process.roles={roles}\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://{ip}:{kp},CONTROLLER://{ip}:{cp}\n\
                 advertised.listeners=PLAINTEXT://{ip}:{kp}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={data}\n\
                 broker.heartbeat.interval.ms=500\n\
                 broker.session.timeout.ms=4000\n",
                id = s.id,
                voters = voters.join(","),
                ip = s.ip,
                kp = s.kafka_port,
                cp = s.controller_port,
                data = dir.path().join(format!("data{}", s.id)).display(),
            );
            for (k, v) in &options.extra {
                text.push_str(&format!("{k}={v}\n"));
            }
            std::fs::write(&s.properties, text).expect("write properties");
        }
        let mut cluster = Cluster {
            dir,
            nodes: (0..n).map(|_| None).collect(),
            specs,
        };
        let ids: Vec<i32> = cluster.specs.iter().map(|s| s.id).collect();
        cluster.start_nodes(&ids);
        cluster
    }

    /// Starts the given (stopped) nodes concurrently and waits until each accepts connections.
    pub fn start_nodes(&mut self, ids: &[i32]) {
        let started: Vec<(i32, BrokerProcess)> = std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let path = self.spec(id).properties.clone();
                    let cwd = self.dir.path().to_path_buf();
                    scope.spawn(move || {
                        let config = path.to_str().expect("utf-8 path").to_string();
                        (id, BrokerProcess::start_in(&cwd, &["--config", &config]))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node start"))
                .collect()
        });
        for (id, process) in started {
            self.nodes[(id - 1) as usize] = Some(process);
        }
    }

    pub fn spec(&self, id: i32) -> &NodeSpec {
        &self.specs[(id - 1) as usize]
    }

    pub fn node(&self, id: i32) -> &BrokerProcess {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    pub fn is_up(&self, id: i32) -> bool {
        self.nodes[(id - 1) as usize].is_some()
    }

    /// The Kafka listener of node `id`, "ip:port".
    pub fn addr(&self, id: i32) -> String {
        let s = self.spec(id);
        format!("{}:{}", s.ip, s.kafka_port)
    }

    /// `bootstrap.servers` naming every node.
    pub fn bootstrap(&self) -> String {
        let all: Vec<String> = self.specs.iter().map(|s| self.addr(s.id)).collect();
        all.join(",")
    }

    pub fn client(&self, id: i32) -> Client {
        Client::connect(&self.addr(id))
    }

    /// kill -9.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut p) = self.nodes[(id - 1) as usize].take() {
            p.kill();
        }
    }

    /// SIGTERM, waiting for the exit; returns whether the process exited successfully.
    pub fn terminate(&mut self, id: i32) -> bool {
        let mut p = self.nodes[(id - 1) as usize]
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        p.terminate_with("TERM")
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&self, id: i32, stop: bool) {
        let pid = self.node(id).pid().to_string();
        let signal = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {signal} {pid}");
    }

    /// Polls `check` until it returns `Some`, for at most `timeout`; the value, or a panic naming `what`.
    /// For states reached through other processes' timers (elections, session timeouts), which the test
    /// can only observe by asking.
    pub fn await_state<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Cluster) -> Option<T>,
    ) -> T {
        let until = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
