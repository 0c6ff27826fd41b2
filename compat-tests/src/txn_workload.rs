//! The transactional load of the fault tests, kept for [`crate::txn_history`]: an rdkafka
//! transactional producer (acks=all) running transactions of a few unique values spread over the
//! topic's partitions, about one in four aborted on purpose, each recorded with its outcome. After a
//! failed commit it aborts (abortable error) or replaces the producer with a new one of the same
//! `transactional.id` (whose InitProducerId fences the old one and settles its transaction).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::txn;
use crate::txn_history::{Sent, Txn, TxnOutcome};

/// How the transactional writer produces.
#[derive(Clone, Debug)]
pub struct TxnWriterOptions {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub transactional_id: String,
    /// The bound on each transactional call (init, commit, abort) and on each delivery.
    pub op_timeout: Duration,
    /// `transaction.timeout.ms`: how long the coordinator lets an abandoned transaction hang.
    pub transaction_timeout: Duration,
    /// Seeds the choice of sizes, partitions and aborts.
    pub seed: u64,
}

/// A transactional writer on its own thread until [`TxnWriter::stop`]; dropping it (a failed test)
/// stops the thread without waiting for it.
pub struct TxnWriter {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicUsize>,
    /// Transactions that ended unknown or never committed.
    failed: Arc<AtomicUsize>,
    /// Commits begun, signalled as each begins.
    commits_begun: Arc<(Mutex<usize>, Condvar)>,
    last_error: Arc<Mutex<Option<String>>>,
    handle: Option<JoinHandle<BTreeMap<String, Txn>>>,
}

