//! In-process tests of transactional offset commits: pending until the producer's marker, then
//! committed or dropped; UNSTABLE_OFFSET_COMMIT for require_stable fetches meanwhile; the
//! producer-epoch fence; KIP-447 group checks; replay of pending offsets and markers after a
//! restart; and what expiry and DeleteGroups do with pending offsets.

use super::group::Member;
use super::records::partition_for;
use super::tests::{broker, committed, create_topic, simple_commit};
use super::*;
use crate::broker::Broker;
use crate::group::offsets::OFFSETS_TOPIC;

fn txn(group: &str, producer_id: i64, epoch: i16, partition: i32, offset: i64) -> TxnCommit {
    TxnCommit {
        transactional_id: format!("tx-{producer_id}"),
        group_id: group.into(),
        producer_id,
        producer_epoch: epoch,
        generation: -1,
        member_id: String::new(),
        instance_id: None,
        guard: None,
        topics: vec![(
            "t".into(),
            vec![CommitPartition {
                partition,
                offset,
                leader_epoch: 3,
                metadata: Some("txn".into()),
                retention_ms: None,
            }],
        )],
    }
}

/// The first partition's result of a TxnOffsetCommit.
async fn txn_commit(b: &Broker, req: TxnCommit) -> Result<(), GroupError> {
    let results = b.group.commit_txn_offsets(req).await;
    results[0].1[0].1.clone()
}

/// Writes `producer_id`'s marker on `group`'s offsets partition, as WriteTxnMarkers does, and
/// tells the coordinator (the broker's wiring calls `on_txn_marker` once it is committed).
fn marker(b: &Broker, group: &str, producer_id: i64, epoch: i16, commit: bool) {
    let partition = partition_for(group, b.group.offsets.partition_count());
    let p = b.partitions.get(OFFSETS_TOPIC, partition).unwrap();
    p.append_marker(producer_id, epoch, commit, 0, crate::clock::now_ms())
        .unwrap();
    b.group.on_txn_marker(partition, producer_id, commit);
}

fn stable(b: &Broker, group: &str, partition: i32) -> Result<Option<i64>, GroupError> {
    let fetched = b
        .group
        .fetch_offsets_stable(group, Some(vec![("t".into(), vec![partition])]), true)
        .unwrap();
    fetched[0].1[0].1.clone().map(|c| c.map(|c| c.offset))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_make_their_offsets_visible_aborted_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    txn_commit(&b, txn("g", 7, 0, 0, 10)).await.unwrap();
    assert_eq!(committed(&b, "g", 0), None, "pending until the marker");
    assert_eq!(stable(&b, "g", 0), Err(GroupError::UnstableOffsetCommit));
    assert_eq!(stable(&b, "g", 1), Ok(None), "other partitions are stable");
    marker(&b, "g", 7, 0, true);
    assert_eq!(committed(&b, "g", 0), Some(10));
    assert_eq!(stable(&b, "g", 0), Ok(Some(10)));
    let c = b.group.fetch_offsets("g", None).unwrap()[0].1[0].1.clone();
    let c = c.unwrap();
    assert_eq!((c.leader_epoch, c.metadata.as_str()), (3, "txn"));

    txn_commit(&b, txn("g", 8, 0, 0, 20)).await.unwrap();
    assert_eq!(stable(&b, "g", 0), Err(GroupError::UnstableOffsetCommit));
    assert_eq!(
        committed(&b, "g", 0),
        Some(10),
        "non-stable fetches: last committed"
    );
    marker(&b, "g", 8, 0, false);
    assert_eq!(stable(&b, "g", 0), Ok(Some(10)), "aborted offsets are gone");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_wins_only_over_earlier_commits() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    // Transactional offset first, then a plain commit: the plain one was written later and stays.
    txn_commit(&b, txn("g", 7, 0, 0, 10)).await.unwrap();
    simple_commit(&b, "g", 0, 20).await;
    marker(&b, "g", 7, 0, true);
    assert_eq!(committed(&b, "g", 0), Some(20));
    // A plain commit, then a transactional one: the transaction's is later and wins.
    simple_commit(&b, "g", 1, 5).await;
    txn_commit(&b, txn("g", 7, 0, 1, 30)).await.unwrap();
    marker(&b, "g", 7, 0, true);
    assert_eq!(committed(&b, "g", 1), Some(30));

    // The same outcome when the log is replayed.
    b.shutdown().await;
    drop(b);
    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "g", 0), Some(20));
    assert_eq!(committed(&b, "g", 1), Some(30));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_offsets_and_markers_are_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    simple_commit(&b, "g", 1, 1).await;
    txn_commit(&b, txn("g", 1, 0, 0, 11)).await.unwrap();
    marker(&b, "g", 1, 0, true);
    txn_commit(&b, txn("g", 2, 0, 1, 12)).await.unwrap();
    marker(&b, "g", 2, 0, false);
    txn_commit(&b, txn("g", 3, 0, 0, 13)).await.unwrap();
    // An open transaction of a group that has nothing else.
    txn_commit(&b, txn("only-pending", 4, 0, 0, 14))
        .await
        .unwrap();
    b.shutdown().await;
    drop(b);

    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "g", 0), Some(11), "committed by its marker");
    assert_eq!(
        committed(&b, "g", 1),
        Some(1),
        "aborted: the earlier commit stays"
    );
    assert_eq!(stable(&b, "g", 0), Err(GroupError::UnstableOffsetCommit));
    assert_eq!(stable(&b, "g", 1), Ok(Some(1)));
    assert_eq!(
        stable(&b, "only-pending", 0),
        Err(GroupError::UnstableOffsetCommit)
    );
    // The open transactions end after the restart.
    marker(&b, "g", 3, 0, true);
    marker(&b, "only-pending", 4, 0, false);
    assert_eq!(stable(&b, "g", 0), Ok(Some(13)));
    assert_eq!(stable(&b, "only-pending", 0), Ok(None));
    b.shutdown().await;
    drop(b);

    let b = broker(dir.path()).await;
    assert_eq!(stable(&b, "g", 0), Ok(Some(13)));
    assert_eq!(stable(&b, "only-pending", 0), Ok(None));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_producer_epoch_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    txn_commit(&b, txn("g", 7, 1, 0, 10)).await.unwrap();
    assert_eq!(
        txn_commit(&b, txn("g", 7, 0, 0, 99)).await,
        Err(GroupError::InvalidProducerEpoch)
    );
    assert_eq!(
        GroupError::InvalidProducerEpoch.code(),
        kafka_protocol::error::ResponseError::InvalidProducerEpoch.code()
    );
    // The same epoch again, and a newer one, are taken (the coordinator's batches carry no
    // sequence to be checked, so a second commit is not mistaken for a retry).
    txn_commit(&b, txn("g", 7, 1, 1, 11)).await.unwrap();
    marker(&b, "g", 7, 1, true);
    assert_eq!(
        committed(&b, "g", 0),
        Some(10),
        "the fenced offset never counted"
    );
    assert_eq!(committed(&b, "g", 1), Some(11));
    txn_commit(&b, txn("g", 7, 2, 0, 12)).await.unwrap();
    marker(&b, "g", 7, 2, true);
    assert_eq!(committed(&b, "g", 0), Some(12));
    b.shutdown().await;
}

