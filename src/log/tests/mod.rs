//! Unit tests of the log store (real v2 batches built by hand, temp directories): the shared
//! batch builders and configs here, the tests by theme in the submodules.

mod append_read;
mod epochs;
mod follower;
mod recovery;
mod retention;
mod transactions;
mod validation;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;

use super::*;

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A valid uncompressed v2 batch of `n` records (timestamps base_ts .. base_ts+n-1), each with `value_len` bytes.
pub(super) fn batch_ts(n: i32, base_ts: i64, value_len: usize) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, i as i64); // timestamp delta
        varint(&mut body, i as i64); // offset delta
        varint(&mut body, -1); // null key
        varint(&mut body, value_len as i64);
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, value_len));
        varint(&mut body, 0); // headers
        varint(&mut records, body.len() as i64);
        records.extend(body);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend(0i64.to_be_bytes());
    b.extend((49 + records.len() as i32).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]);
    b.extend(0i16.to_be_bytes());
    b.extend((n - 1).to_be_bytes());
    b.extend(base_ts.to_be_bytes());
    b.extend((base_ts + n as i64 - 1).to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(n.to_be_bytes());
    b.extend(records);
    fix_crc(&mut b);
    b
}

pub(super) fn batch(n: i32) -> Vec<u8> {
    batch_ts(n, 1_000, 10)
}

pub(super) fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn append(log: &mut PartitionLog, batches: &[Vec<u8>], now: i64) -> AppendInfo {
    let blob: Vec<u8> = batches.concat();
    let headers = validate_batches(&blob, u32::MAX).unwrap();
    log.append(BytesMut::from(&blob[..]), &headers, 7, now)
        .unwrap()
}

/// Headers of the whole batches in a fetch response (validating each, CRC included).
fn batches_in(bytes: &[u8]) -> Vec<BatchHeader> {
    if bytes.is_empty() {
        return Vec::new();
    }
    validate_batches(bytes, u32::MAX).unwrap()
}

fn small_config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

pub(super) fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Many batches of varying sizes with a small index interval; every offset must find its batch.
fn check_all_offsets(log: &PartitionLog, expected: &[(i64, i64)]) {
    for &(base, last) in expected {
        for o in base..=last {
            let hs = batches_in(&log.read(o, 1, true).unwrap().bytes);
            assert_eq!(hs.len(), 1, "offset {o}");
            assert_eq!(
                (hs[0].base_offset, hs[0].last_offset()),
                (base, last),
                "offset {o}"
            );
        }
    }
}

fn fill_varied(log: &mut PartitionLog, batches: usize) -> Vec<(i64, i64)> {
    let mut expected = Vec::new();
    for i in 0..batches {
        let n = (i % 4) as i32 + 1;
        let a = append(log, &[batch_ts(n, 1_000 + 10 * i as i64, 5 + i % 30)], 0);
        expected.push((a.base_offset, a.last_offset));
    }
    expected
}
