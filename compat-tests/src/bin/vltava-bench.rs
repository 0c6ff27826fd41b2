//! vltava benchmark driver (run by `make bench`; not a test).
//!
//! Starts the (release) broker itself, measures start-up time (spawn → the
//! `accepting connections` line), creates a 4-partition topic and then runs:
//!   * throughput: N × 100 B and M × 1 KiB records, with acks=1 and acks=all;
//!   * consume-all with assign(): records/s and MB/s;
//!   * a fixed-rate run (default 5,000 rec/s for 10 s) measuring produce
//!     latency, send → delivery report (p50/p99/max);
//!   * transactional produce: the 100 B acks=all run's records from a transactional producer
//!     committing every 100 ms, to a topic of its own;
//!   * broker idle RSS, peak RSS (VmHWM) and CPU seconds (utime+stime);
//!   * then (unless --no-cluster or --bootstrap) an RF=3 phase: a 3-node cluster of the same binary
//!     on 127.0.0.1-3 (data in temp dirs), a 4-partition topic with replication factor 3 and
//!     min.insync.replicas=2, the acks=all throughput runs, consume-all and the fixed-rate run
//!     again, with CPU summed over the three nodes, and a table RF=3 next to single-node with the
//!     ratio.
//!
//! Flags:
//!   --quick             10× smaller throughput runs and a 3 s fixed-rate run
//!   --bin PATH          broker binary (default $VLTAVA_BIN or target/release/vltava)
//!   --bootstrap ADDR    benchmark an already running broker (no RSS/CPU figures)
//!   --rate N            fixed-rate records per second (default 5000)
//!   --duration SECS     fixed-rate run length (default 10)
//!   --scale F           multiply the throughput record counts by F
//!   --broker-arg ARG    extra broker argument (repeatable), e.g. --broker-arg=--flush --broker-arg=always
//!                       (single node only)
//!   --no-cluster        skip the RF=3 cluster phase
//!   --perf-consume FILE `perf record -g --call-graph dwarf` the single-node broker during its
//!                       consume phase into FILE (`perf report -i FILE` reads it)
//!   --perf-rf3 FILE     the same for the three nodes during the RF=3 produce runs

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use vltava_compat::{kafka, proc_stats, repo_root, unique_topic, Broker, BrokerOptions, ProcStats};

#[path = "vltava-bench/rf3.rs"]
mod rf3;
#[path = "vltava-bench/txn.rs"]
mod txn;

const PARTITIONS: i32 = 4;

struct Args {
    quick: bool,
    bin: Option<std::path::PathBuf>,
    bootstrap: Option<String>,
    rate: u64,
    duration: f64,
    scale: f64,
    broker_args: Vec<String>,
    cluster: bool,
    perf_consume: Option<std::path::PathBuf>,
    perf_rf3: Option<std::path::PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        quick: false,
        bin: None,
        bootstrap: None,
        rate: 5000,
        duration: 10.0,
        scale: 1.0,
        broker_args: Vec::new(),
        cluster: true,
        perf_consume: None,
        perf_rf3: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut val = |name: &str| -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--quick" => a.quick = true,
            "--bin" => a.bin = Some(val("--bin")?.into()),
            "--bootstrap" => a.bootstrap = Some(val("--bootstrap")?),
            "--rate" => a.rate = val("--rate")?.parse()?,
            "--duration" => a.duration = val("--duration")?.parse()?,
            "--scale" => a.scale = val("--scale")?.parse()?,
            "--broker-arg" => a.broker_args.push(val("--broker-arg")?),
            "--no-cluster" => a.cluster = false,
            "--perf-consume" => a.perf_consume = Some(val("--perf-consume")?.into()),
            "--perf-rf3" => a.perf_rf3 = Some(val("--perf-rf3")?.into()),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("vltava-bench.rs")
                        .lines()
                        .take_while(|l| l.starts_with("//!"))
                        .map(|l| l.trim_start_matches("//!"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    if a.quick {
        a.scale *= 0.1;
        a.duration = a.duration.min(3.0);
    }
    Ok(a)
}

/// Delivery accounting shared between the producer's context and the driver:
/// counters plus send→delivery latencies (µs).
struct Shared {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies_us: Mutex<Vec<u32>>,
    epoch: Instant,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            latencies_us: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        }
    }
    fn stamp(&self) -> usize {
        self.epoch.elapsed().as_micros() as usize
    }
    fn reset(&self) {
        self.delivered.store(0, Ordering::SeqCst);
        self.failed.store(0, Ordering::SeqCst);
        self.latencies_us.lock().unwrap().clear();
    }
}

