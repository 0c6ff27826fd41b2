//! Fuzz targets shared by the corpus replay (`tests/fuzz_corpus.rs`, every `cargo test`) and the
//! stable fuzz driver (`examples/fuzz.rs`, `make fuzz`).
//!
//! - `request`: a client's byte stream: framing, header, pre-walk, decode and the real handlers of an
//!   in-process broker on a temporary directory;
//! - `decode`: one frame through the pre-walk and kafka-protocol's decoder, with the allocation oracle:
//!   what the decoder allocates must stay within the pre-walk's budget (16× the frame + 1 MiB);
//! - `batches`: `validate_batches` on a produce records blob, then the bounded look inside each batch.
//!
//! A binary using these installs `CountingAlloc` as its global allocator: it tracks live and peak bytes
//! and refuses any single allocation above `HUGE_ALLOCATION`, which aborts the process after writing the
//! input being run to the crash file (as does any panic).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use vltava::broker::Broker;
use vltava::config::Config;
use vltava::log::{compact_batch, record_metas, validate_batches, validate_stored};
use vltava::server::dispatch::{dispatch, Outcome};
use vltava::server::frame::FrameReader;
use vltava::server::prewalk::{cost, prewalk};
use vltava::server::sasl::Session;

/// A single allocation this big is a finding: no input should ever ask for it.
pub const HUGE_ALLOCATION: usize = 512 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// How deep inputs got: frames that passed the pre-walk, decoded, and got a handler's answer.
pub static WALKED: AtomicUsize = AtomicUsize::new(0);
pub static DECODED: AtomicUsize = AtomicUsize::new(0);
pub static ANSWERED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts live bytes and their peak; refuses huge single allocations.
pub struct CountingAlloc;

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HUGE_ALLOCATION {
            huge(layout.size());
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HUGE_ALLOCATION {
            huge(new_size);
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

/// The input being run, kept so a crash can be saved without allocating.
struct Current {
    data: Vec<u8>,
    file: Option<File>,
}
static CURRENT: Mutex<Current> = Mutex::new(Current {
    data: Vec::new(),
    file: None,
});

/// Where a crashing input goes (opened now: saving it later must not allocate).
pub fn set_crash_file(path: &Path) {
    let file = File::create(path).ok();
    if let Ok(mut c) = CURRENT.lock() {
        c.data.reserve(8 << 20);
        c.file = file;
    }
    std::panic::set_hook(Box::new(|info| {
        eprintln!("fuzz: panic: {info}");
        save_current();
        std::process::abort();
    }));
}

/// Records the input about to run (copied into preallocated space).
pub fn set_current(data: &[u8]) {
    if let Ok(mut c) = CURRENT.try_lock() {
        if c.file.is_some() && data.len() <= c.data.capacity() {
            c.data.clear();
            c.data.extend_from_slice(data);
        }
    }
}

fn save_current() {
    if let Ok(mut c) = CURRENT.try_lock() {
        let c = &mut *c;
        if let Some(f) = c.file.as_mut() {
            let _ = f.write_all(&c.data);
            let _ = f.sync_all();
        }
    }
}

fn huge(size: usize) -> ! {
    let msg = b"fuzz: huge allocation refused; input saved to the crash file\n";
    let _ = std::io::stderr().write_all(msg);
    let _ = size;
    save_current();
    std::process::abort();
}

/// Bytes allocated at the peak since `peak_reset` returned `base`.
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Resets the peak to the current live bytes and returns that base.
pub fn peak_reset() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// What an input did, as a small number: new values mark inputs worth keeping in the corpus.
pub type Signature = u64;

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3)
}

/// One frame (without its size prefix) through the pre-walk and the decoder.
pub fn decode(frame: &[u8]) -> Signature {
    if frame.len() < 8 {
        return 1;
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return 2;
    };
    let mut sig = mix(3, key as u64);
    sig = mix(sig, version as u64 & 0xff);
    let header_version = api.request_header_version(version);
    let walked = match prewalk(frame, key, version, header_version) {
        Ok(w) => w,
        Err(e) => {
            // The variant (not its numbers) says which check refused the frame.
            let name = format!("{e:?}");
            let variant = name.split([' ', '{', '(']).next().unwrap_or("").len() as u64;
            return mix(sig, 100 + variant);
        }
    };
    WALKED.fetch_add(1, Ordering::Relaxed);
    let mut buf = Bytes::copy_from_slice(frame);
    let base = peak_reset();
    let header = RequestHeader::decode(&mut buf, header_version);
    // As dispatch decodes: through the API table's decoder (ours for the versions the codec lacks).
    let decoded = header
        .ok()
        .and_then(|_| match vltava::handlers::lookup(key) {
            Some(served) if served.supports(version) => (served.decode)(&mut buf, version).ok(),
            _ => RequestKind::decode(api, &mut buf, version).ok(),
        });
    let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    // Other threads allocate too (the broker's tasks in the request target): allow them 1 MiB more.
    let allowed = cost::budget(frame.len()) + (1 << 20);
    assert!(
        used <= allowed,
        "decoding a {}-byte {api:?} v{version} frame allocated {used} bytes (estimate {}, allowed {allowed})",
        frame.len(),
        walked.decoded_estimate
    );
    if decoded.is_some() {
        DECODED.fetch_add(1, Ordering::Relaxed);
    }
    mix(sig, decoded.is_some() as u64 + 10)
}

