//! vltava and Apache Kafka side by side (run by `make bench-kafka`; not a test, not in CI).
//!
//! Each round starts a fresh single-node Apache Kafka (KRaft, combined broker+controller, Kafka's
//! defaults, `-Xmx1G -Xms1G` as `kafka-server-start.sh` sets) and a fresh release `vltava`, one
//! after the other (the order alternates between rounds), and runs the same workloads against each:
//!   * start-up: spawn → the first Metadata request answered with a broker list (a bounded
//!     connect/request loop); RSS right after that;
//!   * `vltava-bench --bootstrap ADDR` (default `--scale=0.5 --duration=5`): rdkafka produce (acks=1/all,
//!     100 B / 1 KiB), consume-all, fixed-rate latency;
//!   * Kafka's own `ProducerPerformance` transactional (`--transactional-id`, a commit every
//!     `--transaction-duration-ms 100`) with the 100 B records;
//!   * Kafka's own `ProducerPerformance` (acks=all, `--throughput -1`, 100 B and 1 KiB records,
//!     each into its own 4-partition topic) and `ConsumerPerformance` reading each topic back;
//!   * the broker's peak RSS (VmHWM) and CPU seconds (utime+stime, spawn → end of the workloads).
//!
//! At the end: a markdown table with, per metric, Kafka's and vltava's min/median/max over the
//! rounds and the ratio vltava ÷ Kafka (per round, min/median/max). Every subprocess runs under a
//! timeout and is killed when it ends or the run fails.
//!
//! Flags:
//!   --rounds N            rounds (default 3)
//!   --classpath-file P    Kafka's classpath (default bench/kafka/target/classpath.txt, written by
//!                         `mvn dependency:build-classpath` in bench/kafka)
//!   --java PATH           the java binary (default `java`)
//!   --bin PATH            vltava binary (default $VLTAVA_BIN or target/release/vltava)
//!   --bench-bin PATH      vltava-bench binary (default target/release/vltava-bench)
//!   --bench-arg ARG       argument for vltava-bench (repeatable; default --scale=0.5 --duration=5)
//!   --small N             100 B records for ProducerPerformance (default 1000000)
//!   --large N             1 KiB records for ProducerPerformance (default 200000)
//!   --timeout SECS        limit for each subprocess (default 300)
//!   --keep-logs           keep the brokers' directories (logs, data) and print where they are

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use vltava_compat::{kafka, proc_stats, repo_root, unique_topic};

