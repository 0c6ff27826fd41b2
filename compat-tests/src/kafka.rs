//! rdkafka helpers shared by the integration tests and the benchmark driver.
//!
//! Everything here waits on events (delivery reports, consumed messages,
//! admin results) with a deadline; nothing sleeps to synchronise.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Default deadline for a single client operation in tests.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// A record as the tests produce and expect it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Explicit CreateTime (ms); `None` lets the client stamp it.
    pub timestamp: Option<i64>,
}

impl Rec {
    pub fn new(partition: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> Rec {
        Rec {
            partition,
            key: key.map(|k| k.to_vec()),
            value: value.map(|v| v.to_vec()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    pub fn header(mut self, k: &str, v: Option<&[u8]>) -> Rec {
        self.headers.push((k.to_string(), v.map(|v| v.to_vec())));
        self
    }

    pub fn at(mut self, ts: i64) -> Rec {
        self.timestamp = Some(ts);
        self
    }
}

/// A consumed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

impl Got {
    /// Does this consumed record carry the same key, value and headers as `r`?
    pub fn same_content(&self, r: &Rec) -> bool {
        self.partition == r.partition
            && self.key == r.key
            && self.value == r.value
            && self.headers == r.headers
    }
}

/// Base client config: bootstrap + things every test client wants.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "vltava-compat-rdkafka")
        // Make failures show quickly rather than after librdkafka's long defaults.
        .set("socket.timeout.ms", "30000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000");
    if let Ok(dbg) = std::env::var("VLTAVA_RDKAFKA_DEBUG") {
        c.set("debug", &dbg);
    }
    c
}

/// Producer config for the plain (non-idempotent) producer paths; idempotence
/// has its own tests (tests/idempotence.rs).
pub fn producer_config(bootstrap: &str, acks: &str, compression: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("enable.idempotence", "false")
        .set("acks", acks)
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    c
}

pub fn producer(bootstrap: &str, acks: &str, compression: &str) -> FutureProducer {
    producer_config(bootstrap, acks, compression)
        .create()
        .expect("create producer")
}

/// Consumer config for assign()-only consumption (group tests live in tests/groups.rs).
/// `auto.offset.reset=error` so an out-of-range fetch surfaces as an error
/// instead of being silently "fixed" by a reset.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("group.id", "vltava-compat-unused-group")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_config(bootstrap)
        .create()
        .expect("create consumer")
}

/// A subscribing group member that commits by hand (tests/groups.rs and the `vltava-group-member`
/// process), with a short heartbeat so rebalances are noticed quickly.
pub fn group_consumer_config(
    bootstrap: &str,
    group: &str,
    session_timeout_ms: u32,
) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    base_config(bootstrap)
        .create()
        .expect("create admin client")
}

/// Create a topic with `partitions` partitions (replication factor 1) and
/// wait until it shows up in metadata with all partitions.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    create_topic_rf(bootstrap, topic, partitions, 1, configs)
}

/// [`create_topic`] with `replication_factor` replicas per partition (a cluster's topics).
pub fn create_topic_rf(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin = admin(bootstrap);
    let mut nt = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        nt = nt.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
    let res = futures::executor::block_on(admin.create_topics([&nt], &opts))
        .context("CreateTopics request failed")?;
    for r in res {
        if let Err((t, code)) = r {
            bail!("CreateTopics({t}) failed: {code:?}");
        }
    }
    wait_for_topic(bootstrap, topic, partitions)
}

/// Wait (on Metadata responses, deadline OP_TIMEOUT) until `topic` has `partitions` partitions each with a leader.
pub fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let c = consumer(bootstrap);
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        // Each fetch_metadata is a request/response round trip, not a sleep.
        match c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    let ok = t.error().is_none()
                        && t.partitions().len() as i32 == partitions
                        && t.partitions().iter().all(|p| p.leader() >= 0);
                    if ok {
                        return Ok(());
                    }
                    last = format!(
                        "topic error {:?}, {} partitions, leaders {:?}",
                        t.error(),
                        t.partitions().len(),
                        t.partitions()
                            .iter()
                            .map(|p| p.leader())
                            .collect::<Vec<_>>()
                    );
                }
            }
            Err(e) => last = e.to_string(),
        }
        // Metadata refresh backoff is paced by the request itself; keep a tiny
        // guard against a hot loop when the broker answers instantly.
        std::thread::yield_now();
    }
    bail!("topic {topic} did not get {partitions} partitions with leaders: {last}")
}

/// Result of one produce: partition and offset of the delivery report.
pub type Delivery = Result<(i32, i64), KafkaError>;

/// Send all records (pipelined) and wait for every delivery report.
pub fn produce(producer: &FutureProducer, topic: &str, recs: &[Rec]) -> Vec<Delivery> {
    let mut futs = Vec::with_capacity(recs.len());
    for r in recs {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(r.partition);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            fr = fr.timestamp(ts);
        }
        if !r.headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                h = h.insert(Header {
                    key: k.as_str(),
                    value: v.as_deref(),
                });
            }
            fr = fr.headers(h);
        }
        // Retry only on a full local queue (back-pressure), driven by our own
        // earlier futures completing; the producer's thread keeps polling.
        let mut rec = fr;
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    futs.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce failed locally: {e}"),
            }
        }
    }
    // flush() sends lingering batches at once (librdkafka ignores linger.ms
    // while flushing) and returns when every delivery report was served.
    let _ = producer.flush(OP_TIMEOUT);
    let results = futures::executor::block_on(futures::future::join_all(futs));
    results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(e),
            Err(_canceled) => Err(KafkaError::Canceled),
        })
        .collect()
}

