//! The fault suite (issue 12): an idempotent acks=all rdkafka writer and a reader run against a real
//! vltava cluster (an RF=3 topic, min.insync.replicas=2) while nodes are killed -9, isolated with
//! nftables, paused with SIGSTOP and restarted; after healing, a full read of every partition goes
//! to the history checker, which must find no acknowledged write lost, no duplicate, no offset with
//! two values, no acknowledgement at an offset holding another value and nothing seen that vanished.
//!
//! The scenarios run one at a time (each takes the whole machine's cores and the cluster addresses'
//! nftables rules), each bounded in time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use vltava_compat::cluster::faults::{MachineLock, PartitionState};
use vltava_compat::cluster::{raw_request, read_response, send_request, Cluster};
use vltava_compat::history::{History, Outcome, Report};
use vltava_compat::workload::{final_read, RunReader, Writer, WriterOptions};
use vltava_compat::{kafka, unique_topic};

const PARTITIONS: i32 = 3;
/// Liveness timers short enough for faults to show within a scenario (the harness already sets
/// broker.heartbeat.interval.ms=500 and broker.session.timeout.ms=4000).
const PROPS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("min.insync.replicas", "2"),
    ("default.replication.factor", "3"),
];
/// Bound on each wait for the cluster to react (an election, a restart, the ISR growing back).
const REACT: Duration = Duration::from_secs(30);
/// How long the writer waits for an acknowledgement before the send's outcome is unknown.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(8);
/// Every scenario acknowledges at least this many records, or it proves nothing.
const MIN_ACKED: usize = 300;

/// One scenario at a time: each one loads both cores and the nodes' addresses (and other test
/// processes on the machine wait too: [`MachineLock`]).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> (std::sync::MutexGuard<'static, ()>, MachineLock) {
    let here = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    (
        here,
        ok(
            "the machine's fault-test lock",
            MachineLock::acquire().map_err(Into::into),
        ),
    )
}