const PARTITIONS: i32 = 4;
/// The JVM options `kafka-run-class.sh` uses (KAFKA_JVM_PERFORMANCE_OPTS).
const JVM_PERF_OPTS: &[&str] = &[
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

struct Args {
    rounds: usize,
    classpath_file: PathBuf,
    java: String,
    bin: PathBuf,
    bench_bin: PathBuf,
    bench_args: Vec<String>,
    small: u64,
    large: u64,
    timeout: Duration,
    keep_logs: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let root = repo_root();
    let mut a = Args {
        rounds: 3,
        classpath_file: root.join("bench/kafka/target/classpath.txt"),
        java: "java".into(),
        bin: std::env::var_os("VLTAVA_BIN")
            .filter(|v| !v.is_empty())
            .map(Into::into)
            .unwrap_or_else(|| root.join("target/release/vltava")),
        bench_bin: root.join("target/release/vltava-bench"),
        bench_args: Vec::new(),
        small: 1_000_000,
        large: 200_000,
        timeout: Duration::from_secs(300),
        keep_logs: false,
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
            "--rounds" => a.rounds = val("--rounds")?.parse()?,
            "--classpath-file" => a.classpath_file = val("--classpath-file")?.into(),
            "--java" => a.java = val("--java")?,
            "--bin" => a.bin = val("--bin")?.into(),
            "--bench-bin" => a.bench_bin = val("--bench-bin")?.into(),
            "--bench-arg" => a.bench_args.push(val("--bench-arg")?),
            "--small" => a.small = val("--small")?.parse()?,
            "--large" => a.large = val("--large")?.parse()?,
            "--timeout" => a.timeout = Duration::from_secs(val("--timeout")?.parse()?),
            "--keep-logs" => a.keep_logs = true,
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("vltava-vs-kafka.rs")
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
    if a.bench_args.is_empty() {
        // Half of `make bench`: --quick phases (0.1-0.2 s at these rates) mostly measure the
        // client's own start-up.
        a.bench_args = vec!["--scale=0.5".into(), "--duration=5".into()];
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A long-running child (a broker) that is SIGKILLed and reaped when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (then with what status).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn `cmd` with stdout and stderr appended to `log`.
fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
    let out = fs::File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    Ok(Proc {
        child,
        log: log.to_path_buf(),
    })
}

/// Run `cmd` to completion within `timeout` (SIGKILLed after it) and return its stdout; a
/// non-zero exit is an error that carries the tail of stderr.
fn run_bounded(mut cmd: Command, timeout: Duration) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {shown}"))?;
    let pid = child.id() as libc::pid_t;
    let read_all = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    // A helper thread blocks in wait(); the deadline is a channel timeout.
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let st = child.wait();
        let _ = tx.send(());
        st
    });
    let in_time = rx.recv_timeout(timeout).is_ok();
    if !in_time {
        // SAFETY: plain kill(2) of our own, not yet reaped, child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let status = waiter.join().expect("waiter thread")?;
    let out = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    let tail = |s: &str| {
        let l: Vec<&str> = s.lines().collect();
        l[l.len().saturating_sub(30)..].join("\n")
    };
    if !in_time {
        bail!(
            "{shown} did not finish within {timeout:?} (killed)\n{}\n{}",
            tail(&out),
            tail(&err)
        );
    }
    if !status.success() {
        bail!("{shown} failed ({status})\n{}\n{}", tail(&out), tail(&err));
    }
    Ok(out)
}

/// A port that was free a moment ago (bind to 0, read it back, release it).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// Readiness: the first answered Metadata request

/// One Metadata v12 round trip (no topics): whether the broker answered with a broker list.
fn metadata_answered(addr: &str) -> anyhow::Result<bool> {
    let sa = addr.parse()?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    let (key, version) = (ApiKey::Metadata, 12i16);
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("vltava-vs-kafka")));
    let body = MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header.encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&buf)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&len) {
        bail!("bad frame length {len}");
    }
    let mut frame = vec![0u8; len as usize];
    s.read_exact(&mut frame)?;
    let mut frame = Bytes::from(frame);
    ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    let resp = MetadataResponse::decode(&mut frame, version)?;
    Ok(!resp.brokers.is_empty())
}

/// Poll `addr` with Metadata requests until one is answered with brokers, the process exits,
/// or `timeout` passes. Returns the time since `spawned`.
fn await_metadata(
    p: &mut Proc,
    addr: &str,
    spawned: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut last;
    loop {
        match metadata_answered(addr) {
            Ok(true) => return Ok(spawned.elapsed()),
            Ok(false) => last = "Metadata answered without brokers".into(),
            Err(e) => last = format!("{e:#}"),
        }
        if let Some(st) = p.exited() {
            bail!(
                "broker exited ({st}) before answering Metadata\n{}",
                p.log_tail()
            );
        }
        if spawned.elapsed() > timeout {
            bail!(
                "no Metadata answer from {addr} within {timeout:?} ({last})\n{}",
                p.log_tail()
            );
        }
        // Bounded polling of a real condition: a refused connect returns at once.
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// The brokers

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Kafka,
    Vltava,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kafka => "Kafka",
            Kind::Vltava => "vltava",
        }
    }
}

