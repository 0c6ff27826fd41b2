//! Kafka's compact (flexible-version) wire primitives, for the request versions kafka-protocol 0.18
//! cannot decode (the `decode` hooks of `APIS`) and their client-side encoders. Bodies reach the
//! hooks only after the pre-walk has checked them against their schema, so lengths here are already
//! bounded by the frame; every read is still checked.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, ensure, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

fn need(buf: &Bytes, n: usize, what: &str) -> Result<()> {
    ensure!(buf.remaining() >= n, "truncated {what}");
    Ok(())
}

pub fn uvarint(buf: &mut Bytes) -> Result<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        need(buf, 1, "varint")?;
        let byte = buf.get_u8();
        value |= ((byte & 0x7f) as u32) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("varint longer than 5 bytes")
}

pub fn int32(buf: &mut Bytes) -> Result<i32> {
    need(buf, 4, "int32")?;
    Ok(buf.get_i32())
}

pub fn boolean(buf: &mut Bytes) -> Result<bool> {
    need(buf, 1, "boolean")?;
    Ok(buf.get_u8() != 0)
}

pub fn uuid(buf: &mut Bytes) -> Result<Uuid> {
    need(buf, 16, "uuid")?;
    let mut raw = [0u8; 16];
    buf.copy_to_slice(&mut raw);
    Ok(Uuid::from_bytes(raw))
}

/// A compact array or string length: `None` for null (a varint 0), else the varint minus one.
pub fn length(buf: &mut Bytes) -> Result<Option<usize>> {
    Ok(match uvarint(buf)? {
        0 => None,
        n => Some(n as usize - 1),
    })
}

pub fn nullable_string(buf: &mut Bytes) -> Result<Option<StrBytes>> {
    let Some(len) = length(buf)? else {
        return Ok(None);
    };
    need(buf, len, "string")?;
    Ok(Some(StrBytes::from_utf8(buf.split_to(len))?))
}

pub fn string(buf: &mut Bytes) -> Result<StrBytes> {
    nullable_string(buf)?.ok_or_else(|| anyhow!("null in a non-nullable string"))
}

/// A nullable compact array of `element`s.
pub fn nullable_array<T>(
    buf: &mut Bytes,
    mut element: impl FnMut(&mut Bytes) -> Result<T>,
) -> Result<Option<Vec<T>>> {
    let Some(len) = length(buf)? else {
        return Ok(None);
    };
    // Every element takes at least one byte, so the remaining bytes bound the allocation.
    ensure!(
        len <= buf.remaining(),
        "array of {len} in {} bytes",
        buf.remaining()
    );
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(element(buf)?);
    }
    Ok(Some(out))
}

pub fn array<T>(buf: &mut Bytes, element: impl FnMut(&mut Bytes) -> Result<T>) -> Result<Vec<T>> {
    nullable_array(buf, element)?.ok_or_else(|| anyhow!("null in a non-nullable array"))
}

/// A tagged-field section, every field kept as unknown (the hooked versions add no known tags).
pub fn tagged_fields(buf: &mut Bytes) -> Result<BTreeMap<i32, Bytes>> {
    let count = uvarint(buf)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let tag = uvarint(buf)?;
        let size = uvarint(buf)? as usize;
        need(buf, size, "tagged field")?;
        out.insert(tag as i32, buf.split_to(size));
    }
    Ok(out)
}

pub fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A compact array or string length (`None`: null).
pub fn put_length(out: &mut BytesMut, len: Option<usize>) -> Result<()> {
    let n = match len {
        None => 0,
        Some(n) => u32::try_from(n + 1).map_err(|_| anyhow!("length {n} too large"))?,
    };
    put_uvarint(out, n);
    Ok(())
}

pub fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) -> Result<()> {
    put_length(out, s.map(str::len))?;
    if let Some(s) = s {
        out.put_slice(s.as_bytes());
    }
    Ok(())
}

pub fn put_string(out: &mut BytesMut, s: &str) -> Result<()> {
    put_nullable_string(out, Some(s))
}

pub fn put_tagged_fields(out: &mut BytesMut, fields: &BTreeMap<i32, Bytes>) {
    put_uvarint(out, fields.len() as u32);
    for (tag, value) in fields {
        put_uvarint(out, *tag as u32);
        put_uvarint(out, value.len() as u32);
        out.put_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = BytesMut::new();
            put_uvarint(&mut out, v);
            let mut buf = out.freeze();
            assert_eq!(uvarint(&mut buf).unwrap(), v);
            assert!(buf.is_empty());
        }
        let mut overlong = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(uvarint(&mut overlong).is_err());
        assert!(uvarint(&mut Bytes::from_static(&[0x80])).is_err());
    }

    #[test]
    fn strings_and_arrays_are_checked_against_the_bytes_left() {
        let mut out = BytesMut::new();
        put_nullable_string(&mut out, None).unwrap();
        put_string(&mut out, "topic").unwrap();
        let mut buf = out.freeze();
        assert_eq!(nullable_string(&mut buf).unwrap(), None);
        assert_eq!(&*string(&mut buf).unwrap(), "topic");
        // A length beyond the body, a null where none is allowed, invalid UTF-8.
        assert!(string(&mut Bytes::from_static(&[10, b'a'])).is_err());
        assert!(string(&mut Bytes::from_static(&[0])).is_err());
        assert!(string(&mut Bytes::from_static(&[2, 0xff])).is_err());
        let huge = &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
        assert!(array(&mut Bytes::from_static(huge), int32).is_err());
    }
}
