//! A stable-Rust fuzz driver for the hostile-input targets (`tests/fuzz_support`): seeded, mutation
//! and schema-generation based, with behaviour signatures as feedback. Runs on any toolchain, so CI
//! needs neither nightly nor libFuzzer.
//!
//! ```text
//! cargo run --release --example fuzz -- <request|decode|batches> [--seconds N] [--runs N] [--seed N]
//! ```
//!
//! Starts from `fuzz/corpus/<target>` (`decode` uses the request corpus, size prefixes stripped), then
//! mixes freshly generated well-formed requests (every API and version in the schemas) and batches
//! with mutations of kept inputs: bit flips, interesting integers written over lengths and counts,
//! truncation, insertion, splicing. An input whose behaviour signature is new is kept and written to
//! `target/fuzz/<target>/queue/`. A panic or a huge allocation aborts after saving the input to
//! `target/fuzz/<target>/crash`; it becomes a regression test once copied into `fuzz/corpus/`.

#[path = "../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use fuzz_support::{batches, corpus, decode, set_crash_file, set_current, CountingAlloc, Harness};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::{Compression, Record};
use vltava::log::{encode_batch, plain_record};
use vltava::server::prewalk::gen::{self, Rng};
use vltava::server::prewalk::schema::schemas;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Request,
    Decode,
    Batches,
}

struct Args {
    target: Target,
    seconds: u64,
    runs: u64,
    seed: u64,
}

fn usage() -> ! {
    eprintln!("usage: fuzz <request|decode|batches> [--seconds N] [--runs N] [--seed N]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let target = match it.next().as_deref() {
        Some("request") => Target::Request,
        Some("decode") => Target::Decode,
        Some("batches") => Target::Batches,
        _ => usage(),
    };
    let mut args = Args {
        target,
        seconds: 60,
        runs: u64::MAX,
        seed: 0,
    };
    while let Some(flag) = it.next() {
        let value: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match flag.as_str() {
            "--seconds" => args.seconds = value,
            "--runs" => args.runs = value,
            "--seed" => args.seed = value,
            _ => usage(),
        }
    }
    if args.seed == 0 {
        args.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
    }
    args
}

const INTERESTING_32: &[i32] = &[
    -1,
    -2,
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    i32::MIN,
    0x0fff_ffff,
];

/// A well-formed request frame (no size prefix) for a random API and version.
fn generated_request(rng: &mut Rng) -> Vec<u8> {
    let Ok(s) = schemas() else {
        return Vec::new();
    };
    let api = &s.apis[rng.below(s.apis.len() as u64) as usize];
    let span = (api.versions.1 - api.versions.0) as u64 + 1;
    let version = api.versions.0 + rng.below(span) as i16;
    let mut out = BytesMut::new();
    out.put_i16(api.key);
    out.put_i16(version);
    out.put_i32(rng.next_u64() as i32);
    if rng.below(4) == 0 {
        out.put_i16(-1);
    } else {
        out.put_i16(4);
        out.put_slice(b"fuzz");
    }
    let header_v2 = ApiKey::try_from(api.key)
        .map(|k| k.request_header_version(version) >= 2)
        .unwrap_or(false);
    if header_v2 {
        out.put_u8(0);
    }
    out.put_slice(&gen::body(api, version, rng.next_u64()));
    out.to_vec()
}

fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as i32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// A valid batch of a few records with a random codec, encoded by kafka-protocol.
fn generated_batch(rng: &mut Rng) -> Vec<u8> {
    let n = 1 + rng.below(5) as i64;
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let key = (rng.below(2) == 0).then(|| Bytes::from(vec![b'k'; rng.below(20) as usize]));
            let value = Some(Bytes::from(vec![b'v'; rng.below(300) as usize]));
            plain_record(i, 1_700_000_000_000 + i, key, value)
        })
        .collect();
    let compression = match rng.below(5) {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    };
    encode_batch(&records, compression)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// Recomputes a v2 batch's CRC so mutations get past the check into what follows it.
