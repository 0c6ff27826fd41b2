//! The load of the fault tests, recorded for [`crate::history`]: a paced idempotent acks=all rdkafka
//! writer that gives every send a unique value and records each delivery report's outcome (a new
//! producer, with new values, after a fatal error), a reader that records what it sees while the
//! faults go on, and the final full read of every partition up to its high watermark.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::bindings::{rd_kafka_message_status, rd_kafka_msg_status_t};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::history::{Outcome, Read};
use crate::kafka;

struct Reports {
    tx: Mutex<mpsc::Sender<(usize, Outcome)>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, i: usize) {
        let outcome = match r {
            Ok(m) => Outcome::Ok {
                partition: m.partition(),
                offset: m.offset(),
            },
            Err((e, m)) => {
                // SAFETY: the message pointer is valid for the duration of the callback.
                let status = unsafe { rd_kafka_message_status(m.ptr()) };
                if status == rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED {
                    Outcome::Failed {
                        error: e.to_string(),
                    }
                } else {
                    Outcome::Unknown {
                        why: format!("{e} ({status:?})"),
                    }
                }
            }
        };
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((i, outcome));
    }
}

/// How the writer produces.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    /// The pause between sends.
    pub interval: Duration,
    pub message_timeout: Duration,
}

/// A writer running on its own thread until [`Writer::stop`].
/// Dropping it (a failed test) stops the thread without waiting for it.
pub struct Writer {
    stop: Arc<AtomicBool>,
    /// Acknowledgements per partition.
    acked: Arc<Vec<AtomicUsize>>,
    /// The last failed or unknown outcome, for diagnostics.
    last_error: Arc<Mutex<Option<String>>>,
    handle: Option<JoinHandle<BTreeMap<String, Outcome>>>,
}

