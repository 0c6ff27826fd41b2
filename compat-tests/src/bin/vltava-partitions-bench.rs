//! vltava partitions benchmark (run by `make bench-partitions`; not a test).
//!
//! How many partitions one node can host, measured black-box. Starts the (release) broker itself
//! under `ulimit -n 20000` on a fresh data directory and grows it in steps (1k, 10k and 20k
//! partitions by default). At each step, over raw Kafka requests (no librdkafka, so 20k partitions
//! are cheap):
//!   * CreateTopics for the new topics, in batches (50 topics × 10 partitions per request);
//!   * one Produce request (acks=all) per batch of topics, one small record to every partition
//!     created so far;
//!   * one Fetch request per batch of topics reading every partition back from offset 0;
//!   * the broker's open descriptors (`/proc/<pid>/fd`), memory maps (`/proc/<pid>/maps`) and RSS.
//!
//! Failures are counted per partition, by error code. Every request has a timeout: if the broker
//! exits or stops answering, that step is reported as failed and the run stops. At the end the
//! broker gets SIGTERM and the time until it exits is reported. Output: a markdown table.
//!
//! Flags:
//!   --quick               steps 1000 and 5000
//!   --steps A,B,C         partition counts to measure at (default 1000,10000,20000)
//!   --nofile N            the broker's open-file limit (default 20000)
//!   --per-topic N         partitions per topic (default 10)
//!   --topics-per-request N  topics per CreateTopics / Produce / Fetch request (default 50)
//!   --timeout SECS        per-request timeout (default 120)
//!   --bin PATH            broker binary (default $VLTAVA_BIN or target/release/vltava)
//!   --broker-arg ARG      extra broker argument (repeatable)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vltava_compat::{proc_stats, repo_root, Broker, BrokerOptions};

const CREATE_TOPICS_VERSION: i16 = 5;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
/// Requests in a row without a response after which the broker counts as not answering.
const GIVE_UP_AFTER: usize = 3;

struct Args {
    steps: Vec<usize>,
    nofile: u64,
    per_topic: usize,
    topics_per_request: usize,
    timeout: Duration,
    bin: Option<std::path::PathBuf>,
    broker_args: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        steps: vec![1000, 10_000, 20_000],
        nofile: 20_000,
        per_topic: 10,
        topics_per_request: 50,
        timeout: Duration::from_secs(120),
        bin: None,
        broker_args: Vec::new(),
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
            "--quick" => a.steps = vec![1000, 5000],
            "--steps" => {
                a.steps = val("--steps")?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--steps: comma-separated partition counts")?
            }
            "--nofile" => a.nofile = val("--nofile")?.parse()?,
            "--per-topic" => a.per_topic = val("--per-topic")?.parse()?,
            "--topics-per-request" => {
                a.topics_per_request = val("--topics-per-request")?.parse()?
            }
            "--timeout" => a.timeout = Duration::from_secs(val("--timeout")?.parse()?),
            "--bin" => a.bin = Some(val("--bin")?.into()),
            "--broker-arg" => a.broker_args.push(val("--broker-arg")?),
            "-h" | "--help" => {
                let doc: Vec<&str> = include_str!("vltava-partitions-bench.rs")
                    .lines()
                    .take_while(|l| l.starts_with("//!"))
                    .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
                    .collect();
                println!("{}", doc.join("\n"));
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.per_topic == 0 || a.topics_per_request == 0 {
        bail!("--per-topic and --topics-per-request must be >= 1");
    }
    a.steps.sort_unstable();
    a.steps.dedup();
    Ok(a)
}

/// Why a request got no response.
#[derive(Debug)]
enum NoResponse {
    Timeout,
    Io(String),
}

impl NoResponse {
    fn label(&self) -> String {
        match self {
            NoResponse::Timeout => "no response (timeout)".into(),
            NoResponse::Io(e) => format!("no response ({e})"),
        }
    }
}

/// One raw-protocol connection, reopened after a request that got no response.
struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    correlation: i32,
    timeout: Duration,
    /// Requests in a row that got no response.
    unanswered: usize,
}

impl Conn {
    fn new(addr: &str, timeout: Duration) -> Conn {
        Conn {
            addr: addr.to_string(),
            stream: None,
            correlation: 0,
            timeout,
            unanswered: 0,
        }
    }

    async fn request(
        &mut self,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Result<ResponseKind, NoResponse> {
        let result = tokio::time::timeout(self.timeout, self.round_trip(key, version, body)).await;
        let result = match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(NoResponse::Io(format!("{e:#}"))),
            Err(_) => Err(NoResponse::Timeout),
        };
        match &result {
            Ok(_) => self.unanswered = 0,
            Err(_) => {
                // The stream may hold half a frame: start over on a new connection.
                self.stream = None;
                self.unanswered += 1;
            }
        }
        result
    }

