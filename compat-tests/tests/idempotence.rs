//! rdkafka with `enable.idempotence=true` against vltava: the broker is SIGKILLed and restarted while the
//! producer has requests in flight (at most five per connection). Afterwards every acknowledged record
//! is in the log exactly once, in send order per partition, at the offset its delivery report named
//! (the reports themselves may arrive out of order across the kill; see below).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::Producer;
use rdkafka::Offset;
use vltava_compat::kafka;
use vltava_compat::{unique_topic, Broker};

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(120);

fn value(i: usize) -> String {
    format!("m-{i:05}")
}

#[test]
fn idempotent_producer_across_kill9_with_requests_in_flight() {
    let mut broker = Broker::start_flush_always();
    let topic = unique_topic("idem");
    kafka::create_topic(broker.bootstrap(), &topic, PARTITIONS, &[]).unwrap();
    let mut cfg = kafka::base_config(broker.bootstrap());
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "1")
        .set("batch.num.messages", "20")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "20");
    let (producer, deliveries) = kafka::channel_producer(&cfg).unwrap();

    let n = 6000usize;
    let values: Vec<String> = (0..n).map(value).collect();
    let mut reports = Vec::with_capacity(n);
    for (i, v) in values.iter().enumerate() {
        kafka::send_numbered(&producer, &topic, i as i32 % PARTITIONS, i, v);
        if i == n / 2 {
            // Once a quarter is acknowledged the producer is busy with the rest: SIGKILL with requests in
            // flight, then start again on the same data directory.
            while reports.len() < n / 4 {
                reports.push(deliveries.recv_timeout(TIMEOUT).expect("delivery report"));
            }
            broker.restart();
        }
    }
    producer.flush(TIMEOUT).expect("flush");
    while reports.len() < n {
        reports.push(deliveries.recv_timeout(TIMEOUT).expect("delivery report"));
    }

    // Acknowledged records per partition, in offset order. Delivery reports themselves may arrive out
    // of send order across the kill: a batch appended just before it loses its response, librdkafka
    // sends the next batch (accepted: it is the next sequence) before its backed-off retry of the first
    // (acknowledged as a duplicate, with its original offset). What idempotence guarantees, and what is
    // checked here, is the log: send order in offset order, contiguous offsets, each record once.
    let mut acked: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, d) in reports {
        let (p, o) = d.unwrap_or_else(|e| panic!("delivery of #{i} failed: {e}"));
        acked.entry(p).or_default().push((o, i));
    }
    for (p, list) in acked.iter_mut() {
        list.sort();
        let sent: Vec<usize> = list.iter().map(|(_, i)| *i).collect();
        let expected: Vec<usize> = (*p as usize..n).step_by(PARTITIONS as usize).collect();
        assert_eq!(
            sent, expected,
            "partition {p}: offset order is not send order"
        );
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..list.len() as i64).collect::<Vec<_>>(),
            "partition {p}: acknowledged offsets are not contiguous"
        );
    }

    // The log: exactly the acknowledged records, each once, in order, nothing after them.
    let starts: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    let got = kafka::consume(broker.bootstrap(), &topic, &starts, n, TIMEOUT).unwrap();
    let got = kafka::by_partition(&got, |g| g.partition);
    for (p, list) in &acked {
        let (_, high) = kafka::watermarks(broker.bootstrap(), &topic, *p).unwrap();
        assert_eq!(
            high,
            list.len() as i64,
            "partition {p}: records beyond the acknowledged ones"
        );
        let in_log: Vec<(i64, Vec<u8>)> = got[p]
            .iter()
            .map(|g| (g.offset, g.value.clone().unwrap_or_default()))
            .collect();
        let expected: Vec<(i64, Vec<u8>)> = list
            .iter()
            .map(|(o, i)| (*o, values[*i].clone().into_bytes()))
            .collect();
        assert_eq!(in_log, expected, "partition {p}");
    }
}
