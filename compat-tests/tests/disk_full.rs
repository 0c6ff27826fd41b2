//! librdkafka's idempotent producer (acks=all) streams into a disk that fills up under it: the broker
//! (on a small tmpfs) refuses appends with KAFKA_STORAGE_ERROR, the client retries, and once space is
//! back every record is delivered. The log then holds each record exactly once, in send order, also
//! after a kill -9 and restart. Needs root for the tmpfs, as CI has.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use rdkafka::Offset;
use vltava_compat::kafka;
use vltava_compat::{unique_topic, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(120);
const FIRST: usize = 3000;
const TOTAL: usize = 8000;

/// A tmpfs on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mount -t tmpfs failed: this test needs root (CI runs as root)"
        );
        Tmpfs { dir }
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }

    /// Takes all but about `leave` bytes with a filler file (allocated for real).
    fn fill_leaving(&self, leave: u64) {
        let path = CString::new(self.dir.path().to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a zeroed statvfs for the call to fill.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        let avail = st.f_bavail as u64 * st.f_frsize as u64;
        let f = std::fs::File::create(self.filler()).unwrap();
        let len = avail.saturating_sub(leave) as libc::off_t;
        // SAFETY: a file descriptor this function owns.
        let rc = unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, len) };
        assert_eq!(rc, 0, "posix_fallocate");
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
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

fn value(i: usize) -> String {
    format!("full-{i:06}-{}", "v".repeat(100))
}

/// Waits (bounded) until the broker has printed a line containing `text`.
fn await_log(broker: &Broker, text: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !broker.logs().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the broker's log:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every record of partition 0 from the start, as values in offset order (offsets checked dense).
fn read_back(bootstrap: &str, topic: &str) -> Vec<String> {
    let got = kafka::consume(bootstrap, topic, &[(0, Offset::Beginning)], TOTAL, TIMEOUT).unwrap();
    got.iter()
        .enumerate()
        .map(|(n, g)| {
            assert_eq!(g.offset, n as i64, "offsets are dense");
            String::from_utf8(g.value.clone().unwrap_or_default()).unwrap()
        })
        .collect()
}

#[test]
fn an_idempotent_stream_into_a_filling_disk_delivers_every_record_once_when_space_returns() {
    let fs = Tmpfs::mount(48 << 20);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("vltava.toml");
    // No free-space floor: the filesystem itself runs full.
    std::fs::write(&config, "[log]\nmin_free_bytes = 0\n").unwrap();
    let mut broker = Broker::start_with(BrokerOptions {
        data_dir: Some(fs.path().join("data")),
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..BrokerOptions::default()
    });
    let topic = unique_topic("full");
    kafka::create_topic(broker.bootstrap(), &topic, 1, &[]).unwrap();
    let mut cfg = kafka::base_config(broker.bootstrap());
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
        .set("retry.backoff.ms", "50");
    let (producer, deliveries) = kafka::channel_producer(&cfg).unwrap();
    let send = |i: usize| kafka::send_numbered(&producer, &topic, 0, i, &value(i));

    let mut reports = Vec::with_capacity(TOTAL);
    (0..FIRST).for_each(send);
    while reports.len() < FIRST {
        reports.push(deliveries.recv_timeout(TIMEOUT).expect("delivery report"));
    }
    // The disk fills under the stream: appends fail, the client keeps retrying.
    fs.fill_leaving(16 << 10);
    (FIRST..TOTAL).for_each(send);
    await_log(&broker, "appends failing");
    assert!(broker.is_running());
    fs.free();
    producer.flush(TIMEOUT).expect("flush");
    while reports.len() < TOTAL {
        reports.push(deliveries.recv_timeout(TIMEOUT).expect("delivery report"));
    }
    await_log(&broker, "appends succeed again");

    // Every record was delivered, each at its own offset, and the log holds them in send order, once.
    let mut offsets: Vec<(i64, usize)> = reports
        .into_iter()
        .map(|(i, d)| {
            (
                d.unwrap_or_else(|e| panic!("delivery of #{i} failed: {e}"))
                    .1,
                i,
            )
        })
        .collect();
    offsets.sort();
    let expected: Vec<String> = (0..TOTAL).map(value).collect();
    assert_eq!(
        offsets,
        (0..TOTAL).map(|i| (i as i64, i)).collect::<Vec<_>>(),
        "record i acknowledged at offset i"
    );
    assert!(
        read_back(broker.bootstrap(), &topic) == expected,
        "the log after space returned"
    );

    broker.restart();
    assert!(
        read_back(broker.bootstrap(), &topic) == expected,
        "the log after kill -9"
    );
}