struct BenchContext(Arc<Shared>);

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = usize; // send time, µs since epoch

    fn delivery(&self, r: &DeliveryResult<'_>, sent_us: usize) {
        let s = &self.0;
        let now = s.stamp();
        match r {
            Ok(_) => {
                s.delivered.fetch_add(1, Ordering::Relaxed);
                let lat = now.saturating_sub(sent_us).min(u32::MAX as usize) as u32;
                s.latencies_us.lock().unwrap().push(lat);
            }
            Err((e, _)) => {
                s.failed.fetch_add(1, Ordering::Relaxed);
                let mut fe = s.first_error.lock().unwrap();
                if fe.is_none() {
                    *fe = Some(e.to_string());
                }
            }
        }
    }
}

type BenchProducer = ThreadedProducer<BenchContext>;

fn make_producer(bs: &str, acks: &str, ctx: Arc<Shared>) -> anyhow::Result<BenchProducer> {
    make_producer_with(bs, acks, ctx, &[])
}

/// [`make_producer`] with `extra` settings on top (the transactional run's id).
fn make_producer_with(
    bs: &str,
    acks: &str,
    ctx: Arc<Shared>,
    extra: &[(&str, &str)],
) -> anyhow::Result<BenchProducer> {
    let mut cfg: ClientConfig = kafka::producer_config(bs, acks, "none");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .set("client.id", "vltava-bench");
    Ok(cfg.create_with_context(BenchContext(ctx))?)
}

fn send_one(p: &BenchProducer, topic: &str, i: u64, payload: &[u8], key: &[u8], ctx: &Shared) {
    let part = (i % PARTITIONS as u64) as i32;
    let mut rec = BaseRecord::with_opaque_to(topic, ctx.stamp())
        .partition(part)
        .key(key)
        .payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // Local queue full: back-pressure, serve events and retry.
                rec = back;
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("send failed: {e}"),
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

struct Row {
    name: String,
    records: u64,
    bytes: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu: Option<f64>,
}

fn print_rows(rows: &[Row]) {
    println!(
        "\n{:<30} {:>10} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "phase", "records", "secs", "rec/s", "MB/s", "p50 ms", "p99 ms", "max ms", "cpu s"
    );
    println!("{}", "-".repeat(113));
    for r in rows {
        let f = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.2}")
            }
        };
        println!(
            "{:<30} {:>10} {:>9.2} {:>12.0} {:>9.1} {:>9} {:>9} {:>9} {:>8}",
            r.name,
            r.records,
            r.secs,
            r.records as f64 / r.secs,
            r.bytes as f64 / r.secs / 1e6,
            f(r.p50_ms),
            f(r.p99_ms),
            f(r.max_ms),
            r.cpu
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into())
        );
    }
}

/// Broker CPU seconds (utime+stime) summed over `pids`; None when there are none (an outside
/// broker) or one cannot be read.
fn cpu_secs(pids: &[u32], what: &str) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|&p| {
            proc_stats(p)
                .map(|s| s.cpu_secs)
                .map_err(|e| eprintln!("proc stats ({what}, pid {p}): {e}"))
                .ok()
        })
        .sum()
}

/// The throughput runs: (record size, count, acks).
fn throughput_runs(args: &Args) -> Vec<(usize, u64, &'static str)> {
    let scale = |n: u64| ((n as f64) * args.scale).max(1.0) as u64;
    vec![
        (100, scale(1_000_000), "1"),
        (100, scale(1_000_000), "all"),
        (1024, scale(200_000), "1"),
        (1024, scale(200_000), "all"),
    ]
}

