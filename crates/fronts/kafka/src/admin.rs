//! Topic administration (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs) and InitProducerId.

use crate::{Ctx, errors};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use strata_stream::{CONFIG_NAMES, StreamError};

/// DescribeConfigs resource types.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn message(err: &StreamError) -> Option<StrBytes> {
    Some(StrBytes::from_string(err.to_string()))
}

pub(crate) fn create_topics(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let result = CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if topic.replication_factor > 1 {
                return result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "this broker is a single node: replication factor 1",
                    )));
            }
            let partitions = (topic.num_partitions > 0)
                .then_some(topic.num_partitions)
                .or(Some(ctx.config.default_partitions));
            let configs: Vec<(String, String)> = topic
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            let created = if req.validate_only {
                strata_stream::check_topic_name(&name).and_then(|()| {
                    let mut config = ctx.streams.options().defaults.clone();
                    configs.iter().try_for_each(|(k, v)| config.set(k, v))?;
                    match ctx.streams.topic(&name) {
                        Ok(_) => Err(StreamError::TopicExists(name.clone())),
                        Err(_) => Ok(None),
                    }
                })
            } else {
                ctx.streams.create_topic(&name, partitions, &configs).map(Some)
            };
            match created {
                Ok(topic) => {
                    let config =
                        topic.as_ref().map_or_else(|| ctx.streams.options().defaults.clone(), |t| t.config());
                    let described = CONFIG_NAMES
                        .iter()
                        .map(|n| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_static_str(n))
                                .with_value(config.get(n).map(StrBytes::from_string))
                                .with_config_source(SOURCE_TOPIC)
                        })
                        .collect();
                    result
                        .with_topic_id(topic.map_or(uuid::Uuid::nil(), |t| uuid::Uuid::from_bytes(t.uuid())))
                        .with_num_partitions(partitions.unwrap_or(1))
                        .with_replication_factor(1)
                        // Configs are only in the answer from v5 on.
                        .with_configs((version >= 5).then_some(described))
                }
                Err(err) => {
                    result.with_error_code(errors::stream_code(&err)).with_error_message(message(&err))
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub(crate) fn delete_topics(ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let names = req.topic_names.into_iter().chain(req.topics.into_iter().filter_map(|t| t.name));
    let responses = names
        .map(|name| {
            let result = DeletableTopicResult::default().with_name(Some(name.clone()));
            match ctx.streams.delete_topic(&name.0) {
                Ok(()) => result,
                Err(err) => {
                    result.with_error_code(errors::stream_code(&err)).with_error_message(message(&err))
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(crate) fn create_partitions(ctx: &Ctx, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            let outcome = if req.validate_only {
                ctx.streams.topic(&topic.name.0).and_then(|t| {
                    if topic.count > t.partitions().len() as i32 {
                        Ok(())
                    } else {
                        Err(StreamError::InvalidPartitions(format!(
                            "topic already has {} partitions",
                            t.partitions().len()
                        )))
                    }
                })
            } else {
                ctx.streams.create_partitions(&topic.name.0, topic.count)
            };
            match outcome {
                Ok(()) => result,
                Err(err) => {
                    result.with_error_code(errors::stream_code(&err)).with_error_message(message(&err))
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub(crate) fn describe_configs(
    ctx: &Ctx,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let (config, defaults) = match resource.resource_type {
                TOPIC_RESOURCE => match ctx.streams.topic(&resource.resource_name) {
                    Ok(topic) => (topic.config(), ctx.streams.options().defaults.clone()),
                    Err(err) => {
                        return result
                            .with_error_code(errors::stream_code(&err))
                            .with_error_message(message(&err));
                    }
                },
                BROKER_RESOURCE => {
                    (ctx.streams.options().defaults.clone(), ctx.streams.options().defaults.clone())
                }
                _ => {
                    return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(
                        Some(StrBytes::from_static_str("only topic and broker configs are described")),
                    );
                }
            };
            let configs = CONFIG_NAMES
                .iter()
                .filter(|n| wanted(n))
                .map(|name| {
                    let value = config.get(name);
                    let is_default = value == defaults.get(name);
                    let source = if is_default { SOURCE_DEFAULT } else { SOURCE_TOPIC };
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_value(value.map(StrBytes::from_string))
                        .with_is_default(version == 0 && is_default)
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Config changes by name: `None` resets to the default.
type Changes = Vec<(String, Option<String>)>;
/// A Kafka error code with its message.
type Failure = (i16, String);

/// Applies config changes to a topic (`None` resets a name to the default); with
/// `validate_only`, checks them on a copy.
fn change_topic(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), Failure> {
    if resource_type != TOPIC_RESOURCE {
        return Err((ResponseError::InvalidRequest.code(), "only topic configs can be changed".into()));
    }
    let fail = |err: StreamError| (errors::stream_code(&err), err.to_string());
    if validate_only {
        let mut config = ctx.streams.topic(name).map_err(fail)?.config();
        for (key, value) in changes {
            let value =
                match value {
                    Some(v) => v.clone(),
                    None => ctx.streams.options().defaults.get(key).ok_or_else(|| {
                        fail(StreamError::InvalidConfig(format!("unknown topic config {key}")))
                    })?,
                };
            config.set(key, &value).map_err(fail)?;
        }
        return Ok(());
    }
    ctx.streams.alter_config(name, changes).map_err(fail)
}

/// AlterConfigs replaces a topic's whole config: names it does not give go back to defaults.
pub(crate) fn alter_configs(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let responses = req
        .resources
        .into_iter()
        .map(|resource| {
            let mut changes: Vec<(String, Option<String>)> =
                CONFIG_NAMES.iter().map(|n| (n.to_string(), None)).collect();
            for config in &resource.configs {
                let value = config.value.as_ref().map(|v| v.to_string());
                match changes.iter_mut().find(|(n, _)| n == config.name.as_str()) {
                    Some(slot) => slot.1 = value,
                    None => changes.push((config.name.to_string(), value)),
                }
            }
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match change_topic(
                ctx,
                resource.resource_type,
                &resource.resource_name,
                &changes,
                req.validate_only,
            ) {
                Ok(()) => response,
                Err((code, msg)) => {
                    response.with_error_code(code).with_error_message(Some(StrBytes::from_string(msg)))
                }
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET (0) and DELETE (1, back to the default) per name.
pub(crate) fn incremental_alter_configs(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let responses = req
        .resources
        .into_iter()
        .map(|resource| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let changes: Result<Changes, Failure> = resource
                .configs
                .iter()
                .map(|c| match c.config_operation {
                    0 => Ok((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                    1 => Ok((c.name.to_string(), None)),
                    op => Err((
                        ResponseError::InvalidRequest.code(),
                        format!("config operation {op} (APPEND/SUBTRACT) is not supported"),
                    )),
                })
                .collect();
            let outcome = changes.and_then(|changes| {
                change_topic(
                    ctx,
                    resource.resource_type,
                    &resource.resource_name,
                    &changes,
                    req.validate_only,
                )
            });
            match outcome {
                Ok(()) => response,
                Err((code, msg)) => {
                    response.with_error_code(code).with_error_message(Some(StrBytes::from_string(msg)))
                }
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub(crate) fn init_producer_id(ctx: &Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    match ctx.streams.init_producer_id(req.transactional_id.as_ref().map(|t| t.0.as_str())) {
        Ok((id, epoch)) => {
            InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
        }
        Err(err) => InitProducerIdResponse::default()
            .with_error_code(errors::stream_code(&err))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