/// A cluster of `n` with an RF=3 topic whose every partition has a leader and three in-sync
/// replicas, as every node sees it.
fn setup(n: i32, name: &str) -> (Cluster, String) {
    let cluster = Cluster::start(n, PROPS);
    let topic = unique_topic(name);
    let admin = kafka::admin(&cluster.bootstrap_all());
    let nt = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let opts = AdminOptions::new().operation_timeout(Some(kafka::OP_TIMEOUT));
    let res = futures::executor::block_on(admin.create_topics([&nt], &opts)).expect("CreateTopics");
    for r in res {
        r.unwrap_or_else(|e| panic!("create {topic}: {e:?}"));
    }
    for id in cluster.ids() {
        cluster
            .await_partitions(id, &topic, REACT, "the topic in sync", all_in_sync)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    (cluster, topic)
}

fn all_in_sync(ps: &[PartitionState]) -> bool {
    ps.len() == PARTITIONS as usize
        && ps
            .iter()
            .all(|p| p.error == 0 && p.leader > 0 && p.replicas.len() == 3 && p.isr.len() == 3)
}

fn led(ps: &[PartitionState]) -> bool {
    ps.len() == PARTITIONS as usize && ps.iter().all(|p| p.error == 0 && p.leader > 0)
}

/// The writer and the run reader, on every node.
fn load(cluster: &Cluster, topic: &str) -> (Writer, RunReader) {
    let writer = Writer::start(WriterOptions {
        bootstrap: cluster.bootstrap_all(),
        topic: topic.to_string(),
        partitions: PARTITIONS,
        interval: Duration::from_millis(5),
        message_timeout: MESSAGE_TIMEOUT,
    });
    let reader = RunReader::start(&cluster.bootstrap_all(), topic, PARTITIONS);
    (writer, reader)
}

/// The value, or a panic naming `what` (the cluster prints its nodes' last lines as it drops).
fn ok<T>(what: &str, r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:#}"))
}

/// Stops the load, waits for every partition to have a leader (seen from node `via`), reads every
/// partition in full, and asserts the checker finds nothing and that enough was acknowledged.
fn finish(
    cluster: &Cluster,
    via: i32,
    topic: &str,
    writer: Writer,
    reader: RunReader,
    mut extra: History,
) -> Report {
    let sends = writer.stop();
    let run_reads = reader.stop();
    ok(
        "leaders before the final read",
        cluster.await_partitions(via, topic, REACT, "a leader for every partition", led),
    );
    let final_reads = ok(
        "the final read",
        final_read(&cluster.bootstrap_all(), topic, PARTITIONS, REACT),
    );
    extra.sends.extend(sends);
    extra.run_reads.extend(run_reads);
    extra.final_reads = final_reads;
    let report = extra.check();
    eprintln!("history of {topic}:\n{report}");
    if !report.is_clean() {
        eprintln!("--- the nodes' last log lines ---\n{}", cluster.logs());
        for p in 0..PARTITIONS {
            let leader = leader_of(cluster, via, topic, p).leader;
            eprintln!(
                "--- {topic}-{p} on its leader {leader}: batches (base offset, producer id, epoch, base sequence, records) ---\n{}",
                batches_of(&cluster.bootstrap(leader), topic, p)
            );
        }
    }
    assert!(
        report.is_clean(),
        "the history of {topic} has anomalies:\n{report}"
    );
    assert!(
        report.acked >= MIN_ACKED,
        "only {} records acknowledged:\n{report}",
        report.acked
    );
    report
}

fn leader_of(cluster: &Cluster, via: i32, topic: &str, partition: i32) -> PartitionState {
    let ps = ok("partitions", cluster.partitions(via, topic));
    ps[partition as usize].clone()
}

/// Waits until node `via` names a leader of `partition` other than `old` at a later epoch.
fn await_new_leader(
    cluster: &Cluster,
    via: i32,
    topic: &str,
    partition: i32,
    old: &PartitionState,
) -> PartitionState {
    let ps = ok(
        "a new leader",
        cluster.await_partitions(via, topic, REACT, "a new leader", |ps| {
            let p = &ps[partition as usize];
            p.leader > 0 && p.leader != old.leader && p.leader_epoch > old.leader_epoch
        }),
    );
    ps[partition as usize].clone()
}

fn await_all_in_sync(cluster: &Cluster, topic: &str) {
    for id in cluster.ids() {
        ok(
            "every replica back in sync",
            cluster.await_partitions(id, topic, REACT, "ISR of 3 everywhere", all_in_sync),
        );
    }
}

/// One uncompressed record batch (magic 2, no producer id) holding `value`.
fn batch(value: &[u8]) -> Bytes {
    fn varint(out: &mut BytesMut, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.put_u8((z as u8) | 0x80);
            z >>= 7;
        }
        out.put_u8(z as u8);
    }
    let mut rec = BytesMut::new();
    rec.put_u8(0); // attributes
    varint(&mut rec, 0); // timestamp delta
    varint(&mut rec, 0); // offset delta
    varint(&mut rec, -1); // null key
    varint(&mut rec, value.len() as i64);
    rec.put_slice(value);
    varint(&mut rec, 0); // no headers
    let mut after_crc = BytesMut::new();
    after_crc.put_i16(0); // attributes
    after_crc.put_i32(0); // last offset delta
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    after_crc.put_i64(now);
    after_crc.put_i64(now);
    after_crc.put_i64(-1); // producer id
    after_crc.put_i16(-1); // producer epoch
    after_crc.put_i32(-1); // base sequence
    after_crc.put_i32(1); // records
    varint(&mut after_crc, rec.len() as i64);
    after_crc.put_slice(&rec);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((4 + 1 + 4 + after_crc.len()) as i32);
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2);
    b.put_u32(crc32c::crc32c(&after_crc));
    b.put_slice(&after_crc);
    b.freeze()
}

/// An acks=all Produce (v9, 5 s timeout) of `value` to `partition`.
fn produce_request(topic: &str, partition: i32, value: &str) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(value.as_bytes())))])])
}

