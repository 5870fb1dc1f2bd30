//! The consumer group coordinator: Kafka's classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) as a state machine per group, held in memory — membership is
//! soft state that clients rebuild by rejoining; committed offsets are durable and live in
//! core (see [`crate::Streams::commit_offsets`]).
//!
//! A rebalance starts when a member joins or leaves, or stops heart-beating for its session
//! timeout. It completes once every known member has rejoined, or at the rebalance deadline
//! (members that did not rejoin are dropped). A group that was empty waits a short initial
//! delay so that members starting together land in one generation. The leader then computes
//! the assignment client-side and hands it over in SyncGroup, which the others wait on.
//! [`Groups::tick`] drives the clocks; it must be called periodically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// How a group operation failed, in the protocol's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupError {
    UnknownMember,
    IllegalGeneration,
    RebalanceInProgress,
    /// First join of a client that must learn its member id and join again with it.
    MemberIdRequired(String),
    InconsistentProtocol,
    InvalidSessionTimeout,
    /// DeleteGroups on a group with members.
    NotEmpty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocol_type: String,
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Clients of JoinGroup v4 and later learn their id from a first, refused join.
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug)]
pub struct JoinResponse {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members (id, instance id, metadata).
    pub members: Vec<(String, Option<String>, Vec<u8>)>,
}

pub type JoinResult = Result<JoinResponse, GroupError>;
pub type SyncResult = Result<(String, String, Vec<u8>), GroupError>;

/// A join or sync either answers now or once the rebalance gets there.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl<T: From<GroupError>> Reply<T> {
    pub async fn wait(self) -> T {
        match self {
            Reply::Now(value) => value,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| T::from(GroupError::RebalanceInProgress)),
        }
    }
}

impl From<GroupError> for JoinResult {
    fn from(err: GroupError) -> Self {
        Err(err)
    }
}

impl From<GroupError> for SyncResult {
    fn from(err: GroupError) -> Self {
        Err(err)
    }
}

#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct GroupInfo {
    pub name: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberInfo>,
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i64,
    rebalance_timeout_ms: i64,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    last_seen_ms: i64,
    join: Option<oneshot::Sender<JoinResult>>,
    sync: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn waiting_to_join(&self) -> bool {
        self.join.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    fn waiting(&self) -> bool {
        self.waiting_to_join() || self.sync.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out by a MemberIdRequired refusal, not yet joined.
    promised: HashSet<String>,
    /// A rebalance in progress completes by this time at the latest.
    rebalance_deadline_ms: i64,
    /// ... and not before this one (the initial delay of a group that was empty).
    rebalance_not_before_ms: i64,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: None,
            members: BTreeMap::new(),
            promised: HashSet::new(),
            rebalance_deadline_ms: 0,
            rebalance_not_before_ms: 0,
        }
    }

    fn start_rebalance(&mut self, now_ms: i64, initial_delay_ms: i64) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        if self.state == GroupState::Empty {
            self.rebalance_not_before_ms = now_ms + initial_delay_ms;
        } else {
            self.rebalance_not_before_ms = now_ms;
        }
        self.rebalance_deadline_ms = now_ms + timeout.max(initial_delay_ms);
        for member in self.members.values_mut() {
            if let Some(tx) = member.sync.take() {
                let _ = tx.send(Err(GroupError::RebalanceInProgress));
            }
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// A protocol every member supports, in the leader's order of preference.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .cloned()
    }

    fn try_complete_join(&mut self, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_in = self.members.values().all(Member::waiting_to_join);
        let deadline = now_ms >= self.rebalance_deadline_ms;
        if !(deadline || (all_in && now_ms >= self.rebalance_not_before_ms)) {
            return;
        }
        self.members.retain(|_, m| m.waiting_to_join());
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol.clear();
            return;
        }
        self.protocol = self.choose_protocol().unwrap_or_default();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().expect("a member leads");
        let members: Vec<_> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.group_instance_id.clone(), m.metadata(&self.protocol)))
            .collect();
        for (id, member) in &mut self.members {
            member.assignment.clear();
            member.last_seen_ms = now_ms;
            let Some(tx) = member.join.take() else { continue };
            let _ = tx.send(Ok(JoinResponse {
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                leader: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader { members.clone() } else { Vec::new() },
            }));
        }
        self.state = GroupState::CompletingRebalance;
    }

    fn remove_member(&mut self, id: &str, now_ms: i64) {
        if self.members.remove(id).is_none() {
            return;
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.leader = None;
        } else {
            self.start_rebalance(now_ms, 0);
            self.try_complete_join(now_ms);
        }
    }

    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }
}

pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
    initial_delay_ms: i64,
}

/// Session timeouts a member may ask for.
pub const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i64> = 100..=1_800_000;

impl Groups {
    pub fn new(initial_delay_ms: i64) -> Groups {
        Groups { groups: Mutex::new(HashMap::new()), next_member: AtomicU64::new(1), initial_delay_ms }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().expect("groups lock")
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{client_id}-{n}-{:08x}", nanos as u32)
    }

    pub fn join(&self, req: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
            return Reply::Now(Err(GroupError::InvalidSessionTimeout));
        }
        if req.protocols.is_empty() {
            return Reply::Now(Err(GroupError::InconsistentProtocol));
        }
        let mut groups = self.lock();
        let group = groups.entry(req.group.clone()).or_insert_with(Group::new);
        if !group.members.is_empty() {
            let shares = req.protocols.iter().any(|(name, _)| {
                group
                    .members
                    .iter()
                    .filter(|(id, _)| **id != req.member_id)
                    .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == name))
            });
            if group.protocol_type != req.protocol_type || !shares {
                return Reply::Now(Err(GroupError::InconsistentProtocol));
            }
        }
        let member_id = if req.member_id.is_empty() {
            let id = self.new_member_id(&req.client_id);
            if req.require_known_member_id {
                group.promised.insert(id.clone());
                return Reply::Now(Err(GroupError::MemberIdRequired(id)));
            }
            id
        } else if group.members.contains_key(&req.member_id) || group.promised.remove(&req.member_id) {
            req.member_id.clone()
        } else {
            return Reply::Now(Err(GroupError::UnknownMember));
        };
        group.protocol_type = req.protocol_type.clone();
        let (tx, rx) = oneshot::channel();
        let member = group.members.entry(member_id).or_insert_with(|| Member {
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: Vec::new(),
            assignment: Vec::new(),
            last_seen_ms: now_ms,
            join: None,
            sync: None,
        });
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(req.session_timeout_ms);
        member.last_seen_ms = now_ms;
        member.join = Some(tx);
        group.start_rebalance(now_ms, self.initial_delay_ms);
        group.try_complete_join(now_ms);
        Reply::Later(rx)
    }

    pub fn sync(
        &self,
        group_name: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Vec<u8>)>,
        now_ms: i64,
    ) -> Reply<SyncResult> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else {
            return Reply::Now(Err(GroupError::UnknownMember));
        };
        if let Err(err) = group.check_member(member_id, generation) {
            return Reply::Now(Err(err));
        }
        let answer = |group: &Group, id: &str| -> SyncResult {
            Ok((group.protocol_type.clone(), group.protocol.clone(), group.members[id].assignment.clone()))
        };
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                Reply::Now(Err(GroupError::RebalanceInProgress))
            }
            GroupState::Stable => {
                group.members.get_mut(member_id).expect("checked").last_seen_ms = now_ms;
                Reply::Now(answer(group, member_id))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = group.members.get_mut(member_id).expect("checked");
                member.last_seen_ms = now_ms;
                member.sync = Some(tx);
                if group.leader.as_deref() == Some(member_id) {
                    for (id, assignment) in assignments {
                        if let Some(member) = group.members.get_mut(&id) {
                            member.assignment = assignment;
                        }
                    }
                    group.state = GroupState::Stable;
                    let ids: Vec<String> = group.members.keys().cloned().collect();
                    for id in ids {
                        let reply = answer(group, &id);
                        if let Some(tx) = group.members.get_mut(&id).and_then(|m| m.sync.take()) {
                            let _ = tx.send(reply);
                        }
                    }
                }
                Reply::Later(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_name: &str,
        generation: i32,
        member_id: &str,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let mut groups = self.lock();
        let group = groups.get_mut(group_name).ok_or(GroupError::UnknownMember)?;
        group.check_member(member_id, generation)?;
        group.members.get_mut(member_id).expect("checked").last_seen_ms = now_ms;
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes members; answers per member id.
    pub fn leave(&self, group_name: &str, member_ids: &[String], now_ms: i64) -> Vec<Result<(), GroupError>> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else {
            return member_ids.iter().map(|_| Err(GroupError::UnknownMember)).collect();
        };
        member_ids
            .iter()
            .map(|id| {
                if !group.members.contains_key(id) {
                    return Err(GroupError::UnknownMember);
                }
                group.remove_member(id, now_ms);
                Ok(())
            })
            .collect()
    }

    /// Whether a member of this generation may commit offsets; a generation below zero is a
    /// commit from outside group management, allowed when the group has no members.
    pub fn check_commit(&self, group_name: &str, member_id: &str, generation: i32) -> Result<(), GroupError> {
        let groups = self.lock();
        let Some(group) = groups.get(group_name) else {
            return if generation < 0 { Ok(()) } else { Err(GroupError::IllegalGeneration) };
        };
        if generation < 0 {
            return if group.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMember) };
        }
        group.check_member(member_id, generation)?;
        if group.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Expires silent members and completes rebalances whose time has come.
    pub fn tick(&self, now_ms: i64) {
        let mut groups = self.lock();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| !m.waiting() && now_ms - m.last_seen_ms > m.session_timeout_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(member = %id, "consumer group member missed its session timeout");
                group.remove_member(&id, now_ms);
            }
            group.try_complete_join(now_ms);
        }
    }

    pub fn describe(&self, group_name: &str) -> Option<GroupInfo> {
        let groups = self.lock();
        let group = groups.get(group_name)?;
        Some(GroupInfo {
            name: group_name.to_string(),
            state: group.state,
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberInfo {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(&group.protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Forgets an empty group's membership state.
    pub fn delete(&self, group_name: &str) -> Result<(), GroupError> {
        let mut groups = self.lock();
        if groups.get(group_name).is_some_and(|g| !g.members.is_empty()) {
            return Err(GroupError::NotEmpty);
        }
        groups.remove(group_name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_req(member: &str) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), b"meta".to_vec())],
            require_known_member_id: true,
        }
    }

    fn id_of(reply: Reply<JoinResult>) -> String {
        match reply {
            Reply::Now(Err(GroupError::MemberIdRequired(id))) => id,
            _ => panic!("expected MemberIdRequired"),
        }
    }

    #[tokio::test]
    async fn two_members_join_sync_and_rebalance_when_one_goes_silent() {
        let groups = Groups::new(100);
        let a = id_of(groups.join(join_req(""), 0));
        let b = id_of(groups.join(join_req(""), 0));
        let ja = groups.join(join_req(&a), 0);
        let jb = groups.join(join_req(&b), 10);
        groups.tick(50);
        groups.tick(100);
        let (ra, rb) = (ja.wait().await.unwrap(), jb.wait().await.unwrap());
        assert_eq!((ra.generation, rb.generation), (1, 1));
        let leader = ra.leader.clone();
        assert_eq!(ra.members.len() + rb.members.len(), 2, "only the leader sees the members");
        let follower = if leader == a { &b } else { &a };
        let waiting = groups.sync("g", 1, follower, vec![], 110);
        let assignments = vec![(a.clone(), b"for-a".to_vec()), (b.clone(), b"for-b".to_vec())];
        let led = groups.sync("g", 1, &leader, assignments, 120).wait().await.unwrap();
        let followed = waiting.wait().await.unwrap();
        assert_eq!(led.2, if leader == a { b"for-a".to_vec() } else { b"for-b".to_vec() });
        assert_ne!(led.2, followed.2);
        assert_eq!(groups.describe("g").unwrap().state, GroupState::Stable);

        groups.heartbeat("g", 1, &leader, 1500).unwrap();
        groups.tick(1500);
        assert_eq!(groups.heartbeat("g", 1, &leader, 1600), Err(GroupError::RebalanceInProgress));
        let rejoin = groups.join(join_req(&leader), 1600).wait().await.unwrap();
        assert_eq!((rejoin.generation, rejoin.members.len()), (2, 1));
        assert_eq!(groups.heartbeat("g", 1, &leader, 1700), Err(GroupError::IllegalGeneration));
        assert_eq!(groups.heartbeat("g", 2, follower, 1700), Err(GroupError::UnknownMember));
    }

    #[test]
    fn leaving_the_last_member_empties_the_group() {
        let groups = Groups::new(0);
        let a = id_of(groups.join(join_req(""), 0));
        drop(groups.join(join_req(&a), 0));
        assert_eq!(groups.leave("g", std::slice::from_ref(&a), 1), vec![Ok(())]);
        assert_eq!(groups.describe("g").unwrap().state, GroupState::Empty);
        assert!(groups.check_commit("g", "", -1).is_ok());
        assert!(groups.delete("g").is_ok());
    }
}
