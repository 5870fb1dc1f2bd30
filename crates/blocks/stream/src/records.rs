//! Records inside batches, for the parts of the block that look at them (offset lookup by
//! time, compaction, replay, views): decoding through `kafka-protocol`, which handles every
//! compression codec, and encoding new batches for the block's own appends.

use crate::StreamError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One record of a stream, as replay and views see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A record to append through [`crate::Streams::append_records`].
#[derive(Clone, Debug, Default)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the epoch; `None` takes the block's clock.
    pub timestamp: Option<i64>,
}

/// Decodes every batch in `bytes` into its records (control batches are skipped).
pub(crate) fn decode(bytes: Vec<u8>) -> Result<Vec<Record>, StreamError> {
    let mut buf = Bytes::from(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| StreamError::Corrupt(format!("record batch: {e}")))?;
    Ok(sets.into_iter().flat_map(|set| set.records).filter(|r| !r.control).collect())
}

pub(crate) fn to_stream_record(record: Record) -> StreamRecord {
    StreamRecord {
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// Encodes records with their offsets into one uncompressed batch.
pub(crate) fn encode(records: &[Record]) -> Result<Vec<u8>, StreamError> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .map_err(|e| StreamError::Corrupt(format!("encoding a record batch: {e}")))?;
    Ok(buf.to_vec())
}

pub(crate) fn new_batch(records: &[NewRecord], now_ms: i64) -> Result<Vec<u8>, StreamError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // No producer sequence: the batch's base sequence is -1, and the encoder keeps
            // records in one batch only while offset - sequence stays constant.
            sequence: i as i32 - 1,
            timestamp: r.timestamp.unwrap_or(now_ms),
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone().into(), Some(Bytes::from(v.clone()))))
                .collect(),
        })
        .collect();
    encode(&records)
}
