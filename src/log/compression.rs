//! Bounded decompression of record-batch payloads: a decompression bomb gets an error, not an OOM.
//!
//! Today the broker never looks inside a batch: produce validation, the producer-state rebuild and
//! fetch read only the 61-byte v2 header, and batches are stored and served as the client compressed
//! them. Anything that will look inside (compaction, transaction markers, down-conversion) must use
//! this module rather than kafka-protocol's `RecordBatchDecoder`, whose decompressors size their output
//! from the input (snappy reserves the length a block claims, up to 4 GiB; gzip, lz4 and zstd read to
//! the end). Here every codec streams into a buffer that is refused as soon as it would pass `limit`.

use std::io::Read;

use super::batch::BatchHeader;

/// Why a payload could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("corrupt {codec} data: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
}

/// Kafka's codec ids (batch attribute bits 0-2).
pub const NONE: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

/// The xerial snappy-java stream header Kafka's Java client writes before snappy blocks.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: usize = 16;

/// Largest zstd window accepted (Kafka's own decoder uses zstd's default limit, 2^27).
const ZSTD_MAX_WINDOW_LOG: u32 = 27;
/// Smallest window limit: what zstd's levels up to 19 use for large inputs.
const ZSTD_MIN_WINDOW_LOG: u32 = 23;

fn corrupt(codec: &'static str, e: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        codec,
        reason: e.to_string(),
    }
}

/// Reads at most `limit` bytes from a decoder; one byte more means the data is too large.
fn read_bounded(
    codec: &'static str,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// Decompresses `data` written with Kafka codec `codec`, producing at most `limit` bytes.
pub fn decompress_bounded(
    codec: u8,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    match codec {
        NONE => read_bounded("uncompressed", data, limit),
        GZIP => read_bounded("gzip", flate2::read::MultiGzDecoder::new(data), limit),
        SNAPPY => snappy(data, limit),
        LZ4 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| corrupt("lz4", e))?;
            read_bounded("lz4", decoder, limit)
        }
        ZSTD => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt("zstd", e))?;
            // A window beyond what the output can fill is never needed, but encoders declare their
            // level's default (2^21-2^23) regardless of the content size.
            let needed = usize::BITS - limit.leading_zeros() + 1;
            decoder
                .window_log_max(needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG))
                .map_err(|e| corrupt("zstd", e))?;
            read_bounded("zstd", decoder, limit)
        }
        other => Err(DecompressError::UnknownCodec(other)),
    }
}

/// Snappy, raw or in xerial blocks; each block's claimed length is checked before it is decompressed.
fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let append = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt("snappy", e))?;
        if out.len().saturating_add(len) > limit {
            return Err(DecompressError::TooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt("snappy", e))?;
        out.truncate(start + n);
        Ok(())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        append(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(XERIAL_HEADER..).unwrap_or(&[]);
    while !rest.is_empty() {
        let size = rest
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("snappy", "truncated xerial block length"))?;
        let block = rest
            .get(4..4 + size)
            .ok_or_else(|| corrupt("snappy", "truncated xerial block"))?;
        append(block, &mut out)?;
        rest = &rest[4 + size..];
    }
    Ok(out)
}

/// The records of one whole v2 batch, decompressed, at most `limit` bytes.
pub fn batch_records(batch: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let header = BatchHeader::parse(batch).map_err(|e| corrupt("batch", e))?;
    let payload = batch
        .get(BatchHeader::SIZE..)
        .ok_or_else(|| corrupt("batch", "shorter than its header"))?;
    decompress_bounded(header.compression(), payload, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::*;

    fn encoded(compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32 - 1,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}-").repeat(20))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn every_kafka_codec_round_trips() {
        let plain = encoded(Compression::None);
        let expected = &plain[BatchHeader::SIZE..];
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encoded(c);
            assert!(batch.len() < plain.len(), "{c:?} did not compress");
            let records = batch_records(&batch, 1 << 20).unwrap();
            assert_eq!(records, expected, "{c:?}");
            // One byte short of the real size is refused.
            let short = batch_records(&batch, expected.len() - 1);
            assert!(
                matches!(short, Err(DecompressError::TooLarge { .. })),
                "{c:?}: {short:?}"
            );
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
        for (codec, data) in [(GZIP, gzip), (ZSTD, zstd), (LZ4, lz4), (SNAPPY, snappy)] {
            assert!(data.len() < 4 << 20, "codec {codec}: {} bytes", data.len());
            let result = decompress_bounded(codec, &data, 1 << 20);
            assert!(
                matches!(result, Err(DecompressError::TooLarge { limit }) if limit == 1 << 20),
                "codec {codec}: {result:?}"
            );
        }
        // A raw snappy block that claims 4 GiB in a handful of bytes.
        let liar = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(matches!(
            decompress_bounded(SNAPPY, &liar, 1 << 20),
            Err(DecompressError::TooLarge { .. })
        ));
        assert!(decompress_bounded(7, &[], 10).is_err());
        assert!(decompress_bounded(GZIP, b"not gzip", 10).is_err());
    }
}