/// A random Kafka cluster id: 16 bytes, URL-safe base64 without padding (22 characters).
fn cluster_id() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[0] &= 0x7f; // Kafka's Uuid.randomUuid avoids ids starting with '-'
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for byte in b {
        bits = (bits << 8) | byte as u32;
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(A[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(A[((bits << (6 - n)) & 63) as usize] as char);
    }
    Ok(out)
}

/// Write Kafka's configuration into `dir`, format its storage, and return the `kafka.Kafka`
/// command and the client address.
fn kafka_command(args: &Args, cp: &str, dir: &Path) -> anyhow::Result<(Command, String)> {
    let (port, cport) = (free_port()?, free_port()?);
    let data = dir.join("kraft-combined-logs");
    // Kafka 4.x's config/server.properties, with local ports and directories.
    let props = format!(
        "# Apache Kafka's shipped config/server.properties (4.x), on local ports.\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.bootstrap.servers=127.0.0.1:{cport}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
         inter.broker.listener.name=PLAINTEXT\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\n\
         num.io.threads=8\n\
         socket.send.buffer.bytes=102400\n\
         socket.receive.buffer.bytes=102400\n\
         socket.request.max.bytes=104857600\n\
         log.dirs={}\n\
         num.partitions=1\n\
         num.recovery.threads.per.data.dir=1\n\
         offsets.topic.replication.factor=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         log.retention.hours=168\n\
         log.segment.bytes=1073741824\n\
         log.retention.check.interval.ms=300000\n\
         group.initial.rebalance.delay.ms=0\n",
        data.display()
    );
    let props_path = dir.join("server.properties");
    fs::write(&props_path, props)?;
    // The distribution logs INFO to files under logs/; one file here.
    let log4j = dir.join("log4j2.properties");
    fs::write(
        &log4j,
        format!(
            "# Kafka broker logging: INFO to one file, as the distribution's server.log.\n\
             appender.f.type=File\n\
             appender.f.name=F\n\
             appender.f.fileName={}\n\
             appender.f.layout.type=PatternLayout\n\
             appender.f.layout.pattern=[%d] %p %m (%c)%n\n\
             rootLogger.level=info\n\
             rootLogger.appenderRef.f.ref=F\n",
            dir.join("server.log").display()
        ),
    )?;
    let mut fmt = Command::new(&args.java);
    fmt.args(["-Xmx512M", "-cp", cp, "kafka.tools.StorageTool", "format"])
        .arg("-t")
        .arg(cluster_id()?)
        .arg("-c")
        .arg(&props_path)
        .arg("--standalone")
        .env("LOG4J_CONFIGURATION_FILE", &log4j);
    run_bounded(fmt, args.timeout).context("formatting Kafka's storage")?;
    let mut cmd = Command::new(&args.java);
    // kafka-server-start.sh: KAFKA_HEAP_OPTS="-Xmx1G -Xms1G".
    cmd.args(["-Xmx1G", "-Xms1G"])
        .args(JVM_PERF_OPTS)
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg(format!("-Dkafka.logs.dir={}", dir.display()))
        .args(["-cp", cp, "kafka.Kafka"])
        .arg(&props_path);
    Ok((cmd, format!("127.0.0.1:{port}")))
}

fn vltava_command(args: &Args, dir: &Path) -> anyhow::Result<(Command, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(&args.bin);
    cmd.arg("--listen")
        .arg(&addr)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn,vltava=info")
        .env("NO_COLOR", "1");
    Ok((cmd, addr))
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One broker's figures in one round, in the order they were measured.
#[derive(Default)]
struct Sample {
    metrics: Vec<(String, f64, Better)>,
}

impl Sample {
    fn put(&mut self, name: impl Into<String>, v: f64, b: Better) {
        self.metrics.push((name.into(), v, b));
    }
}

/// The rows of vltava-bench's table, in its order: (phase name, rec/s, p99 ms).
fn parse_bench_rows(out: &str) -> Vec<(String, f64, Option<f64>)> {
    let mut rows = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // name… records secs rec/s MB/s p50 p99 max cpu
        if f.len() < 9 || f[f.len() - 8].parse::<u64>().is_err() {
            continue;
        }
        let n = f.len();
        let name = f[..n - 8].join(" ");
        let (Ok(rps), p99) = (f[n - 6].parse::<f64>(), f[n - 3].parse::<f64>().ok()) else {
            continue;
        };
        rows.push((name, rps, p99));
    }
    rows
}

/// The number before `unit` in ProducerPerformance's summary line, e.g. "123.4 records/sec".
fn number_before(line: &str, unit: &str) -> Option<f64> {
    let at = line.find(unit)?;
    line[..at]
        .trim_end()
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .next()?
        .parse()
        .ok()
}

struct ProducerSummary {
    rps: f64,
    mbps: f64,
    avg_ms: f64,
    max_ms: f64,
}

/// ProducerPerformance's last line: "N records sent, R records/sec (M MB/sec), A ms avg latency,
/// X ms max latency, …".
fn parse_producer(out: &str) -> anyhow::Result<ProducerSummary> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("max latency"))
        .with_context(|| format!("no summary line in ProducerPerformance output:\n{out}"))?;
    let get = |u: &str| number_before(line, u).with_context(|| format!("no `{u}` in {line}"));
    Ok(ProducerSummary {
        rps: get("records/sec")?,
        mbps: get("MB/sec")?,
        avg_ms: get("ms avg latency")?,
        max_ms: get("ms max latency")?,
    })
}

