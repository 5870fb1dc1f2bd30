//! Produce: every partition of a request is appended concurrently, so one request spanning
//! many partitions costs one group-committed fsync.

use crate::{Ctx, errors};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use strata_stream::Acks;

/// `None` when the producer asked for no answer (acks=0).
pub(crate) async fn produce(ctx: &Ctx, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = match req.acks {
        0 => Acks::None,
        1 => Acks::Written,
        _ => Acks::Durable,
    };
    let transactional = req.transactional_id.is_some();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let appends = topic.partition_data.into_iter().map(|data| {
            let name = name.clone();
            async move {
                let response =
                    PartitionProduceResponse::default().with_index(data.index).with_base_offset(-1);
                let result = match data.records {
                    _ if transactional => Err(ResponseError::TransactionalIdAuthorizationFailed.code()),
                    None => Err(ResponseError::CorruptMessage.code()),
                    Some(records) => ctx
                        .streams
                        .append(&name, data.index, records.to_vec(), acks)
                        .await
                        .map_err(|e| errors::stream_code(&e)),
                };
                match result {
                    Ok(appended) => response
                        .with_base_offset(appended.base_offset)
                        .with_log_start_offset(appended.log_start)
                        .with_log_append_time_ms(appended.log_append_time.unwrap_or(-1)),
                    Err(code) => response.with_error_code(code).with_log_append_time_ms(-1),
                }
            }
        });
        let partitions = join_all(appends).await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(name)))
                .with_partition_responses(partitions),
        );
    }
    (acks != Acks::None).then(|| ProduceResponse::default().with_responses(topics))
}
