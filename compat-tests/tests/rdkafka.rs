//! rdkafka (librdkafka 2.12, built from source) against a real vltava process.
//!
//! Every test starts its own broker on an ephemeral port with a temporary data
//! directory and uses unique topic names. Consumers use assign() with explicit
//! offsets (no consumer groups yet). Synchronisation is by events only:
//! delivery reports, consumed messages, request/response round trips.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::Consumer;
use rdkafka::message::Timestamp;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::kafka::{self, Got, Rec};
use vltava_compat::{unique_topic, Broker};

const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A deterministic pseudo-random byte generator (no extra crates).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A mixed workload: keys, null keys, compressible and random values, headers.
fn mixed_records(partition: i32, n: usize, tag: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let key = if i % 7 == 3 {
                None
            } else {
                Some(format!("{tag}-key-{i}").into_bytes())
            };
            let value = match i % 4 {
                0 => format!("{tag} value {i} ").repeat(1 + i % 20).into_bytes(),
                1 => bytes(i as u64, 10 + (i * 37) % 700),
                2 => Vec::new(),
                _ => format!("{{\"n\":{i},\"tag\":\"{tag}\"}}").into_bytes(),
            };
            let mut r = Rec::new(partition, key.as_deref(), Some(&value));
            if i % 3 == 0 {
                r = r
                    .header("trace-id", Some(format!("t-{i}").as_bytes()))
                    .header("bin", Some(&bytes(1000 + i as u64, 16)));
            }
            r
        })
        .collect()
}

/// Assert that consumed records equal `expected` exactly, in order, at
/// offsets `first_offset..`.
fn assert_exact(got: &[Got], expected: &[Rec], first_offset: i64, what: &str) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: consumed {} records, expected {}",
        got.len(),
        expected.len()
    );
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(
            g.offset,
            first_offset + i as i64,
            "{what}: record #{i} has offset {} (expected {})",
            g.offset,
            first_offset + i as i64
        );
        assert!(
            g.same_content(e),
            "{what}: record #{i} (offset {}) differs\n  got:      partition={} key={:?} value({} B)={:?} headers={:?}\n  expected: partition={} key={:?} value({} B)={:?} headers={:?}",
            g.offset,
            g.partition,
            g.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
            g.value.as_ref().map_or(0, |v| v.len()),
            g.value.as_ref().map(|v| String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned()),
            g.headers,
            e.partition,
            e.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
            e.value.as_ref().map_or(0, |v| v.len()),
            e.value.as_ref().map(|v| String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned()),
            e.headers,
        );
        if let Some(ts) = e.timestamp {
            assert_eq!(
                g.timestamp,
                Timestamp::CreateTime(ts),
                "{what}: record #{i} timestamp"
            );
        }
    }
}

/// Assert delivery reports are the dense offsets base..base+n on one partition.
fn assert_dense_offsets(deliveries: &[(i32, i64)], partition: i32, base: i64, what: &str) {
    for (i, (p, o)) in deliveries.iter().enumerate() {
        assert_eq!(
            (*p, *o),
            (partition, base + i as i64),
            "{what}: delivery report #{i}"
        );
    }
}

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

fn codec_roundtrip(codec: &str) {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic(&format!("codec-{codec}"));
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();

    let producer = kafka::producer(bs, "all", codec);
    // Several produce calls so there are several batches of different sizes.
    let mut all = Vec::new();
    for round in 0..3 {
        let recs = mixed_records(0, 200 + round * 150, &format!("{codec}-{round}"));
        let d = kafka::produce_ok(&producer, &topic, &recs);
        assert_dense_offsets(&d, 0, all.len() as i64, &format!("{codec} round {round}"));
        all.extend(recs);
    }

    let got = kafka::consume(
        bs,
        &topic,
        &[(0, Offset::Beginning)],
        all.len(),
        CONSUME_TIMEOUT,
    )
    .unwrap();
    assert_exact(&got, &all, 0, codec);
    for g in &got {
        assert!(
            matches!(g.timestamp, Timestamp::CreateTime(t) if t > 0),
            "{codec}: expected a CreateTime timestamp, got {:?}",
            g.timestamp
        );
    }
    assert_eq!(
        kafka::watermarks(bs, &topic, 0).unwrap(),
        (0, all.len() as i64),
        "{codec}: watermarks after produce"
    );
}

#[test]
fn codec_none() {
    codec_roundtrip("none");
}

#[test]
fn codec_gzip() {
    codec_roundtrip("gzip");
}

#[test]
fn codec_snappy() {
    codec_roundtrip("snappy");
}

#[test]
fn codec_lz4() {
    codec_roundtrip("lz4");
}

#[test]
fn codec_zstd() {
    codec_roundtrip("zstd");
}

// ---------------------------------------------------------------------------
// Acks (topics are auto-created by the first produce)
// ---------------------------------------------------------------------------

