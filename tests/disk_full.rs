//! A full disk, for real: the broker on a small tmpfs that a filler file takes up. Produce is
//! refused with KAFKA_STORAGE_ERROR (never a signal death), nothing acknowledged is lost or
//! duplicated, offsets are never reused, and appends resume once space is back, with no restart.

mod common;

use common::{
    commit, create_topic, fetch_offset, init_producer_id, name, read_all, BrokerProcess, Client,
    Tmpfs,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ResponseKind};

const KAFKA_STORAGE_ERROR: i16 = 56;
const NOT_COORDINATOR: i16 = 16;

/// Starts the broker on `fs` keeping `floor` bytes free (`[log] min_free_bytes`; 0: none, so the
/// filesystem itself fills up). The config file lives outside the tmpfs.
fn start(fs: &Tmpfs, floor: u64) -> (tempfile::TempDir, BrokerProcess) {
    let (dir, config) = common::config_file(&format!("[log]\nmin_free_bytes = {floor}\n"));
    (dir, BrokerProcess::start(fs.path(), &["--config", &config]))
}

/// Produces one record (acks=all) to partition 0: (error code, base offset).
fn produce(c: &mut Client, topic: &str, value: &str) -> (i16, i64) {
    let td = TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(common::batch(&[value])))]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let Some(ResponseKind::Produce(r)) = c.request(ApiKey::Produce, 9, req) else {
        panic!("produce: no response (did the broker die?)")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A 1 KiB value that names its sequence number.
fn value(i: usize) -> String {
    format!("{i:06}-{}", "x".repeat(1017))
}

/// Produces the numbered values, each acknowledged; returns them as (offset, value).
fn produce_ok(c: &mut Client, topic: &str, numbers: std::ops::Range<usize>) -> Vec<(i64, String)> {
    numbers
        .map(|i| {
            let v = value(i);
            let (code, offset) = produce(c, topic, &v);
            assert_eq!(code, 0, "record {i}");
            (offset, v)
        })
        .collect()
}

/// Produces numbered values until the disk refuses one; returns the acknowledged ones as (offset, value).
fn produce_until_refused(c: &mut Client, topic: &str, from: usize) -> Vec<(i64, String)> {
    let mut acked = Vec::new();
    for i in from..from + 10_000 {
        let v = value(i);
        match produce(c, topic, &v) {
            (0, offset) => acked.push((offset, v)),
            (KAFKA_STORAGE_ERROR, _) => return acked,
            (code, _) => panic!("record {i}: unexpected error code {code}"),
        }
    }
    panic!("10,000 records fit on a full filesystem");
}

#[test]
fn a_full_disk_refuses_produce_keeps_every_acknowledged_record_and_recovers_without_restart() {
    let fs = Tmpfs::mount(32 << 20);
    let (_config, mut broker) = start(&fs, 0);
    let mut c = broker.connect();
    let created = create_topic(&mut c, 7, "full", 1, &[]);
    assert_eq!(created.topics[0].error_code, 0);
    let mut acked = produce_ok(&mut c, "full", 0..3);
    // The first group request creates __consumer_offsets while there is room.
    assert_eq!(commit(&mut c, 8, ("g", -1, ""), ("full", 0), 1, ""), 0);

    fs.fill_leaving(8 << 10);
    acked.extend(produce_until_refused(&mut c, "full", 3));
    // Group commits go on while the offsets log's last page has room, then get NOT_COORDINATOR (as
    // Kafka answers a storage error on __consumer_offsets: the consumer rediscovers and retries),
    // and the committed offset stays the last one acknowledged.
    let (mut committed, mut code) = (1, 0);
    while code == 0 && committed < 10_000 {
        code = commit(&mut c, 8, ("g", -1, ""), ("full", 0), committed + 1, "");
        if code == 0 {
            committed += 1;
        }
    }
    assert!(code == NOT_COORDINATOR, "commit on a full disk: {code}");
    assert_eq!(fetch_offset(&mut c, 8, "g", "full", 0).0, committed);
    // Refused again and again: the partition is not wedged into another state, and the broker lives.
    for i in 0..5 {
        assert_eq!(
            produce(&mut c, "full", &value(90_000 + i)).0,
            KAFKA_STORAGE_ERROR
        );
    }
    assert!(broker.is_running(), "the broker died on a full disk");
    // Fetches of what is there keep working, and show exactly the acknowledged records, gap-free.
    assert_eq!(read_all(&mut c, "full"), acked);
    for (i, (offset, _)) in acked.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are consecutive");
    }

    // Space is back: appends resume at the next offset, no restart.
    fs.free();
    let (code, offset) = produce(&mut c, "full", "after");
    assert_eq!((code, offset), (0, acked.len() as i64));
    acked.push((offset, "after".to_string()));
    assert_eq!(read_all(&mut c, "full"), acked);
    assert_eq!(commit(&mut c, 8, ("g", -1, ""), ("full", 0), 20_000, ""), 0);

    // And all of it survives kill -9.
    broker.kill();
    let (_config, broker) = start(&fs, 0);
    let mut c = broker.connect();
    assert_eq!(read_all(&mut c, "full"), acked);
    assert_eq!(fetch_offset(&mut c, 8, "g", "full", 0).0, 20_000);
}