impl TxnWriter {
    pub fn start(opts: TxnWriterOptions) -> TxnWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let commits_begun = Arc::new((Mutex::new(0), Condvar::new()));
        let last_error = Arc::new(Mutex::new(None));
        let counts = Counts {
            committed: committed.clone(),
            failed: failed.clone(),
            commits_begun: commits_begun.clone(),
        };
        let (s, l) = (stop.clone(), last_error.clone());
        let handle = thread::spawn(move || Run::new(&opts, &s, &counts, &l).go());
        TxnWriter {
            stop,
            committed,
            failed,
            commits_begun,
            last_error,
            handle: Some(handle),
        }
    }

    /// Transactions committed so far.
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Transactions that ended unknown or never committed so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until the writer calls commit_transaction next (it returns while the commit is under
    /// way, so that a fault can hit it), for at most `timeout`.
    pub fn await_commit_begun(&self, timeout: Duration) -> anyhow::Result<()> {
        let (count, begun) = &*self.commits_begun;
        let guard = count.lock().unwrap_or_else(|e| e.into_inner());
        let from = *guard;
        let (guard, wait) = begun
            .wait_timeout_while(guard, timeout, |n| *n == from)
            .unwrap_or_else(|e| e.into_inner());
        drop(guard);
        if wait.timed_out() {
            bail!("no commit begun within {timeout:?}");
        }
        Ok(())
    }

    /// Waits until `n` more transactions than now have committed, for at most `timeout`.
    pub fn await_commits(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        self.await_count("commits", &self.committed, n, timeout)
    }

    /// Waits until at least `n` transactions in all have ended unknown or never committed.
    pub fn await_failed(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let already = self.failed().min(n);
        self.await_count("failed transactions", &self.failed, n - already, timeout)
    }

    fn await_count(
        &self,
        what: &str,
        count: &AtomicUsize,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let from = count.load(Ordering::Relaxed);
        let until = Instant::now() + timeout;
        while count.load(Ordering::Relaxed) < from + n {
            if Instant::now() >= until {
                bail!(
                    "{} {what} within {timeout:?}, wanted {n}; last error {:?}",
                    count.load(Ordering::Relaxed) - from,
                    self.last_error.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops after the transaction under way ends (settled by a new producer if it failed) and
    /// returns every transaction.
    pub fn stop(mut self) -> BTreeMap<String, Txn> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("stopped once");
        handle
            .join()
            .expect("the transactional writer thread panicked")
    }
}

impl Drop for TxnWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// xorshift64*: reproducible choices without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// How one transaction ended, for the loop: go on with this producer or replace it.
enum Next {
    Continue,
    Replace,
}

/// What the writer thread counts for the test.
struct Counts {
    committed: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    commits_begun: Arc<(Mutex<usize>, Condvar)>,
}

struct Run<'a> {
    opts: &'a TxnWriterOptions,
    stop: &'a AtomicBool,
    counts: &'a Counts,
    last_error: &'a Mutex<Option<String>>,
    rng: Rng,
    txns: BTreeMap<String, Txn>,
}

impl<'a> Run<'a> {
    fn new(
        opts: &'a TxnWriterOptions,
        stop: &'a AtomicBool,
        counts: &'a Counts,
        last_error: &'a Mutex<Option<String>>,
    ) -> Self {
        Run {
            opts,
            stop,
            counts,
            last_error,
            rng: Rng(opts.seed | 1),
            txns: BTreeMap::new(),
        }
    }

    fn note(&self, what: String) {
        eprintln!("txn writer {}: {what}", self.opts.transactional_id);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
    }

    fn producer(&self) -> anyhow::Result<FutureProducer> {
        let o = self.opts;
        let timeout_ms = o.transaction_timeout.as_millis() as u32;
        let mut c = txn::producer_config(&o.bootstrap, &o.transactional_id, timeout_ms);
        c.set("acks", "all")
            .set("message.timeout.ms", o.op_timeout.as_millis().to_string())
            .set("request.timeout.ms", "5000")
            .set("retry.backoff.ms", "100")
            .set("retry.backoff.max.ms", "500");
        Ok(c.create()?)
    }

    /// Producers one after another until stopped; once stopped, a failed transaction is still
    /// settled by a new producer's init_transactions (bounded by a minute).
    fn go(mut self) -> BTreeMap<String, Txn> {
        let mut generation = 0;
        let mut unsettled = false;
        let mut settle_until: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) || unsettled {
            if self.stop.load(Ordering::Relaxed) {
                let until = *settle_until.get_or_insert(Instant::now() + Duration::from_secs(60));
                if Instant::now() >= until {
                    self.note("gave up settling the last transaction".into());
                    break;
                }
            }
            let p = match self.producer() {
                Ok(p) => p,
                Err(e) => {
                    self.note(format!("create producer: {e:#}"));
                    thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if let Err(e) = p.init_transactions(self.opts.op_timeout) {
                self.note(format!("producer {generation}: init_transactions: {e}"));
                generation += 1;
                // A new producer tries again (a fatal error leaves this one unusable).
                thread::sleep(Duration::from_millis(200));
                continue;
            }
            unsettled = false;
            let mut i = 0;
            while !self.stop.load(Ordering::Relaxed) {
                let name = format!("{}-g{generation}-t{i}", self.opts.transactional_id);
                i += 1;
                match self.one(&p, &name) {
                    Next::Continue => {}
                    Next::Replace => {
                        unsettled = true;
                        break;
                    }
                }
            }
            generation += 1;
        }
        self.txns
    }

    /// One transaction on `p`, recorded as `name`.
    fn one(&mut self, p: &FutureProducer, name: &str) -> Next {
        if let Err(e) = p.begin_transaction() {
            self.note(format!("{name}: begin: {e}"));
            return Next::Replace;
        }
        let n = 2 + self.rng.below(3) as usize;
        let first = self.rng.below(self.opts.partitions as u64) as i32;
        let mut records = Vec::new();
        let mut pending = Vec::new();
        let mut delivered = true;
        for k in 0..n {
            let value = format!("{name}-{k}");
            let partition = (first + k as i32) % self.opts.partitions;
            let rec = FutureRecord::<(), str>::to(&self.opts.topic)
                .partition(partition)
                .payload(&value);
            match p.send_result(rec) {
                Ok(f) => pending.push((records.len(), f)),
                Err((e, _)) => {
                    self.note(format!("{value}: not queued: {e}"));
                    delivered = false;
                }
            }
            records.push(Sent {
                value,
                partition,
                offset: None,
            });
        }
        for (k, f) in pending {
            // Each delivery resolves within message.timeout.ms (op_timeout).
            match futures::executor::block_on(f) {
                Ok(Ok(d)) => records[k].offset = Some(d.offset),
                Ok(Err((e, _))) => {
                    self.note(format!("{}: delivery: {e}", records[k].value));
                    delivered = false;
                }
                Err(_) => {
                    self.note(format!("{}: delivery canceled", records[k].value));
                    delivered = false;
                }
            }
        }
        let abort = !delivered || self.rng.below(4) == 0;
        let (outcome, next) = if abort {
            match p.abort_transaction(self.opts.op_timeout) {
                Ok(()) => (TxnOutcome::Aborted, Next::Continue),
                Err(e) => {
                    self.note(format!("{name}: abort: {e}"));
                    (
                        TxnOutcome::NeverCommitted {
                            why: format!("abort failed: {}", kind(&e)),
                        },
                        Next::Replace,
                    )
                }
            }
        } else {
            {
                let (count, begun) = &*self.counts.commits_begun;
                *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                begun.notify_all();
            }
            match p.commit_transaction(self.opts.op_timeout) {
                Ok(()) => {
                    self.counts.committed.fetch_add(1, Ordering::Relaxed);
                    (TxnOutcome::Committed, Next::Continue)
                }
                Err(e) => {
                    self.note(format!("{name}: commit: {e}"));
                    let why = kind(&e);
                    let next = match &e {
                        KafkaError::Transaction(t) if t.txn_requires_abort() => {
                            match p.abort_transaction(self.opts.op_timeout) {
                                Ok(()) => Next::Continue,
                                Err(e) => {
                                    self.note(format!("{name}: abort after commit: {e}"));
                                    Next::Replace
                                }
                            }
                        }
                        _ => Next::Replace,
                    };
                    (TxnOutcome::Unknown { why }, next)
                }
            }
        };
        if matches!(
            outcome,
            TxnOutcome::Unknown { .. } | TxnOutcome::NeverCommitted { .. }
        ) {
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.txns.insert(name.to_string(), Txn { records, outcome });
        if p.client().fatal_error().is_some() {
            return Next::Replace;
        }
        next
    }
}

/// A short class of a transactional error, for the report's reasons.
fn kind(e: &KafkaError) -> String {
    match e {
        KafkaError::Transaction(t) => {
            let class = if t.is_fatal() {
                "fatal"
            } else if t.txn_requires_abort() {
                "abortable"
            } else if t.is_retriable() {
                "retriable"
            } else {
                "other"
            };
            format!("{class} {:?}", t.code())
        }
        other => other.to_string(),
    }
}
