//! Metadata writes on a full disk, against the real `vltava` binary on a 16 MiB tmpfs: once the
//! metadata storage is full, CreateTopics answers KAFKA_STORAGE_ERROR within its timeout (no
//! hang, no crash), InitProducerId and FindCoordinator retriable codes; once space returns all
//! three work again with no restart (`__consumer_offsets` is created); and a broker killed and
//! restarted on a full disk starts, or exits with an error, but never dies of a signal.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{init_producer_id, BrokerProcess, Client, Tmpfs};
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, ResponseKind};
use kafka_protocol::protocol::StrBytes;

const MIB: u64 = 1024 * 1024;
const KAFKA_STORAGE_ERROR: i16 = 56;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// The timeout `common::create_topic` puts in its CreateTopics requests.
const CREATE_TIMEOUT: Duration = Duration::from_millis(5000);

/// CreateTopics v7 for one single-partition topic: the error code and message, and how long the
/// answer took.
fn create(c: &mut Client, topic: &str) -> (i16, String, Duration) {
    let t = Instant::now();
    let r = common::create_topic(c, 7, topic, 1, &[]);
    let result = &r.topics[0];
    let message = result
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (result.error_code, message, t.elapsed())
}

/// Fills the disk until CreateTopics fails, which it must do in time and with
/// KAFKA_STORAGE_ERROR. The metadata reserve lets a write through on a full disk: filling again
/// after each one that succeeded uses that space up too.
fn fill_until_metadata_writes_fail(fs: &Tmpfs, c: &mut Client) {
    for i in 0..5 {
        fs.fill_leaving(0);
        let (code, message, took) = create(c, &format!("full-{i}"));
        assert!(took < CREATE_TIMEOUT, "CreateTopics took {took:?}");
        if code != 0 {
            assert_eq!(code, KAFKA_STORAGE_ERROR, "{message}");
            assert!(message.contains("No space left on device"), "{message}");
            return;
        }
    }
    panic!("CreateTopics never failed on a full disk");
}

/// FindCoordinator (v3) for a group, which creates `__consumer_offsets` on first use: the code.
fn find_coordinator(c: &mut Client) -> i16 {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    match c.request(ApiKey::FindCoordinator, 3, req) {
        Some(ResponseKind::FindCoordinator(r)) => r.error_code,
        other => panic!("FindCoordinator: {other:?}"),
    }
}

#[test]
fn metadata_writes_fail_cleanly_when_the_disk_is_full_and_work_again_when_space_returns() {
    let fs = Tmpfs::mount(16 * MIB);
    let (data, (_dir, config)) = (fs.path().join("data"), no_floor_config());
    let broker = BrokerProcess::start(&data, &["--config", &config]);
    let mut c = broker.connect();
    let (code, message, _) = create(&mut c, "before");
    assert_eq!(code, 0, "{message}");

    fill_until_metadata_writes_fail(&fs, &mut c);
    // Still serving: reads answer, and a producer is told to retry.
    assert!(!common::topic_id(&mut c, "before").is_nil());
    let r = init_producer_id(&mut c);
    assert_eq!(r.error_code, COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(find_coordinator(&mut c), COORDINATOR_NOT_AVAILABLE);

    fs.free();
    // The reserve comes back first, then the Raft core restarts from disk.
    let wait = Duration::from_secs(30);
    assert!(broker.wait_for_line(&["metadata reserve re-created"], wait));
    assert!(broker.wait_for_line(&["metadata raft restarted from disk"], wait));
    let (code, message, _) = create(&mut c, "after");
    assert_eq!(code, 0, "{message}");
    assert!(!common::topic_id(&mut c, "after").is_nil());
    let r = init_producer_id(&mut c);
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id.0 >= 0);
    assert_eq!(find_coordinator(&mut c), 0);
    assert!(!common::topic_id(&mut c, "__consumer_offsets").is_nil());
}

/// How a broker launched on a data directory ended up.
enum Launch {
    /// It logged that it accepts connections (the address), and is still running.
    Started(std::process::Child, String),
    /// It exited before that: its status and what it wrote to stderr.
    Exited(ExitStatus, String),
}

/// Starts `vltava` on `data_dir` and waits (30 s at most) until it accepts connections or exits.
/// A config without the free-space floor, which would refuse CreateTopics before the metadata
/// storage is full: these tests are about the metadata storage itself. (The directory, the path.)
fn no_floor_config() -> (tempfile::TempDir, String) {
    common::config_file("[log]\nmin_free_bytes = 0\n")
}

fn launch(data_dir: &Path, config: &str) -> Launch {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vltava"))
        .args(["--listen", "127.0.0.1:0", "--config", config, "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info,openraft=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vltava");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Some(address) once it accepts connections; None when its output ends (it is exiting).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("restarted broker: {line}");
            if let Some(addr) = line.split("accepting connections addr=").nth(1) {
                if let Some(tx) = tx.take() {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(Some(addr));
                }
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(None);
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(addr)) => Launch::Started(child, addr),
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().expect("wait for vltava");
            Launch::Exited(status, errors.join().unwrap_or_default())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker neither started nor exited within 30 s on a full disk");
        }
    }
}

#[test]
fn a_broker_restarted_on_a_full_disk_starts_or_exits_cleanly() {
    let fs = Tmpfs::mount(16 * MIB);
    let (data, (_dir, config)) = (fs.path().join("data"), no_floor_config());
    let mut broker = BrokerProcess::start(&data, &["--config", &config]);
    let mut c = broker.connect();
    let (code, message, _) = create(&mut c, "before");
    assert_eq!(code, 0, "{message}");
    fs.fill_leaving(0);
    broker.kill(); // SIGKILL

    // The metadata reserve is still there: it takes the start-up's Raft writes.
    let (mut child, addr) = match launch(&data, &config) {
        Launch::Started(child, addr) => (child, addr),
        Launch::Exited(status, stderr) => {
            panic!("did not start on a full disk with its reserve: {status}: {stderr}")
        }
    };
    let mut c = Client::connect(&addr);
    assert!(!common::topic_id(&mut c, "before").is_nil());
    // Now use the reserve up too, and restart once more.
    fill_until_metadata_writes_fail(&fs, &mut c);
    assert!(child.try_wait().expect("try_wait").is_none(), "it exited");
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();

    match launch(&data, &config) {
        Launch::Started(mut child, addr) => {
            eprintln!("restarted on a full disk without a reserve, at {addr}");
            let mut c = Client::connect(&addr);
            assert!(!common::topic_id(&mut c, "before").is_nil());
            let _ = child.kill();
            let _ = child.wait();
        }
        Launch::Exited(status, stderr) => {
            eprintln!("exited on a full disk without a reserve: {status}: {stderr}");
            assert_eq!(status.signal(), None, "killed by a signal: {stderr}");
            assert!(!status.success());
            assert!(
                stderr.contains("Error: metadata store: metadata storage unavailable"),
                "no clear error: {stderr}"
            );
        }
    }
}
