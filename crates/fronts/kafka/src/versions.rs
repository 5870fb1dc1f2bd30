//! The API versions this broker speaks: the range each handler implements, intersected with
//! what the `kafka-protocol` crate can decode. Current kcat/librdkafka, kafka-python and
//! rskafka all negotiate inside these ranges.

use kafka_protocol::messages::ApiKey;

/// (api, min, max) implemented here.
const IMPLEMENTED: [(ApiKey, i16, i16); 22] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 0, 8),
    (ApiKey::OffsetFetch, 0, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
];

/// The versions of `api` this broker accepts, or `None` when it does not serve that API.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    let (_, min, max) = IMPLEMENTED.iter().find(|(key, _, _)| *key == api)?;
    let crate_range = api.valid_versions();
    let (min, max) = ((*min).max(crate_range.min), (*max).min(crate_range.max));
    (min <= max).then_some((min, max))
}

/// Every (api key, min, max) for ApiVersions.
pub fn all() -> impl Iterator<Item = (i16, i16, i16)> {
    IMPLEMENTED.iter().filter_map(|(api, _, _)| supported(*api).map(|(min, max)| (*api as i16, min, max)))
}
