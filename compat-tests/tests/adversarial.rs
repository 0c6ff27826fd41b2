//! Hostile clients against a real vltava process while well-behaved rdkafka clients keep streaming.
//!
//! A producer (idempotent, acks=all) and an assign()-consumer run for the whole test. Meanwhile raw
//! sockets throw random bytes, truncated frames, negative and huge sizes, unknown api keys and
//! versions, huge array counts, batches with a wrong CRC / record count / length, zstd and gzip bombs,
//! slowloris connections and a connection flood beyond `max_connections_per_ip`. Afterwards: the
//! broker is up, every good record arrived exactly once and in order, no good-client operation
//! failed, the broker's RSS stayed bounded, and every bad connection got an error or a close.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, ProduceRequest, RequestHeader, RequestKind, ResponseHeader,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::kafka::{self, Rec};
use vltava_compat::{proc_stats, unique_topic, Broker, BrokerOptions};

/// How long a bad connection may take to be answered or closed (the frame timeout is 2 s).
const CLOSE_WITHIN: Duration = Duration::from_secs(15);
/// The broker's resident memory must stay under this for the whole test.
const RSS_LIMIT_KIB: u64 = 384 * 1024;
const PER_IP: usize = 96;

const CONFIG: &str = "
socket_request_max_bytes = 8388608
[limits]
max_connections_per_ip = 96
connections_max_idle_ms = 120000
frame_read_timeout_ms = 2000
";

