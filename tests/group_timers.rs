//! Timer-driven group behaviour in-process on paused tokio time: session expiry, the rebalance
//! timeout of a sync phase whose leader never syncs, and the initial rebalance delay. Time only moves
//! when every task waits, straight to the next deadline, so these run in milliseconds and each
//! expiry happens exactly when its timer says (the elapsed virtual time is asserted).

mod in_process;

use std::time::Duration;

use bytes::Bytes;
use in_process::{AsyncClient, InProcess};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use vltava::config::Config;

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn start(initial_delay_ms: u64) -> InProcess {
    InProcess::start(Config {
        group_initial_rebalance_delay_ms: initial_delay_ms,
        group_min_session_timeout_ms: 100,
        offsets_topic_num_partitions: 3,
        ..Config::default()
    })
    .await
}

/// JoinGroup v9 with the KIP-394 handshake when `member` is empty: (response, member id).
async fn join(
    c: &mut AsyncClient,
    group: &str,
    member: &str,
    session_ms: i32,
    rebalance_ms: i32,
) -> JoinGroupResponse {
    let send = |member: String| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(rebalance_ms)
            .with_member_id(s(&member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"meta"))])
    };
    let mut member = member.to_string();
    loop {
        let Some(ResponseKind::JoinGroup(r)) =
            c.request(ApiKey::JoinGroup, 9, send(member.clone())).await
        else {
            panic!("JoinGroup")
        };
        if r.error_code != MEMBER_ID_REQUIRED {
            return r;
        }
        member = r.member_id.to_string();
    }
}

async fn sync(
    c: &mut AsyncClient,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    match c.request(ApiKey::SyncGroup, 5, req).await {
        Some(ResponseKind::SyncGroup(r)) => r,
        other => panic!("SyncGroup: {other:?}"),
    }
}

async fn heartbeat(c: &mut AsyncClient, group: &str, generation: i32, member: &str) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    match c.request(ApiKey::Heartbeat, 4, req).await {
        Some(ResponseKind::Heartbeat(r)) => r.error_code,
        other => panic!("Heartbeat: {other:?}"),
    }
}

async fn state(c: &mut AsyncClient, group: &str) -> String {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    match c.request(ApiKey::DescribeGroups, 5, req).await {
        Some(ResponseKind::DescribeGroups(r)) => r.groups[0].group_state.to_string(),
        other => panic!("DescribeGroups: {other:?}"),
    }
}

/// Waits (without moving time: each round trip is I/O) until `group` is in `wanted`.
async fn until_state(c: &mut AsyncClient, group: &str, wanted: &str) {
    while state(c, group).await != wanted {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_a_silent_member_and_rebalances() {
    let broker = start(0).await;
    let mut a = broker.connect().await;
    let ra = join(&mut a, "expiry", "", 30_000, 10_000).await;
    let a_id = ra.member_id.to_string();
    assert_eq!(sync(&mut a, "expiry", 1, &a_id, &[]).await.error_code, 0);

    // B joins with a 500 ms session; its join waits for A to rejoin.
    let mut b = broker.connect().await;
    let b_join = tokio::spawn(async move {
        let r = join(&mut b, "expiry", "", 500, 10_000).await;
        (r, b)
    });
    let mut d = broker.connect().await;
    until_state(&mut d, "expiry", "PreparingRebalance").await;
    assert_eq!(
        heartbeat(&mut a, "expiry", 1, &a_id).await,
        REBALANCE_IN_PROGRESS
    );
    let ra = join(&mut a, "expiry", &a_id, 30_000, 10_000).await;
    let (rb, _b) = b_join.await.unwrap();
    assert_eq!((ra.generation_id, ra.members.len()), (2, 2));
    assert_eq!(rb.generation_id, 2);
    assert_eq!(sync(&mut a, "expiry", 2, &a_id, &[]).await.error_code, 0);

    // B never syncs nor heartbeats. A's rejoin (as leader it rebalances) waits for B's session to
    // expire, 500 ms after B's last sign of life (its join answer), and then A is alone.
    let asked = Instant::now();
    let ra = join(&mut a, "expiry", &a_id, 30_000, 10_000).await;
    let waited = asked.elapsed();
    assert_eq!((ra.error_code, ra.generation_id), (0, 3));
    let members: Vec<&str> = ra.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, vec![a_id.as_str()], "B was expired");
    assert!(
        waited <= Duration::from_millis(500) && waited > Duration::from_millis(400),
        "B expired at its session timeout, not at A's or the rebalance timeout: {waited:?}"
    );
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let broker = start(0).await;
    let mut a = broker.connect().await;
    let ra = join(&mut a, "nosync", "", 10_000, 400).await;
    let a_id = ra.member_id.to_string();
    assert_eq!(sync(&mut a, "nosync", 1, &a_id, &[]).await.error_code, 0);

    // B's join forces generation 2; A rejoins as leader but never sends its SyncGroup.
    let mut b = broker.connect().await;
    let b_join = tokio::spawn(async move {
        let r = join(&mut b, "nosync", "", 10_000, 400).await;
        (r, b)
    });
    let mut d = broker.connect().await;
    until_state(&mut d, "nosync", "PreparingRebalance").await;
    let ra = join(&mut a, "nosync", &a_id, 10_000, 400).await;
    let (rb, mut b) = b_join.await.unwrap();
    let b_id = rb.member_id.to_string();
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));

    // B's SyncGroup waits for the leader's; after the 400 ms rebalance timeout A is removed and B
    // is told to rejoin. Alone, it forms generation 3 and leads it.
    let asked = Instant::now();
    let sb = sync(&mut b, "nosync", 2, &b_id, &[]).await;
    let waited = asked.elapsed();
    assert_eq!(sb.error_code, REBALANCE_IN_PROGRESS);
    assert!(
        waited <= Duration::from_millis(400) && waited > Duration::from_millis(300),
        "the sync phase ended at the rebalance timeout: {waited:?}"
    );
    let rb = join(&mut b, "nosync", &b_id, 10_000, 400).await;
    assert_eq!((rb.error_code, rb.generation_id), (0, 3));
    assert_eq!(rb.leader.as_str(), b_id);
    assert_eq!(
        sync(&mut b, "nosync", 3, &b_id, &[(&b_id, "all")])
            .await
            .error_code,
        0
    );
    assert_eq!(state(&mut d, "nosync").await, "Stable");
    assert_eq!(
        heartbeat(&mut a, "nosync", 2, &a_id).await,
        UNKNOWN_MEMBER_ID
    );
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn initial_rebalance_delay_gathers_members_into_the_first_generation() {
    // Each member arriving inside the delay extends it once more, up to the rebalance timeout.
    let broker = start(3_000).await;
    let started = Instant::now();
    let mut a = broker.connect().await;
    let a_join = tokio::spawn(async move { join(&mut a, "delayed", "", 10_000, 20_000).await });
    let mut d = broker.connect().await;
    until_state(&mut d, "delayed", "PreparingRebalance").await;
    let mut b = broker.connect().await;
    let rb = join(&mut b, "delayed", "", 10_000, 20_000).await;
    let ra = a_join.await.unwrap();
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(
        (ra.generation_id, rb.generation_id),
        (1, 1),
        "one generation for both"
    );
    assert_eq!(
        ra.members.len() + rb.members.len(),
        2,
        "the leader sees both"
    );
    // B joined within the first delay, so the join phase lasted two delays.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(6_000) && took < Duration::from_millis(9_000),
        "two initial delays: {took:?}"
    );
    broker.stop().await;
}
