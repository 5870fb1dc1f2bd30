//! The APIs rskafka does not speak — the consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup, DescribeGroups, ListGroups) and topic
//! configs (IncrementalAlterConfigs, AlterConfigs, DescribeConfigs) — through a small
//! client on `kafka-protocol`'s encoder, at the versions librdkafka and kafka-python use
//! (JoinGroup v5 with MEMBER_ID_REQUIRED). kcat and kafka-python run the same flows in
//! `scripts/kafka-clients.sh`.

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use strata_core::{Options, Store, SystemClock};
use strata_stream::{StreamOptions, Streams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Conn {
    socket: TcpStream,
    correlation: AtomicI32,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> Conn {
        Conn { socket: TcpStream::connect(addr).await.unwrap(), correlation: AtomicI32::new(1) }
    }

    async fn call<Req: Encodable + HeaderVersion, Resp: Decodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: Req,
    ) -> Resp {
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("group-test")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, Req::header_version(version)).unwrap();
        request.encode(&mut buf, version).unwrap();
        self.socket.write_all(&(buf.len() as i32).to_be_bytes()).await.unwrap();
        self.socket.write_all(&buf).await.unwrap();
        let len = self.socket.read_i32().await.unwrap();
        let mut body = vec![0; len as usize];
        self.socket.read_exact(&mut body).await.unwrap();
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, Resp::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = Resp::decode(&mut body, version).unwrap();
        assert!(!body.has_remaining(), "the whole response decodes");
        response
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn join_request(member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("billing")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from_static(b"orders")),
        ])
}

/// A member's first join: refused with MEMBER_ID_REQUIRED (79) and the id to use.
async fn member_id(conn: &mut Conn) -> String {
    let first: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 5, join_request("")).await;
    assert_eq!(first.error_code, 79);
    first.member_id.to_string()
}

fn commit(generation: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s("billing")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("orders")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

/// A broker on a fresh data directory (dropped with the returned guard) with a 4-partition
/// topic `orders`.
async fn broker(group_initial_delay_ms: i64) -> (tempfile::TempDir, std::net::SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core"), Options::default()).unwrap();
    let mut options = StreamOptions::new(dir.path().join("stream"));
    options.group_initial_delay_ms = group_initial_delay_ms;
    let streams = Streams::open(store, Arc::new(SystemClock), options).unwrap();
    streams.create_topic("orders", Some(4), &[]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(strata_kafka::serve(
        listener,
        streams,
        strata_kafka::KafkaConfig::default(),
        std::future::pending(),
    ));
    (dir, addr)
}

async fn describe_config(conn: &mut Conn, name: &str) -> String {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("orders"))
            .with_configuration_keys(Some(vec![s(name)])),
    ]);
    let response: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 1, request).await;
    response.results[0].configs[0].value.as_ref().unwrap().to_string()
}

#[tokio::test]
async fn topic_configs_change_and_describe() {
    let (_dir, addr) = broker(100).await;
    let mut conn = Conn::open(addr).await;
    assert_eq!(describe_config(&mut conn, "retention.ms").await, "604800000");
    let set = |op: i8, value: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(op)
                        .with_value(value.map(s)),
                ]),
        ])
    };
    let changed: IncrementalAlterConfigsResponse =
        conn.call(ApiKey::IncrementalAlterConfigs, 0, set(0, Some("60000"))).await;
    assert_eq!(changed.responses[0].error_code, 0);
    assert_eq!(describe_config(&mut conn, "retention.ms").await, "60000");
    let bad: IncrementalAlterConfigsResponse =
        conn.call(ApiKey::IncrementalAlterConfigs, 0, set(0, Some("soon"))).await;
    assert_eq!(bad.responses[0].error_code, 40, "INVALID_CONFIG");
    let reset: IncrementalAlterConfigsResponse =
        conn.call(ApiKey::IncrementalAlterConfigs, 0, set(1, None)).await;
    assert_eq!(reset.responses[0].error_code, 0);
    assert_eq!(describe_config(&mut conn, "retention.ms").await, "604800000");
    let replace = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("orders"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact"))),
            ]),
    ]);
    let replaced: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, 1, replace).await;
    assert_eq!(replaced.responses[0].error_code, 0);
    assert_eq!(describe_config(&mut conn, "cleanup.policy").await, "compact");

    let grow = |count| {
        CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s("orders")))
                .with_count(count),
        ])
    };
    let grown: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 1, grow(6)).await;
    assert_eq!(grown.results[0].error_code, 0);
    let shrink: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 1, grow(2)).await;
    assert_eq!(shrink.results[0].error_code, 37, "INVALID_PARTITIONS");
    let metadata: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            9,
            MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("orders")))),
            ])),
        )
        .await;
    assert_eq!(metadata.topics[0].partitions.len(), 6);
}

