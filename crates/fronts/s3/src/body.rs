//! The bounded bridges between async request and response bodies and the blob block's
//! blocking writers and readers: bytes cross a channel of a few chunks, so a transfer of
//! any size holds at most that much in memory, and file I/O stays off the reactor threads.

use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode};
use strata_blob::{BlobError, ObjectReader, SegmentWriter, Written};

/// Chunks in flight between the socket and the disk, each way.
const CHANNEL_CHUNKS: usize = 4;
/// Bytes of an upload gathered before they cross to the writer's thread: each crossing
/// wakes that thread, so one per network read (often 16–64 KiB) cost more than the copy.
const WRITE_BATCH: usize = 256 * 1024;
/// Bytes read from disk per chunk of a response.
const READ_CHUNK: usize = 256 * 1024;

/// Streams `body` through `writer` and returns the finished segment. Bodies no larger than
/// `inline_max` are gathered and finished here, in memory.
pub(crate) async fn write_body(
    mut writer: SegmentWriter,
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    inline_max: usize,
) -> Result<Written, S3Error> {
    let Some(mut body) = body else {
        return spawn(move || writer.finish()).await;
    };
    if content_length.is_some_and(|n| n >= 0 && n as usize <= inline_max) {
        while let Some(chunk) = body.next().await {
            writer.write(&chunk.map_err(read_error)?).map_err(crate::convert::s3_error)?;
        }
        if writer.in_memory() {
            return writer.finish().map_err(crate::convert::s3_error);
        }
        return spawn(move || writer.finish()).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(CHANNEL_CHUNKS);
    let task = tokio::task::spawn_blocking(move || {
        while let Some(batch) = rx.blocking_recv() {
            for chunk in batch {
                writer.write(&chunk)?;
            }
        }
        writer.finish()
    });
    let (mut batch, mut batched) = (Vec::new(), 0);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                // Dropping the sender without finishing: the writer's result is discarded
                // and its temporary file removed.
                drop(tx);
                let _ = task.await;
                return Err(read_error(err));
            }
        };
        batched += chunk.len();
        batch.push(chunk);
        if batched >= WRITE_BATCH {
            batched = 0;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                break; // the writer stopped: its error is below
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await; // a writer that stopped reports its error below
    }
    drop(tx);
    match task.await {
        Ok(result) => result.map_err(crate::convert::s3_error),
        Err(err) => {
            Err(S3Error::with_message(S3ErrorCode::InternalError, format!("the upload task failed: {err}")))
        }
    }
}

fn read_error(err: s3s::StdError) -> S3Error {
    // s3s reports a bad chunk signature of an aws-chunked body as a stream error whose
    // type it does not export ("AwsChunkedStreamError: SignatureMismatch").
    let msg = err.to_string();
    let code = if msg.to_ascii_lowercase().contains("signature") {
        S3ErrorCode::SignatureDoesNotMatch
    } else {
        S3ErrorCode::IncompleteBody
    };
    S3Error::with_message(code, msg)
}

/// Runs blocking block work off the reactor.
pub(crate) async fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, S3Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(crate::convert::s3_error),
        Err(err) => {
            Err(S3Error::with_message(S3ErrorCode::InternalError, format!("a blob task failed: {err}")))
        }
    }
}

/// A response body that streams `reader` from a blocking thread. Small reads are done
/// here at once.
pub(crate) fn read_body(mut reader: ObjectReader) -> StreamingBlob {
    if reader.remaining() <= READ_CHUNK as u64 {
        let chunk = reader.next_chunk(READ_CHUNK).map(|c| Bytes::from(c.unwrap_or_default()));
        return StreamingBlob::wrap(futures::stream::once(async move { chunk }));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        while let Some(result) = reader.next_chunk(READ_CHUNK).transpose() {
            let failed = result.is_err();
            if tx.blocking_send(result.map(Bytes::from)).is_err() || failed {
                return; // the client went away, or the read failed and was reported
            }
        }
    });
    StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(rx))
}