fn acks_roundtrip(acks: &str) {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic(&format!("acks-{acks}"));
    let producer = kafka::producer(bs, acks, "none");
    let recs = mixed_records(0, 300, &format!("acks{acks}"));
    let deliveries = kafka::produce_ok(&producer, &topic, &recs);
    if acks != "0" {
        assert_dense_offsets(&deliveries, 0, 0, &format!("acks={acks}"));
    }
    // With acks=0 the broker sends no response, so the delivery offsets carry
    // no information: the records must be verified by consuming them.
    let got = kafka::consume(
        bs,
        &topic,
        &[(0, Offset::Beginning)],
        recs.len(),
        CONSUME_TIMEOUT,
    )
    .unwrap();
    assert_exact(&got, &recs, 0, &format!("acks={acks}"));
    assert_eq!(
        kafka::watermarks(bs, &topic, 0).unwrap(),
        (0, recs.len() as i64)
    );
}

#[test]
fn acks_0() {
    acks_roundtrip("0");
}

#[test]
fn acks_1() {
    acks_roundtrip("1");
}

#[test]
fn acks_all() {
    acks_roundtrip("all");
}

// ---------------------------------------------------------------------------
// Metadata, multi-partition topics, headers, nulls, large batches
// ---------------------------------------------------------------------------

#[test]
fn metadata_lists_broker_and_topic() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("meta");
    kafka::create_topic(bs, &topic, 3, &[]).unwrap();
    let c = kafka::consumer(bs);
    let md = c.fetch_metadata(None, kafka::OP_TIMEOUT).unwrap();
    let brokers: Vec<String> = md
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![bs.to_string()],
        "Metadata brokers must be the advertised address"
    );
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("topic {topic} missing from full Metadata"));
    assert!(t.error().is_none(), "topic error {:?}", t.error());
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    let node = md.brokers()[0].id();
    for p in t.partitions() {
        assert_eq!(p.leader(), node, "partition {} leader", p.id());
        assert_eq!(p.replicas(), &[node], "partition {} replicas", p.id());
        assert_eq!(p.isr(), &[node], "partition {} isr", p.id());
    }
}

#[test]
fn multi_partition_topic_keeps_per_partition_order() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("multi");
    kafka::create_topic(bs, &topic, 4, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "lz4");

    // Interleave partitions in send order.
    let per = 250;
    let mut recs = Vec::new();
    for i in 0..per {
        for p in 0..4 {
            let k = format!("p{p}-k{i}");
            let v = format!("partition {p} record {i}");
            recs.push(
                Rec::new(p, Some(k.as_bytes()), Some(v.as_bytes())).header("p", Some(&[p as u8])),
            );
        }
    }
    let deliveries = kafka::produce_ok(&producer, &topic, &recs);
    let mut next = [0i64; 4];
    for (i, (p, o)) in deliveries.iter().enumerate() {
        assert_eq!(*p, recs[i].partition, "delivery #{i} partition");
        assert_eq!(
            *o, next[*p as usize],
            "delivery #{i} offset on partition {p}"
        );
        next[*p as usize] += 1;
    }

    let starts: Vec<(i32, Offset)> = (0..4).map(|p| (p, Offset::Beginning)).collect();
    let got = kafka::consume(bs, &topic, &starts, recs.len(), CONSUME_TIMEOUT).unwrap();
    let got_by = kafka::by_partition(&got, |g| g.partition);
    let exp_by = kafka::by_partition(&recs, |r| r.partition);
    assert_eq!(got_by.len(), 4);
    for p in 0..4 {
        assert_exact(&got_by[&p], &exp_by[&p], 0, &format!("partition {p}"));
        assert_eq!(kafka::watermarks(bs, &topic, p).unwrap(), (0, per as i64));
    }
}

#[test]
fn headers_roundtrip() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("headers");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let many = (0..50).fold(Rec::new(0, Some(b"many"), Some(b"v")), |r, i| {
        r.header(&format!("h{i}"), Some(format!("value-{i}").as_bytes()))
    });
    let recs = vec![
        Rec::new(0, Some(b"k1"), Some(b"one header")).header("a", Some(b"1")),
        Rec::new(0, Some(b"k2"), Some(b"null header value")).header("nullvalue", None),
        Rec::new(0, Some(b"k3"), Some(b"empty header value")).header("empty", Some(b"")),
        Rec::new(0, Some(b"k4"), Some(b"duplicate keys keep order"))
            .header("dup", Some(b"first"))
            .header("dup", Some(b"second"))
            .header("dup", Some(b"third")),
        Rec::new(0, Some(b"k5"), Some(b"binary + unicode"))
            .header("bin", Some(&[0u8, 255, 1, 254, 0, 0]))
            .header("ключ-🔑", Some("значение ✓".as_bytes())),
        Rec::new(0, Some(b"k6"), Some(b"no headers")),
        many,
        Rec::new(0, None, None).header("only-headers", Some(b"x")),
    ];
    let d = kafka::produce_ok(&producer, &topic, &recs);
    assert_dense_offsets(&d, 0, 0, "headers");
    let got = kafka::consume(
        bs,
        &topic,
        &[(0, Offset::Beginning)],
        recs.len(),
        CONSUME_TIMEOUT,
    )
    .unwrap();
    assert_exact(&got, &recs, 0, "headers");
}