/// Like [`produce`] but panics on any delivery error.
pub fn produce_ok(producer: &FutureProducer, topic: &str, recs: &[Rec]) -> Vec<(i32, i64)> {
    produce(producer, topic, recs)
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            d.unwrap_or_else(|e| panic!("delivery of record #{i} to {topic} failed: {e}"))
        })
        .collect()
}

/// Assign `topic` partitions at the given start offsets and consume until
/// `count` records arrived (or `timeout` passes, then error with what came).
pub fn consume(
    bootstrap: &str,
    topic: &str,
    starts: &[(i32, Offset)],
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Got>> {
    let c = consumer(bootstrap);
    consume_with(&c, topic, starts, count, timeout)
}

pub fn consume_with(
    c: &BaseConsumer,
    topic: &str,
    starts: &[(i32, Offset)],
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Got>> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in starts {
        tpl.add_partition_offset(topic, *p, *o)?;
    }
    c.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(count);
    let mut errors = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "consumed only {} of {count} records from {topic} within {timeout:?}; consumer errors: {errors:?}",
                out.len()
            );
        }
        match c.poll(left.min(Duration::from_millis(500))) {
            None => {}
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    value: m.payload().map(|v| v.to_vec()),
                    headers,
                    timestamp: m.timestamp(),
                });
            }
            Some(Err(e)) => {
                if errors.len() < 20 {
                    errors.push(e.to_string());
                }
                if let KafkaError::MessageConsumption(code) = &e {
                    // Offset out of range etc. are real failures for these tests.
                    if matches!(
                        code,
                        RDKafkaErrorCode::OffsetOutOfRange
                            | RDKafkaErrorCode::AutoOffsetReset
                            | RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::InvalidMessage
                            | RDKafkaErrorCode::BadMessage
                            | RDKafkaErrorCode::InvalidRecord
                    ) {
                        return Err(anyhow!(
                            "consumer error after {} records: {e}; all errors: {errors:?}",
                            out.len()
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Low and high watermark of one partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let c = consumer(bootstrap);
    Ok(c.fetch_watermarks(topic, partition, OP_TIMEOUT)?)
}

/// Group consumed records by partition, preserving order.
pub fn by_partition<T: Clone>(
    items: &[T],
    part: impl Fn(&T) -> i32,
) -> std::collections::BTreeMap<i32, Vec<T>> {
    let mut m = std::collections::BTreeMap::new();
    for it in items {
        m.entry(part(it)).or_insert_with(Vec::new).push(it.clone());
    }
    m
}

/// Flush a producer with a deadline, panicking on timeout.
pub fn flush(p: &FutureProducer) {
    p.flush(OP_TIMEOUT).expect("producer flush timed out");
}

/// A producer context that reports every delivery as `(opaque, result)` on a
/// channel, so callers can wait on delivery events from any thread.
pub struct ChannelContext {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<(usize, Delivery)>>,
}

impl ChannelContext {
    pub fn new() -> (ChannelContext, std::sync::mpsc::Receiver<(usize, Delivery)>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (
            ChannelContext {
                tx: std::sync::Mutex::new(tx),
            },
            rx,
        )
    }
}

impl rdkafka::ClientContext for ChannelContext {}

impl rdkafka::producer::ProducerContext for ChannelContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &rdkafka::message::DeliveryResult<'_>, opaque: usize) {
        let d = match r {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((opaque, d));
    }
}

/// Queues record `i` (its opaque) with `payload` for partition `partition` of `topic`; panics on any
/// local failure, a full queue included (the tests size `queue.buffering.max.messages` to never fill).
pub fn send_numbered(
    producer: &ChannelProducer,
    topic: &str,
    partition: i32,
    i: usize,
    payload: &str,
) {
    let rec = rdkafka::producer::BaseRecord::<'_, (), str, usize>::with_opaque_to(topic, i)
        .partition(partition)
        .payload(payload);
    match producer.send(rec) {
        Ok(()) => {}
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
            panic!("local queue full: raise queue.buffering.max.messages")
        }
        Err((e, _)) => panic!("produce #{i} failed locally: {e}"),
    }
}

/// A producer whose delivery reports arrive on a channel.
pub type ChannelProducer = rdkafka::producer::ThreadedProducer<ChannelContext>;

pub fn channel_producer(
    cfg: &ClientConfig,
) -> anyhow::Result<(
    ChannelProducer,
    std::sync::mpsc::Receiver<(usize, Delivery)>,
)> {
    let (ctx, rx) = ChannelContext::new();
    let p = cfg.create_with_context(ctx)?;
    Ok((p, rx))
}
