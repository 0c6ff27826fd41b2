//! Test harness: runs the real `vltava` binary on an ephemeral port and speaks raw Kafka protocol to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    fetch_response, ApiKey, BrokerId, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub mod cluster;
pub mod txn;

pub struct BrokerProcess {
    child: Child,
    pub addr: String,
    /// The broker's output lines after the readiness line.
    lines: mpsc::Receiver<String>,
}

impl BrokerProcess {
    /// Starts the broker on `data_dir` and returns once it logs that it accepts connections.
    pub fn start(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        Self::spawn(Path::new("."), &Self::args(data_dir, extra), None)
    }

    /// A free port on 127.0.0.1, `data_dir`, then `extra`.
    fn args<'a>(data_dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Starts the broker in `cwd` with exactly `args`.
    pub fn start_in(cwd: &Path, args: &[&str]) -> BrokerProcess {
        Self::spawn(cwd, args, None)
    }

    /// [`BrokerProcess::start`] with at most `nofile` open descriptors (`ulimit -n`).
    pub fn start_with_nofile(data_dir: &Path, extra: &[&str], nofile: u64) -> BrokerProcess {
        Self::spawn(Path::new("."), &Self::args(data_dir, extra), Some(nofile))
    }

    fn spawn(cwd: &Path, args: &[&str], nofile: Option<u64>) -> BrokerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vltava"));
        command
            .current_dir(cwd)
            .args(args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe, and `limit` is a plain value copied in.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("spawn vltava");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let (line_tx, lines) = mpsc::channel();
        // Keep draining the output so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("accepting connections addr=").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                        continue;
                    }
                }
                let _ = line_tx.send(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(e) => {
                // Not left running behind a failed test (a node waiting for its quorum never exits).
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not start: {e}");
            }
        };
        BrokerProcess { child, addr, lines }
    }

    /// Sends `signal` (e.g. "TERM", "INT") and waits for the process to exit; returns whether it
    /// exited successfully.
    pub fn terminate_with(&mut self, signal: &str) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(sent, "kill -{signal} {pid}");
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Waits for an output line (after readiness, not seen by an earlier wait) containing every one of
    /// `parts`; false after `timeout`.
    pub fn wait_for_line(&self, parts: &[&str], timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if parts.iter().all(|p| line.contains(p)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// The output lines up to and including the first (not seen by an earlier wait) containing every
    /// one of `parts`; `None` after `timeout`.
    pub fn lines_until(&self, parts: &[&str], timeout: Duration) -> Option<Vec<String>> {
        let until = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            let done = parts.iter().all(|p| line.contains(p));
            seen.push(line);
            if done {
                return Some(seen);
            }
        }
    }

    /// Counts the output lines containing every one of `parts` that arrive within `window` (it always
    /// waits the whole window: for checking that something is *not* logged repeatedly).
    pub fn count_lines_for(&self, parts: &[&str], window: Duration) -> usize {
        let until = std::time::Instant::now() + window;
        let mut n = 0;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if parts.iter().all(|p| line.contains(p)) => n += 1,
                Ok(_) => {}
                Err(_) => return n,
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Descriptors the process has open now.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<pid>/fd")
            .count()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking raw-protocol client built on kafka-protocol's client-side encoders.
pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Sends raw bytes as one frame.
    pub fn send_frame(&mut self, payload: &[u8]) {
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf).unwrap();
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn encode_request(&mut self, key: ApiKey, version: i16, body: &RequestKind) -> BytesMut {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("vltava-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        match body {
            // kafka-protocol 0.18 cannot encode InitProducerId v6 nor OffsetCommit/OffsetFetch v10:
            // use the broker's own encoders (the Python compat tests cover v10 with kafka-python's).
            RequestKind::InitProducerId(r) => {
                vltava::handlers::init_producer_id::encode_request(r, version, &mut buf).unwrap()
            }
            RequestKind::OffsetCommit(r) => {
                vltava::handlers::offset_commit::encode_request(r, version, &mut buf).unwrap()
            }
            RequestKind::OffsetFetch(r) => {
                vltava::handlers::offset_fetch::encode_request(r, version, &mut buf).unwrap()
            }
            other => other.encode(&mut buf, version).unwrap(),
        }
        buf
    }

    /// Sends a request and decodes its response; `None` when the broker closed the connection.
    pub fn request(
        &mut self,
        key: ApiKey,
        version: i16,
        body: impl Into<RequestKind>,
    ) -> Option<ResponseKind> {
        let buf = self.encode_request(key, version, &body.into());
        self.send_frame(&buf);
        let mut frame = self.read_frame()?;
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(
            header.correlation_id, self.correlation,
            "responses must come in request order"
        );
        let response = ResponseKind::decode(key, &mut frame, version)
            .unwrap_or_else(|e| panic!("undecodable {key:?} v{version} response: {e:#}"));
        assert_eq!(
            frame.remaining(),
            0,
            "{key:?} v{version} response has trailing bytes"
        );
        Some(response)
    }
}

/// One uncompressed v2 batch of `values` (keys "k<i>") without a producer id, stamped 1_700_000_000_000 + i.
pub fn batch(values: &[&str]) -> Bytes {
    records_batch(-1, -1, -1, 1_700_000_000_000, values)
}

/// One uncompressed v2 batch encoded by kafka-protocol's client encoder: record i has key "k<i>",
/// sequence `first_seq + i` (wrapping) and timestamp `first_ts + i`.
pub fn records_batch(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    first_ts: i64,
    values: &[&str],
) -> Bytes {
    use kafka_protocol::records::{Compression, Record};
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            producer_id: pid,
            producer_epoch: epoch,
            // kafka-protocol batches records while offset - sequence is constant.
            sequence: first_seq.wrapping_add(i as i32),
            ..vltava::log::plain_record(
                i as i64,
                first_ts + i as i64,
                Some(Bytes::from(format!("k{i}"))),
                Some(Bytes::from(v.to_string())),
            )
        })
        .collect();
    vltava::log::encode_batch(&records, Compression::None)
        .unwrap()
        .freeze()
}