#[test]
fn null_and_empty_keys_and_values_are_distinct() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    for codec in ["none", "zstd"] {
        let topic = unique_topic(&format!("nulls-{codec}"));
        kafka::create_topic(bs, &topic, 1, &[]).unwrap();
        let producer = kafka::producer(bs, "1", codec);
        let recs = vec![
            Rec::new(0, None, None),
            Rec::new(0, None, Some(b"value without key")),
            Rec::new(0, Some(b"key without value"), None),
            Rec::new(0, Some(b""), Some(b"")),
            Rec::new(0, Some(b""), None),
            Rec::new(0, None, Some(b"")),
            Rec::new(0, Some(b"k"), Some(b"v")),
        ];
        let d = kafka::produce_ok(&producer, &topic, &recs);
        assert_dense_offsets(&d, 0, 0, codec);
        let got = kafka::consume(
            bs,
            &topic,
            &[(0, Offset::Beginning)],
            recs.len(),
            CONSUME_TIMEOUT,
        )
        .unwrap();
        assert_exact(&got, &recs, 0, &format!("nulls ({codec})"));
    }
}

#[test]
fn large_batches_and_large_records() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    for codec in ["none", "lz4"] {
        let topic = unique_topic(&format!("large-{codec}"));
        kafka::create_topic(bs, &topic, 1, &[]).unwrap();
        let mut cfg = kafka::producer_config(bs, "all", codec);
        // Let librdkafka build big batches: ~1 MB, up to 100k records.
        cfg.set("linger.ms", "200")
            .set("batch.size", "1000000")
            .set("batch.num.messages", "100000");
        let producer: rdkafka::producer::FutureProducer = cfg.create().unwrap();
        let mut recs: Vec<Rec> = (0..20_000)
            .map(|i| {
                let k = format!("large-{i:06}");
                Rec::new(0, Some(k.as_bytes()), Some(&bytes(i, 150)))
            })
            .collect();
        // A few big single records (512 KiB, 900 KiB) in the middle and at the end.
        recs.insert(
            10_000,
            Rec::new(0, Some(b"big-512k"), Some(&bytes(7, 512 * 1024))),
        );
        recs.push(Rec::new(0, Some(b"big-900k"), Some(&bytes(9, 900 * 1024))));
        let d = kafka::produce_ok(&producer, &topic, &recs);
        assert_dense_offsets(&d, 0, 0, &format!("large {codec}"));
        let got = kafka::consume(
            bs,
            &topic,
            &[(0, Offset::Beginning)],
            recs.len(),
            CONSUME_TIMEOUT,
        )
        .unwrap();
        assert_exact(&got, &recs, 0, &format!("large {codec}"));
    }
}

// ---------------------------------------------------------------------------
// Offsets: start inside a batch, seek, ListOffsets
// ---------------------------------------------------------------------------

/// Produce `n` records so that librdkafka puts them all in one batch
/// (long linger, then flush), and return them.
fn produce_one_batch(bs: &str, topic: &str, codec: &str, n: usize) -> Vec<Rec> {
    let mut cfg = kafka::producer_config(bs, "all", codec);
    cfg.set("linger.ms", "5000")
        .set("batch.num.messages", "10000");
    let producer: rdkafka::producer::FutureProducer = cfg.create().unwrap();
    let recs: Vec<Rec> = (0..n)
        .map(|i| {
            Rec::new(
                0,
                Some(format!("mid-{i}").as_bytes()),
                Some(format!("value {i}").as_bytes()),
            )
            .header("i", Some(i.to_string().as_bytes()))
        })
        .collect();
    let d = kafka::produce_ok(&producer, topic, &recs);
    assert_dense_offsets(&d, 0, 0, "one batch");
    recs
}

#[test]
fn consume_from_offset_inside_a_batch() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    for codec in ["none", "zstd", "gzip"] {
        let topic = unique_topic(&format!("midbatch-{codec}"));
        kafka::create_topic(bs, &topic, 1, &[]).unwrap();
        let recs = produce_one_batch(bs, &topic, codec, 100);
        for start in [1i64, 37, 99] {
            let want = &recs[start as usize..];
            let got = kafka::consume(
                bs,
                &topic,
                &[(0, Offset::Offset(start))],
                want.len(),
                CONSUME_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("{codec}: assign at {start}: {e:#}"));
            assert_eq!(
                got[0].offset, start,
                "{codec}: first record after assign at offset {start}"
            );
            assert_exact(&got, want, start, &format!("{codec} from {start}"));
        }
    }
}