fn fix_crc(batch: &mut [u8]) {
    if batch.len() >= 61 {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                data[i] = [0u8, 0xff, 0x7f, 0x80, 1][rng.below(5) as usize];
            }
            2 if len >= 4 => {
                let i = rng.below(len as u64 - 3) as usize;
                let v = INTERESTING_32[rng.below(INTERESTING_32.len() as u64) as usize];
                data[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if len >= 2 => {
                let i = rng.below(len as u64 - 1) as usize;
                let v = INTERESTING_32[rng.below(INTERESTING_32.len() as u64) as usize] as i16;
                data[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 if len > 0 => data.truncate(rng.below(len as u64) as usize),
            5 => {
                let i = rng.below(len as u64 + 1) as usize;
                let n = 1 + rng.below(8) as usize;
                let byte = rng.next_u64() as u8;
                data.splice(i..i, std::iter::repeat_n(byte, n));
            }
            6 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                let n = (1 + rng.below(16) as usize).min(len - i);
                data.drain(i..i + n);
            }
            7 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len() as u64) as usize];
                if !other.is_empty() {
                    let from = rng.below(other.len() as u64) as usize;
                    let cut = rng.below(len as u64 + 1) as usize;
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            8 if len > 0 => {
                // Varint-ish junk: a run of continuation bytes.
                let i = rng.below(len as u64) as usize;
                let n = (1 + rng.below(5) as usize).min(len - i);
                data[i..i + n].fill(0xff);
            }
            _ => {}
        }
    }
    if data.len() > 1 << 20 {
        data.truncate(1 << 20);
    }
}

fn main() {
    let args = parse_args();
    let name = match args.target {
        Target::Request => "request",
        Target::Decode => "decode",
        Target::Batches => "batches",
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("target/fuzz").join(name);
    let queue = out_dir.join("queue");
    let _ = std::fs::create_dir_all(&queue);
    let crash = out_dir.join("crash");
    set_crash_file(&crash);

    let corpus_dir = root
        .join("fuzz/corpus")
        .join(if args.target == Target::Batches {
            "batches"
        } else {
            "request"
        });
    let mut pool: Vec<Vec<u8>> = corpus(&corpus_dir)
        .into_iter()
        .map(|(_, d)| match args.target {
            // A bare frame: drop the size prefix.
            Target::Decode => d.get(4..).unwrap_or(&[]).to_vec(),
            _ => d,
        })
        .collect();
    let harness = (args.target == Target::Request).then(Harness::new);
    let run = |data: &[u8]| -> u64 {
        set_current(data);
        match args.target {
            Target::Request => harness.as_ref().map_or(0, |h| h.request(data)),
            Target::Decode => decode(data),
            Target::Batches => batches(data),
        }
    };

    let mut rng = Rng(args.seed);
    let mut seen: HashSet<u64> = HashSet::new();
    for d in &pool {
        seen.insert(run(d));
    }
    eprintln!(
        "fuzz: {name}: seed {}, {} corpus inputs, {} signatures",
        args.seed,
        pool.len(),
        seen.len()
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut runs = 0u64;
    let mut last_report = Instant::now();
    while runs < args.runs && (!runs.is_multiple_of(256) || Instant::now() < deadline) {
        let fresh = pool.is_empty() || rng.below(3) == 0;
        let mut input = if fresh {
            match args.target {
                Target::Batches => generated_batch(&mut rng),
                Target::Decode => generated_request(&mut rng),
                Target::Request => {
                    let n = 1 + rng.below(3) as usize;
                    let frames: Vec<Vec<u8>> =
                        (0..n).map(|_| generated_request(&mut rng)).collect();
                    framed(&frames)
                }
            }
        } else {
            pool[rng.below(pool.len() as u64) as usize].clone()
        };
        if !fresh || rng.below(2) == 0 {
            mutate(&mut rng, &mut input, &pool);
            if args.target == Target::Batches && rng.below(2) == 0 {
                fix_crc(&mut input);
            }
        }
        let sig = run(&input);
        runs += 1;
        if seen.insert(sig) && pool.len() < 20_000 {
            let _ = std::fs::write(queue.join(format!("{sig:016x}")), &input);
            pool.push(input);
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "fuzz: {name}: {runs} runs, {:.0}/s, {} signatures, pool {}",
                runs as f64 / secs,
                seen.len(),
                pool.len()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    use std::sync::atomic::Ordering::Relaxed;
    println!(
        "fuzz: {name}: {runs} executions in {secs:.0} s ({:.0}/s), {} signatures, no crashes; \
         frames walked {}, decoded {}, answered by a handler {}",
        runs as f64 / secs.max(0.001),
        seen.len(),
        fuzz_support::WALKED.load(Relaxed),
        fuzz_support::DECODED.load(Relaxed),
        fuzz_support::ANSWERED.load(Relaxed),
    );
    if let Some(h) = harness {
        h.shutdown();
    }
    let _ = std::fs::remove_file(&crash);
}
