//! Kafka record batches (magic 2) as the log stores them: header fields read in place, the
//! offset rewritten on append, the CRC checked — without decoding (or decompressing) the
//! records, which only compaction, views and replay need.
//!
//! Layout of the 61-byte header (all big-endian):
//! `baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32`.
//! The CRC (Castagnoli) covers everything from `attributes` to the end of the batch, so the
//! base offset and the leader epoch can be rewritten without recomputing it.

use crate::StreamError;

/// Bytes before `batchLength`'s payload starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Size of a magic-2 batch header.
pub const HEADER_LEN: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// The header of one batch, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Length of the whole batch in bytes, header included.
    pub len: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// A control batch (transaction marker) carries no user records.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the header at the start of `bytes`, which must hold at least [`HEADER_LEN`] bytes.
/// Checks the length field and the magic byte, not the CRC.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, StreamError> {
    if bytes.len() < HEADER_LEN {
        return Err(StreamError::Corrupt("record batch shorter than its header".into()));
    }
    let batch_length = i32_at(bytes, 8);
    if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(StreamError::Corrupt(format!("record batch length {batch_length} too small")));
    }
    let magic = bytes[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(StreamError::UnsupportedFormat(magic));
    }
    let header = BatchHeader {
        base_offset: i64_at(bytes, 0),
        len: batch_length as usize + LOG_OVERHEAD,
        attributes: i16_at(bytes, ATTRIBUTES_AT),
        last_offset_delta: i32_at(bytes, 23),
        base_timestamp: i64_at(bytes, 27),
        max_timestamp: i64_at(bytes, 35),
        producer_id: i64_at(bytes, 43),
        producer_epoch: i16_at(bytes, 51),
        base_sequence: i32_at(bytes, 53),
        record_count: i32_at(bytes, 57),
    };
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(StreamError::Corrupt("record batch with a negative record count".into()));
    }
    Ok(header)
}

/// Whether the CRC of the whole batch `bytes` (exactly one batch) matches.
pub fn crc_ok(bytes: &[u8]) -> bool {
    let stored = u32::from_be_bytes(bytes[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes"));
    crc32c::crc32c(&bytes[ATTRIBUTES_AT..]) == stored
}

/// Splits a produce request's record bytes into batches and checks each: whole, magic 2,
/// CRC right, offsets consistent with the record count. Returns the headers.
pub fn validate(bytes: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchHeader>, StreamError> {
    let mut headers = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = parse_header(&bytes[at..])?;
        if header.len > max_batch_bytes {
            return Err(StreamError::TooLarge { len: header.len, limit: max_batch_bytes });
        }
        if at + header.len > bytes.len() {
            return Err(StreamError::Corrupt("record batch cut short".into()));
        }
        let batch = &bytes[at..at + header.len];
        if !crc_ok(batch) {
            return Err(StreamError::Corrupt("record batch CRC mismatch".into()));
        }
        if header.record_count == 0 || header.last_offset_delta + 1 != header.record_count {
            return Err(StreamError::Corrupt(format!(
                "record batch with {} records and last offset delta {}",
                header.record_count, header.last_offset_delta
            )));
        }
        headers.push(header);
        at += header.len;
    }
    if headers.is_empty() {
        return Err(StreamError::Corrupt("no record batch in the request".into()));
    }
    Ok(headers)
}

/// Writes `offset` into the batch at the start of `bytes` (outside the CRC).
pub fn set_base_offset(bytes: &mut [u8], offset: i64) {
    bytes[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// Sets the log-append-time flag and both timestamps, then recomputes the CRC (the
/// attributes and timestamps are inside it).
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let attributes = i16_at(bytes, ATTRIBUTES_AT) | 0x08;
    bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    bytes[27..35].copy_from_slice(&now_ms.to_be_bytes());
    bytes[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    pub(crate) fn encode(n: usize, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // No producer sequence: the batch's base sequence is -1, and the encoder
                // keeps records in one batch only while offset - sequence stays constant.
                sequence: i as i32 - 1,
                timestamp: 1000 + i as i64,
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(vec![b'v'; 100].into()),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
            .unwrap();
        buf.to_vec()
    }

    #[test]
    fn validates_and_reads_headers_of_compressed_batches() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy]
        {
            let mut bytes = encode(3, compression);
            bytes.extend(encode(2, compression));
            let headers = validate(&bytes, 1 << 20).unwrap();
            assert_eq!(headers.len(), 2);
            assert_eq!(headers[0].record_count, 3);
            assert_eq!(headers[0].max_timestamp, 1002);
            assert_eq!(headers[1].last_offset_delta, 1);
        }
    }

    #[test]
    fn rejects_a_flipped_bit_and_a_cut() {
        let mut bytes = encode(3, Compression::None);
        assert!(validate(&bytes[..bytes.len() - 1], 1 << 20).is_err());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(validate(&bytes, 1 << 20), Err(StreamError::Corrupt(_))));
        assert!(matches!(validate(&bytes, 10), Err(StreamError::TooLarge { .. })));
    }

    #[test]
    fn rewriting_the_offset_keeps_the_crc() {
        let mut bytes = encode(3, Compression::None);
        set_base_offset(&mut bytes, 42);
        let header = validate(&bytes, 1 << 20).unwrap()[0];
        assert_eq!((header.base_offset, header.last_offset()), (42, 44));
        set_log_append_time(&mut bytes, 7);
        let header = validate(&bytes, 1 << 20).unwrap()[0];
        assert_eq!(header.max_timestamp, 7);
        assert_ne!(header.attributes & 0x08, 0, "log-append-time flag");
    }
}