/// Records the answer to the produce of `value` in `history`: the error code answered (None when no
/// answer came within 10 s).
fn record_produce(
    answer: anyhow::Result<ProduceResponse>,
    partition: i32,
    value: &str,
    history: &mut History,
) -> Option<i16> {
    let (code, outcome) = match answer {
        Ok(r) => {
            let p = &r.responses[0].partition_responses[0];
            let outcome = match p.error_code {
                0 => Outcome::Ok {
                    partition,
                    offset: p.base_offset,
                },
                // Refused before the append.
                19 => Outcome::Failed {
                    error: "NOT_ENOUGH_REPLICAS".into(),
                },
                code => Outcome::Unknown {
                    why: format!("error {code}"),
                },
            };
            (Some(p.error_code), outcome)
        }
        Err(e) => (
            None,
            Outcome::Unknown {
                why: format!("{e:#}"),
            },
        ),
    };
    history.sends.insert(value.to_string(), outcome);
    code
}

/// An acks=all produce of `value` to `partition` at node `to`, recorded in `history`.
fn raw_produce(
    cluster: &Cluster,
    to: i32,
    topic: &str,
    partition: i32,
    value: &str,
    history: &mut History,
) -> Option<i16> {
    let req = produce_request(topic, partition, value);
    let answer = raw_request(&cluster.bootstrap(to), ApiKey::Produce, 9, &req);
    record_produce(answer, partition, value, history)
}

/// (a) kill -9 the leader of partition 0 under load: a new leader takes over, the writer goes on,
/// the old leader comes back as a follower; nothing acknowledged is lost.
#[test]
fn a_killed_leader_loses_no_acknowledged_write() {
    let _serial = serial();
    let started = Instant::now();
    let (mut cluster, topic) = setup(3, "faults-kill-leader");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 300, REACT));
    let old = leader_of(&cluster, 1, &topic, 0);
    cluster.kill9(old.leader);
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&id| id != old.leader)
        .unwrap();
    await_new_leader(&cluster, survivor, &topic, 0, &old);
    ok(
        "writes to the new leader",
        writer.await_progress(Some(0), 100, REACT),
    );
    ok("restart", cluster.restart(old.leader));
    await_all_in_sync(&cluster, &topic);
    ok("load after", writer.await_progress(None, 100, REACT));
    finish(&cluster, 1, &topic, writer, reader, History::default());
    eprintln!("took {:?}", started.elapsed());
}

/// (b) kill one follower of partition 0: the ISR shrinks and writes go on (min.insync.replicas=2);
/// kill the second: an acks=all produce gets NOT_ENOUGH_REPLICAS; restart both: the ISR grows back to
/// three. Five nodes, so that the metadata quorum survives two dead replicas.
#[test]
fn followers_dying_shrink_the_isr_down_to_not_enough_replicas_and_back() {
    let _serial = serial();
    let started = Instant::now();
    let (mut cluster, topic) = setup(5, "faults-kill-followers");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 300, REACT));
    let p0 = leader_of(&cluster, 1, &topic, 0);
    let followers: Vec<i32> = p0
        .replicas
        .iter()
        .copied()
        .filter(|&r| r != p0.leader)
        .collect();
    assert_eq!(followers.len(), 2, "{p0:?}");
    let mut extra = History::default();

    cluster.kill9(followers[0]);
    ok(
        "the ISR without the dead follower",
        cluster.await_partitions(p0.leader, &topic, REACT, "ISR shrunk", |ps| {
            ps[0].leader == p0.leader && ps[0].isr.len() == 2 && !ps[0].isr.contains(&followers[0])
        }),
    );
    ok(
        "writes with two in sync",
        writer.await_progress(Some(0), 100, REACT),
    );

    cluster.kill9(followers[1]);
    ok(
        "the ISR down to the leader",
        cluster.await_partitions(p0.leader, &topic, REACT, "ISR of one", |ps| {
            ps[0].leader == p0.leader && ps[0].isr == vec![p0.leader]
        }),
    );
    let code = raw_produce(&cluster, p0.leader, &topic, 0, "raw-0", &mut extra);
    assert_eq!(
        code,
        Some(19),
        "acks=all with an ISR of one below min.insync.replicas=2: NOT_ENOUGH_REPLICAS"
    );

    ok("restart", cluster.start_nodes(&followers));
    await_all_in_sync(&cluster, &topic);
    ok("load after", writer.await_progress(Some(0), 100, REACT));
    finish(&cluster, p0.leader, &topic, writer, reader, extra);
    eprintln!("took {:?}", started.elapsed());
}