/// Sends `count` records of `size` bytes round-robin over the partitions as fast as the producer
/// takes them, waits for every delivery report, and fails on any failed delivery.
fn produce_run(
    bs: &str,
    topic: &str,
    (size, count, acks): (usize, u64, &str),
    ctx: &Arc<Shared>,
    pids: &[u32],
    label: &str,
) -> anyhow::Result<Row> {
    let producer = make_producer(bs, acks, ctx.clone())?;
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    ctx.reset();
    let cpu0 = cpu_secs(pids, "phase start");
    let start = Instant::now();
    for i in 0..count {
        let key = (i % 10_000).to_be_bytes();
        send_one(&producer, topic, i, &payload, &key, ctx);
    }
    producer.flush(Duration::from_secs(300))?;
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = cpu_secs(pids, "phase end");
    let row = produced_row(
        format!("{label}produce {size} B acks={acks}"),
        (size, count),
        secs,
        ctx,
        cpu0.zip(cpu1).map(|(a, b)| b - a),
    )?;
    eprintln!("done: {}", row.name);
    Ok(row)
}

/// The row of a produce run of `count` records of `size` bytes that took `secs`: fails unless
/// every record was delivered; latencies from the delivery reports.
fn produced_row(
    name: String,
    (size, count): (usize, u64),
    secs: f64,
    ctx: &Shared,
    cpu: Option<f64>,
) -> anyhow::Result<Row> {
    let failed = ctx.failed.load(Ordering::SeqCst);
    if failed > 0 {
        bail!(
            "{failed} deliveries failed, first: {:?}",
            ctx.first_error.lock().unwrap()
        );
    }
    let delivered = ctx.delivered.load(Ordering::SeqCst);
    if delivered != count {
        bail!("{delivered} of {count} delivered");
    }
    let mut lat = std::mem::take(&mut *ctx.latencies_us.lock().unwrap());
    lat.sort_unstable();
    Ok(Row {
        name,
        records: count,
        bytes: count * size as u64,
        secs,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        max_ms: pct(&lat, 1.0),
        cpu,
    })
}