fn add_member(b: &Broker, group: &str, member: &str, instance: Option<&str>, generation: i32) {
    let mut groups = b.group.lock();
    let g = groups
        .entry(group.to_string())
        .or_insert_with(|| super::group::Group::new(group, 0));
    g.state = GroupState::Stable;
    g.protocol_type = Some("consumer".into());
    g.protocol = Some("range".into());
    g.generation = generation;
    if let Some(i) = instance {
        g.static_members.insert(i.into(), member.into());
    }
    g.members.insert(
        member.into(),
        Member {
            id: member.into(),
            uid: 1,
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: vec![("range".into(), bytes::Bytes::new())],
            assignment: bytes::Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            last_heartbeat: tokio::time::Instant::now(),
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_metadata_of_v3_is_checked_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    let with = |generation: i32, member: &str, instance: Option<&str>| TxnCommit {
        generation,
        member_id: member.into(),
        instance_id: instance.map(String::from),
        ..txn("g", 7, 0, 0, 10)
    };
    // An unknown group with a generation.
    assert_eq!(
        txn_commit(&b, with(3, "m", None)).await,
        Err(GroupError::IllegalGeneration)
    );
    add_member(&b, "g", "m", Some("i"), 3);
    assert_eq!(
        txn_commit(&b, with(2, "m", None)).await,
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        txn_commit(&b, with(3, "x", None)).await,
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        txn_commit(&b, with(3, "x", Some("i"))).await,
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        txn_commit(&b, with(3, "m", Some("other"))).await,
        Err(GroupError::UnknownMemberId)
    );
    // The current member and generation; and v0-2 commits without group metadata, which a
    // non-empty group takes too (unlike OffsetCommit).
    txn_commit(&b, with(3, "m", Some("i"))).await.unwrap();
    txn_commit(&b, with(-1, "", None)).await.unwrap();
    // The group is rebalancing: transactional commits are not refused for that.
    b.group.lock().get_mut("g").unwrap().state = GroupState::CompletingRebalance;
    txn_commit(&b, with(3, "m", Some("i"))).await.unwrap();

    // Unknown topics and partitions, empty group ids and oversized metadata.
    let mut req = txn("g", 7, 0, 0, 10);
    req.topics.push((
        "missing".into(),
        vec![CommitPartition {
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
            retention_ms: None,
        }],
    ));
    req.topics[0].1.push(CommitPartition {
        partition: 9,
        offset: 1,
        leader_epoch: -1,
        metadata: Some("x".repeat(b.group.config.offset_metadata_max_bytes + 1)),
        retention_ms: None,
    });
    let results = b.group.commit_txn_offsets(req).await;
    let find = |t: &str, p: i32| {
        results
            .iter()
            .filter(|(name, _)| name == t)
            .flat_map(|(_, ps)| ps.iter())
            .find(|(i, _)| *i == p)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert_eq!(find("t", 0), Ok(()));
    assert_eq!(find("t", 9), Err(GroupError::UnknownTopicOrPartition));
    assert_eq!(find("missing", 0), Err(GroupError::UnknownTopicOrPartition));
    let mut big = txn("g", 7, 0, 1, 10);
    big.topics[0].1[0].metadata = Some("x".repeat(b.group.config.offset_metadata_max_bytes + 1));
    assert_eq!(
        txn_commit(&b, big).await,
        Err(GroupError::OffsetMetadataTooLarge)
    );
    assert_eq!(
        txn_commit(&b, txn("", 7, 0, 0, 1)).await,
        Err(GroupError::InvalidGroupId)
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_deletion_respect_pending_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    // Expiry keeps an offset a transaction holds, and the group with it.
    simple_commit(&b, "g", 0, 5).await;
    txn_commit(&b, txn("g", 7, 0, 0, 6)).await.unwrap();
    let later = crate::clock::now_ms() + b.group.config.offsets_retention_ms + 1;
    b.group.expire_offsets(later).await;
    assert_eq!(committed(&b, "g", 0), Some(5));
    marker(&b, "g", 7, 0, false);
    b.group.expire_offsets(later).await;
    assert_eq!(committed(&b, "g", 0), None);
    assert!(!b.group.list().iter().any(|g| g.group_id == "g"));

    // DeleteGroups tombstones pending offsets too: a commit marker replayed later finds nothing.
    txn_commit(&b, txn("d", 8, 0, 1, 9)).await.unwrap();
    b.group.delete_group("d").await.unwrap();
    marker(&b, "d", 8, 0, true);
    assert_eq!(committed(&b, "d", 1), None);
    b.shutdown().await;
    drop(b);
    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "d", 1), None);
    assert_eq!(stable(&b, "d", 1), Ok(None));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_arriving_while_the_partition_loads_are_applied_once_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    txn_commit(&b, txn("g", 7, 0, 0, 10)).await.unwrap();
    txn_commit(&b, txn("g", 8, 0, 1, 20)).await.unwrap();
    // The offsets partition of "g" is taken up again at a new leader epoch: loading from now on.
    let partition = partition_for("g", b.group.offsets.partition_count());
    let mut image = (*b.group.image()).clone();
    let info = image.topics.get_mut(OFFSETS_TOPIC).unwrap();
    let p = info
        .partitions
        .iter_mut()
        .find(|p| p.partition == partition)
        .unwrap();
    p.leader_epoch += 100;
    let epoch = p.leader_epoch;
    b.group.shards.on_metadata(&image);
    assert_eq!(
        b.group.shards.status(partition),
        crate::broker::coordinator_shards::ShardStatus::Loading { epoch }
    );
    // Both markers land (in the log, then reported) while the partition is loading: they count
    // once the groups are installed, whether the load's replay or the deferred report applies
    // them (the broker's own metadata follower may restart the load at the real leader epoch,
    // which replays the log again).
    marker(&b, "g", 7, 0, true);
    marker(&b, "g", 8, 0, true);
    assert!(
        b.group.lock()["g"].pending_txn.contains_key(&7),
        "not applied while loading"
    );
    b.group.spawn_load(partition, epoch);
    b.group.wait_loaded().await;
    assert_eq!(stable(&b, "g", 0), Ok(Some(10)));
    assert_eq!(stable(&b, "g", 1), Ok(Some(20)));
    assert!(b.group.book().deferred.is_empty());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_and_topic_deletion_take_pending_offsets_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    // OffsetDelete of a partition only a transaction holds an offset of.
    txn_commit(&b, txn("g", 7, 0, 0, 10)).await.unwrap();
    let results = b
        .group
        .delete_offsets("g", vec![("t".into(), vec![0])])
        .await
        .unwrap();
    assert_eq!(results[0].1[0].1, Ok(()));
    assert_eq!(stable(&b, "g", 0), Ok(None));
    marker(&b, "g", 7, 0, true);
    assert_eq!(committed(&b, "g", 0), None, "nothing left to commit");
    // A deleted topic takes pending offsets of every group with it.
    txn_commit(&b, txn("h", 8, 0, 1, 20)).await.unwrap();
    b.group.on_topic_deleted("t").await;
    assert_eq!(stable(&b, "h", 1), Ok(None));
    b.shutdown().await;
    drop(b);

    // The tombstones are replayed after the pending records: the markers find nothing.
    let b = broker(dir.path()).await;
    assert_eq!(stable(&b, "g", 0), Ok(None));
    assert_eq!(stable(&b, "h", 1), Ok(None));
    marker(&b, "h", 8, 0, true);
    assert_eq!(committed(&b, "h", 1), None);
    b.shutdown().await;
}