#[test]
fn seek_inside_a_batch() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("seek");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let recs = produce_one_batch(bs, &topic, "snappy", 100);
    let c = kafka::consumer(bs);
    let first =
        kafka::consume_with(&c, &topic, &[(0, Offset::Beginning)], 5, CONSUME_TIMEOUT).unwrap();
    assert_exact(&first, &recs[..5], 0, "before seek");
    c.seek(&topic, 0, Offset::Offset(73), kafka::OP_TIMEOUT)
        .unwrap();
    // After a seek librdkafka drops what it had prefetched: the next record must be 73.
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut after = Vec::new();
    while after.len() < 27 {
        assert!(
            Instant::now() < deadline,
            "after seek consumed only {} records",
            after.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.expect("consume after seek");
            use rdkafka::Message;
            after.push((m.offset(), m.key().map(|k| k.to_vec())));
        }
    }
    let expected: Vec<(i64, Option<Vec<u8>>)> =
        (73..100).map(|i| (i as i64, recs[i].key.clone())).collect();
    assert_eq!(after, expected);
}

#[test]
fn list_offsets_watermarks_and_times() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("listoffsets");
    kafka::create_topic(bs, &topic, 2, &[]).unwrap();

    // Empty partitions: low = high = 0.
    assert_eq!(
        kafka::watermarks(bs, &topic, 0).unwrap(),
        (0, 0),
        "empty partition"
    );

    // Ten records with CreateTimes t0, t0+1000, ..., in two batches.
    let t0 = now_ms() - 3_600_000;
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec::new(0, Some(format!("t{i}").as_bytes()), Some(b"x")).at(t0 + 1000 * i))
        .collect();
    let producer = kafka::producer(bs, "all", "none");
    let mut d = kafka::produce_ok(&producer, &topic, &recs[..5]);
    d.extend(kafka::produce_ok(&producer, &topic, &recs[5..]));
    assert_dense_offsets(&d, 0, 0, "timestamps");

    assert_eq!(kafka::watermarks(bs, &topic, 0).unwrap(), (0, 10));
    assert_eq!(
        kafka::watermarks(bs, &topic, 1).unwrap(),
        (0, 0),
        "untouched partition"
    );

    // Timestamps are echoed back on consume.
    let got = kafka::consume(bs, &topic, &[(0, Offset::Beginning)], 10, CONSUME_TIMEOUT).unwrap();
    assert_exact(&got, &recs, 0, "timestamps");

    let c = kafka::consumer(bs);
    let cases: [(i64, Offset); 7] = [
        (t0 - 60_000, Offset::Offset(0)),
        (t0, Offset::Offset(0)),
        (t0 + 1, Offset::Offset(1)),
        (t0 + 1500, Offset::Offset(2)),
        (t0 + 5000, Offset::Offset(5)), // first record of the second batch
        (t0 + 9000, Offset::Offset(9)),
        (t0 + 9001, Offset::End), // later than every record: -1 ("no such offset")
    ];
    // Compare all cases at once so a failure shows the broker's whole answer.
    let mut got = Vec::new();
    for (ts, _) in &cases {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(*ts))
            .unwrap();
        let res = c.offsets_for_times(tpl, kafka::OP_TIMEOUT).unwrap();
        let e = res.find_partition(&topic, 0).unwrap();
        assert!(
            e.error().is_ok(),
            "offsets_for_times({ts}) error {:?}",
            e.error()
        );
        got.push((format!("t0{:+}", ts - t0), e.offset()));
    }
    let want: Vec<(String, Offset)> = cases
        .iter()
        .map(|(ts, o)| (format!("t0{:+}", ts - t0), *o))
        .collect();
    assert_eq!(
        got, want,
        "offsets_for_times: first offset whose timestamp >= the target"
    );
}

// ---------------------------------------------------------------------------
// Crash durability (--flush always)
// ---------------------------------------------------------------------------