pub fn name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(s.to_string()))
}

/// CreateTopics (at `version`) for one topic with replication factor 1.
/// The id of `topic` (Metadata v12, without auto-creation); nil when it does not exist.
pub fn topic_id(c: &mut Client, topic: &str) -> uuid::Uuid {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    match c.request(ApiKey::Metadata, 12, req) {
        Some(ResponseKind::Metadata(m)) => m.topics[0].topic_id,
        other => panic!("{other:?}"),
    }
}

pub fn create_topic(
    c: &mut Client,
    version: i16,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> kafka_protocol::messages::CreateTopicsResponse {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let req = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(5000);
    match c.request(ApiKey::CreateTopics, version, req) {
        Some(ResponseKind::CreateTopics(r)) => r,
        other => panic!("CreateTopics v{version}: {other:?}"),
    }
}

/// Appends `size` bytes of big-endian i32 to a buffer (for hand-made frames).
pub fn put_i32(buf: &mut BytesMut, v: i32) {
    buf.put_i32(v);
}

impl Client {
    pub fn stream_clone(&self) -> TcpStream {
        self.stream.try_clone().unwrap()
    }
}

/// Produces one record (acks=all) to partition 0 and returns its offset.
pub fn produce_one(c: &mut Client, topic: &str, value: &str) -> i64 {
    let td = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(&[value])))]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let Some(ResponseKind::Produce(r)) = c.request(ApiKey::Produce, 9, req) else {
        panic!("produce")
    };
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

/// Fetch v12 of partition 0 at `offset`.
pub fn fetch_partition(c: &mut Client, topic: &str, offset: i64) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let Some(ResponseKind::Fetch(mut r)) = c.request(ApiKey::Fetch, 12, req) else {
        panic!("fetch")
    };
    r.responses.remove(0).partitions.remove(0)
}

/// Every record of partition 0 as (offset, value), read from the start.
pub fn read_all(c: &mut Client, topic: &str) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    loop {
        let next = out.last().map_or(0, |(o, _)| o + 1);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(next)
                    .with_partition_max_bytes(1 << 20)])]);
        let Some(ResponseKind::Fetch(mut r)) = c.request(ApiKey::Fetch, 12, req) else {
            panic!("fetch")
        };
        let data = r.responses.remove(0).partitions.remove(0);
        assert_eq!(data.error_code, 0);
        let mut bytes = data.records.unwrap_or_default();
        let before = out.len();
        while !bytes.is_empty() {
            for r in kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
                .unwrap()
                .records
            {
                if r.offset >= next {
                    out.push((
                        r.offset,
                        String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                    ));
                }
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Commits `offset` with `metadata` for (topic, partition) as (group, generation, member).
pub fn commit(
    c: &mut Client,
    v: i16,
    (group, generation, member): (&str, i32, &str),
    (topic, partition): (&str, i32),
    offset: i64,
    metadata: &str,
) -> i16 {
    // v10 names the topic by id (nil for a topic that does not exist).
    let id = if v >= 10 {
        topic_id(c, topic)
    } else {
        uuid::Uuid::nil()
    };
    let req = kafka_protocol::messages::OffsetCommitRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_retention_time_ms(-1)
        .with_topics(vec![kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_topic_id(id)
            .with_partitions(vec![kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_string(metadata.into())))])]);
    match c.request(ApiKey::OffsetCommit, v, req) {
        Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        other => panic!("OffsetCommit v{v}: {other:?}"),
    }
}

