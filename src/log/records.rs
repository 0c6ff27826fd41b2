//! Looking inside a record batch, for what needs single records (ListOffsets by timestamp and max
//! timestamp, the compaction cleaner, the key check of compacted topics): bounded decompression and an
//! allocation-free walk of record headers. Fetches and appends to other topics never come here.

use std::io::Read;

use super::batch::BatchHeader;
use super::error::BatchError;

/// Offset and timestamp of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub offset: i64,
    pub timestamp: i64,
}

/// xerial snappy-java framing, used by the Java client (librdkafka writes it too).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// Decompresses a batch's records section, failing rather than producing more than `limit` bytes:
/// a small compressed batch may expand enormously (a decompression bomb).
pub fn decompress_bounded(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let too_big =
        || BatchError::InvalidRecord(format!("batch decompresses to more than {limit} bytes"));
    let corrupt = |e: std::io::Error| BatchError::Corrupt(format!("cannot decompress batch: {e}"));
    let read_bounded = |mut r: Box<dyn Read + '_>| -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::new();
        r.by_ref()
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(corrupt)?;
        if out.len() > limit {
            return Err(too_big());
        }
        Ok(out)
    };
    match codec {
        0 => Ok(data.to_vec()),
        1 => read_bounded(Box::new(flate2::read::GzDecoder::new(data))),
        2 => snappy_bounded(data, limit),
        3 => read_bounded(Box::new(lz4::Decoder::new(data).map_err(corrupt)?)),
        4 => {
            let mut decoder = zstd::stream::read::Decoder::new(data).map_err(corrupt)?;
            // The frame header chooses the window the decoder allocates: never more than the output
            // may hold, but at least what zstd's levels up to 19 declare (2^23).
            let needed = usize::BITS - limit.leading_zeros() + 1;
            decoder
                .window_log_max(needed.clamp(23, 27))
                .map_err(corrupt)?;
            read_bounded(Box::new(decoder))
        }
        other => Err(BatchError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

/// Compresses a records section with a batch codec, in the framing Kafka's own clients write
/// (xerial for snappy, an LZ4 frame of independent blocks).
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, BatchError> {
    use std::io::Write;
    let failed = |e: std::io::Error| BatchError::Corrupt(format!("cannot compress batch: {e}"));
    match codec {
        0 => Ok(data.to_vec()),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(failed)?;
            e.finish().map_err(failed)
        }
        2 => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(32 * 1024) {
                let block = encoder
                    .compress_vec(chunk)
                    .map_err(|e| BatchError::Corrupt(format!("snappy: {e}")))?;
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        3 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(failed)?;
            e.write_all(data).map_err(failed)?;
            let (out, result) = e.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        4 => zstd::encode_all(data, 3).map_err(failed),
        other => Err(BatchError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

fn snappy_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let block = |raw: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let len = snap::raw::decompress_len(raw)
            .map_err(|e| BatchError::Corrupt(format!("snappy: {e}")))?;
        // The block states its decompressed size up front: check it before allocating.
        if out.len() + len > limit {
            return Err(BatchError::InvalidRecord(format!(
                "batch decompresses to more than {limit} bytes"
            )));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut out[start..])
            .map_err(|e| BatchError::Corrupt(format!("snappy: {e}")))?;
        Ok(())
    };
    let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC) else {
        block(data, &mut out)?;
        return Ok(out);
    };
    // Header: magic, then version and compatible version (4 bytes each); then [length i32][block]*.
    rest = rest
        .get(8..)
        .ok_or_else(|| BatchError::Corrupt("short xerial snappy header".into()))?;
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| BatchError::Corrupt("short xerial snappy block".into()))?;
        let raw = rest
            .get(4..4 + len)
            .ok_or_else(|| BatchError::Corrupt("short xerial snappy block".into()))?;
        block(raw, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// The decompressed records section of one v2 batch (`batch` holds exactly that batch), at most `limit` bytes.
pub fn records_section(batch: &[u8], limit: usize) -> Result<(BatchHeader, Vec<u8>), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let body = batch
        .get(BatchHeader::SIZE..header.total_size())
        .ok_or_else(|| BatchError::Corrupt("batch shorter than its length".into()))?;
    let payload = decompress_bounded(header.compression(), body, limit)?;
    Ok((header, payload))
}

/// One record of a records section, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    /// `None`: a null key.
    pub key: Option<&'a [u8]>,
    /// The value is null: a tombstone, for compaction.
    pub tombstone: bool,
    /// The record's whole encoding (length prefix included), valid in any batch with the same base
    /// offset and base timestamp.
    pub raw: &'a [u8],
}

/// Walks the records of a records section (`payload`, decompressed) without allocating. With
/// LogAppendTime every record carries the batch's max timestamp.
pub fn for_each_record<'a>(
    header: &BatchHeader,
    payload: &'a [u8],
    mut f: impl FnMut(RecordView<'a>),
) -> Result<(), BatchError> {
    let log_append_time = header.timestamp_type() == super::TimestampType::LogAppendTime;
    let corrupt = |what: &str| BatchError::Corrupt(format!("record {what} past its length"));
    let mut pos = 0usize;
    let mut seen = 0usize;
    // Bounded by the records actually present, never by the header's (client-supplied) count.
    while pos < payload.len() && seen < header.records_count.max(0) as usize {
        let start = pos;
        let len = read_varint(payload, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= payload.len())
            .ok_or_else(|| BatchError::Corrupt("record length past the batch".into()))?;
        pos += 1; // attributes
        let ts_delta = read_varint(payload, &mut pos)?;
        let offset_delta = read_varint(payload, &mut pos)?;
        let key_len = read_varint(payload, &mut pos)?;
        let key = match usize::try_from(key_len) {
            Ok(n) => {
                let k = payload
                    .get(pos..pos.saturating_add(n))
                    .filter(|_| pos + n <= end)
                    .ok_or_else(|| corrupt("key"))?;
                pos += n;
                Some(k)
            }
            Err(_) => None,
        };
        let value_len = read_varint(payload, &mut pos)?;
        if pos > end {
            return Err(corrupt("header"));
        }
        f(RecordView {
            offset: header.base_offset + offset_delta,
            timestamp: if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.saturating_add(ts_delta)
            },
            key,
            tombstone: value_len < 0,
            raw: &payload[start..end],
        });
        seen += 1;
        pos = end;
    }
    Ok(())
}