#[test]
fn kill9_after_acked_produce_keeps_every_record() {
    let mut broker = Broker::start_flush_always();
    let topic = unique_topic("crash");
    kafka::create_topic(broker.bootstrap(), &topic, 2, &[]).unwrap();

    let mut recs = Vec::new();
    {
        let bs = broker.bootstrap().to_string();
        for (round, codec) in ["none", "gzip", "zstd"].iter().enumerate() {
            let producer = kafka::producer(&bs, "all", codec);
            let mut batch = mixed_records(0, 300, &format!("crash{round}"));
            batch.extend(mixed_records(1, 200, &format!("crash{round}p1")));
            kafka::produce_ok(&producer, &topic, &batch);
            recs.extend(batch);
        }
    }
    let exp = kafka::by_partition(&recs, |r| r.partition);

    broker.kill9();
    broker.restart();
    let bs = broker.bootstrap().to_string();

    kafka::wait_for_topic(&bs, &topic, 2).expect("topic metadata must survive a restart");
    let starts = [(0, Offset::Beginning), (1, Offset::Beginning)];
    let got = kafka::consume(&bs, &topic, &starts, recs.len(), CONSUME_TIMEOUT).unwrap();
    let got_by = kafka::by_partition(&got, |g| g.partition);
    for p in 0..2 {
        assert_exact(
            &got_by[&p],
            &exp[&p],
            0,
            &format!("after restart, partition {p}"),
        );
        assert_eq!(
            kafka::watermarks(&bs, &topic, p).unwrap(),
            (0, exp[&p].len() as i64),
            "watermarks after restart, partition {p}"
        );
    }

    // New produces continue at the next offset.
    let producer = kafka::producer(&bs, "all", "none");
    let more: Vec<Rec> = (0..10)
        .map(|i| {
            Rec::new(
                0,
                Some(format!("after-{i}").as_bytes()),
                Some(b"after restart"),
            )
        })
        .collect();
    let d = kafka::produce_ok(&producer, &topic, &more);
    let base = exp[&0].len() as i64;
    assert_dense_offsets(&d, 0, base, "produce after restart");
    let got = kafka::consume(
        &bs,
        &topic,
        &[(0, Offset::Offset(base))],
        more.len(),
        CONSUME_TIMEOUT,
    )
    .unwrap();
    assert_exact(&got, &more, base, "consume after restart");
}

#[test]
fn kill9_mid_stream_keeps_acked_records_flush_always() {
    kill9_mid_stream(true);
}

/// With the default flush policy ("os": page cache, like Kafka) acknowledged
/// records must survive a process crash too (not a power loss).
#[test]
fn kill9_mid_stream_keeps_acked_records_flush_os() {
    kill9_mid_stream(false);
}

fn kill9_mid_stream(flush_always: bool) {
    let mut broker = if flush_always {
        Broker::start_flush_always()
    } else {
        Broker::start()
    };
    let topic = unique_topic("midstream");
    let bs0 = broker.bootstrap().to_string();
    kafka::create_topic(&bs0, &topic, 1, &[]).unwrap();

    let mut cfg = kafka::producer_config(&bs0, "all", "lz4");
    cfg.set("message.timeout.ms", "20000")
        .set("retries", "1000")
        .set("retry.backoff.ms", "50")
        .set("queue.buffering.max.messages", "100000");
    let (producer, deliveries) = kafka::channel_producer(&cfg).unwrap();
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let value = |i: usize| format!("mid-stream value {i} ").repeat(1 + i % 5);

    // Sender thread: keeps producing until told to stop; returns how many it sent.
    let sender = {
        let producer = producer.clone();
        let stop = stop.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 2_000_000 {
                let k = format!("ms-{i}");
                let v = value(i);
                let rec = BaseRecord::with_opaque_to(&topic, i)
                    .partition(0)
                    .key(&k)
                    .payload(&v);
                match producer.send(rec) {
                    Ok(()) => i += 1,
                    Err((e, _)) => {
                        // Local queue full: wait for the polling thread to drain deliveries.
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "send failed: {e}"
                        );
                        producer.poll(Duration::from_millis(5));
                    }
                }
            }
            i
        })
    };

    // Wait for 3000 acknowledged records, then SIGKILL while records are in flight.
    let mut acked: BTreeMap<usize, i64> = BTreeMap::new();
    let mut failed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < 3000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, d) = deliveries.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "only {} records acknowledged before the deadline",
                acked.len()
            )
        });
        match d {
            Ok((_, off)) => {
                acked.insert(i, off);
            }
            Err(_) => failed += 1,
        }
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let acked_before_kill = acked.len();
    broker.restart();
    let bs = broker.bootstrap().to_string();

    // Every sent record gets exactly one final delivery report (acked after
    // the client reconnects, or failed by message.timeout.ms).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reported = acked.len() + failed;
    while reported < sent {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, d) = deliveries.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "{} of {sent} delivery reports still missing",
                sent - reported
            )
        });
        reported += 1;
        match d {
            Ok((_, off)) => {
                acked.insert(i, off);
            }
            Err(_) => failed += 1,
        }
    }
    drop(producer);
    eprintln!(
        "mid-stream: sent {sent}, acked before kill {acked_before_kill}, acked in total {}, failed {failed}",
        acked.len()
    );

    let (low, high) = kafka::watermarks(&bs, &topic, 0).unwrap();
    assert_eq!(low, 0);
    assert!(
        high >= acked.len() as i64,
        "high watermark {high} is below the {} acknowledged records",
        acked.len()
    );
    let got = kafka::consume(
        &bs,
        &topic,
        &[(0, Offset::Beginning)],
        high as usize,
        CONSUME_TIMEOUT,
    )
    .unwrap();
    // Dense offsets 0..high.
    for (n, g) in got.iter().enumerate() {
        assert_eq!(g.offset, n as i64, "offsets after restart must be dense");
    }
    // Every acknowledged record is at its acknowledged offset with its content.
    for (&i, &off) in &acked {
        let g = &got[off as usize];
        assert_eq!(
            (g.key.as_deref(), g.value.as_deref()),
            (
                Some(format!("ms-{i}").as_bytes()),
                Some(value(i).as_bytes())
            ),
            "acknowledged record #{i} at offset {off}"
        );
    }
}