/// (offset, metadata, error) of one partition.
pub fn fetch_offset(
    c: &mut Client,
    v: i16,
    group: &str,
    topic: &str,
    partition: i32,
) -> (i64, String, i16) {
    let req = if v >= 8 {
        let id = if v >= 10 {
            topic_id(c, topic)
        } else {
            uuid::Uuid::nil()
        };
        kafka_protocol::messages::OffsetFetchRequest::default().with_groups(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(group.into())))
            .with_member_epoch(-1)
            .with_topics(Some(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(name(topic))
                .with_topic_id(id)
                .with_partition_indexes(vec![partition])]))])
    } else {
        kafka_protocol::messages::OffsetFetchRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(group.into())))
            .with_topics(Some(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![partition])]))
    }
    .with_require_stable(v >= 7);
    match c.request(ApiKey::OffsetFetch, v, req) {
        Some(ResponseKind::OffsetFetch(r)) if v >= 8 => {
            let g = &r.groups[0];
            let p = &g.topics[0].partitions[0];
            let meta = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.committed_offset, meta, g.error_code.max(p.error_code))
        }
        Some(ResponseKind::OffsetFetch(r)) => {
            let p = &r.topics[0].partitions[0];
            let meta = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.committed_offset, meta, r.error_code.max(p.error_code))
        }
        other => panic!("OffsetFetch v{v}: {other:?}"),
    }
}

/// An idempotent producer's InitProducerId (v4, no transactional id).
pub fn init_producer_id(c: &mut Client) -> kafka_protocol::messages::InitProducerIdResponse {
    let req = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    match c.request(ApiKey::InitProducerId, 4, req) {
        Some(ResponseKind::InitProducerId(r)) => r,
        other => panic!("InitProducerId: {other:?}"),
    }
}

/// How many segment files (`.log`) a partition directory holds.
pub fn segment_files(partition_dir: &Path) -> usize {
    std::fs::read_dir(partition_dir)
        .expect("partition directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
}

/// `toml` as a config file in a fresh temporary directory: (the directory, the file's path).
pub fn config_file(toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vltava.toml");
    std::fs::write(&path, toml).unwrap();
    let path = path.to_str().expect("utf-8 path").to_string();
    (dir, path)
}

/// A broker started with `toml` as its config file and its data beside it (kept with the directory).
pub fn start_with_config(toml: &str) -> (tempfile::TempDir, BrokerProcess) {
    let (dir, path) = config_file(toml);
    let broker = BrokerProcess::start(&dir.path().join("data"), &["--config", &path]);
    (dir, broker)
}

/// A small tmpfs mounted for one test (the tests run as root, as CI does), so a full disk is real:
/// `fill_leaving` takes all but a few bytes of it, `free` gives them back. Unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` on a fresh temporary directory.
    pub fn mount(size_bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed: these tests need root (CI runs as root)"
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes a writer can still allocate on the filesystem (statvfs f_bavail).
    pub fn available(&self) -> u64 {
        let path = std::ffi::CString::new(self.path().to_str().expect("utf-8 path")).unwrap();
        // SAFETY: a valid C string and a zeroed statvfs for the call to fill.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::statvfs(path.as_ptr(), &mut st) },
            0,
            "statvfs"
        );
        st.f_bavail as u64 * st.f_frsize as u64
    }

    fn filler(&self) -> std::path::PathBuf {
        self.path().join("filler")
    }

    /// Grows a filler file until at most `leave` bytes remain available (whole pages).
    pub fn fill_leaving(&self, leave: u64) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("open filler");
        let chunk = vec![0xAAu8; 64 * 1024];
        loop {
            let avail = self.available();
            if avail <= leave {
                break;
            }
            let n = ((avail - leave) as usize).min(chunk.len()).max(4096);
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }

    /// Removes the filler file: the space it took is available again.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
