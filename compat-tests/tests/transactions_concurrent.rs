//! rdkafka transactions against vltava at some width: one transaction over 24 partitions of three
//! topics (committed, then one aborted), and four transactional producers on their own threads
//! writing 25 transactions each into the same three partitions at once, alternately committed and
//! aborted; read_committed and read_uncommitted readers then get exactly the committed (resp. all)
//! records at the offsets their delivery reports named, and every LSO equals its high watermark.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};
use vltava_compat::kafka::{self, Rec};
use vltava_compat::txn::{self, Read};
use vltava_compat::{unique_topic, Broker};

const TIMEOUT: Duration = Duration::from_secs(120);
const COMMITTED: &str = "read_committed";
const UNCOMMITTED: &str = "read_uncommitted";

/// Sends `vals` to `partition` of `topic`; `(offset, value)` of each.
fn send(p: &FutureProducer, topic: &str, partition: i32, vals: Vec<String>) -> Vec<(i64, String)> {
    let recs: Vec<Rec> = vals
        .iter()
        .map(|v| Rec::new(partition, None, Some(v.as_bytes())))
        .collect();
    let offsets = kafka::produce_ok(p, topic, &recs);
    offsets.into_iter().map(|(_, o)| o).zip(vals).collect()
}

/// Every partition of `topic` read at both levels up to its high watermark, compared with the
/// expected records; the LSO must have caught up with the high watermark.
fn check(bs: &str, topic: &str, committed: &Read, everything: &Read) {
    let mut ends = BTreeMap::new();
    for p in everything.keys() {
        let hw = txn::end_offset(bs, UNCOMMITTED, topic, *p).unwrap();
        ends.insert(*p, hw);
    }
    let sorted = |r: &Read| -> Read {
        r.iter()
            .map(|(p, l)| {
                let mut l = l.clone();
                l.sort();
                (*p, l)
            })
            .collect()
    };
    let (committed, everything) = (sorted(committed), sorted(everything));
    assert_eq!(
        txn::read_all(bs, COMMITTED, topic, &ends, TIMEOUT).unwrap(),
        committed,
        "{topic} read_committed"
    );
    assert_eq!(
        txn::read_all(bs, UNCOMMITTED, topic, &ends, TIMEOUT).unwrap(),
        everything,
        "{topic} read_uncommitted"
    );
    for (p, hw) in ends {
        let lso = txn::end_offset(bs, COMMITTED, topic, p).unwrap();
        assert_eq!(lso, hw, "{topic}/{p}: LSO");
    }
}

#[test]
fn one_transaction_over_24_partitions_of_three_topics() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let topics: Vec<String> = (0..3)
        .map(|t| unique_topic(&format!("txn-wide{t}")))
        .collect();
    for t in &topics {
        kafka::create_topic(bs, t, 8, &[]).unwrap();
    }
    let p = txn::producer(bs, &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    let mut committed: BTreeMap<&String, Read> = BTreeMap::new();
    let mut everything: BTreeMap<&String, Read> = BTreeMap::new();
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        p.begin_transaction().unwrap();
        for t in &topics {
            for part in 0..8 {
                let vals = (0..3).map(|i| format!("r{round}-{part}-{i}")).collect();
                let recs = send(&p, t, part, vals);
                let all = everything.entry(t).or_default().entry(part).or_default();
                all.extend(recs.clone());
                let ok = committed.entry(t).or_default().entry(part).or_default();
                if commit {
                    ok.extend(recs);
                }
            }
        }
        if commit {
            p.commit_transaction(TIMEOUT).unwrap();
        } else {
            p.abort_transaction(TIMEOUT).unwrap();
        }
    }
    for t in &topics {
        check(bs, t, &committed[t], &everything[t]);
    }
}

#[test]
fn four_producers_at_once_on_the_same_partitions() {
    const PRODUCERS: usize = 4;
    const TXNS: usize = 25;
    let broker = Broker::start();
    let bs = broker.bootstrap().to_string();
    let topic = unique_topic("txn-concurrent");
    kafka::create_topic(&bs, &topic, 3, &[]).unwrap();
    let workers: Vec<_> = (0..PRODUCERS)
        .map(|w| {
            let (bs, topic) = (bs.clone(), topic.clone());
            std::thread::spawn(move || {
                let p = txn::producer(&bs, &unique_topic(&format!("tid{w}")), 60_000);
                p.init_transactions(TIMEOUT).unwrap();
                let (mut committed, mut everything) = (Read::new(), Read::new());
                for k in 0..TXNS {
                    let commit = (k + w) % 2 == 0;
                    p.begin_transaction().unwrap();
                    // Partitions in a rotating order, so transactions overlap in different shapes.
                    for part in (0..3).map(|i| (i + k as i32) % 3) {
                        let vals = (0..2).map(|i| format!("w{w}-t{k}-p{part}-{i}")).collect();
                        let recs = send(&p, &topic, part, vals);
                        everything.entry(part).or_default().extend(recs.clone());
                        if commit {
                            committed.entry(part).or_default().extend(recs);
                        }
                    }
                    if commit {
                        p.commit_transaction(TIMEOUT).unwrap();
                    } else {
                        p.abort_transaction(TIMEOUT).unwrap();
                    }
                }
                (committed, everything)
            })
        })
        .collect();
    let (mut committed, mut everything) = (Read::new(), Read::new());
    for w in workers {
        let (c, e) = w.join().expect("producer thread");
        for (p, l) in c {
            committed.entry(p).or_default().extend(l);
        }
        for (p, l) in e {
            everything.entry(p).or_default().extend(l);
        }
    }
    check(&bs, &topic, &committed, &everything);
}