// ---------------------------------------------------------------------------
// Edges: log end, out-of-range offsets, oversized records
// ---------------------------------------------------------------------------

#[test]
fn tail_consumer_receives_records_produced_later() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("tail");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let first = vec![Rec::new(0, Some(b"before"), Some(b"x"))];
    kafka::produce_ok(&producer, &topic, &first);

    // Assign at the log end (offset 1 == high watermark): a valid position with no data yet.
    let c = kafka::consumer(bs);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(1))
        .unwrap();
    c.assign(&tpl).unwrap();
    // Nothing must arrive (and no error) while nothing is produced: serve the
    // consumer until its position is established (a couple of empty fetches).
    let idle_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < idle_until {
        if let Some(r) = c.poll(Duration::from_millis(100)) {
            match r {
                Ok(m) => {
                    use rdkafka::Message;
                    panic!(
                        "unexpected record at offset {} before producing",
                        m.offset()
                    )
                }
                Err(e) => panic!("consumer error at the log end: {e}"),
            }
        }
    }
    let later: Vec<Rec> = (0..5)
        .map(|i| Rec::new(0, Some(format!("later-{i}").as_bytes()), Some(b"y")))
        .collect();
    let d = kafka::produce_ok(&producer, &topic, &later);
    assert_dense_offsets(&d, 0, 1, "later");
    let got =
        kafka::consume_with(&c, &topic, &[(0, Offset::Offset(1))], 5, CONSUME_TIMEOUT).unwrap();
    assert_exact(&got, &later, 1, "tail");
}

#[test]
fn fetch_beyond_log_end_is_offset_out_of_range() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("oor");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec::new(0, Some(format!("k{i}").as_bytes()), Some(b"v")))
        .collect();
    kafka::produce_ok(&producer, &topic, &recs);

    // auto.offset.reset=error: the consumer must report the out-of-range fetch.
    let err = kafka::consume(
        bs,
        &topic,
        &[(0, Offset::Offset(15))],
        1,
        Duration::from_secs(20),
    )
    .expect_err("assign at offset 15 of a 10-record log must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("out of range")
            || msg.contains("Offset out of range")
            || msg.contains("reset"),
        "expected an offset-out-of-range error, got: {msg}"
    );

    // auto.offset.reset=earliest: the client resets to 0 and reads everything.
    let mut cfg = kafka::consumer_config(bs);
    cfg.set("auto.offset.reset", "earliest");
    let c: rdkafka::consumer::BaseConsumer = cfg.create().unwrap();
    let got =
        kafka::consume_with(&c, &topic, &[(0, Offset::Offset(15))], 10, CONSUME_TIMEOUT).unwrap();
    assert_exact(&got, &recs, 0, "after reset to earliest");
}

#[test]
fn oversized_record_batch_is_rejected() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("toolarge");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    // Raise the client's own limits so the broker (message.max.bytes 1048588) decides.
    let mut cfg = kafka::producer_config(bs, "all", "none");
    cfg.set("message.max.bytes", "10000000")
        .set("batch.size", "10000000")
        .set("message.timeout.ms", "20000");
    let producer: rdkafka::producer::FutureProducer = cfg.create().unwrap();
    let big = Rec::new(0, Some(b"big"), Some(&bytes(3, 2 * 1024 * 1024)));
    let d = kafka::produce(&producer, &topic, std::slice::from_ref(&big));
    match &d[0] {
        Err(rdkafka::error::KafkaError::MessageProduction(code)) => assert_eq!(
            *code,
            rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge,
            "expected MESSAGE_TOO_LARGE (10)"
        ),
        other => panic!("a 2 MiB record must be rejected with MESSAGE_TOO_LARGE, got {other:?}"),
    }
    // The partition is still usable and nothing was appended.
    let ok = vec![Rec::new(0, Some(b"small"), Some(b"fits"))];
    let d = kafka::produce_ok(&producer, &topic, &ok);
    assert_dense_offsets(&d, 0, 0, "after rejected batch");
}

