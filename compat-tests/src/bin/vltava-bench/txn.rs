//! The transactional produce run of `make bench`: 100 B records with acks=all from a transactional
//! producer that commits every 100 ms (as Kafka's `ProducerPerformance --transactional-id
//! --transaction-duration-ms 100`), next to the plain acks=all run. A commit waits for its records'
//! deliveries (librdkafka flushes first), then for EndTxn; the markers follow it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use super::{cpu_secs, kafka, make_producer_with, produced_row, send_one, Row, Shared, PARTITIONS};

/// How long each transaction stays open.
const TRANSACTION_MS: u64 = 100;

/// Sends `count` records of `size` bytes to a topic of its own in transactions of
/// [`TRANSACTION_MS`], waits for the last commit, and fails on any failed delivery or commit.
pub(crate) fn run(
    bs: &str,
    topic: &str,
    (size, count): (usize, u64),
    ctx: &Arc<Shared>,
    pids: &[u32],
) -> anyhow::Result<Row> {
    kafka::create_topic(bs, topic, PARTITIONS, &[])?;
    let producer = make_producer_with(
        bs,
        "all",
        ctx.clone(),
        &[
            ("transactional.id", topic),
            ("enable.idempotence", "true"),
            ("transaction.timeout.ms", "120000"),
        ],
    )?;
    let timeout = Duration::from_secs(60);
    producer.init_transactions(timeout)?;
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    ctx.reset();
    let cpu0 = cpu_secs(pids, "txn phase start");
    let start = Instant::now();
    let mut transactions = 0u64;
    producer.begin_transaction()?;
    let mut opened = Instant::now();
    for i in 0..count {
        let key = (i % 10_000).to_be_bytes();
        send_one(&producer, topic, i, &payload, &key, ctx);
        if opened.elapsed() >= Duration::from_millis(TRANSACTION_MS) {
            producer.commit_transaction(timeout)?;
            transactions += 1;
            producer.begin_transaction()?;
            opened = Instant::now();
        }
    }
    producer.commit_transaction(timeout)?;
    transactions += 1;
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = cpu_secs(pids, "txn phase end");
    let row = produced_row(
        format!("produce {size} B txn/{TRANSACTION_MS}ms"),
        (size, count),
        secs,
        ctx,
        cpu0.zip(cpu1).map(|(a, b)| b - a),
    )?;
    eprintln!("done: {} ({transactions} transactions)", row.name);
    Ok(row)
}
