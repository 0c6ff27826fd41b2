//! rdkafka transactions against vltava, the harder mixes: two producers' transactions interleaved on
//! one partition (one aborted, one committed, plain records between; read_committed also from inside
//! the aborted one), an open transaction and aborted data across a SIGKILL and restart of the broker
//! (the LSO and the aborted-transaction index recovered), the broker SIGKILLed right after each EndTxn
//! answer (the restarted coordinator completes the markers), and many small transactions over three
//! partitions with small segments, alternately committed and aborted, read live by a read_committed
//! consumer while a restart happens midway.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::kafka::{self};
use vltava_compat::txn::{self, at, Read};
use vltava_compat::unique_topic;

const TIMEOUT: Duration = Duration::from_secs(60);
const COMMITTED: &str = "read_committed";
const UNCOMMITTED: &str = "read_uncommitted";

fn read(bs: &str, level: &str, topic: &str, ends: &[(i32, i64)]) -> Read {
    txn::read_all(bs, level, topic, &ends.iter().copied().collect(), TIMEOUT).unwrap()
}

fn lso(bs: &str, topic: &str, partition: i32) -> i64 {
    txn::end_offset(bs, COMMITTED, topic, partition).unwrap()
}

#[test]
fn interleaved_transactions_of_two_producers_on_one_partition() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-interleaved");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let a = txn::producer(bs, &unique_topic("tid-a"), 60_000);
    let b = txn::producer(bs, &unique_topic("tid-b"), 60_000);
    let plain = kafka::producer(bs, "all", "none");
    a.init_transactions(TIMEOUT).unwrap();
    b.init_transactions(TIMEOUT).unwrap();

    a.begin_transaction().unwrap();
    b.begin_transaction().unwrap();
    let (a1, b1, x, a2, b2) = (
        txn::values("a1", 2),
        txn::values("b1", 2),
        txn::values("x", 1),
        txn::values("a2", 2),
        txn::values("b2", 2),
    );
    assert_eq!(txn::send(&a, &topic, 0, &a1), vec![0, 1]);
    assert_eq!(txn::send(&b, &topic, 0, &b1), vec![2, 3]);
    assert_eq!(txn::send(&plain, &topic, 0, &x), vec![4]);
    assert_eq!(txn::send(&a, &topic, 0, &a2), vec![5, 6]);
    assert_eq!(txn::send(&b, &topic, 0, &b2), vec![7, 8]);
    assert_eq!(lso(bs, &topic, 0), 0, "LSO with both open");
    // EndTxn is answered once the decision is durable; the markers follow (as in Kafka), so the
    // LSO moving on is awaited. (A reader's position would not show it: librdkafka skips aborted
    // records below the LSO without moving the position; it moves at the abort marker, above it.)
    a.abort_transaction(TIMEOUT).unwrap(); // marker at 9
    txn::wait_lso(bs, &topic, 0, 2, TIMEOUT).unwrap();
    let c = txn::consumer(bs, COMMITTED);
    assert_eq!(
        txn::read_to(&c, &topic, &[(0, 2)].into(), &[(0, 2)].into(), TIMEOUT).unwrap(),
        [(0, vec![])].into(),
        "read_committed from the LSO with b open"
    );
    b.commit_transaction(TIMEOUT).unwrap(); // marker at 10

    let mut committed = at(2, &b1);
    committed.extend(at(4, &x));
    committed.extend(at(7, &b2));
    assert_eq!(
        read(bs, COMMITTED, &topic, &[(0, 11)]),
        [(0, committed.clone())].into()
    );
    assert_eq!(lso(bs, &topic, 0), 11, "LSO with none open");
    // Starting inside the aborted transaction (after its first offset 0): its later records at 5..6
    // must still be filtered, so the broker must list it among the aborted transactions.
    for from in [1, 2, 5, 6] {
        let c = txn::consumer(bs, COMMITTED);
        let start = [(0, from)].into();
        let got = txn::read_to(&c, &topic, &start, &[(0, 11)].into(), TIMEOUT).unwrap();
        let expected: Vec<(i64, String)> = committed
            .iter()
            .filter(|(o, _)| *o >= from)
            .cloned()
            .collect();
        assert_eq!(
            got,
            [(0, expected)].into(),
            "read_committed from offset {from}"
        );
    }
    let mut all = at(0, &a1);
    all.extend(at(2, &b1));
    all.extend(at(4, &x));
    all.extend(at(5, &a2));
    all.extend(at(7, &b2));
    assert_eq!(read(bs, UNCOMMITTED, &topic, &[(0, 11)]), [(0, all)].into());
}