#[test]
fn a_broker_restarted_on_a_full_disk_serves_what_it_has() {
    let fs = Tmpfs::mount(16 << 20);
    let (_config, mut broker) = start(&fs, 0);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "kept", 1, &[]).topics[0].error_code,
        0
    );
    let mut acked = produce_ok(&mut c, "kept", 0..20);
    fs.fill_leaving(0);
    broker.kill();

    // kill -9 on a full disk, then start again on it: recovery must not need space it does not have.
    // (What the metadata's reserve gave back on the way may take a few more records.)
    let (_config, mut broker) = start(&fs, 0);
    let mut c = broker.connect();
    assert_eq!(read_all(&mut c, "kept"), acked);
    acked.extend(produce_until_refused(&mut c, "kept", 20));
    assert!(broker.is_running());
    assert_eq!(read_all(&mut c, "kept"), acked);

    fs.free();
    assert_eq!(produce(&mut c, "kept", "room"), (0, acked.len() as i64));
}

#[test]
fn below_the_free_space_floor_produce_is_refused_while_offsets_and_metadata_still_fit() {
    let fs = Tmpfs::mount(32 << 20);
    let floor = 8 << 20;
    let (_config, broker) = start(&fs, floor);
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, 7, "floored", 1, &[]).topics[0].error_code,
        0
    );
    assert_eq!(commit(&mut c, 8, ("g", -1, ""), ("floored", 0), 0, ""), 0);

    fs.fill_leaving(floor + (1 << 20));
    let acked = produce_until_refused(&mut c, "floored", 0);
    assert!(
        !acked.is_empty(),
        "the megabyte above the floor takes records"
    );
    let free = fs.available();
    assert!(
        free >= floor - (64 << 10),
        "refused at the floor, not at a full disk: {free} bytes free"
    );
    // Something else eats into what the floor keeps free: that is there for the broker's own writes,
    // offsets and metadata, which go on. A new topic is refused, saying why.
    fs.fill_leaving(floor / 2);
    assert_eq!(produce(&mut c, "floored", "late").0, KAFKA_STORAGE_ERROR);
    assert_eq!(commit(&mut c, 8, ("g", -1, ""), ("floored", 0), 5, ""), 0);
    let refused = create_topic(&mut c, 7, "more", 1, &[]);
    assert_eq!(refused.topics[0].error_code, KAFKA_STORAGE_ERROR);
    let message = refused.topics[0]
        .error_message
        .as_ref()
        .map(|m| m.to_string());
    assert!(
        message.as_ref().is_some_and(|m| m.contains("floor")),
        "{message:?}"
    );
    let pid = init_producer_id(&mut c);
    assert_eq!((pid.error_code, pid.producer_id.0 >= 0), (0, true));
    assert_eq!(read_all(&mut c, "floored"), acked);

    fs.free();
    let (code, offset) = produce(&mut c, "floored", "again");
    assert_eq!((code, offset), (0, acked.len() as i64));
}
