//! ApiVersions, Metadata (with topic auto-creation) and FindCoordinator: this broker is
//! node 0, leader of every partition and coordinator of every group.

use crate::{Ctx, errors, versions};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_stream::{StreamError, Topic};

pub(crate) const NODE: BrokerId = BrokerId(0);

pub(crate) fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        versions::all()
            .map(|(key, min, max)| {
                ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max)
            })
            .collect(),
    )
}

pub(crate) fn metadata(ctx: &Ctx, req: MetadataRequest, version: i16) -> MetadataResponse {
    let auto_create = ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(topics.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect()),
    };
    let topics = match requested {
        None => ctx.streams.topics().iter().map(|t| describe_topic(t)).collect(),
        Some(names) => names
            .into_iter()
            .map(|name| {
                let found = match ctx.streams.topic(&name) {
                    Err(StreamError::UnknownTopic(_)) if auto_create => {
                        match ctx.streams.create_topic(&name, Some(ctx.config.default_partitions), &[]) {
                            Err(StreamError::TopicExists(_)) => ctx.streams.topic(&name),
                            other => other,
                        }
                    }
                    other => other,
                };
                match found {
                    Ok(topic) => describe_topic(&topic),
                    Err(err) => MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name))))
                        .with_error_code(errors::stream_code(&err)),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(NODE)
                .with_host(StrBytes::from_string(ctx.host.clone()))
                .with_port(ctx.port),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("strata")))
        .with_controller_id(NODE)
        .with_topics(topics)
}

fn describe_topic(topic: &Topic) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(uuid::Uuid::from_bytes(topic.uuid()))
        .with_partitions(
            topic
                .partitions()
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(NODE)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![NODE])
                        .with_isr_nodes(vec![NODE])
                })
                .collect(),
        )
}

pub(crate) fn find_coordinator(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(ctx.host.clone());
    let transactions = req.key_type == 1;
    let error = if transactions { ResponseError::CoordinatorNotAvailable.code() } else { 0 };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(NODE)
                    .with_host(host.clone())
                    .with_port(ctx.port)
                    .with_error_code(error)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_node_id(NODE)
        .with_host(host)
        .with_port(ctx.port)
}