/// The largest batch the `batches` target lets through validation.
const MAX_MESSAGE_BYTES: u32 = 1 << 20;

/// A produce records blob through validation, then each valid batch's records looked at (bounded).
pub fn batches(data: &[u8]) -> Signature {
    match validate_batches(data, MAX_MESSAGE_BYTES) {
        Err(e) => mix(20, format!("{e:?}").len() as u64 % 7),
        Ok(headers) => {
            let mut sig = mix(30, headers.len().min(4) as u64);
            let mut pos = 0usize;
            for h in headers {
                let end = pos + h.total_size();
                let Some(batch) = data.get(pos..end) else {
                    break;
                };
                sig = mix(sig, h.compression() as u64);
                sig = mix(sig, record_metas(batch, 4 << 20).is_ok() as u64);
                sig = mix(sig, check_compaction(batch, data.len() as i64));
                pos = end;
            }
            sig
        }
    }
}

/// Compacts a valid batch, keeping the records whose offset has the parity of `seed`: the result must be
/// a valid stored batch with the same offset range, holding exactly the kept records.
fn check_compaction(batch: &[u8], seed: i64) -> u64 {
    let keep = |offset: i64| (offset ^ seed) & 1 == 0;
    let Some((compacted, gone)) = compact_batch(batch, |r| keep(r.offset)) else {
        return 0;
    };
    let before = validate_stored(batch).expect("input validated");
    let after = validate_stored(&compacted)
        .unwrap_or_else(|e| panic!("compaction produced an invalid batch: {e}"));
    assert_eq!(
        (after.base_offset, after.last_offset()),
        (before.base_offset, before.last_offset()),
        "compaction keeps the offset range"
    );
    let offsets = |b: &[u8]| -> Vec<i64> {
        record_metas(b, 64 << 20)
            .expect("readable")
            .iter()
            .map(|m| m.offset)
            .collect()
    };
    let kept: Vec<i64> = offsets(batch).into_iter().filter(|o| keep(*o)).collect();
    assert_eq!(
        offsets(&compacted),
        kept,
        "compaction keeps exactly the kept records"
    );
    assert_eq!(
        after.records_count as u64 + gone,
        before.records_count as u64
    );
    1 + gone.min(3)
}

/// An in-process broker on a temporary directory, for the `request` target.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            socket_request_max_bytes: 1 << 20,
            ..Config::default()
        };
        // Fuzzed CreateTopics must not fill the disk with partition logs.
        config.limits.max_partitions = 64;
        config.log.segment_bytes = 1 << 20;
        // JoinGroup need not wait for more members in a fuzz run.
        config.group_initial_rebalance_delay_ms = 0;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let broker = rt
            .block_on(Broker::start(config, "127.0.0.1".into(), 9092))
            .expect("broker starts");
        Harness {
            rt,
            broker,
            _dir: dir,
        }
    }

    /// A client's byte stream: frames are dispatched in order until the stream ends or the broker
    /// would close the connection.
    pub fn request(&self, stream: &[u8]) -> Signature {
        let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
        let broker = self.broker.clone();
        // A PLAINTEXT listener's session: every API is reachable.
        let session = Arc::new(Session::new(None));
        self.rt.block_on(async move {
            let mut reader = FrameReader::new(stream, broker.config.socket_request_max_bytes);
            // The last frame's path and how the stream ended: coarse enough to keep the pool useful.
            let mut sig = 40u64;
            for _ in 0..64 {
                let frame = match reader.read_frame().await {
                    Ok(Some(f)) => f.freeze(),
                    Ok(None) => return mix(sig, 1),
                    Err(e) => return mix(sig, format!("{e:?}").len() as u64 % 5 + 2),
                };
                sig = mix(40, decode(&frame));
                // Fetch, JoinGroup and SyncGroup may wait (long poll, rebalance, the leader's
                // assignment), as they should; anything else must answer.
                let key = i16::from_be_bytes([
                    frame.first().copied().unwrap_or(0),
                    frame.get(1).copied().unwrap_or(0),
                ]);
                let may_wait = frame.len() >= 2 && matches!(key, 1 | 11 | 14);
                let limit = Duration::from_millis(if may_wait { 50 } else { 10_000 });
                match tokio::time::timeout(limit, dispatch(&broker, &session, peer, frame)).await {
                    Ok(Outcome::Respond(_)) => {
                        ANSWERED.fetch_add(1, Ordering::Relaxed);
                        sig = mix(sig, 6)
                    }
                    Ok(Outcome::NoResponse) => {
                        ANSWERED.fetch_add(1, Ordering::Relaxed);
                        sig = mix(sig, 7)
                    }
                    Ok(Outcome::Close(_)) => return mix(sig, 8),
                    Ok(Outcome::RespondAndClose(_)) => return mix(sig, 10),
                    Err(_) if may_wait => sig = mix(sig, 9),
                    Err(_) => panic!("a request took more than {limit:?}"),
                }
            }
            sig
        })
    }

    pub fn shutdown(self) {
        let broker = self.broker.clone();
        self.rt.block_on(broker.shutdown());
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// Every file of a corpus directory, sorted by name.
pub fn corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    std::fs::read(e.path()).ok().map(|d| (name, d))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