/// (c) cut the leader of partition 0 off the other nodes: what it takes is not acknowledged
/// (acks=all cannot reach min.insync.replicas), a new leader takes over, and after healing the old
/// leader truncates whatever it appended alone and follows.
#[test]
fn an_isolated_leader_acknowledges_nothing_the_others_lack() {
    let _serial = serial();
    let started = Instant::now();
    let (cluster, topic) = setup(3, "faults-isolate-leader");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 300, REACT));
    let old = leader_of(&cluster, 1, &topic, 0);
    let cut = ok("isolate", cluster.isolate(old.leader));
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&id| id != old.leader)
        .unwrap();
    await_new_leader(&cluster, survivor, &topic, 0, &old);
    ok(
        "writes to the new leader",
        writer.await_progress(Some(0), 100, REACT),
    );
    // Straight to the cut-off leader (the client still reaches it): no follower can fetch it.
    let mut extra = History::default();
    let code = raw_produce(&cluster, old.leader, &topic, 0, "raw-isolated", &mut extra);
    assert_ne!(
        code,
        Some(0),
        "an isolated leader acknowledged an acks=all write nobody else has"
    );
    ok("heal", cut.heal());
    await_all_in_sync(&cluster, &topic);
    ok("load after", writer.await_progress(None, 100, REACT));
    finish(&cluster, survivor, &topic, writer, reader, extra);
    eprintln!("took {:?}", started.elapsed());
}

/// (d) cut the controller (the metadata quorum's leader) off the others: they elect another, the
/// partitions it led move, writes go on; after healing it rejoins.
#[test]
fn an_isolated_controller_is_replaced_without_loss() {
    let _serial = serial();
    let started = Instant::now();
    let (mut cluster, topic) = setup(3, "faults-isolate-controller");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 300, REACT));
    let (_, controller) = ok("controller", cluster.view(1));
    let cut = ok("isolate", cluster.isolate(controller));
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != controller)
        .collect();
    let until = Instant::now() + REACT;
    loop {
        let views: Vec<_> = others.iter().map(|&id| cluster.view(id)).collect();
        if views
            .iter()
            .all(|v| matches!(v, Ok((_, c)) if *c != controller && others.contains(c)))
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "no new controller within {REACT:?}: {views:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in 0..PARTITIONS {
        ok(
            "writes to every partition",
            writer.await_progress(Some(p), 50, REACT),
        );
    }
    ok("heal", cut.heal());
    ok("every node agreeing again", {
        let ids = cluster.ids();
        cluster.await_brokers(&ids, REACT)
    });
    await_all_in_sync(&cluster, &topic);
    finish(
        &cluster,
        others[0],
        &topic,
        writer,
        reader,
        History::default(),
    );
    eprintln!("took {:?}", started.elapsed());
}

