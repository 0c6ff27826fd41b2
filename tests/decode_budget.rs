//! The pre-walk's decoded-size estimate is an upper bound of what kafka-protocol really allocates,
//! measured with a counting allocator on large frames made of the cheapest wire structs (alone in
//! this binary, so no other test's allocations blur the peak).

mod fuzz_support;

use bytes::{BufMut, Bytes, BytesMut};
use fuzz_support::{peak_reset, peak_since, CountingAlloc};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use vltava::server::prewalk::{cost, prewalk};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn header(out: &mut BytesMut, key: i16, version: i16) {
    out.put_i16(key);
    out.put_i16(version);
    out.put_i32(1);
    out.put_i16(-1);
    out.put_u8(0);
}

/// CreateTopics v5: one topic with `n` configs of one-letter names and null values.
fn create_topics(n: u32) -> Bytes {
    let mut f = BytesMut::new();
    header(&mut f, 19, 5);
    uvarint(&mut f, 2);
    uvarint(&mut f, 2);
    f.put_u8(b't');
    f.put_i32(1);
    f.put_i16(1);
    uvarint(&mut f, 1);
    uvarint(&mut f, n + 1);
    for _ in 0..n {
        f.put_slice(&[2, b'c', 0, 0]);
    }
    f.put_u8(0);
    f.put_i32(1000);
    f.put_u8(0);
    f.put_u8(0);
    f.freeze()
}

/// DeleteTopics v5: `n` one-letter topic names.
fn delete_topics(n: u32) -> Bytes {
    let mut f = BytesMut::new();
    header(&mut f, 20, 5);
    uvarint(&mut f, n + 1);
    for _ in 0..n {
        f.put_slice(&[2, b'x']);
    }
    f.put_i32(1000);
    f.put_u8(0);
    f.freeze()
}

/// Metadata v12: `n` topics by null name and id.
fn metadata(n: u32) -> Bytes {
    let mut f = BytesMut::new();
    header(&mut f, 3, 12);
    uvarint(&mut f, n + 1);
    for i in 0..n {
        f.put_u128(u128::from(i) + 1);
        f.put_u8(0);
        f.put_u8(0);
    }
    f.put_u8(1);
    f.put_u8(0);
    f.put_u8(0);
    f.freeze()
}

#[test]
fn estimates_bound_real_decoding() {
    for (what, frame) in [
        ("CreateTopics v5 configs", create_topics(40_000)),
        ("DeleteTopics v5 names", delete_topics(200_000)),
        ("Metadata v12 topics", metadata(100_000)),
    ] {
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).unwrap();
        let walked = prewalk(&frame, key, version, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(walked.consumed, frame.len(), "{what}");
        let mut buf = frame.clone();
        let base = peak_reset();
        RequestHeader::decode(&mut buf, 2).unwrap();
        let decoded = RequestKind::decode(api, &mut buf, version).unwrap();
        let used = peak_since(base);
        drop(decoded);
        eprintln!(
            "{what}: {} wire bytes, estimate {}, allocated {used}",
            frame.len(),
            walked.decoded_estimate
        );
        assert!(used <= walked.decoded_estimate, "{what}: {used} > estimate");
        assert!(walked.decoded_estimate <= cost::budget(frame.len()));
    }
}
