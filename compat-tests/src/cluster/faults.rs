//! Faults for a [`Cluster`]: pausing a node (SIGSTOP/SIGCONT), cutting it off the other nodes with
//! nftables, and reading partition state (leader, epoch, ISR) as a node answers Metadata.
//!
//! The nftables rules match only packets of the nodes' own sockets (by the group the nodes run as,
//! [`super::NODE_GID`]), between the nodes' addresses and to this cluster's ports: the tests' clients
//! share 127.0.0.1 with node 1 but run as another group, so they keep reaching every node.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{raw_request, Cluster, Node, NODE_GID};

/// One partition as a node describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// nftables rules cutting one node off the others; deleted by [`Isolation::heal`] or on drop.
pub struct Isolation {
    table: String,
    healed: bool,
}

impl Isolation {
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes the rules.
    pub fn heal(mut self) -> anyhow::Result<()> {
        self.healed = true;
        delete_table(&self.table)
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        if !self.healed {
            let _ = delete_table(&self.table);
        }
    }
}

fn delete_table(table: &str) -> anyhow::Result<()> {
    let st = Command::new("nft")
        .args(["delete", "table", "inet", table])
        .status()
        .context("running nft")?;
    if !st.success() {
        bail!("nft delete table inet {table}: {st}");
    }
    Ok(())
}

/// The address the tests' clients connect from (the loopback route's source): node-side packets
/// towards it may be answers to a client, so they are only dropped by destination port.
const CLIENT_IP: &str = "127.0.0.1";

fn ports(n: &Node) -> String {
    format!("{}, {}", n.kafka_port, n.controller_port)
}

impl Cluster {
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).child.as_ref().map(|c| c.id())
    }

    fn signal(&self, id: i32, sig: libc::c_int) -> anyhow::Result<()> {
        let pid = self
            .pid(id)
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        // SAFETY: signalling a child process this harness spawned and has not reaped.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGSTOP: the node keeps its sockets but answers nothing until [`Cluster::resume`].
    pub fn pause(&self, id: i32) -> anyhow::Result<()> {
        self.signal(id, libc::SIGSTOP)
    }

    /// SIGCONT.
    pub fn resume(&self, id: i32) -> anyhow::Result<()> {
        self.signal(id, libc::SIGCONT)
    }

    /// Drops every packet between node `id` and the other nodes of this cluster, both directions,
    /// until the returned guard heals (or is dropped).
    pub fn isolate(&self, id: i32) -> anyhow::Result<Isolation> {
        static N: AtomicU32 = AtomicU32::new(0);
        let table = format!(
            "vltava_faults_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let cut = self.node(id);
        let mut rules = format!(
            "table inet {table} {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n"
        );
        for other in self.nodes.iter().filter(|n| n.id != id) {
            for (from, to) in [(cut, other), (other, cut)] {
                // Requests (and acknowledgements) on connections `from` opened to `to`'s listeners.
                rules.push_str(&format!(
                    "  meta skgid {NODE_GID} ip saddr {} ip daddr {} tcp dport {{ {} }} drop\n",
                    from.ip,
                    to.ip,
                    ports(to)
                ));
                // Answers from `from`'s listeners, unless they may be going to a client.
                if to.ip != CLIENT_IP {
                    rules.push_str(&format!(
                        "  meta skgid {NODE_GID} ip saddr {} ip daddr {} tcp sport {{ {} }} drop\n",
                        from.ip,
                        to.ip,
                        ports(from)
                    ));
                }
            }
        }
        rules.push_str(" }\n}\n");
        let file = self.dir.path().join(format!("{table}.nft"));
        std::fs::write(&file, &rules)?;
        let out = Command::new("nft")
            .arg("-f")
            .arg(&file)
            .output()
            .context("running nft")?;
        if !out.status.success() {
            bail!(
                "nft -f {}: {}\n{rules}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Isolation {
            table,
            healed: false,
        })
    }

    /// The partitions of `topic` as node `via` answers Metadata (v9).
    pub fn partitions(&self, via: i32, topic: &str) -> anyhow::Result<Vec<PartitionState>> {
        let req =
            MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
        let r: MetadataResponse = raw_request(&self.bootstrap(via), ApiKey::Metadata, 9, &req)?;
        let t = r
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no topic in the answer"))?;
        if t.error_code != 0 {
            bail!("topic {topic}: error {}", t.error_code);
        }
        let mut ps: Vec<PartitionState> = t
            .partitions
            .into_iter()
            .map(|p| PartitionState {
                partition: p.partition_index,
                error: p.error_code,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
            .collect();
        ps.sort_by_key(|p| p.partition);
        Ok(ps)
    }

    /// Polls node `via`'s view of `topic` until `ok` holds, for at most `timeout`.
    pub fn await_partitions(
        &self,
        via: i32,
        topic: &str,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&[PartitionState]) -> bool,
    ) -> anyhow::Result<Vec<PartitionState>> {
        let until = Instant::now() + timeout;
        loop {
            let seen = self.partitions(via, topic);
            if let Ok(ps) = &seen {
                if ok(ps) {
                    return Ok(ps.clone());
                }
            }
            if Instant::now() >= until {
                bail!("{what}: not within {timeout:?} as node {via} sees it: {seen:?}");
            }
            // Metadata changes reach each node through the metadata log; only asking shows them.
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Held by a fault scenario for its whole run: one at a time on this machine, across processes
/// (a second checkout, another suite, CI next to a developer). Each scenario's timings (session
/// timeouts, elections, ISR lag) assume both cores to itself, and its nftables table is the
/// machine's.
pub struct MachineLock {
    _file: std::fs::File,
}

impl MachineLock {
    /// Waits for the machine-wide fault-test lock (`flock` on a file in the temp directory; the
    /// kernel releases it when the process ends, however it ends).
    pub fn acquire() -> std::io::Result<MachineLock> {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join("vltava-fault-tests.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(MachineLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