/// ConsumerPerformance's header + value lines → column name → value.
fn parse_consumer(out: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let lines: Vec<&str> = out.lines().collect();
    let h = lines
        .iter()
        .position(|l| l.trim_start().starts_with("start.time"))
        .with_context(|| format!("no header in ConsumerPerformance output:\n{out}"))?;
    let vals = lines.get(h + 1).context("no value line")?;
    let names: Vec<&str> = lines[h].split(',').map(str::trim).collect();
    // The first two values are timestamps that contain no comma ("2026-12-01 16:50:01:123").
    let values: Vec<&str> = vals.split(',').map(str::trim).collect();
    Ok(names
        .iter()
        .zip(values)
        .filter_map(|(n, v)| Some((n.to_string(), v.parse::<f64>().ok()?)))
        .collect())
}

fn tool_command(args: &Args, cp: &str, dir: &Path, class: &str) -> anyhow::Result<Command> {
    let log4j = dir.join("tools-log4j2.properties");
    if !log4j.exists() {
        fs::write(
            &log4j,
            "# Kafka's tools-log4j2: WARN to stderr.\n\
             appender.e.type=Console\n\
             appender.e.name=E\n\
             appender.e.target=SYSTEM_ERR\n\
             appender.e.layout.type=PatternLayout\n\
             appender.e.layout.pattern=[%d] %p %m (%c)%n\n\
             rootLogger.level=warn\n\
             rootLogger.appenderRef.e.ref=E\n",
        )?;
    }
    let mut cmd = Command::new(&args.java);
    // The perf-test scripts set KAFKA_HEAP_OPTS="-Xmx512M".
    cmd.arg("-Xmx512M")
        .args(JVM_PERF_OPTS)
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .args(["-cp", cp, class]);
    Ok(cmd)
}

