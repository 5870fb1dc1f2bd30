//! Consumer groups over the wire: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups, DeleteGroups, and committed offsets (OffsetCommit,
//! OffsetFetch). The coordinator itself is [`strata_stream::groups`].

use crate::{Ctx, errors};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use strata_stream::groups::{GroupError, GroupState, JoinRequest};

fn s(value: String) -> StrBytes {
    StrBytes::from_string(value)
}

pub(crate) async fn join(
    ctx: &Ctx,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let request = JoinRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id,
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: req.session_timeout_ms.into(),
        rebalance_timeout_ms: if version == 0 { req.session_timeout_ms } else { req.rebalance_timeout_ms }
            .into(),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata.to_vec())).collect(),
        require_known_member_id: version >= 4,
    };
    let reply = ctx.streams.groups().join(request, ctx.streams.now_ms());
    match reply.wait().await {
        Ok(joined) => JoinGroupResponse::default()
            .with_generation_id(joined.generation)
            .with_protocol_type(Some(s(joined.protocol_type)))
            .with_protocol_name(Some(s(joined.protocol)))
            .with_leader(s(joined.leader))
            .with_member_id(s(joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(instance.map(s))
                            .with_metadata(Bytes::from(metadata))
                    })
                    .collect(),
            ),
        Err(err) => {
            let member_id = match &err {
                GroupError::MemberIdRequired(id) => s(id.clone()),
                _ => req.member_id,
            };
            JoinGroupResponse::default()
                .with_error_code(errors::group_code(&err))
                .with_generation_id(-1)
                .with_member_id(member_id)
                .with_protocol_name(if version >= 7 { None } else { Some(StrBytes::default()) })
        }
    }
}

pub(crate) async fn sync(ctx: &Ctx, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments =
        req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment.to_vec())).collect();
    let reply = ctx.streams.groups().sync(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        assignments,
        ctx.streams.now_ms(),
    );
    match reply.wait().await {
        Ok((protocol_type, protocol, assignment)) => SyncGroupResponse::default()
            .with_protocol_type(Some(s(protocol_type)))
            .with_protocol_name(Some(s(protocol)))
            .with_assignment(Bytes::from(assignment)),
        Err(err) => SyncGroupResponse::default().with_error_code(errors::group_code(&err)),
    }
}

pub(crate) fn heartbeat(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    let result = ctx.streams.groups().heartbeat(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        ctx.streams.now_ms(),
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| errors::group_code(&e)))
}

pub(crate) fn leave(ctx: &Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let ids: Vec<String> = if req.members.is_empty() {
        vec![req.member_id.to_string()]
    } else {
        req.members.iter().map(|m| m.member_id.to_string()).collect()
    };
    let results = ctx.streams.groups().leave(&req.group_id.0, &ids, ctx.streams.now_ms());
    let error = results.iter().find_map(|r| r.as_ref().err()).map_or(0, errors::group_code);
    let members = if req.members.is_empty() {
        Vec::new()
    } else {
        req.members
            .into_iter()
            .zip(&results)
            .map(|(m, r)| {
                MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
                    .with_error_code(r.as_ref().err().map_or(0, errors::group_code))
            })
            .collect()
    };
    let top_error = if members.is_empty() { error } else { 0 };
    LeaveGroupResponse::default().with_error_code(top_error).with_members(members)
}

pub(crate) fn offset_commit(ctx: &Ctx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let check = ctx.streams.groups().check_commit(&group, &req.member_id, req.generation_id_or_member_epoch);
    let mut offsets = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
            offsets.push((topic.name.0.to_string(), p.partition_index, p.committed_offset, metadata));
        }
    }
    let code = match check {
        Err(err) => errors::group_code(&err),
        Ok(()) if offsets.iter().any(|(_, _, _, m)| m.len() > 4096) => {
            ResponseError::OffsetMetadataTooLarge.code()
        }
        Ok(()) => match ctx.streams.commit_offsets(&group, &offsets) {
            Ok(()) => 0,
            Err(err) => errors::stream_code(&err),
        },
    };
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect(),
            )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub(crate) fn offset_fetch(ctx: &Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = req.group_id.0.to_string();
    let wanted: Vec<(String, Vec<i32>)> = match req.topics {
        Some(topics) => topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for ((topic, partition), _) in ctx.streams.group_offsets(&group).unwrap_or_default() {
                match all.iter_mut().find(|(t, _)| *t == topic) {
                    Some((_, partitions)) => partitions.push(partition),
                    None => all.push((topic, vec![partition])),
                }
            }
            all
        }
    };
    let mut top_error = 0;
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|partition| {
                    let response = OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(StrBytes::default()));
                    match ctx.streams.committed(&group, &topic, partition) {
                        Ok(Some(c)) => {
                            response.with_committed_offset(c.offset).with_metadata(Some(s(c.metadata)))
                        }
                        Ok(None) => response,
                        Err(err) => {
                            top_error = errors::stream_code(&err);
                            response.with_error_code(top_error)
                        }
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(TopicName(s(topic))).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics).with_error_code(top_error)
}

pub(crate) fn describe(ctx: &Ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            match ctx.streams.groups().describe(&group_id.0) {
                Some(info) => described
                    .with_group_state(StrBytes::from_static_str(info.state.name()))
                    .with_protocol_type(s(info.protocol_type))
                    .with_protocol_data(s(info.protocol))
                    .with_members(
                        info.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(Bytes::from(m.metadata))
                                    .with_member_assignment(Bytes::from(m.assignment))
                            })
                            .collect(),
                    ),
                None => {
                    let known =
                        ctx.streams.group_names().unwrap_or_default().contains(&group_id.0.to_string());
                    let state = if known { GroupState::Empty.name() } else { "Dead" };
                    let protocol_type = if known { "consumer" } else { "" };
                    described
                        .with_group_state(StrBytes::from_static_str(state))
                        .with_protocol_type(StrBytes::from_static_str(protocol_type))
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) fn list(ctx: &Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let names = match ctx.streams.group_names() {
        Ok(names) => names,
        Err(err) => return ListGroupsResponse::default().with_error_code(errors::stream_code(&err)),
    };
    let groups = names
        .into_iter()
        .filter_map(|name| {
            let (state, protocol_type) = match ctx.streams.groups().describe(&name) {
                Some(info) => (info.state.name(), info.protocol_type),
                None => (GroupState::Empty.name(), "consumer".to_string()),
            };
            let keep = req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.as_str() == state);
            keep.then(|| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(name)))
                    .with_protocol_type(s(protocol_type))
                    .with_group_state(StrBytes::from_static_str(state))
            })
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) fn delete(ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|group| {
            let code = ctx.streams.delete_group(&group.0).err().map_or(0, |e| errors::group_code(&e));
            DeletableGroupResult::default().with_group_id(group).with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
