//! Process lifecycle of the real binary: defaults with no arguments, config file, graceful shutdown.

mod common;

use common::{fetch_partition, produce_one, BrokerProcess};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn auto_create(c: &mut common::Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(true);
    let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, 12, req) else {
        panic!("metadata")
    };
    assert_eq!(m.topics[0].error_code, 0);
}

fn high_watermark(c: &mut common::Client, topic: &str) -> i64 {
    fetch_partition(c, topic, 0).high_watermark
}

#[test]
fn no_arguments_serves_127_0_0_1_9092_with_data_in_cwd() {
    let cwd = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_in(cwd.path(), &[]);
    assert_eq!(broker.addr, "127.0.0.1:9092");
    let mut c = broker.connect();
    auto_create(&mut c, "defaults");
    produce_one(&mut c, "defaults", "v");
    assert!(cwd
        .path()
        .join("vltava-data/defaults-0/00000000000000000000.log")
        .is_file());
}

#[test]
fn config_file_is_read_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("v.toml");
    std::fs::write(
        &cfg,
        "num_partitions = 3\nlisten = \"127.0.0.1:1\"\n[log]\nflush = \"always\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start_in(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let mut c = broker.connect();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("three"))))]))
        .with_allow_auto_topic_creation(true);
    let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, 12, req) else {
        panic!()
    };
    assert_eq!(
        m.topics[0].partitions.len(),
        3,
        "num_partitions from the file"
    );
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully_and_keep_data() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = BrokerProcess::start(dir.path(), &[]);
        let mut c = broker.connect();
        auto_create(&mut c, "graceful");
        for i in 0..10 {
            assert_eq!(produce_one(&mut c, "graceful", &format!("v{i}")), i);
        }
        assert!(
            broker.terminate_with(signal),
            "exit status 0 after SIG{signal}"
        );
        assert!(
            c.read_frame().is_none(),
            "connections are closed on shutdown"
        );
        assert!(
            dir.path().join("graceful-0/.clean-shutdown").exists(),
            "the log was closed cleanly (SIG{signal})"
        );

        let broker = BrokerProcess::start(dir.path(), &[]);
        let mut c = broker.connect();
        assert_eq!(high_watermark(&mut c, "graceful"), 10);
        assert_eq!(produce_one(&mut c, "graceful", "after"), 10);
    }
}

#[test]
fn retention_task_deletes_old_segments_and_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("v.toml");
    std::fs::write(&cfg, "retention_check_interval_ms = 20\n").unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut c = broker.connect();
    let r = common::create_topic(
        &mut c,
        7,
        "short",
        1,
        &[("segment.bytes", "1024"), ("retention.bytes", "2048")],
    );
    assert_eq!(r.topics[0].error_code, 0);
    let value = "v".repeat(200);
    for i in 0..40 {
        assert_eq!(produce_one(&mut c, "short", &value), i);
    }
    // The retention task runs every 20 ms, possibly while the records above were still arriving;
    // wait (bounded) until a pass has run after the last produce: old segments gone, start advanced.
    let log_segments = || common::segment_files(&data.join("short-0"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (earliest, segments) = loop {
        let state = (list_offset(&mut c, "short", -2), log_segments());
        if (state.0 > 0 && state.1 <= 4) || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(earliest > 0, "log start offset advanced by retention.bytes");
    assert!(
        segments <= 4,
        "old segments were deleted, {segments} remain"
    );
    assert_eq!(
        list_offset(&mut c, "short", -1),
        40,
        "the high watermark is unchanged"
    );
    // A fetch below the new start is out of range, as in Kafka.
    assert_eq!(fetch_error(&mut c, "short", 0), 1);
}

fn list_offset(c: &mut common::Client, topic: &str, timestamp: i64) -> i64 {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let Some(ResponseKind::ListOffsets(r)) = c.request(ApiKey::ListOffsets, 7, req) else {
        panic!("list offsets")
    };
    r.topics[0].partitions[0].offset
}

fn fetch_error(c: &mut common::Client, topic: &str, offset: i64) -> i16 {
    fetch_partition(c, topic, offset).error_code
}

/// A broker whose output pipe is closed (its supervisor went away) keeps serving and still stops
/// cleanly: log lines that cannot be written are dropped, not a panic.
#[test]
fn closed_log_output_does_not_stop_the_broker() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // stdout and stderr on one pipe, as a supervisor (or Java's ProcessBuilder) sets them up.
    let mut fds = [0; 2];
    // Close-on-exec, so the broker gets only the write end (as stdout and stderr) and closing the
    // read end here leaves the pipe without a reader. SAFETY: pipe2() fills both descriptors, which
    // are then owned here exactly once.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut child = Command::new(env!("CARGO_BIN_EXE_vltava"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::from(write.try_clone().unwrap()))
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    let mut out = BufReader::new(std::fs::File::from(read));
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && out.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("accepting connections addr=")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .map(str::to_string);
        line.clear();
    }
    let addr = addr.expect("readiness line");
    drop(out);
    // Every request logs nothing at info, so provoke log lines: connections that close at once.
    for _ in 0..3 {
        drop(common::Client::connect(&addr));
    }
    let mut c = common::Client::connect(&addr);
    let r = c.request(
        kafka_protocol::messages::ApiKey::ApiVersions,
        3,
        kafka_protocol::messages::ApiVersionsRequest::default(),
    );
    assert!(r.is_some(), "still serving with its output closed");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        child.wait().unwrap().success(),
        "a clean exit, no panic on the closed pipe"
    );
}