/// One broker, one round: start it, run every workload, collect the figures.
fn run_one(args: &Args, cp: &str, kind: Kind, round: usize) -> anyhow::Result<Sample> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("vltava-vs-kafka-{}-", kind.name()))
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let (cmd, addr) = match kind {
        Kind::Kafka => kafka_command(args, cp, &dir)?,
        Kind::Vltava => vltava_command(args, &dir)?,
    };
    let mut s = Sample::default();
    let spawned = Instant::now();
    let mut p = spawn_logged(cmd, &dir.join("broker.out"))?;
    let startup = await_metadata(&mut p, &addr, spawned, Duration::from_secs(120))?;
    let idle = proc_stats(p.pid())?;
    eprintln!(
        "[round {round}] {} at {addr}: first Metadata answered after {:.0} ms, RSS {:.0} MiB",
        kind.name(),
        startup.as_secs_f64() * 1e3,
        idle.rss_kib as f64 / 1024.0
    );
    s.put(
        "start-up to first Metadata (ms)",
        startup.as_secs_f64() * 1e3,
        Better::Lower,
    );
    s.put(
        "RSS after start-up (MiB)",
        idle.rss_kib as f64 / 1024.0,
        Better::Lower,
    );
    s.put(
        "broker CPU during start-up (s)",
        idle.cpu_secs,
        Better::Lower,
    );

    let result = (|| -> anyhow::Result<()> {
        // vltava-bench against the running broker.
        let mut bench = Command::new(&args.bench_bin);
        bench
            .arg("--bootstrap")
            .arg(&addr)
            .args(&args.bench_args)
            .env("NO_COLOR", "1");
        let out = run_bounded(bench, args.timeout).context("vltava-bench")?;
        let rows = parse_bench_rows(&out);
        if rows.is_empty() {
            bail!("no result rows in vltava-bench output:\n{out}");
        }
        for (name, rps, p99) in &rows {
            s.put(format!("vltava-bench {name} (rec/s)"), *rps, Better::Higher);
            if name.starts_with("fixed") {
                if let Some(p99) = p99 {
                    s.put(format!("vltava-bench {name} p99 (ms)"), *p99, Better::Lower);
                }
            }
        }
        eprintln!("[round {round}] {}: vltava-bench done", kind.name());

        // Kafka's perf tools: produce into a fresh topic per size, then read it back.
        for (size, count, label) in [(100u32, args.small, "100 B"), (1024, args.large, "1 KiB")] {
            let topic = unique_topic("perf");
            kafka::create_topic(&addr, &topic, PARTITIONS, &[])?;
            let mut prod =
                tool_command(args, cp, &dir, "org.apache.kafka.tools.ProducerPerformance")?;
            prod.args(["--topic", &topic])
                .args(["--num-records", &count.to_string()])
                .args(["--record-size", &size.to_string()])
                .args(["--throughput", "-1"])
                .args([
                    "--producer-props",
                    &format!("bootstrap.servers={addr}"),
                    "acks=all",
                ]);
            let out = run_bounded(prod, args.timeout).context("ProducerPerformance")?;
            let ps = parse_producer(&out)?;
            s.put(
                format!("ProducerPerformance {label} acks=all (rec/s)"),
                ps.rps,
                Better::Higher,
            );
            s.put(
                format!("ProducerPerformance {label} (MB/s)"),
                ps.mbps,
                Better::Higher,
            );
            s.put(
                format!("ProducerPerformance {label} avg latency (ms)"),
                ps.avg_ms,
                Better::Lower,
            );
            s.put(
                format!("ProducerPerformance {label} max latency (ms)"),
                ps.max_ms,
                Better::Lower,
            );

            let mut cons =
                tool_command(args, cp, &dir, "org.apache.kafka.tools.ConsumerPerformance")?;
            cons.args(["--bootstrap-server", &addr])
                .args(["--topic", &topic])
                .args(["--messages", &count.to_string()])
                .args(["--timeout", "30000"]);
            let out = run_bounded(cons, args.timeout).context("ConsumerPerformance")?;
            let cs = parse_consumer(&out)?;
            let col = |n: &str| {
                cs.get(n)
                    .copied()
                    .with_context(|| format!("no {n} in ConsumerPerformance output:\n{out}"))
            };
            let consumed = col("data.consumed.in.nMsg")?;
            if consumed < count as f64 {
                bail!("ConsumerPerformance read {consumed} of {count} records:\n{out}");
            }
            s.put(
                format!("ConsumerPerformance {label} (rec/s)"),
                col("nMsg.sec")?,
                Better::Higher,
            );
            s.put(
                format!("ConsumerPerformance {label} (MB/s)"),
                col("MB.sec")?,
                Better::Higher,
            );
            s.put(
                format!("ConsumerPerformance {label} fetch-only (rec/s)"),
                col("fetch.nMsg.sec")?,
                Better::Higher,
            );
            eprintln!(
                "[round {round}] {}: {label}: produce {:.0} rec/s, consume {:.0} rec/s",
                kind.name(),
                ps.rps,
                col("nMsg.sec")?
            );
        }

        // Transactions: the 100 B run again from a transactional producer committing every
        // 100 ms (ProducerPerformance's own transactional mode).
        let topic = unique_topic("perf-txn");
        kafka::create_topic(&addr, &topic, PARTITIONS, &[])?;
        let mut prod = tool_command(args, cp, &dir, "org.apache.kafka.tools.ProducerPerformance")?;
        prod.args(["--topic", &topic])
            .args(["--num-records", &args.small.to_string()])
            .args(["--record-size", "100"])
            .args(["--throughput", "-1"])
            .args(["--transactional-id", &topic])
            .args(["--transaction-duration-ms", "100"])
            .args([
                "--producer-props",
                &format!("bootstrap.servers={addr}"),
                "acks=all",
            ]);
        let out = run_bounded(prod, args.timeout).context("ProducerPerformance transactional")?;
        let ps = parse_producer(&out)?;
        s.put(
            "ProducerPerformance 100 B transactional, commit/100 ms (rec/s)",
            ps.rps,
            Better::Higher,
        );
        s.put(
            "ProducerPerformance 100 B transactional avg latency (ms)",
            ps.avg_ms,
            Better::Lower,
        );
        eprintln!(
            "[round {round}] {}: transactional produce {:.0} rec/s",
            kind.name(),
            ps.rps
        );
        Ok(())
    })();
    if let Err(e) = result {
        bail!(
            "{} (round {round}): {e:#}\n--- broker output ---\n{}",
            kind.name(),
            p.log_tail()
        );
    }
    if let Some(st) = p.exited() {
        bail!(
            "{} exited during the run ({st})\n{}",
            kind.name(),
            p.log_tail()
        );
    }
    let end = proc_stats(p.pid())?;
    s.put(
        "peak RSS, VmHWM (MiB)",
        end.hwm_kib as f64 / 1024.0,
        Better::Lower,
    );
    s.put("broker CPU over the run (s)", end.cpu_secs, Better::Lower);
    drop(p);
    if args.keep_logs {
        eprintln!(
            "[round {round}] {} files kept in {}",
            kind.name(),
            tmp.keep().display()
        );
    }
    Ok(s)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn mmm(v: &[f64]) -> String {
    let mut s = v.to_vec();
    let med = median(&mut s);
    if s.len() == 1 {
        return fmt_num(med);
    }
    format!(
        "{} / {} / {}",
        fmt_num(s[0]),
        fmt_num(med),
        fmt_num(s[s.len() - 1])
    )
}

