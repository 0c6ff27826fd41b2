//! rdkafka helpers for the transaction tests (tests/transactions.rs, `vltava-txn-producer`):
//! transactional producers, read_committed / read_uncommitted readers that stop at an exact end
//! offset (seen as a partition EOF there), and the last stable offset as a client sees it.
//!
//! A read_committed consumer's ListOffsets carries isolation level 1 (librdkafka takes it from the
//! consumer's `isolation.level`), so its `fetch_watermarks` high mark is the partition's LSO.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{self, OP_TIMEOUT};

/// A transactional producer's config. `timeout_ms` sets `transaction.timeout.ms` (and keeps
/// `socket.timeout.ms` below it, as librdkafka requires).
pub fn producer_config(bootstrap: &str, transactional_id: &str, timeout_ms: u32) -> ClientConfig {
    let mut c = kafka::base_config(bootstrap);
    c.set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set(
            "socket.timeout.ms",
            timeout_ms.saturating_sub(100).clamp(10, 30_000).to_string(),
        )
        .set("linger.ms", "5");
    c
}

pub fn producer(bootstrap: &str, transactional_id: &str, timeout_ms: u32) -> FutureProducer {
    producer_config(bootstrap, transactional_id, timeout_ms)
        .create()
        .expect("create transactional producer")
}

/// An assign()-only consumer with `isolation.level` = `level` ("read_committed" or
/// "read_uncommitted") that reports partition EOFs.
pub fn consumer(bootstrap: &str, level: &str) -> BaseConsumer {
    let mut c = kafka::consumer_config(bootstrap);
    c.set("isolation.level", level)
        .set("enable.partition.eof", "true");
    c.create().expect("create consumer")
}

/// The high mark ListOffsets answers at `level`: the LSO for read_committed, the high watermark
/// for read_uncommitted.
pub fn end_offset(
    bootstrap: &str,
    level: &str,
    topic: &str,
    partition: i32,
) -> anyhow::Result<i64> {
    let c = consumer(bootstrap, level);
    let (_, high) = c.fetch_watermarks(topic, partition, OP_TIMEOUT)?;
    Ok(high)
}

/// Records read: partition -> (offset, value) in the order delivered.
pub type Read = BTreeMap<i32, Vec<(i64, String)>>;

/// Assign `partitions` of `topic` from `start` and read until each partition reports EOF with its
/// position at `ends[p]` (an EOF below that, e.g. at an LSO that has not moved yet, is waited past).
/// librdkafka's position moves with each record and control record delivered or skipped, but not
/// over aborted records the LSO ends before their abort marker: an end must be the LSO reached
/// after such a marker or the start itself.
/// Records at or beyond the end are kept too, so exact comparisons catch them.
pub fn read_to(
    c: &BaseConsumer,
    topic: &str,
    start: &BTreeMap<i32, i64>,
    ends: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> anyhow::Result<Read> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in start {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
    }
    c.assign(&tpl)?;
    let mut got: Read = start.keys().map(|p| (*p, Vec::new())).collect();
    let mut at_end: BTreeMap<i32, bool> = start.keys().map(|p| (*p, false)).collect();
    let deadline = Instant::now() + timeout;
    while !at_end.values().all(|d| *d) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{topic}: not at the ends {ends:?} within {timeout:?}; read {got:?}; positions {:?}", positions(c, topic));
        }
        match c.poll(left.min(Duration::from_millis(500))) {
            None => {}
            Some(Ok(m)) => {
                let v = m.payload().map(|v| String::from_utf8_lossy(v).into_owned());
                got.entry(m.partition())
                    .or_default()
                    .push((m.offset(), v.unwrap_or_default()));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // Nothing consumed yet (no record, no control record): still at the start.
                let pos = positions(c, topic).get(&p).or(start.get(&p)).copied();
                let end = ends.get(&p).copied();
                if pos.is_some() && pos == end {
                    at_end.insert(p, true);
                }
            }
            Some(Err(e)) => bail!("{topic}: consumer error {e}; read so far {got:?}"),
        }
    }
    Ok(got)
}

/// The consumer's current position per partition of `topic` (only those with a valid offset).
pub fn positions(c: &BaseConsumer, topic: &str) -> BTreeMap<i32, i64> {
    let Ok(list) = c.position() else {
        return BTreeMap::new();
    };
    list.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Reads `topic`'s `partitions` from offset 0 at `level` up to `ends` (one entry per partition).
pub fn read_all(
    bootstrap: &str,
    level: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> anyhow::Result<Read> {
    let c = consumer(bootstrap, level);
    let start = ends.keys().map(|p| (*p, 0)).collect();
    read_to(&c, topic, &start, ends, timeout).with_context(|| format!("reading {topic} {level}"))
}

/// `(offset, value)` lists from `(first_offset, values)`: consecutive offsets.
pub fn at(first: i64, values: &[String]) -> Vec<(i64, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (first + i as i64, v.clone()))
        .collect()
}

/// Waits until ListOffsets at read_committed answers `expected` for the partition (markers follow
/// EndTxn's answer, so the LSO moves a moment after commit/abort returns). Each check is a
/// request/response round trip on one consumer; the deadline bounds the wait.
pub fn wait_lso(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    expected: i64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let c = consumer(bootstrap, "read_committed");
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        let (_, lso) = c.fetch_watermarks(topic, partition, OP_TIMEOUT)?;
        if lso == expected {
            return Ok(());
        }
        last = Some(lso);
    }
    bail!("{topic}/{partition}: LSO {last:?}, not {expected}, after {timeout:?}")
}

/// Starts `vltava-txn-producer` (`bin`: the test's `env!("CARGO_BIN_EXE_vltava-txn-producer")`) with
/// a transaction of `count` records to partition 0 of `topic` and waits for its `produced FIRST LAST`
/// line; the child then holds the transaction open until the caller kills it.
pub fn spawn_open_transaction(
    bin: &std::path::Path,
    bootstrap: &str,
    transactional_id: &str,
    topic: &str,
    count: usize,
    timeout_ms: u64,
) -> anyhow::Result<(std::process::Child, String)> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(bin)
        .args([bootstrap, transactional_id, topic])
        .args([count.to_string(), timeout_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match lines.recv_timeout(OP_TIMEOUT * 2) {
        Ok(line) => Ok((child, line)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no line from {}: {e}", bin.display())
        }
    }
}

/// A broker for the transaction tests: timed-out transactions aborted within 200 ms of their
/// timeout, groups formed without the initial rebalance delay. The directory holds its config.
pub fn broker() -> (crate::Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vltava.toml");
    std::fs::write(
        &cfg,
        "group_initial_rebalance_delay_ms = 0\n\
         transaction_abort_timed_out_transaction_cleanup_interval_ms = 200\n",
    )
    .expect("write config");
    let broker = crate::Broker::start_with(crate::BrokerOptions {
        extra_args: vec!["--config".into(), cfg.display().to_string()],
        ..crate::BrokerOptions::default()
    });
    (broker, dir)
}

/// `n` distinct values tagged `tag`.
pub fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// Produces `vals` to `partition` and returns their offsets (every delivery must succeed).
pub fn send(p: &FutureProducer, topic: &str, partition: i32, vals: &[String]) -> Vec<i64> {
    let recs: Vec<kafka::Rec> = vals
        .iter()
        .map(|v| kafka::Rec::new(partition, None, Some(v.as_bytes())))
        .collect();
    kafka::produce_ok(p, topic, &recs)
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}
