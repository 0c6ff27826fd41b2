//! The reads of the transactional fault tests (for [`crate::txn_history`]): a read_committed reader
//! of every partition while the faults go on, and after healing, once every partition's last stable
//! offset has reached its high watermark, a read_committed and a read_uncommitted read of it all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::history::Read;
use crate::kafka::{self, OP_TIMEOUT};
use crate::txn;
use crate::txn_history::Hanging;

fn committed_reader(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let c: BaseConsumer = kafka::base_config(bootstrap)
        .set("group.id", "vltava-faults-txn-unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create read_committed reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    c
}

/// A read_committed reader of every partition from the earliest offset while the faults go on.
pub struct CommittedRunReader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Read>>>,
}

impl Drop for CommittedRunReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl CommittedRunReader {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32) -> CommittedRunReader {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        let handle = thread::spawn(move || {
            let c = committed_reader(&bootstrap, &topic, partitions);
            let mut reads = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    reads.push(Read {
                        partition: m.partition(),
                        offset: m.offset(),
                        value: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                    });
                }
            }
            reads
        });
        CommittedRunReader {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> Vec<Read> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("stopped once");
        handle.join().expect("the reader thread panicked")
    }
}

/// (LSO, high watermark) of `partition`, as its leader answers ListOffsets at each isolation level.
fn marks(
    committed: &BaseConsumer,
    uncommitted: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> anyhow::Result<(i64, i64)> {
    let (_, lso) = committed.fetch_watermarks(topic, partition, OP_TIMEOUT)?;
    let (_, hw) = uncommitted.fetch_watermarks(topic, partition, OP_TIMEOUT)?;
    Ok((lso, hw))
}

/// What the final reads found.
#[derive(Debug, Default)]
pub struct FinalReads {
    /// At read_committed.
    pub committed: Vec<Read>,
    /// At read_uncommitted: the log, aborted records too.
    pub log: Vec<Read>,
    /// Partitions whose LSO stayed below the high watermark (left out of both reads).
    pub hanging: Vec<Hanging>,
}

/// The final reads: waits (up to `deadline`) for every partition's LSO to reach its high watermark;
/// those that do not are returned as hanging and left out. Then reads every other partition from
/// offset 0 up to that offset at read_committed, and again at read_uncommitted.
pub fn final_reads(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    deadline: Duration,
) -> anyhow::Result<FinalReads> {
    let until = Instant::now() + deadline;
    let committed = txn::consumer(bootstrap, "read_committed");
    let uncommitted = txn::consumer(bootstrap, "read_uncommitted");
    let mut ends = BTreeMap::new();
    let mut hanging = Vec::new();
    for p in 0..partitions {
        loop {
            let (lso, hw) = marks(&committed, &uncommitted, topic, p)
                .with_context(|| format!("the marks of {topic}/{p}"))?;
            if lso == hw {
                ends.insert(p, hw);
                break;
            }
            if Instant::now() >= until {
                hanging.push(Hanging {
                    partition: p,
                    lso,
                    high_watermark: hw,
                });
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    let start: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let read = |c: &BaseConsumer, level: &str| -> anyhow::Result<Vec<Read>> {
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(10));
        let got = txn::read_to(c, topic, &start, &ends, left)
            .with_context(|| format!("the {level} read of {topic} to {ends:?}"))?;
        Ok(got
            .into_iter()
            .flat_map(|(partition, rs)| {
                rs.into_iter().map(move |(offset, value)| Read {
                    partition,
                    offset,
                    value,
                })
            })
            .collect())
    };
    let committed = read(&committed, "read_committed")?;
    let log = read(&uncommitted, "read_uncommitted")?;
    Ok(FinalReads {
        committed,
        log,
        hanging,
    })
}