#[test]
fn open_transaction_and_aborted_data_survive_a_broker_restart() {
    let (mut broker, _cfg) = txn::broker();
    let topic = unique_topic("txn-restart");
    kafka::create_topic(broker.bootstrap(), &topic, 1, &[]).unwrap();
    let p = txn::producer(broker.bootstrap(), &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    let (aborted, open) = (txn::values("aborted", 3), txn::values("open", 4));
    p.begin_transaction().unwrap();
    assert_eq!(txn::send(&p, &topic, 0, &aborted), vec![0, 1, 2]);
    p.abort_transaction(TIMEOUT).unwrap(); // marker at 3
    p.begin_transaction().unwrap();
    assert_eq!(txn::send(&p, &topic, 0, &open), vec![4, 5, 6, 7]);
    assert_eq!(
        lso(broker.bootstrap(), &topic, 0),
        4,
        "LSO before the restart"
    );

    broker.restart();
    let bs = broker.bootstrap().to_string();
    // Recovered: the open transaction still holds the LSO, the aborted one stays hidden.
    assert_eq!(lso(&bs, &topic, 0), 4, "LSO after the restart");
    assert_eq!(
        read(&bs, COMMITTED, &topic, &[(0, 4)]),
        [(0, vec![])].into()
    );
    // The producer (reconnecting by itself) commits the transaction it began before the restart.
    p.commit_transaction(TIMEOUT).unwrap(); // marker at 8
    assert_eq!(
        read(&bs, COMMITTED, &topic, &[(0, 9)]),
        [(0, at(4, &open))].into()
    );
    assert_eq!(lso(&bs, &topic, 0), 9, "LSO after the commit");
    broker.restart();
    let bs = broker.bootstrap().to_string();
    assert_eq!(
        read(&bs, COMMITTED, &topic, &[(0, 9)]),
        [(0, at(4, &open))].into(),
        "read_committed after a second restart"
    );
    let mut all = at(0, &aborted);
    all.extend(at(4, &open));
    assert_eq!(read(&bs, UNCOMMITTED, &topic, &[(0, 9)]), [(0, all)].into());
}

#[test]
fn many_transactions_over_small_segments_read_live_across_a_restart() {
    const PARTITIONS: i32 = 3;
    const TXNS: usize = 40;
    let (mut broker, _cfg) = txn::broker();
    let topic = unique_topic("txn-many");
    kafka::create_topic(
        broker.bootstrap(),
        &topic,
        PARTITIONS,
        &[("segment.bytes", "2048")],
    )
    .unwrap();
    let mut cfg = txn::producer_config(broker.bootstrap(), &unique_topic("tid"), 60_000);
    cfg.set("compression.type", "zstd");
    let p: FutureProducer = cfg.create().unwrap();
    let plain = kafka::producer(broker.bootstrap(), "all", "gzip");
    p.init_transactions(TIMEOUT).unwrap();

    // A live read_committed reader on its own thread; it learns the final ends at the end.
    let (ends_tx, ends_rx) = mpsc::channel();
    let live = {
        let (bs, topic) = (broker.bootstrap().to_string(), topic.clone());
        std::thread::spawn(move || live_reader(&bs, &topic, PARTITIONS, ends_rx))
    };

    let mut committed: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut everything: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for k in 0..TXNS {
        if k == TXNS / 2 {
            broker.restart();
        }
        let commit = k % 3 != 1;
        p.begin_transaction().unwrap();
        for part in 0..PARTITIONS {
            let vals = txn::values(&format!("t{k}-p{part}"), 4);
            let offs = txn::send(&p, &topic, part, &vals);
            let recs: Vec<(i64, String)> = offs.into_iter().zip(vals).collect();
            everything.entry(part).or_default().extend(recs.clone());
            if commit {
                committed.entry(part).or_default().extend(recs);
            }
        }
        if k % 5 == 0 {
            let part = k as i32 % PARTITIONS;
            let v = vec![format!("plain-{k}")];
            let rec = (txn::send(&plain, &topic, part, &v)[0], v[0].clone());
            everything.entry(part).or_default().push(rec.clone());
            committed.entry(part).or_default().push(rec);
        }
        if commit {
            p.commit_transaction(TIMEOUT).unwrap();
        } else {
            p.abort_transaction(TIMEOUT).unwrap();
        }
    }
    let bs = broker.bootstrap().to_string();
    let ends: Vec<(i32, i64)> = (0..PARTITIONS)
        .map(|part| {
            let hw = txn::end_offset(&bs, UNCOMMITTED, &topic, part).unwrap();
            assert_eq!(
                lso(&bs, &topic, part),
                hw,
                "partition {part}: LSO below HW at the end"
            );
            (part, hw)
        })
        .collect();
    // Transactions span segments (and their aborted-transaction indexes) in every partition.
    for part in 0..PARTITIONS {
        let segments = segment_files(broker.data_dir(), &format!("{topic}-{part}"));
        assert!(segments >= 3, "partition {part}: only {segments} segments");
    }
    for list in committed.values_mut().chain(everything.values_mut()) {
        list.sort();
    }
    assert_eq!(
        read(&bs, COMMITTED, &topic, &ends),
        committed,
        "read_committed"
    );
    assert_eq!(
        read(&bs, UNCOMMITTED, &topic, &ends),
        everything,
        "read_uncommitted"
    );

    // The live reader: each committed record exactly once and in order, no aborted one.
    ends_tx.send(ends.iter().copied().collect()).unwrap();
    let got = live.join().expect("live reader thread").unwrap();
    assert_eq!(got, committed, "live read_committed reader");
}

/// How many `*.log` segment files a partition directory (`TOPIC-PARTITION`) under `data_dir` has.
fn segment_files(data_dir: &std::path::Path, partition_dir: &str) -> usize {
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy() == partition_dir {
                return std::fs::read_dir(&path)
                    .map(|it| {
                        it.flatten()
                            .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
                            .count()
                    })
                    .unwrap_or(0);
            }
            stack.push(path);
        }
    }
    0
}

