//! Fetch (long-polling on the block's durable-append signal, never spinning) and
//! ListOffsets (earliest, latest, by timestamp, max timestamp).

use crate::{Ctx, errors};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse};
use std::time::Duration;
use strata_stream::OffsetQuery;

pub(crate) async fn fetch(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis((req.max_wait_ms.max(0) as u64).min(ctx.config.max_wait_ms));
    let deadline = tokio::time::Instant::now() + wait;
    let mut progress = ctx.streams.subscribe();
    loop {
        progress.borrow_and_update();
        let (responses, bytes, errors) = read_all(ctx, &req);
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= req.min_bytes.max(1) as usize || errors || expired {
            return FetchResponse::default().with_responses(responses);
        }
        tokio::select! {
            changed = progress.changed() => if changed.is_err() { return FetchResponse::default().with_responses(responses) },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass over the requested partitions: (responses, record bytes, any error).
fn read_all(ctx: &Ctx, req: &FetchRequest) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut budget = req.max_bytes.max(0) as usize;
    if budget == 0 {
        budget = usize::MAX;
    }
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let response = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()));
            // The first partition with data always gets one whole batch, even past the limits.
            let limit = (p.partition_max_bytes.max(1) as usize).min(budget.saturating_sub(total).max(1));
            let read = ctx.streams.read(name, p.partition, p.fetch_offset, limit).and_then(|fetched| {
                let records = match &fetched.records {
                    Some(slice) if total == 0 || slice.len <= budget.saturating_sub(total) => {
                        Some(slice.read()?)
                    }
                    _ => None,
                };
                Ok((fetched, records))
            });
            let response = match read {
                Ok((fetched, records)) => {
                    total += records.as_ref().map_or(0, Vec::len);
                    response
                        .with_high_watermark(fetched.high_watermark)
                        .with_last_stable_offset(fetched.high_watermark)
                        .with_log_start_offset(fetched.log_start)
                        .with_records(Some(records.map(Bytes::from).unwrap_or_default()))
                }
                Err(err) => {
                    any_error = true;
                    response.with_error_code(errors::stream_code(&err))
                }
            };
            partitions.push(response);
        }
        responses.push(
            FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions),
        );
    }
    (responses, total, any_error)
}

pub(crate) fn list_offsets(ctx: &Ctx, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // Leader epochs exist from v4 on; an older answer must leave the field at its default.
    let epoch = if version >= 4 { 0 } else { -1 };
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let query = match p.timestamp {
                        -1 => Some(OffsetQuery::Latest),
                        -2 => Some(OffsetQuery::Earliest),
                        -3 => Some(OffsetQuery::MaxTimestamp),
                        ts if ts >= 0 => Some(OffsetQuery::Time(ts)),
                        _ => None,
                    };
                    let response =
                        ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let Some(query) = query else {
                        return response
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_offset(-1)
                            .with_timestamp(-1);
                    };
                    match ctx.streams.list_offset(&name, p.partition_index, query) {
                        Ok((offset, timestamp)) => {
                            response.with_offset(offset).with_timestamp(timestamp).with_leader_epoch(epoch)
                        }
                        Err(err) => response
                            .with_error_code(errors::stream_code(&err))
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
