//! rdkafka (librdkafka) transactions against a 3-node vltava cluster: a transaction over two
//! partitions led by the two nodes that are not its coordinator, committed while the coordinator's
//! node is killed -9. The coordinator moves with `__transaction_state`'s leadership; the markers
//! still land (from whichever coordinator completes the commit), so a read_committed reader ends up
//! with all of the transaction or, if the commit failed, none of it; the next transaction commits on
//! the new coordinator, and no partition's last stable offset is left behind its high watermark.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::cluster::Cluster;
use vltava_compat::kafka;
use vltava_compat::unique_topic;

/// Upper bound for elections, marker retries and reads on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);
const PER_PARTITION: usize = 40;

fn transactional_producer(bootstrap: &str, transactional_id: &str) -> FutureProducer {
    kafka::base_config(bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("create transactional producer")
}

fn read_committed_consumer(bootstrap: &str) -> BaseConsumer {
    kafka::consumer_config(bootstrap)
        .set("isolation.level", "read_committed")
        .create()
        .expect("create read_committed consumer")
}

/// Sends `prefix-p{p}-{i}` to both partitions within the open transaction and waits for every
/// delivery report.
async fn send_batch(producer: &FutureProducer, topic: &str, prefix: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    let mut pending = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..2 {
            let value = format!("{prefix}-p{p}-{i}");
            let record = FutureRecord::<(), _>::to(topic)
                .partition(p)
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("enqueue {value}: {e}"));
            pending.push((value.clone(), delivery));
            values.insert(value);
        }
    }
    for (value, delivery) in pending {
        match tokio::time::timeout(DEADLINE, delivery).await {
            Ok(Ok(Ok(_))) => {}
            other => panic!("delivery of {value} within the transaction: {other:?}"),
        }
    }
    values
}