/// Reads `topic` read_committed from offset 0 while it is written (and the broker restarted), until
/// its position is at the ends it is finally sent on `ends`.
fn live_reader(
    bs: &str,
    topic: &str,
    partitions: i32,
    ends: mpsc::Receiver<BTreeMap<i32, i64>>,
) -> anyhow::Result<Read> {
    let c = txn::consumer(bs, COMMITTED);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(0))?;
    }
    c.assign(&tpl)?;
    let mut got: Read = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut target = None;
    let mut last_error = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if target.is_none() {
            target = ends.try_recv().ok();
        }
        if target.as_ref() == Some(&txn::positions(&c, topic)) {
            return Ok(got);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "live reader not at {target:?}: at {:?}, last error {last_error:?}",
                txn::positions(&c, topic)
            );
        }
        // Errors during the restart (transport failures) are retried by the client; kept for the report.
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                got.entry(m.partition()).or_default().push((m.offset(), v));
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
    }
}

#[test]
fn broker_killed_right_after_each_end_txn_answer_completes_it_on_restart() {
    const ROUNDS: usize = 6;
    let (mut broker, _cfg) = txn::broker();
    let topic = unique_topic("txn-kill-after-end");
    kafka::create_topic(broker.bootstrap(), &topic, 2, &[]).unwrap();
    let p = txn::producer(broker.bootstrap(), &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    let mut committed: Read = [(0, vec![]), (1, vec![])].into();
    let mut everything = committed.clone();
    for r in 0..ROUNDS {
        let commit = r % 2 == 0;
        p.begin_transaction().unwrap();
        for part in 0..2 {
            let vals = txn::values(&format!("r{r}-p{part}"), 3);
            let recs: Vec<(i64, String)> = txn::send(&p, &topic, part, &vals)
                .into_iter()
                .zip(vals)
                .collect();
            everything.get_mut(&part).unwrap().extend(recs.clone());
            if commit {
                committed.get_mut(&part).unwrap().extend(recs);
            }
        }
        if commit {
            p.commit_transaction(TIMEOUT).unwrap();
        } else {
            p.abort_transaction(TIMEOUT).unwrap();
        }
        // EndTxn is answered once the decision is durable; its markers may not be written yet. The
        // restarted coordinator must finish them (else the LSO would stay below this transaction).
        broker.restart();
    }
    let bs = broker.bootstrap().to_string();
    // Each round: 3 records and a marker per partition, and a second marker where the restarted
    // coordinator resent markers already written (Kafka appends those again too; readers skip them).
    let ends: Vec<(i32, i64)> = (0..2)
        .map(|part| {
            let hw = txn::end_offset(&bs, UNCOMMITTED, &topic, part).unwrap();
            assert!(
                (ROUNDS as i64 * 4..=ROUNDS as i64 * 5).contains(&hw),
                "partition {part}: high watermark {hw}"
            );
            (part, hw)
        })
        .collect();
    assert_eq!(read(&bs, COMMITTED, &topic, &ends), committed);
    assert_eq!(read(&bs, UNCOMMITTED, &topic, &ends), everything);
    for (part, hw) in ends {
        assert_eq!(lso(&bs, &topic, part), hw, "partition {part}: LSO");
    }
}