#[test]
fn fetch_size_smaller_than_a_batch_still_makes_progress() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("smallfetch");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let recs: Vec<Rec> = (0..6)
        .map(|i| {
            Rec::new(
                0,
                Some(format!("k{i}").as_bytes()),
                Some(&bytes(i, 200 * 1024)),
            )
        })
        .collect();
    kafka::produce_ok(&producer, &topic, &recs);
    // Each batch (>= 200 KiB) is larger than the per-partition fetch size:
    // the broker must still return the first batch whole (KIP-74).
    let mut cfg = kafka::consumer_config(bs);
    cfg.set("max.partition.fetch.bytes", "1024");
    let c: rdkafka::consumer::BaseConsumer = cfg.create().unwrap();
    let got = kafka::consume_with(
        &c,
        &topic,
        &[(0, Offset::Beginning)],
        recs.len(),
        CONSUME_TIMEOUT,
    )
    .unwrap();
    assert_exact(&got, &recs, 0, "small fetch size");
}

#[test]
fn consumer_metadata_does_not_auto_create_topics() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("noautocreate");
    // librdkafka consumers send Metadata with AllowAutoTopicCreation=false.
    let c = kafka::consumer(bs);
    let md = c.fetch_metadata(Some(&topic), kafka::OP_TIMEOUT).unwrap();
    let t = md.topics().iter().find(|t| t.name() == topic);
    assert!(
        matches!(t.map(|t| t.error()), Some(Some(_))),
        "Metadata for a missing topic (AllowAutoTopicCreation=false) must carry an error, got {:?}",
        t.map(|t| (t.error(), t.partitions().len()))
    );
    let all = c.fetch_metadata(None, kafka::OP_TIMEOUT).unwrap();
    assert!(
        all.topics().iter().all(|t| t.name() != topic),
        "the topic was created by a consumer Metadata request"
    );
}

#[test]
fn delete_and_recreate_topic_starts_empty() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("recreate");
    kafka::create_topic(bs, &topic, 2, &[]).unwrap();
    let producer = kafka::producer(bs, "all", "none");
    let old: Vec<Rec> = (0..20)
        .map(|i| Rec::new(i % 2, Some(format!("old-{i}").as_bytes()), Some(b"old")))
        .collect();
    kafka::produce_ok(&producer, &topic, &old);
    drop(producer);

    let admin = kafka::admin(bs);
    let opts = rdkafka::admin::AdminOptions::new().operation_timeout(Some(kafka::OP_TIMEOUT));
    let res = futures::executor::block_on(admin.delete_topics(&[&topic], &opts)).unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "DeleteTopics: {res:?}");

    // Recreate with a different partition count: no data, offsets restart at 0.
    kafka::create_topic(bs, &topic, 3, &[]).unwrap();
    for p in 0..3 {
        assert_eq!(
            kafka::watermarks(bs, &topic, p).unwrap(),
            (0, 0),
            "partition {p} after re-create"
        );
    }
    let producer = kafka::producer(bs, "all", "none");
    let new = vec![Rec::new(1, Some(b"new"), Some(b"new"))];
    let d = kafka::produce_ok(&producer, &topic, &new);
    assert_eq!(d, vec![(1, 0)]);
    let got = kafka::consume(bs, &topic, &[(1, Offset::Beginning)], 1, CONSUME_TIMEOUT).unwrap();
    assert_exact(&got, &new, 0, "re-created topic");
}

#[test]
fn create_topics_validate_only_creates_nothing() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topic = unique_topic("validateonly");
    let admin = kafka::admin(bs);
    let nt = rdkafka::admin::NewTopic::new(&topic, 2, rdkafka::admin::TopicReplication::Fixed(1));
    let opts = rdkafka::admin::AdminOptions::new()
        .operation_timeout(Some(kafka::OP_TIMEOUT))
        .validate_only(true);
    let res = futures::executor::block_on(admin.create_topics([&nt], &opts)).unwrap();
    assert_eq!(res, vec![Ok(topic.clone())], "validate-only CreateTopics");
    let md = kafka::consumer(bs)
        .fetch_metadata(None, kafka::OP_TIMEOUT)
        .unwrap();
    assert!(
        md.topics().iter().all(|t| t.name() != topic),
        "validate_only CreateTopics created the topic"
    );
    // Invalid requests fail validation with the same error as a real create.
    let bad = rdkafka::admin::NewTopic::new(&topic, 0, rdkafka::admin::TopicReplication::Fixed(1));
    let res = futures::executor::block_on(admin.create_topics([&bad], &opts)).unwrap();
    assert_eq!(
        res,
        vec![Err((
            topic.clone(),
            rdkafka::types::RDKafkaErrorCode::InvalidPartitions
        ))]
    );
}