impl Writer {
    pub fn start(opts: WriterOptions) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Vec<AtomicUsize>> =
            Arc::new((0..opts.partitions).map(|_| AtomicUsize::new(0)).collect());
        let last_error = Arc::new(Mutex::new(None));
        let (s, a, l) = (stop.clone(), acked.clone(), last_error.clone());
        let handle = thread::spawn(move || write(&opts, &s, &a, &l));
        Writer {
            stop,
            acked,
            last_error,
            handle: Some(handle),
        }
    }

    /// Records acknowledged so far, on `partition` or (None) on any.
    pub fn acked(&self, partition: Option<i32>) -> usize {
        match partition {
            Some(p) => self.acked[p as usize].load(Ordering::Relaxed),
            None => self.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum(),
        }
    }

    /// Waits until `n` more records than now are acknowledged (on `partition`, or on any), for at
    /// most `timeout`.
    pub fn await_progress(
        &self,
        partition: Option<i32>,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let from = self.acked(partition);
        let until = Instant::now() + timeout;
        while self.acked(partition) < from + n {
            if Instant::now() >= until {
                bail!(
                    "{} acknowledgements on {partition:?} within {timeout:?}, wanted {n}; last error {:?}",
                    self.acked(partition) - from,
                    self.last_error.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops sending, waits for the outstanding delivery reports, and returns value -> outcome.
    pub fn stop(mut self) -> BTreeMap<String, Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("stopped once");
        handle.join().expect("the writer thread panicked")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn producer(opts: &WriterOptions) -> (ThreadedProducer<Reports>, mpsc::Receiver<(usize, Outcome)>) {
    let (tx, rx) = mpsc::channel();
    let ms = opts.message_timeout.as_millis().to_string();
    let request_ms = opts.message_timeout.as_millis().min(5_000).to_string();
    let p = kafka::base_config(&opts.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", &ms)
        .set("request.timeout.ms", &request_ms)
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "500")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Reports { tx: Mutex::new(tx) })
        .expect("create producer");
    (p, rx)
}

fn write(
    opts: &WriterOptions,
    stop: &AtomicBool,
    acked: &[AtomicUsize],
    last_error: &Mutex<Option<String>>,
) -> BTreeMap<String, Outcome> {
    let mut outcomes = BTreeMap::new();
    let mut generation = 0;
    while !stop.load(Ordering::Relaxed) {
        let (p, rx) = producer(opts);
        let mut values: Vec<String> = Vec::new();
        let record = |outcomes: &mut BTreeMap<String, Outcome>, values: &[String], i: usize, o| {
            match &o {
                Outcome::Ok { partition, .. } => {
                    if let Some(a) = acked.get(*partition as usize) {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                }
                other => {
                    *last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{} {other:?}", values[i]));
                }
            }
            outcomes.insert(values[i].clone(), o);
        };
        let mut last_fatal_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let i = values.len();
            let value = format!("p{generation}-{i}");
            let rec = BaseRecord::<(), str, usize>::with_opaque_to(&opts.topic, i)
                .partition(i as i32 % opts.partitions)
                .payload(&value);
            values.push(value.clone());
            outcomes.insert(
                value.clone(),
                Outcome::Unknown {
                    why: "no delivery report".into(),
                },
            );
            if let Err((e, _)) = p.send(rec) {
                // Refused before it was queued: never on the wire.
                outcomes.insert(
                    value,
                    Outcome::Failed {
                        error: format!("not queued: {e}"),
                    },
                );
            }
            while let Ok((i, o)) = rx.try_recv() {
                record(&mut outcomes, &values, i, o);
            }
            if last_fatal_check.elapsed() > Duration::from_millis(100) {
                last_fatal_check = Instant::now();
                if let Some((code, why)) = p.client().fatal_error() {
                    eprintln!("writer: producer {generation} fatal ({code:?}: {why}); a new one");
                    break;
                }
            }
            thread::sleep(opts.interval);
        }
        // Outstanding reports: up to the message timeout, plus slack for a loaded machine.
        let _ = p.flush(opts.message_timeout + Duration::from_secs(5));
        drop(p);
        while let Ok((i, o)) = rx.try_recv() {
            record(&mut outcomes, &values, i, o);
        }
        generation += 1;
    }
    outcomes
}

fn reader(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let c: BaseConsumer = kafka::base_config(bootstrap)
        .set("group.id", "vltava-faults-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    c
}

fn as_read(m: &rdkafka::message::BorrowedMessage<'_>) -> Read {
    Read {
        partition: m.partition(),
        offset: m.offset(),
        value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
    }
}

/// A reader of every partition from the earliest offset while the faults go on.
pub struct RunReader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Read>>>,
}

impl Drop for RunReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl RunReader {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32) -> RunReader {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        let handle = thread::spawn(move || {
            let c = reader(&bootstrap, &topic, partitions);
            let mut reads = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    reads.push(as_read(&m));
                }
            }
            reads
        });
        RunReader {
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

/// Every record of every partition from the earliest offset up to the high watermark each partition
/// has when the read starts; fails if that is not read within `deadline`.
pub fn final_read(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    deadline: Duration,
) -> anyhow::Result<Vec<Read>> {
    let until = Instant::now() + deadline;
    let c = reader(bootstrap, topic, partitions);
    let mut high = BTreeMap::new();
    for p in 0..partitions {
        let (_, h) = c.fetch_watermarks(topic, p, deadline)?;
        high.insert(p, h);
    }
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut reads = Vec::new();
    let mut last_error = None;
    while next.iter().any(|(p, n)| *n < high[p]) {
        if Instant::now() >= until {
            let now: Vec<_> = (0..partitions)
                .map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)))
                .collect();
            bail!(
                "final read incomplete after {deadline:?}: next offsets {next:?}, high watermarks {high:?} at the start and {now:?} now, last error {last_error:?}"
            );
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let r = as_read(&m);
                let n = next.entry(r.partition).or_default();
                *n = (*n).max(r.offset + 1);
                reads.push(r);
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
    }
    Ok(reads)
}