/// Everything a read_committed reader gets from both partitions, read until its position reaches
/// the last stable offset and that offset equals the high watermark (no transaction left open).
fn read_all_committed(bootstrap: &str, topic: &str) -> Vec<String> {
    let consumer = read_committed_consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign offset");
    }
    consumer.assign(&tpl).expect("assign");
    // librdkafka asks ListOffsets with the consumer's isolation level: `high` is the LSO.
    let plain = kafka::consumer(bootstrap);
    let until = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("read_committed fetch");
            positions.insert(m.partition(), m.offset() + 1);
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            continue;
        }
        let settled = (0..2).all(|p| {
            let (_, lso) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or((0, -1));
            let (_, hw) = plain
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or((0, -2));
            // The reader is past every record below the LSO (a marker is the last offset).
            let position = consumer
                .position()
                .ok()
                .and_then(|tpl| tpl.find_partition(topic, p).map(|e| e.offset()));
            let caught_up = matches!(position, Some(Offset::Offset(o)) if o >= lso);
            lso == hw && caught_up
        });
        if settled {
            return got;
        }
        assert!(
            Instant::now() < until,
            "read_committed reads did not settle within {DEADLINE:?}: {} read, positions {positions:?}",
            got.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_survives_its_coordinator_being_killed_and_the_markers_land_on_other_leaders() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("transaction.state.log.replication.factor", "3"),
            ("transaction.state.log.min.isr", "2"),
            ("min.insync.replicas", "2"),
            ("replica.lag.time.max.ms", "3000"),
        ],
    );
    let transactional_id = unique_topic("txn-failover");
    // The first FindCoordinator creates __transaction_state, every partition on all three nodes.
    let coordinator = cluster
        .txn_coordinator(1, &transactional_id)
        .expect("FindCoordinator TRANSACTION");
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != coordinator)
        .collect();

    // Both partitions are replicated everywhere but led by the nodes that stay: every marker goes
    // to another broker with WriteTxnMarkers, and only the coordinator moves.
    let topic = unique_topic("txn-cluster");
    let lists = [
        vec![others[0], others[1], coordinator],
        vec![others[1], others[0], coordinator],
    ];
    let assignment: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
    let admin = kafka::admin(&cluster.bootstrap(others[0]));
    let created = admin
        .create_topics(
            [&NewTopic::new(
                &topic,
                2,
                TopicReplication::Variable(&assignment),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreateTopics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    kafka::wait_for_topic(&cluster.bootstrap(others[1]), &topic, 2).expect("topic");

    let producer = transactional_producer(&cluster.bootstrap_all(), &transactional_id);
    producer
        .init_transactions(DEADLINE)
        .expect("init_transactions");

    // A transaction committed before anything fails.
    producer.begin_transaction().expect("begin");
    let first = send_batch(&producer, &topic, "first").await;
    producer.commit_transaction(DEADLINE).expect("first commit");

    // The coordinator's node dies while the second commits.
    producer.begin_transaction().expect("begin");
    let second = send_batch(&producer, &topic, "second").await;
    let committing = {
        let producer = producer.clone();
        tokio::task::spawn_blocking(move || producer.commit_transaction(DEADLINE))
    };
    cluster.kill9(coordinator);
    let second_committed = match committing.await.expect("commit task") {
        Ok(()) => true,
        Err(e) => {
            eprintln!("second commit failed ({e}); aborting it");
            producer
                .abort_transaction(DEADLINE)
                .expect("abort after a failed commit");
            false
        }
    };

    // The next transaction commits through the new coordinator.
    let moved = cluster
        .txn_coordinator(others[0], &transactional_id)
        .expect("FindCoordinator after the kill");
    assert!(others.contains(&moved), "the coordinator moved: {moved}");
    producer.begin_transaction().expect("begin after failover");
    let third = send_batch(&producer, &topic, "third").await;
    producer
        .commit_transaction(DEADLINE)
        .expect("commit on the new coordinator");

    let read = read_all_committed(&cluster.bootstrap(others[1]), &topic);
    let distinct: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(distinct.len(), read.len(), "a record read twice");
    let mut expected = first.clone();
    expected.extend(third.iter().cloned());
    if second_committed {
        expected.extend(second.iter().cloned());
    }
    let missing: Vec<&String> = expected.difference(&distinct).take(5).collect();
    let extra: Vec<&String> = distinct.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "read_committed after the failover (second committed: {second_committed}): \
         missing {missing:?}, unexpected {extra:?}"
    );
    drop(producer);

    // The follower of partition 0 knows the transactional producer as its leader does (it rebuilt
    // the producer state from the copied batches and markers): DescribeProducers answers from any
    // replica, as `kafka-transactions.sh find-hanging --broker-id` needs.
    let on_leader = producers_of(&cluster.bootstrap(others[0]), &topic, 0);
    let until = Instant::now() + DEADLINE;
    loop {
        let on_follower = producers_of(&cluster.bootstrap(others[1]), &topic, 0);
        if on_follower == on_leader {
            break;
        }
        assert!(
            Instant::now() < until,
            "follower's producers {on_follower:?}, leader's {on_leader:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(on_leader.len(), 1, "one producer: {on_leader:?}");
    assert_eq!(
        on_leader[0].1, -1,
        "no transaction left open: {on_leader:?}"
    );
}

/// DescribeProducers of `topic`-`partition` at the node `addr`: (producer id, open transaction's
/// first offset) of each.
fn producers_of(addr: &str, topic: &str, partition: i32) -> Vec<(i64, i64)> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{
        ApiKey, DescribeProducersRequest, DescribeProducersResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_indexes(vec![partition])]);
    let r: DescribeProducersResponse =
        vltava_compat::cluster::raw_request(addr, ApiKey::DescribeProducers, 0, &req)
            .expect("DescribeProducers");
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        p.error_code, 0,
        "DescribeProducers at {addr}: {:?}",
        p.error_message
    );
    let mut out: Vec<(i64, i64)> = p
        .active_producers
        .iter()
        .map(|s| (s.producer_id.0, s.current_txn_start_offset))
        .collect();
    out.sort_unstable();
    out
}