/// What a bad connection got.
#[derive(Debug, PartialEq)]
enum Fate {
    /// A response frame (its first bytes after the correlation id).
    Answered(Bytes),
    Closed,
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(CLOSE_WITHIN)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `bytes` (a write error means the broker already closed: fine) and waits for an answer or a close.
fn attack(addr: &str, bytes: &[u8]) -> Fate {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    fate(&mut s)
}

fn fate(s: &mut TcpStream) -> Fate {
    let started = Instant::now();
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => {
            let n = i32::from_be_bytes(size).max(0) as usize;
            let mut body = vec![0u8; n.min(1 << 20)];
            s.read_exact(&mut body).expect("a whole response frame");
            Fate::Answered(Bytes::from(body))
        }
        Err(e) => {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "no answer and no close after {:?}",
                started.elapsed()
            );
            Fate::Closed
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// A request header (v1, null client id) for a hand-made body.
fn header(key: i16, version: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&7i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h
}

fn encode_request(key: ApiKey, version: i16, body: RequestKind) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("attacker")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    frame(&buf)
}

fn decode_response(key: ApiKey, version: i16, mut body: Bytes) -> ResponseKind {
    ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    let r = ResponseKind::decode(key, &mut body, version).unwrap();
    assert_eq!(body.remaining(), 0);
    r
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A v2 batch with one record around `payload`, compressed with `codec` as given; the CRC is right
/// unless `bad_crc`, and the record count is `count`.
fn batch(codec: i16, payload: &[u8], count: i32, bad_crc: bool) -> Vec<u8> {
    let mut after_crc = BytesMut::new();
    after_crc.put_i16(codec);
    after_crc.put_i32(count - 1); // last offset delta
    after_crc.put_i64(1_700_000_000_000);
    after_crc.put_i64(1_700_000_000_000);
    after_crc.put_i64(-1);
    after_crc.put_i16(-1);
    after_crc.put_i32(-1);
    after_crc.put_i32(count);
    after_crc.put_slice(payload);
    let crc = crc32c::crc32c(&after_crc) ^ u32::from(bad_crc);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((4 + 1 + 4 + after_crc.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(crc);
    b.put_slice(&after_crc);
    b.to_vec()
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// One uncompressed record (attributes, deltas, null key, value, no headers).
fn record(value: &[u8]) -> Vec<u8> {
    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut body = vec![0u8];
    zigzag(&mut body, 0);
    zigzag(&mut body, 0);
    zigzag(&mut body, -1);
    zigzag(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    zigzag(&mut body, 0);
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

fn produce_request(topic: &str, records: Vec<u8>) -> Vec<u8> {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    encode_request(ApiKey::Produce, 7, RequestKind::Produce(req))
}

fn produce_error(addr: &str, topic: &str, records: Vec<u8>) -> i16 {
    match attack(addr, &produce_request(topic, records)) {
        Fate::Answered(body) => match decode_response(ApiKey::Produce, 7, body) {
            ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
            other => panic!("{other:?}"),
        },
        Fate::Closed => panic!("a produce with a bad batch must get an error code, not a close"),
    }
}

/// Zeros compressed by streaming (never held in memory here either): 1 GiB for zstd, 128 MiB for
/// gzip (deflate tops out near 1:1000); both beyond what the broker will inflate (64 MiB).
fn bomb(codec: &str) -> Vec<u8> {
    let chunk = vec![0u8; 1 << 20];
    match codec {
        "zstd" => {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            for _ in 0..1024 {
                e.write_all(&chunk).unwrap();
            }
            e.finish().unwrap()
        }
        _ => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for _ in 0..128 {
                e.write_all(&chunk).unwrap();
            }
            e.finish().unwrap()
        }
    }
}

#[test]
fn hostile_clients_do_not_hurt_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hostile.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), cfg.to_str().unwrap().into()],
        ..BrokerOptions::default()
    });
    let addr = broker.bootstrap().to_string();
    let pid = broker.pid().expect("broker pid");
    let good = unique_topic("good");
    let victim = unique_topic("victim");
    kafka::create_topic(&addr, &good, 2, &[]).unwrap();
    kafka::create_topic(&addr, &victim, 1, &[]).unwrap();

    // RSS sampler.
    let done = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak_rss.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(s) = proc_stats(pid) {
                    peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // The good producer streams rounds of records until the attacks are over.
    let attacking = Arc::new(AtomicBool::new(true));
    let producer = {
        let (addr, topic, attacking) = (addr.clone(), good.clone(), attacking.clone());
        thread::spawn(move || {
            let mut cfg = kafka::producer_config(&addr, "all", "lz4");
            cfg.set("enable.idempotence", "true");
            let p: rdkafka::producer::FutureProducer = cfg.create().unwrap();
            let mut sent = 0usize;
            let mut rounds = 0;
            while attacking.load(Ordering::Relaxed) || rounds < 5 {
                let recs: Vec<Rec> = (sent..sent + 200)
                    .map(|i| {
                        let v = format!("good-{i}");
                        Rec::new((i % 2) as i32, Some(v.as_bytes()), Some(v.as_bytes()))
                    })
                    .collect();
                kafka::produce_ok(&p, &topic, &recs);
                sent += recs.len();
                rounds += 1;
            }
            p.flush(kafka::OP_TIMEOUT).unwrap();
            sent
        })
    };
    // The good consumer reads both partitions from the start until told the total.
    let (total_tx, total_rx) = mpsc::channel::<usize>();
    let consumer = {
        let (addr, topic) = (addr.clone(), good.clone());
        thread::spawn(move || {
            let c: BaseConsumer = kafka::consumer(&addr);
            let mut tpl = TopicPartitionList::new();
            for p in 0..2 {
                tpl.add_partition_offset(&topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let mut got: Vec<(i32, i64, String)> = Vec::new();
            let mut total = None;
            let deadline = Instant::now() + Duration::from_secs(300);
            while total != Some(got.len()) {
                assert!(
                    Instant::now() < deadline,
                    "consumer stalled at {}",
                    got.len()
                );
                if total.is_none() {
                    total = total_rx.try_recv().ok();
                }
                match c.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        use rdkafka::Message;
                        let v =
                            String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                        got.push((m.partition(), m.offset(), v));
                    }
                    Some(Err(e)) => panic!("good consumer got an error: {e}"),
                    None => {}
                }
            }
            got
        })
    };

    // --- the attacks ---------------------------------------------------------------------------
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Random bytes.
    for i in 0..40 {
        let len = 1 + (next() % 4096) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let fate = attack(&addr, &junk);
        // Random bytes may by chance form a frame the broker answers (an error); never anything else.
        if let Fate::Answered(b) = &fate {
            assert!(b.len() >= 4, "random input {i}: {fate:?}");
        }
    }
    // Truncated frames (the client leaves), negative and huge sizes.
    for bytes in [
        &[0u8][..],
        &[0, 0, 0][..],
        &[0, 0, 0, 100, 0, 18, 0, 3][..],
        &(-1i32).to_be_bytes()[..],
        &i32::MIN.to_be_bytes()[..],
        &i32::MAX.to_be_bytes()[..],
        &(200i32 << 20).to_be_bytes()[..],
    ] {
        let mut s = connect(&addr);
        let _ = s.write_all(bytes);
        if bytes.len() < 4 || i32::from_be_bytes(bytes[..4].try_into().unwrap()) < 100 << 20 {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        assert_eq!(fate(&mut s), Fate::Closed, "{bytes:?}");
    }
    // Valid headers with unknown keys and versions, and empty or tiny frames.
    for f in [
        frame(&header(999, 0)),
        frame(&header(3, 99)),
        frame(&header(-1, 0)),
        frame(&[]),
        frame(&[0, 3]),
    ] {
        assert_eq!(attack(&addr, &f), Fate::Closed, "{f:?}");
    }
    // ApiVersions at an unknown version gets Kafka's UNSUPPORTED_VERSION answer instead (KIP-511).
    match attack(&addr, &frame(&header(18, 99))) {
        Fate::Answered(b) => assert_eq!(&b[4..6], &35i16.to_be_bytes()),
        Fate::Closed => panic!("ApiVersions v99 must be answered"),
    }
    // Huge array counts: the 14-byte request that used to abort the broker, and friends.
    let mut flexible_header = header(3, 12);
    flexible_header.push(0);
    for f in [
        frame(&[header(3, 1), 0x7fff_ffffi32.to_be_bytes().to_vec()].concat()),
        frame(&[flexible_header.clone(), vec![0xff, 0xff, 0xff, 0xff, 0x0f]].concat()),
        frame(
            &[
                header(0, 3),
                vec![0xff, 0xff, 0, 1, 0, 0, 3, 0xe8, 0x7f, 0xff, 0xff, 0xf0],
            ]
            .concat(),
        ),
    ] {
        assert_eq!(attack(&addr, &f), Fate::Closed, "{f:?}");
    }
    // Batches that are wrong: CRC, record count, length, magic. Each gets an error code.
    let good_record = record(b"bad-batch");
    let corrupt = 2; // CORRUPT_MESSAGE
    assert_eq!(
        produce_error(&addr, &victim, batch(0, &good_record, 1, true)),
        corrupt
    );
    let mut count = batch(0, &good_record, 1, false);
    count[57..61].copy_from_slice(&5i32.to_be_bytes()); // 5 records, last offset delta 0
    fix_crc(&mut count);
    assert_ne!(produce_error(&addr, &victim, count), 0);
    // A header that counts 3 records consistently (last offset delta 2) around one record.
    assert_ne!(
        produce_error(&addr, &victim, batch(0, &good_record, 3, false)),
        0
    );
    let mut long = batch(0, &good_record, 1, false);
    long[8..12].copy_from_slice(&10_000i32.to_be_bytes());
    assert_ne!(produce_error(&addr, &victim, long), 0);
    let mut magic = batch(0, &good_record, 1, false);
    magic[16] = 1;
    assert_ne!(produce_error(&addr, &victim, magic), 0);
    // Decompression bombs: stored as sent (the broker does not inflate on produce), then a
    // ListOffsets by timestamp makes it look inside, through its bounded decompression.
    for (codec, name) in [(4i16, "zstd"), (1, "gzip")] {
        let data = bomb(name);
        assert!(data.len() < 1 << 20, "{name} bomb is {} bytes", data.len());
        let code = produce_error(&addr, &victim, batch(codec, &data, 1, false));
        assert!(code == 0 || code == 87, "{name} bomb: error {code}");
    }
    let list = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(&victim))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(1_700_000_000_000)])]);
    for _ in 0..5 {
        match attack(
            &addr,
            &encode_request(
                ApiKey::ListOffsets,
                7,
                RequestKind::ListOffsets(list.clone()),
            ),
        ) {
            Fate::Answered(b) => {
                decode_response(ApiKey::ListOffsets, 7, b);
            }
            Fate::Closed => panic!("ListOffsets over a bomb must be answered"),
        }
    }
    // Slowloris: a size, then a byte now and then. Each is dropped after frame_read_timeout_ms.
    let slow: Vec<thread::JoinHandle<Duration>> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut s = connect(&addr);
                let started = Instant::now();
                s.write_all(&1000i32.to_be_bytes()).unwrap();
                // The read timeout paces the attacker: one byte per 200 ms unless the broker closes.
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut byte = [0u8; 1];
                loop {
                    assert!(started.elapsed() < CLOSE_WITHIN, "slowloris never dropped");
                    match s.read(&mut byte) {
                        Ok(0) => return started.elapsed(),
                        Ok(_) => panic!("a slowloris frame got a response"),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return started.elapsed(),
                    }
                    if s.write_all(b"x").is_err() {
                        return started.elapsed();
                    }
                }
            })
        })
        .collect();
    for s in slow {
        let took = s.join().unwrap();
        assert!(
            took >= Duration::from_millis(1900),
            "dropped too early: {took:?}"
        );
    }
    // Connection flood beyond max_connections_per_ip: the excess is closed at once.
    let mut flood: Vec<TcpStream> = (0..PER_IP + 60).map(|_| connect(&addr)).collect();
    let mut closed = 0;
    for s in &mut flood {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut b = [0u8; 1];
        let refused = match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => panic!("a flood connection got data"),
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        if refused {
            closed += 1;
        }
    }
    assert!(closed >= 60, "only {closed} flood connections were refused");
    drop(flood);
    // Afterwards new connections are accepted and answered again.
    let api_versions = {
        let mut h = header(18, 3);
        h.push(0);
        h.extend_from_slice(&[2, b'a', 2, b'1', 0]);
        frame(&h)
    };
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        match attack(&addr, &api_versions) {
            Fate::Answered(_) => break,
            Fate::Closed => assert!(
                Instant::now() < deadline,
                "no connection accepted after the flood"
            ),
        }
    }

    // --- the good clients finish -----------------------------------------------------------------
    attacking.store(false, Ordering::Relaxed);
    let sent = producer.join().expect("good producer");
    total_tx.send(sent).unwrap();
    let got = consumer.join().expect("good consumer");
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    assert!(broker.is_running(), "broker died:\n{}", broker.logs());
    let mut seen = vec![false; sent];
    let mut last = [-1i64; 2];
    for (p, offset, v) in &got {
        let i: usize = v
            .strip_prefix("good-")
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(!seen[i], "record {v} delivered twice");
        seen[i] = true;
        assert_eq!(i % 2, *p as usize, "{v} in the wrong partition");
        assert!(
            *offset > last[*p as usize],
            "partition {p} out of order at {offset}"
        );
        last[*p as usize] = *offset;
    }
    assert!(seen.iter().all(|s| *s), "records lost");
    let peak = peak_rss.load(Ordering::Relaxed);
    eprintln!(
        "adversarial: {sent} good records through; broker peak RSS {} MiB",
        peak / 1024
    );
    assert!(
        peak > 0 && peak < RSS_LIMIT_KIB,
        "broker RSS peaked at {peak} KiB"
    );
}