    async fn round_trip(
        &mut self,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await.context("connect")?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().context("not connected")?;
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("vltava-partitions-bench")));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, key.request_header_version(version))?;
        body.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&buf).await.context("send")?;
        let len = stream.read_i32().await.context("read")?;
        if len < 0 {
            bail!("negative frame length {len}");
        }
        let mut frame = vec![0u8; len as usize];
        stream.read_exact(&mut frame).await.context("read")?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
        if header.correlation_id != self.correlation {
            bail!(
                "response to request {} for request {}",
                header.correlation_id,
                self.correlation
            );
        }
        ResponseKind::decode(key, &mut frame, version)
    }
}

/// Per-partition outcomes of one phase: OK, and failures by cause.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: BTreeMap<String, usize>,
    secs: f64,
}

impl Tally {
    fn fail(&mut self, cause: String, n: usize) {
        *self.failed.entry(cause).or_default() += n;
    }

    fn code(&mut self, code: i16) {
        match code.err() {
            None => self.ok += 1,
            Some(e) => self.fail(format!("{e:?} ({code})"), 1),
        }
    }

    fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

struct Topic {
    name: String,
    partitions: usize,
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One v2 batch holding one 16-byte record, shared by every partition.
fn one_record_batch() -> anyhow::Result<Bytes> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now,
        key: None,
        value: Some(Bytes::from_static(b"partitions-bench")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// CreateTopics for `topics`; whether each was created (failures are tallied by cause).
async fn create(
    conn: &mut Conn,
    topics: &[Topic],
    timeout: Duration,
    tally: &mut Tally,
) -> Vec<bool> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.partitions as i32)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    let response = conn
        .request(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, req.into())
        .await;
    topics
        .iter()
        .map(|t| {
            let result = match &response {
                Ok(ResponseKind::CreateTopics(r)) => {
                    match r.topics.iter().find(|x| x.name.0.as_str() == t.name) {
                        Some(x) => match x.error_code.err() {
                            None => Ok(()),
                            Some(e) => Err(format!("{e:?} ({})", x.error_code)),
                        },
                        None => Err("topic missing from response".into()),
                    }
                }
                Ok(_) => Err("unexpected response".into()),
                Err(e) => Err(e.label()),
            };
            match result {
                Ok(()) => {
                    tally.ok += t.partitions;
                    true
                }
                Err(cause) => {
                    tally.fail(cause, t.partitions);
                    false
                }
            }
        })
        .collect()
}

async fn produce(conn: &mut Conn, topics: &[Topic], batch: &Bytes, tally: &mut Tally) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(
            topics
                .iter()
                .map(|t| {
                    TopicProduceData::default()
                        .with_name(topic_name(&t.name))
                        .with_partition_data(
                            (0..t.partitions)
                                .map(|p| {
                                    PartitionProduceData::default()
                                        .with_index(p as i32)
                                        .with_records(Some(batch.clone()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let expected: usize = topics.iter().map(|t| t.partitions).sum();
    match conn
        .request(ApiKey::Produce, PRODUCE_VERSION, req.into())
        .await
    {
        Ok(ResponseKind::Produce(r)) => {
            let mut answered = 0;
            for t in &r.responses {
                for p in &t.partition_responses {
                    answered += 1;
                    tally.code(p.error_code);
                }
            }
            if answered < expected {
                tally.fail(
                    "partition missing from response".into(),
                    expected - answered,
                );
            }
        }
        Ok(_) => tally.fail("unexpected response".into(), expected),
        Err(e) => tally.fail(e.label(), expected),
    }
}

async fn fetch(conn: &mut Conn, topics: &[Topic], tally: &mut Tally) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(topic_name(&t.name))
                        .with_partitions(
                            (0..t.partitions)
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(p as i32)
                                        .with_fetch_offset(0)
                                        .with_partition_max_bytes(64 << 10)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let expected: usize = topics.iter().map(|t| t.partitions).sum();
    match conn.request(ApiKey::Fetch, FETCH_VERSION, req.into()).await {
        Ok(ResponseKind::Fetch(r)) => {
            let mut answered = 0;
            for t in &r.responses {
                for p in &t.partitions {
                    answered += 1;
                    let empty = p.records.as_ref().is_none_or(|r| r.is_empty());
                    if p.error_code == 0 && empty {
                        tally.fail("no records returned".into(), 1);
                    } else {
                        tally.code(p.error_code);
                    }
                }
            }
            if answered < expected {
                tally.fail(
                    "partition missing from response".into(),
                    expected - answered,
                );
            }
        }
        Ok(_) => tally.fail("unexpected response".into(), expected),
        Err(e) => tally.fail(e.label(), expected),
    }
}

/// Resources the broker holds, from /proc.
#[derive(Clone, Copy, Default)]
struct Resources {
    fds: usize,
    maps: usize,
    rss_kib: u64,
}

fn resources(pid: u32) -> Option<Resources> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()?
        .lines()
        .count();
    let rss_kib = proc_stats(pid).ok()?.rss_kib;
    Some(Resources { fds, maps, rss_kib })
}

/// The broker's "Max open files" soft limit, as /proc shows it.
fn nofile_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

struct Step {
    target: usize,
    created: Tally,
    produced: Tally,
    fetched: Tally,
    res: Option<Resources>,
    /// Why the step (and the run) stopped early, if it did.
    broke: Option<String>,
}

fn fmt_secs(s: f64) -> String {
    format!("{s:.2}")
}

fn print_table(steps: &[Step], base: Resources) {
    println!();
    println!(
        "| partitions | created | produce ok / failed | fetch ok / failed | descriptors | memory maps | RSS MiB | RSS / partition | create s | produce s | fetch s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for s in steps {
        let (fds, maps, rss, per) = match s.res {
            Some(r) => {
                let hosted = s.created.ok.max(1) as f64;
                let per = (r.rss_kib.saturating_sub(base.rss_kib)) as f64 / hosted;
                (
                    r.fds.to_string(),
                    r.maps.to_string(),
                    format!("{:.1}", r.rss_kib as f64 / 1024.0),
                    format!("{per:.1} KiB"),
                )
            }
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        let target = match &s.broke {
            Some(_) => format!("{} (**failed**)", s.target),
            None => s.target.to_string(),
        };
        println!(
            "| {target} | {} | {} / {} | {} / {} | {fds} | {maps} | {rss} | {per} | {} | {} | {} |",
            s.created.ok,
            s.produced.ok,
            s.produced.failures(),
            s.fetched.ok,
            s.fetched.failures(),
            fmt_secs(s.created.secs),
            fmt_secs(s.produced.secs),
            fmt_secs(s.fetched.secs),
        );
    }
    println!();
    println!(
        "Idle broker before the first step: {} descriptors, {} memory maps, RSS {:.1} MiB. \
         RSS / partition is (RSS − idle RSS) / partitions created.",
        base.fds,
        base.maps,
        base.rss_kib as f64 / 1024.0
    );
    for s in steps {
        for (phase, t) in [
            ("create", &s.created),
            ("produce", &s.produced),
            ("fetch", &s.fetched),
        ] {
            for (cause, n) in &t.failed {
                println!(
                    "- at {} partitions, {phase}: {n} partitions failed: {cause}",
                    s.target
                );
            }
        }
        if let Some(why) = &s.broke {
            println!("- at {} partitions: {why}", s.target);
        }
    }
}

/// Whether the run must stop: the broker exited or stopped answering.
fn broken(broker: &mut Broker, conn: &Conn) -> Option<String> {
    if !broker.is_running() {
        return Some("the broker exited".into());
    }
    if conn.unanswered >= GIVE_UP_AFTER {
        return Some(format!(
            "the broker stopped answering ({} requests in a row without a response)",
            conn.unanswered
        ));
    }
    None
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| match std::env::var_os("VLTAVA_BIN") {
            Some(p) if !p.is_empty() => p.into(),
            _ => repo_root().join("target/release/vltava"),
        });
    let mut broker = Broker::try_start_with(BrokerOptions {
        bin: bin.clone(),
        extra_args: args.broker_args.clone(),
        rust_log: std::env::var("VLTAVA_BENCH_RUST_LOG")
            .unwrap_or_else(|_| "warn,vltava=info".into()),
        nofile: Some(args.nofile),
        ..BrokerOptions::default()
    })?;
    let pid = broker.pid().context("broker pid")?;
    let base = resources(pid).context("reading the broker's /proc")?;
    println!(
        "# vltava partitions benchmark\n\nbroker {} (pid {pid}), open-file limit {}, data in {}; \
         {} partitions per topic, {} topics per request, {} s request timeout",
        bin.display(),
        nofile_of(pid),
        broker.data_dir().display(),
        args.per_topic,
        args.topics_per_request,
        args.timeout.as_secs()
    );

    let batch = one_record_batch()?;
    let mut conn = Conn::new(broker.bootstrap(), args.timeout);
    let mut topics: Vec<Topic> = Vec::new();
    let mut requested = 0usize;
    let mut steps: Vec<Step> = Vec::new();
    for &target in &args.steps {
        let mut step = Step {
            target,
            created: Tally::default(),
            produced: Tally::default(),
            fetched: Tally::default(),
            res: None,
            broke: None,
        };
        eprintln!("step {target}: creating topics");
        let started = Instant::now();
        let mut new = Vec::new();
        while requested < target {
            let n = args.per_topic.min(target - requested);
            new.push(Topic {
                name: format!("pbench-{:05}", topics.len() + new.len()),
                partitions: n,
            });
            requested += n;
        }
        let mut new = new.into_iter().peekable();
        while new.peek().is_some() {
            let chunk: Vec<Topic> = new.by_ref().take(args.topics_per_request).collect();
            let created = create(&mut conn, &chunk, args.timeout, &mut step.created).await;
            // Produce and fetch go to the topics that exist.
            topics.extend(
                chunk
                    .into_iter()
                    .zip(created)
                    .filter_map(|(t, ok)| ok.then_some(t)),
            );
            if let Some(why) = broken(&mut broker, &conn) {
                step.broke = Some(why);
                break;
            }
        }
        step.created.secs = started.elapsed().as_secs_f64();
        // The column shows every partition hosted so far, not only this step's.
        step.created.ok = topics.iter().map(|t| t.partitions).sum();

        if step.broke.is_none() {
            eprintln!("step {target}: producing to {} partitions", step.created.ok);
            let started = Instant::now();
            for chunk in topics.chunks(args.topics_per_request) {
                produce(&mut conn, chunk, &batch, &mut step.produced).await;
                if let Some(why) = broken(&mut broker, &conn) {
                    step.broke = Some(why);
                    break;
                }
            }
            step.produced.secs = started.elapsed().as_secs_f64();
        }
        if step.broke.is_none() {
            eprintln!("step {target}: fetching {} partitions", step.created.ok);
            let started = Instant::now();
            for chunk in topics.chunks(args.topics_per_request) {
                fetch(&mut conn, chunk, &mut step.fetched).await;
                if let Some(why) = broken(&mut broker, &conn) {
                    step.broke = Some(why);
                    break;
                }
            }
            step.fetched.secs = started.elapsed().as_secs_f64();
        }
        step.res = resources(pid);
        let stop = step.broke.is_some();
        steps.push(step);
        if stop {
            break;
        }
    }

    print_table(&steps, base);

    let failed = steps.iter().any(|s| {
        s.broke.is_some() || s.created.failures() + s.produced.failures() + s.fetched.failures() > 0
    });
    if failed {
        print_warnings(&broker.logs());
    }
    let hosted = steps.last().map(|s| s.created.ok).unwrap_or(0);
    if broker.is_running() {
        let started = Instant::now();
        match broker.terminate(Duration::from_secs(60)) {
            Ok(status) => println!(
                "- SIGTERM at {hosted} partitions: the broker exited in {:.2} s ({status})",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => println!(
                "- SIGTERM at {hosted} partitions: {}",
                e.to_string().lines().next().unwrap_or("failed")
            ),
        }
    } else {
        println!("- the broker was no longer running at the end; its last output:");
        print_tail(&broker.logs(), 20);
    }
    Ok(())
}

/// The warnings and errors among the broker's last output lines, one line per message with a count
/// and the fields of its last occurrence.
fn print_warnings(logs: &str) {
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in logs.lines() {
        let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let rest = line[at..].trim();
        // The message ends where the structured fields (`key=value`) begin.
        let mut message = Vec::new();
        let mut fields = Vec::new();
        for word in rest.split(' ') {
            if fields.is_empty() && !is_field(word) {
                message.push(word);
            } else {
                fields.push(word);
            }
        }
        let entry = seen.entry(message.join(" ")).or_default();
        entry.0 += 1;
        entry.1 = fields.join(" ").chars().take(200).collect();
    }
    if seen.is_empty() {
        return;
    }
    println!("- warnings among the broker's last {LOG_LINES} output lines:");
    let mut seen: Vec<_> = seen.into_iter().collect();
    seen.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
    for (message, (n, fields)) in seen.iter().take(10) {
        println!("    - {n} × `{message}` (last: `{fields}`)");
    }
}

/// How many output lines of the broker the harness keeps.
const LOG_LINES: usize = 400;

fn is_field(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// The last `n` lines of the broker's output, indented (a code block in markdown).
fn print_tail(logs: &str, n: usize) {
    let lines: Vec<&str> = logs.lines().collect();
    for line in &lines[lines.len().saturating_sub(n)..] {
        println!("      {line}");
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