fn print_table(samples: &[(Sample, Sample)]) {
    // metric → (better, kafka values, vltava values, ratios), in first-seen order.
    let mut order: Vec<String> = Vec::new();
    type Acc = (Better, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for (k, v) in samples {
        for (name, kv, better) in &k.metrics {
            let Some((_, vv, _)) = v.metrics.iter().find(|m| &m.0 == name) else {
                continue;
            };
            let e = acc.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                (*better, Vec::new(), Vec::new(), Vec::new())
            });
            e.1.push(*kv);
            e.2.push(*vv);
            e.3.push(if *kv != 0.0 { vv / kv } else { f64::NAN });
        }
    }
    println!(
        "\n| metric | better | Kafka min / median / max | vltava min / median / max | vltava ÷ Kafka min / median / max |"
    );
    println!("|---|---|---|---|---|");
    for name in &order {
        let (better, k, v, r) = &acc[name];
        let b = match better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let mut rs = r.clone();
        let med = median(&mut rs);
        let ratio = if rs.len() == 1 {
            format!("{med:.2}")
        } else {
            format!("{:.2} / **{med:.2}** / {:.2}", rs[0], rs[rs.len() - 1])
        };
        println!("| {name} | {b} | {} | {} | {ratio} |", mmm(k), mmm(v));
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let cp = fs::read_to_string(&args.classpath_file)
        .with_context(|| {
            format!(
                "reading Kafka's classpath {} (run `mvn dependency:build-classpath \
                 -Dmdep.outputFile=target/classpath.txt` in bench/kafka, or `make bench-kafka`)",
                args.classpath_file.display()
            )
        })?
        .trim()
        .to_string();
    for bin in [&args.bin, &args.bench_bin] {
        if !bin.exists() {
            bail!("{} does not exist (cargo build --release)", bin.display());
        }
    }
    let kafka_version = cp
        .split(':')
        .find_map(|j| {
            let f = Path::new(j).file_name()?.to_str()?;
            f.strip_prefix("kafka_2.13-")?
                .strip_suffix(".jar")
                .map(String::from)
        })
        .unwrap_or_else(|| "?".into());
    // `java -version` prints to stderr.
    let java = Command::new(&args.java)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .map(String::from)
        })
        .unwrap_or_default();
    let started = Instant::now();
    eprintln!(
        "Apache Kafka {kafka_version} ({java}) vs {}; {} rounds, vltava-bench {:?}, \
         ProducerPerformance {} × 100 B + {} × 1 KiB",
        args.bin.display(),
        args.rounds,
        args.bench_args,
        args.small,
        args.large
    );
    let mut samples = Vec::new();
    for round in 1..=args.rounds {
        // Alternate which broker goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 1 {
            [Kind::Kafka, Kind::Vltava]
        } else {
            [Kind::Vltava, Kind::Kafka]
        };
        let mut got: BTreeMap<&str, Sample> = BTreeMap::new();
        for kind in order {
            got.insert(kind.name(), run_one(&args, &cp, kind, round)?);
        }
        let k = got.remove("Kafka").expect("Kafka sample");
        let v = got.remove("vltava").expect("vltava sample");
        samples.push((k, v));
    }
    let cpus = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "\n## vltava vs Apache Kafka {kafka_version}: {} rounds, {cpus} CPUs, {java}",
        args.rounds
    );
    println!(
        "vltava-bench {:?}; ProducerPerformance acks=all --throughput -1: {} × 100 B, {} × 1 KiB \
         (4 partitions); ConsumerPerformance reads each topic back.",
        args.bench_args, args.small, args.large
    );
    print_table(&samples);
    println!(
        "\nRatios are per round (vltava ÷ Kafka, then min/median/max); `better` says which \
         direction is good for the metric. Whole run: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_summary() {
        let out =
            "500000 records sent, 185873.6 records/sec (17.73 MB/sec), 123.45 ms avg latency, \
                   456.00 ms max latency, 97 ms 50th, 200 ms 95th, 300 ms 99th, 350 ms 99.9th.";
        let p = parse_producer(out).unwrap();
        assert_eq!(
            (p.rps, p.mbps, p.avg_ms, p.max_ms),
            (185873.6, 17.73, 123.45, 456.0)
        );
    }

    #[test]
    fn parses_consumer_summary() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                   2026-12-01 16:50:01:123, 2026-12-01 16:50:03:123, 47.6837, 23.8419, 500000, 250000.0000, 300, 1700, 28.0492, 294117.6471\n";
        let c = parse_consumer(out).unwrap();
        assert_eq!(c["nMsg.sec"], 250000.0);
        assert_eq!(c["fetch.nMsg.sec"], 294117.6471);
    }

    #[test]
    fn parses_bench_rows() {
        let out = "produce 100 B acks=all           100000      0.50       200000      20.0      1.00      2.00      3.00        -\n\
                   fixed 5000 rec/s acks=all 100 B   15000      3.00         5000       0.5      0.50      1.50      4.00        -\n";
        let r = parse_bench_rows(out);
        assert_eq!(r[0], ("produce 100 B acks=all".into(), 200000.0, Some(2.0)));
        assert_eq!(
            r[1],
            ("fixed 5000 rec/s acks=all 100 B".into(), 5000.0, Some(1.5))
        );
    }

    #[test]
    fn cluster_ids_are_22_url_safe_chars() {
        let id = cluster_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(!id.starts_with('-'));
    }
}