/// Kafka's rule for compacted topics: every record has a key. Returns the index, within its batch,
/// of each record of the batches in `records` (validated, concatenated) that has none, as Kafka's
/// `LogValidator` reports them (KIP-467 `batchIndex`). Decompresses each batch up to `limit` bytes.
pub fn keyless_records(records: &[u8], limit: usize) -> Result<Vec<i32>, BatchError> {
    let mut pos = 0usize;
    let mut keyless = Vec::new();
    while pos < records.len() {
        let header = BatchHeader::parse(&records[pos..])?;
        let end = pos + header.total_size();
        let batch = records
            .get(pos..end)
            .ok_or_else(|| BatchError::Corrupt("batch shorter than its length".into()))?;
        let (header, payload) = records_section(batch, limit)?;
        let mut index = 0i32;
        for_each_record(&header, &payload, |r| {
            if r.key.is_none() {
                keyless.push(index);
            }
            index = index.saturating_add(1);
        })?;
        pos = end;
    }
    Ok(keyless)
}

/// The offset and timestamp of every record in one v2 batch (`batch` holds exactly that batch),
/// decompressing at most `limit` bytes.
pub fn record_metas(batch: &[u8], limit: usize) -> Result<Vec<RecordMeta>, BatchError> {
    let (header, payload) = records_section(batch, limit)?;
    let mut out = Vec::new();
    for_each_record(&header, &payload, |r| {
        out.push(RecordMeta {
            offset: r.offset,
            timestamp: r.timestamp,
        })
    })?;
    Ok(out)
}

/// A zigzag varint/varlong as Kafka records encode them.
fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| BatchError::Corrupt("truncated varint".into()))?;
        *pos += 1;
        value |= ((byte & 0x7f) as u64) << shift.min(63);
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("varint longer than 10 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{encode_batch, plain_record};
    use bytes::Bytes;
    use kafka_protocol::records::*;

    fn encoded(timestamps: &[i64], compression: Compression) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                partition_leader_epoch: 0,
                ..plain_record(
                    100 + i as i64,
                    *ts,
                    Some(Bytes::from(vec![b'k'; 50])),
                    Some(Bytes::from(vec![b'v'; 500])),
                )
            })
            .collect();
        encode_batch(&records, compression).unwrap().freeze()
    }

    #[test]
    fn finds_every_record_with_each_codec() {
        let ts = [1000, 5000, 2000, 3000];
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let metas = record_metas(&encoded(&ts, c), 1 << 20).unwrap();
            let got: Vec<(i64, i64)> = metas.iter().map(|m| (m.offset, m.timestamp)).collect();
            assert_eq!(
                got,
                vec![(100, 1000), (101, 5000), (102, 2000), (103, 3000)],
                "{c:?}"
            );
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let ts = vec![1; 200]; // ~110 KB of records that compress very well
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encoded(&ts, c);
            assert!(batch.len() < 20_000, "{c:?} compresses");
            let err = record_metas(&batch, 50_000).unwrap_err();
            assert!(matches!(err, BatchError::InvalidRecord(_)), "{c:?}: {err}");
        }
    }

    #[test]
    fn bombs_are_refused_without_inflating() {
        use std::io::Write;
        let zeros = vec![0u8; 64 << 20];
        let gzip = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&zeros).unwrap();
            e.finish().unwrap()
        };
        let zstd = zstd::encode_all(&zeros[..], 19).unwrap();
        let lz4 = {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            e.write_all(&zeros).unwrap();
            e.finish().0
        };
        let snappy = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        drop(zeros);
        for (codec, data) in [(1, gzip), (4, zstd), (3, lz4), (2, snappy)] {
            assert!(data.len() < 4 << 20, "codec {codec}: {} bytes", data.len());
            let result = decompress_bounded(codec, &data, 1 << 20);
            assert!(
                matches!(result, Err(BatchError::InvalidRecord(_))),
                "codec {codec}: {result:?}"
            );
        }
        // A raw snappy block that claims 4 GiB in six bytes.
        let liar = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(decompress_bounded(2, &liar, 1 << 20).is_err());
        assert!(decompress_bounded(7, &[], 10).is_err());
        assert!(decompress_bounded(1, b"not gzip", 10).is_err());
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        let mut batch = encoded(&[1, 2], Compression::None).to_vec();
        for b in &mut batch[BatchHeader::SIZE..] {
            *b = 0xff;
        }
        assert!(record_metas(&batch, 1 << 20).is_err());
        let mut batch = encoded(&[1, 2], Compression::Zstd).to_vec();
        let n = batch.len();
        batch[BatchHeader::SIZE..n].fill(0x11);
        assert!(record_metas(&batch, 1 << 20).is_err());
    }
}