/// Consumes every partition of `topic` from the beginning to its high watermark and checks the
/// totals against what was produced.
fn consume_run(
    bs: &str,
    topic: &str,
    (total_records, total_bytes): (u64, u64),
    pids: &[u32],
    label: &str,
) -> anyhow::Result<Row> {
    // One consumer per partition, each on its own thread, because one rdkafka-rs consumer thread
    // tops out at ~350k msg/s on its own (per-message poll cost), far below what the broker serves.
    let cpu0 = cpu_secs(pids, "consume start");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let per_partition: Vec<(u64, u64, Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PARTITIONS)
            .map(|p| {
                scope.spawn(move || -> anyhow::Result<(u64, u64, Instant, Instant)> {
                    let mut cfg = kafka::consumer_config(bs);
                    // librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s) once
                    // queued.min.messages are buffered; with a consumer slower than the broker that
                    // idles the connection, so keep fetching whenever the queue has room.
                    cfg.set("fetch.wait.max.ms", "50")
                        .set("fetch.max.bytes", "52428800")
                        .set("max.partition.fetch.bytes", "4194304")
                        .set("queued.max.messages.kbytes", "262144")
                        .set("queued.min.messages", "1000000")
                        .set("fetch.queue.backoff.ms", "5");
                    let c: BaseConsumer = cfg.create()?;
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
                    c.assign(&tpl)?;
                    let mut high = 0;
                    while high <= 0 {
                        high = c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1;
                    }
                    let (mut n, mut bytes) = (0u64, 0u64);
                    let mut first: Option<Instant> = None;
                    let mut next = 0i64;
                    while next < high {
                        if Instant::now() > deadline {
                            bail!("partition {p}: consumed only {n} records");
                        }
                        match c.poll(Duration::from_millis(500)) {
                            Some(Ok(m)) => {
                                first.get_or_insert_with(Instant::now);
                                n += 1;
                                bytes += m.payload_len() as u64;
                                next = m.offset() + 1;
                            }
                            Some(Err(e)) => {
                                bail!("partition {p}: consume error after {n} records: {e}")
                            }
                            None => {}
                        }
                    }
                    Ok((n, bytes, first.unwrap_or_else(Instant::now), Instant::now()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let n: u64 = per_partition.iter().map(|r| r.0).sum();
    let bytes: u64 = per_partition.iter().map(|r| r.1).sum();
    // Timed from the first record received: librdkafka's start-up (an offset-query timer that
    // re-arms for 500 ms when it races the broker connection coming up) is not broker time.
    let first = per_partition.iter().map(|r| r.2).min().unwrap_or(start);
    let last = per_partition.iter().map(|r| r.3).max().unwrap_or(start);
    if n != total_records || bytes != total_bytes {
        bail!("consumed {n} records, {bytes} B; produced {total_records}, {total_bytes} B");
    }
    let row = Row {
        name: format!("{label}consume all (assign)"),
        records: n,
        bytes,
        secs: last.duration_since(first).as_secs_f64(),
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        max_ms: f64::NAN,
        cpu: cpu0.zip(cpu_secs(pids, "consume end")).map(|(a, b)| b - a),
    };
    eprintln!("done: {}", row.name);
    Ok(row)
}

/// Sends 100 B records at `args.rate` per second for `args.duration` seconds with acks=all: the
/// latency a service sees, not queueing at full speed.
fn fixed_rate_run(
    bs: &str,
    topic: &str,
    args: &Args,
    ctx: &Arc<Shared>,
    pids: &[u32],
    label: &str,
) -> anyhow::Result<Row> {
    let producer = make_producer(bs, "all", ctx.clone())?;
    let payload = vec![b'x'; 100];
    ctx.reset();
    let total = (args.rate as f64 * args.duration) as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let cpu0 = cpu_secs(pids, "rate start");
    let start = Instant::now();
    for i in 0..total {
        // Pacing (not synchronisation): send record i at start + i * interval.
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        send_one(&producer, topic, i, &payload, &i.to_be_bytes(), ctx);
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *ctx.latencies_us.lock().unwrap());
    lat.sort_unstable();
    if ctx.failed.load(Ordering::SeqCst) > 0 {
        bail!(
            "fixed-rate deliveries failed: {:?}",
            ctx.first_error.lock().unwrap()
        );
    }
    let row = Row {
        name: format!("{label}fixed {} rec/s acks=all 100 B", args.rate),
        records: total,
        bytes: total * 100,
        secs,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        max_ms: pct(&lat, 1.0),
        cpu: cpu0.zip(cpu_secs(pids, "rate end")).map(|(a, b)| b - a),
    };
    eprintln!("done: {}", row.name);
    Ok(row)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let bin = args
        .bin
        .clone()
        .or_else(|| std::env::var_os("VLTAVA_BIN").map(Into::into))
        .unwrap_or_else(|| repo_root().join("target/release/vltava"));
    let log_level =
        std::env::var("VLTAVA_BENCH_RUST_LOG").unwrap_or_else(|_| "warn,vltava=info".into());
    // The cluster harness takes the binary and the nodes' log level from the environment; set here,
    // before any client thread runs.
    std::env::set_var("VLTAVA_BIN", &bin);
    if std::env::var_os("VLTAVA_TEST_RUST_LOG").is_none() {
        std::env::set_var("VLTAVA_TEST_RUST_LOG", &log_level);
    }
    let mut broker = None;
    let (bs, pid) = match &args.bootstrap {
        Some(b) => (b.clone(), None),
        None => {
            let b = Broker::try_start_with(BrokerOptions {
                bin: bin.clone(),
                extra_args: args.broker_args.clone(),
                rust_log: log_level.clone(),
                ..BrokerOptions::default()
            })?;
            let bs = b.bootstrap().to_string();
            let pid = b.pid();
            broker = Some(b);
            (bs, pid)
        }
    };
    let pids: Vec<u32> = pid.into_iter().collect();
    let stats = |what: &str| -> Option<ProcStats> {
        pid.and_then(|p| {
            proc_stats(p)
                .map_err(|e| eprintln!("proc stats ({what}): {e}"))
                .ok()
        })
    };
    let idle = stats("idle");
    if let Some(b) = &broker {
        println!(
            "broker {} started in {:.1} ms (pid {:?})",
            bs,
            b.startup_time().as_secs_f64() * 1e3,
            pid
        );
    }

    let topic = unique_topic("bench");
    kafka::create_topic(&bs, &topic, PARTITIONS, &[])?;
    println!("topic {topic} ({PARTITIONS} partitions)");

    let ctx = Arc::new(Shared::new());
    let mut rows = Vec::new();
    let mut total_records = 0u64;
    let mut total_bytes = 0u64;
    for run in throughput_runs(&args) {
        let row = produce_run(&bs, &topic, run, &ctx, &pids, "")?;
        total_records += row.records;
        total_bytes += row.bytes;
        rows.push(row);
    }
    let perf = match (&args.perf_consume, pid) {
        (Some(file), Some(pid)) => Some(Perf::start(&[pid], file)?),
        _ => None,
    };
    rows.push(consume_run(
        &bs,
        &topic,
        (total_records, total_bytes),
        &pids,
        "",
    )?);
    if let Some(perf) = perf {
        perf.stop()?;
    }

    rows.push(fixed_rate_run(&bs, &topic, &args, &ctx, &pids, "")?);
    let txn_count = throughput_runs(&args)[1].1;
    rows.push(txn::run(
        &bs,
        &unique_topic("bench-txn"),
        (100, txn_count),
        &ctx,
        &pids,
    )?);

    print_rows(&rows);
    println!("(latency = send → delivery report, linger.ms=5; MB = 10^6 payload bytes)");
    if let Some(b) = &broker {
        let end = stats("end");
        println!(
            "\nbroker start-up:   {:>8.1} ms",
            b.startup_time().as_secs_f64() * 1e3
        );
        if let Some(i) = idle {
            println!("broker idle RSS:   {:>8.1} MiB", i.rss_kib as f64 / 1024.0);
        }
        if let Some(e) = end {
            println!(
                "broker peak RSS:   {:>8.1} MiB (VmHWM)",
                e.hwm_kib as f64 / 1024.0
            );
            println!("broker CPU total:  {:>8.2} s (utime+stime)", e.cpu_secs);
        }
        println!(
            "data dir on disk:  {:>8.1} MiB",
            dir_size(b.data_dir()) as f64 / 1048576.0
        );
    }
    // The single node stops before the cluster starts: the phases must not share the cores.
    drop(broker);

    if args.cluster && args.bootstrap.is_none() {
        let rf3 = rf3::run(&args, &ctx)?;
        rf3::print_comparison(&rows, &rf3);
    }
    Ok(())
}

/// A `perf record` attached to the broker for one phase.
pub(crate) struct Perf {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Perf {
    pub(crate) fn start(pids: &[u32], file: &std::path::Path) -> anyhow::Result<Perf> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let _ = std::fs::remove_file(file);
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "--call-graph",
                "dwarf",
            ])
            .arg("-p")
            .arg(pids.join(","))
            .arg("-o")
            .arg(file)
            .stdin(std::process::Stdio::null())
            .spawn()
            .context("spawning perf (Debian's linux-perf)")?;
        let mut perf = Perf {
            child,
            file: file.to_path_buf(),
        };
        // perf writes its file's header once it is attached.
        let until = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(file).map_or(true, |m| m.len() == 0) {
            if Instant::now() > until || perf.child.try_wait()?.is_some() {
                perf.stop()?;
                bail!("perf record did not start writing {}", file.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(perf)
    }

    /// SIGINT (perf's own way to stop and finish its file), then wait for it.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: signalling a child this driver spawned and has not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        self.child.wait()?;
        eprintln!("perf data: {}", self.file.display());
        Ok(())
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                // Allocated blocks, not apparent length (index files may be sparse).
                Ok(m) => total += std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                Err(_) => {}
            }
        }
    }
    total
}