/// (e) SIGSTOP the leader of partition 0 past its session timeout, so another takes over, then
/// SIGCONT: the old leader must not acknowledge what it held at its old epoch.
#[test]
fn a_paused_leader_acknowledges_nothing_at_its_old_epoch_when_resumed() {
    let _serial = serial();
    let started = Instant::now();
    let (cluster, topic) = setup(3, "faults-pause-leader");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 300, REACT));
    let old = leader_of(&cluster, 1, &topic, 0);
    ok("SIGSTOP", cluster.pause(old.leader));
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&id| id != old.leader)
        .unwrap();
    let new = await_new_leader(&cluster, survivor, &topic, 0, &old);
    let progress = writer.await_progress(Some(0), 100, REACT);
    // A produce waiting in the paused leader's socket, handled when it wakes at its old epoch.
    let mut extra = History::default();
    let req = produce_request(&topic, 0, "raw-paused");
    let sent = send_request(&cluster.bootstrap(old.leader), ApiKey::Produce, 9, &req);
    ok("SIGCONT", cluster.resume(old.leader));
    let answer = sent.and_then(|mut s| read_response(&mut s, ApiKey::Produce, 9));
    let code = record_produce(answer, 0, "raw-paused", &mut extra);
    assert_ne!(
        code,
        Some(0),
        "a leader resumed past its session acknowledged an acks=all write at its old epoch"
    );
    ok("writes to the new leader", progress);
    await_all_in_sync(&cluster, &topic);
    ok("load after", writer.await_progress(None, 100, REACT));
    finish(&cluster, new.leader, &topic, writer, reader, extra);
    eprintln!("took {:?}", started.elapsed());
}

/// (f) a rolling SIGTERM restart of every node under load, each node back in sync before the next.
#[test]
fn a_rolling_restart_under_load_loses_nothing() {
    let _serial = serial();
    let started = Instant::now();
    let (mut cluster, topic) = setup(3, "faults-rolling");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 200, REACT));
    for id in cluster.ids() {
        let status = ok("SIGTERM", cluster.terminate(id, REACT));
        assert!(status.success(), "node {id} exit after SIGTERM: {status}");
        ok(
            "writes with a node down",
            writer.await_progress(None, 100, REACT),
        );
        ok("start", cluster.start_nodes(&[id]));
        await_all_in_sync(&cluster, &topic);
    }
    ok("load after", writer.await_progress(None, 100, REACT));
    finish(&cluster, 1, &topic, writer, reader, History::default());
    eprintln!("took {:?}", started.elapsed());
}

/// (g) kill -9 every node at once and restart them: everything acknowledged is there.
#[test]
fn killing_every_node_loses_no_acknowledged_write() {
    let _serial = serial();
    let started = Instant::now();
    let (mut cluster, topic) = setup(3, "faults-kill-all");
    let (writer, reader) = load(&cluster, &topic);
    ok("load", writer.await_progress(None, 500, REACT));
    for id in cluster.ids() {
        cluster.kill9(id);
    }
    let ids = cluster.ids();
    ok("restart all", cluster.start_nodes(&ids));
    ok("brokers back", {
        let ids = cluster.ids();
        cluster.await_brokers(&ids, REACT)
    });
    await_all_in_sync(&cluster, &topic);
    ok("load after", writer.await_progress(None, 100, REACT));
    finish(&cluster, 1, &topic, writer, reader, History::default());
    eprintln!("took {:?}", started.elapsed());
}

/// Every batch of `topic`-`partition` as the node at `addr` serves it (read_uncommitted, from
/// offset 0): a line per batch with its base offset, producer id and epoch, base sequence and
/// record count, for diagnosing duplicates.
fn batches_of(addr: &str, topic: &str, partition: i32) -> String {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    use kafka_protocol::records::RecordBatchDecoder;
    let mut out = String::new();
    let mut offset = 0i64;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let r: FetchResponse = match raw_request(addr, ApiKey::Fetch, 11, &req) {
            Ok(r) => r,
            Err(e) => return format!("{out}fetch at {offset} failed: {e:#}"),
        };
        let Some(data) = r.responses.first().and_then(|t| t.partitions.first()) else {
            return out;
        };
        let Some(mut records) = data.records.clone().filter(|r| !r.is_empty()) else {
            return out;
        };
        let before = offset;
        while records.len() >= 61 {
            let Ok(set) = RecordBatchDecoder::decode(&mut records) else {
                break;
            };
            let (Some(first), Some(last)) = (set.records.first(), set.records.last()) else {
                continue;
            };
            out.push_str(&format!(
                "{} pid {} epoch {} seq {} n {}\n",
                first.offset,
                first.producer_id,
                first.producer_epoch,
                first.sequence,
                set.records.len()
            ));
            offset = last.offset + 1;
        }
        if offset == before {
            return out;
        }
    }
}