#[tokio::test]
async fn two_members_share_a_group_commit_offsets_and_rebalance_when_one_leaves() {
    let (_dir, addr) = broker(100).await;
    let (mut a, mut b) = (Conn::open(addr).await, Conn::open(addr).await);
    let coordinator: FindCoordinatorResponse =
        a.call(ApiKey::FindCoordinator, 2, FindCoordinatorRequest::default().with_key(s("billing"))).await;
    assert_eq!((coordinator.error_code, coordinator.port), (0, i32::from(addr.port())));
    let (id_a, id_b) = (member_id(&mut a).await, member_id(&mut b).await);
    let (ja, jb): (JoinGroupResponse, JoinGroupResponse) = tokio::join!(
        a.call(ApiKey::JoinGroup, 5, join_request(&id_a)),
        b.call(ApiKey::JoinGroup, 5, join_request(&id_b))
    );
    assert_eq!((ja.error_code, jb.error_code), (0, 0));
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1), "both joined one generation");
    assert_eq!(ja.leader, jb.leader);
    let (leader, follower, leader_id, follower_id) = if ja.leader.as_str() == id_a {
        (&mut a, &mut b, id_a.clone(), id_b.clone())
    } else {
        (&mut b, &mut a, id_b.clone(), id_a.clone())
    };
    let members = if ja.leader.as_str() == id_a { &ja.members } else { &jb.members };
    assert_eq!(members.len(), 2, "the leader sees every member and its metadata");
    assert!(members.iter().all(|m| m.metadata.as_ref() == b"orders"));

    let sync = |member: &str, assignments: Vec<(String, &'static [u8])>| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("billing")))
            .with_generation_id(1)
            .with_member_id(s(member))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(bytes::Bytes::from_static(a))
                    })
                    .collect(),
            )
    };
    let leader_sync = sync(&leader_id, vec![(leader_id.clone(), b"p0,p1"), (follower_id.clone(), b"p2,p3")]);
    let follower_sync = sync(&follower_id, vec![]);
    let (fs, ls): (SyncGroupResponse, SyncGroupResponse) = tokio::join!(
        follower.call(ApiKey::SyncGroup, 3, follower_sync),
        leader.call(ApiKey::SyncGroup, 3, leader_sync)
    );
    assert_eq!((ls.assignment.as_ref(), fs.assignment.as_ref()), (&b"p0,p1"[..], &b"p2,p3"[..]));

    let heartbeat = |member: &str, generation| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("billing")))
            .with_generation_id(generation)
            .with_member_id(s(member))
    };
    let hb: HeartbeatResponse = follower.call(ApiKey::Heartbeat, 3, heartbeat(&follower_id, 1)).await;
    assert_eq!(hb.error_code, 0);
    let stale: HeartbeatResponse = follower.call(ApiKey::Heartbeat, 3, heartbeat(&follower_id, 7)).await;
    assert_eq!(stale.error_code, 22, "ILLEGAL_GENERATION");

    let committed: OffsetCommitResponse =
        leader.call(ApiKey::OffsetCommit, 7, commit(1, &leader_id, 42)).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let zombie: OffsetCommitResponse = leader.call(ApiKey::OffsetCommit, 7, commit(0, &leader_id, 99)).await;
    assert_eq!(zombie.topics[0].partitions[0].error_code, 22, "a commit from an old generation is fenced");
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(s("billing"))).with_topics(Some(vec![
        offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("orders")))
            .with_partition_indexes(vec![0, 1]),
    ]));
    let fetched: OffsetFetchResponse = follower.call(ApiKey::OffsetFetch, 5, fetch).await;
    let offsets: Vec<i64> = fetched.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    assert_eq!(offsets, vec![42, -1]);

    // The follower leaves: the leader learns it from its heartbeat and rejoins alone.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("billing")))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s(&follower_id))]);
    let left: LeaveGroupResponse = follower.call(ApiKey::LeaveGroup, 3, leave).await;
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));
    let hb: HeartbeatResponse = leader.call(ApiKey::Heartbeat, 3, heartbeat(&leader_id, 1)).await;
    assert_eq!(hb.error_code, 27, "REBALANCE_IN_PROGRESS");
    let rejoined: JoinGroupResponse = leader.call(ApiKey::JoinGroup, 5, join_request(&leader_id)).await;
    assert_eq!((rejoined.generation_id, rejoined.members.len()), (2, 1));

    let described: DescribeGroupsResponse = leader
        .call(
            ApiKey::DescribeGroups,
            3,
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("billing"))]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!(
        (group.group_state.as_str(), group.protocol_data.as_str(), group.members.len()),
        ("CompletingRebalance", "range", 1)
    );
    let listed: ListGroupsResponse = leader.call(ApiKey::ListGroups, 3, ListGroupsRequest::default()).await;
    assert!(listed.groups.iter().any(|g| g.group_id.as_str() == "billing"));
}