#[test]
fn graceful_restart_keeps_data_and_offsets() {
    let mut broker = Broker::start();
    let topic = unique_topic("graceful");
    kafka::create_topic(broker.bootstrap(), &topic, 3, &[]).unwrap();
    let recs: Vec<Rec> = (0..300)
        .map(|i| {
            Rec::new(
                i % 3,
                Some(format!("g-{i}").as_bytes()),
                Some(format!("v{i}").as_bytes()),
            )
        })
        .collect();
    {
        let producer = kafka::producer(broker.bootstrap(), "1", "snappy");
        kafka::produce_ok(&producer, &topic, &recs);
    }
    let st = broker.terminate(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "broker exit status after SIGTERM: {st}");
    broker.restart();
    let bs = broker.bootstrap().to_string();
    kafka::wait_for_topic(&bs, &topic, 3).unwrap();
    let starts: Vec<(i32, Offset)> = (0..3).map(|p| (p, Offset::Beginning)).collect();
    let got = kafka::consume(&bs, &topic, &starts, recs.len(), CONSUME_TIMEOUT).unwrap();
    let got_by = kafka::by_partition(&got, |g| g.partition);
    let exp_by = kafka::by_partition(&recs, |r| r.partition);
    for p in 0..3 {
        assert_exact(
            &got_by[&p],
            &exp_by[&p],
            0,
            &format!("after graceful restart, partition {p}"),
        );
    }
    let producer = kafka::producer(&bs, "all", "none");
    let d = kafka::produce_ok(&producer, &topic, &[Rec::new(2, Some(b"next"), Some(b"n"))]);
    assert_eq!(d, vec![(2, 100)], "next offset after graceful restart");
}

/// Small segments (broker-level `[log] segment_bytes` from a --config file):
/// reads across segment boundaries, timestamp lookups at batch boundaries and
/// crash recovery with many segments.
#[test]
fn many_small_segments_roundtrip_and_recover() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg_path = cfg_dir.path().join("vltava.toml");
    std::fs::write(&cfg_path, "[log]\nsegment_bytes = 65536\n").unwrap();
    let mut broker = Broker::start_with(vltava_compat::BrokerOptions {
        flush_always: true,
        extra_args: vec!["--config".into(), cfg_path.display().to_string()],
        ..Default::default()
    });
    let topic = unique_topic("segments");
    kafka::create_topic(broker.bootstrap(), &topic, 1, &[]).unwrap();

    let t0 = now_ms() - 3_600_000;
    let recs: Vec<Rec> = (0..3000)
        .map(|i| {
            Rec::new(
                0,
                Some(format!("seg-{i}").as_bytes()),
                Some(&bytes(i as u64, 300)),
            )
            .at(t0 + i as i64)
        })
        .collect();
    {
        let producer = kafka::producer(broker.bootstrap(), "all", "none");
        // 30 produce calls of 100 records: batch boundaries at multiples of 100.
        let mut n = 0;
        for chunk in recs.chunks(100) {
            let d = kafka::produce_ok(&producer, &topic, chunk);
            assert_dense_offsets(&d, 0, n, "segments produce");
            n += chunk.len() as i64;
        }
    }
    let check = |bs: &str, what: &str| {
        let got = kafka::consume(
            bs,
            &topic,
            &[(0, Offset::Beginning)],
            recs.len(),
            CONSUME_TIMEOUT,
        )
        .unwrap();
        assert_exact(&got, &recs, 0, what);
        for start in [217i64, 1500, 2999] {
            let got = kafka::consume(
                bs,
                &topic,
                &[(0, Offset::Offset(start))],
                1,
                CONSUME_TIMEOUT,
            )
            .unwrap();
            assert_eq!(
                got[0].offset, start,
                "{what}: first record after assign at {start}"
            );
            assert!(
                got[0].same_content(&recs[start as usize]),
                "{what}: record {start}"
            );
        }
        let c = kafka::consumer(bs);
        for at in [0i64, 700, 1500, 2900] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, 0, Offset::Offset(t0 + at))
                .unwrap();
            let res = c.offsets_for_times(tpl, kafka::OP_TIMEOUT).unwrap();
            assert_eq!(
                res.find_partition(&topic, 0).unwrap().offset(),
                Offset::Offset(at),
                "{what}: offsets_for_times(t0+{at}) (a batch boundary)"
            );
        }
        assert_eq!(
            kafka::watermarks(bs, &topic, 0).unwrap(),
            (0, recs.len() as i64),
            "{what}: watermarks"
        );
    };
    check(broker.bootstrap(), "before crash");
    broker.kill9();
    broker.restart();
    let bs = broker.bootstrap().to_string();
    check(&bs, "after crash");
    let producer = kafka::producer(&bs, "all", "none");
    let d = kafka::produce_ok(
        &producer,
        &topic,
        &[Rec::new(0, Some(b"after"), Some(b"crash"))],
    );
    assert_eq!(d, vec![(0, 3000)]);
}
