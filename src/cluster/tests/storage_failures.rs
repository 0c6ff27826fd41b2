//! Storage failures under the `MetadataStore` (the test-only fault hook makes the next writes
//! fail with ENOSPC): the reserve absorbs one, a dead core answers a typed error at once and is
//! restarted from disk with every committed entry, and a restart never publishes an older image.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// Writes `cmd` until the store takes writes again (the supervisor restarts the core), at most
/// 15 s; every failure meanwhile must be the typed storage error.
async fn write_when_back(store: &MetadataStore, cmd: MetadataCommand) -> CommandResult {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.write(cmd.clone()).await {
            Ok(r) => return r,
            Err(ClusterError::StorageUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("metadata writes did not come back: {e}"),
        }
    }
}

async fn expect_unavailable(store: &MetadataStore, cmd: MetadataCommand) {
    let t = Instant::now();
    match store.write(cmd).await {
        Err(ClusterError::StorageUnavailable(cause)) => {
            assert!(cause.contains("No space left on device"), "{cause}")
        }
        other => panic!("expected StorageUnavailable, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic(topic(name, 1))
}

#[tokio::test]
async fn the_reserve_absorbs_one_out_of_space_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    assert!(store.reserve_held());
    store.fail_next_storage_writes(1);
    assert_eq!(store.write(create("a")).await.unwrap(), CommandResult::Ok);
    // Released for the retry, then re-created by the supervisor since there is room again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.reserve_held() {
        assert!(
            Instant::now() < deadline,
            "the reserve was never re-created"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reserve = std::fs::metadata(dir.path().join("raft/reserve")).unwrap();
    assert_eq!(reserve.len(), RaftTuning::default().reserve_bytes);
    assert_eq!(store.write(create("b")).await.unwrap(), CommandResult::Ok);
    assert_eq!(store.image().topics.len(), 2);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_write_is_typed_and_writes_come_back_without_restarting_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    populate(&store).await;
    let ids = store
        .write(MetadataCommand::AllocateProducerIds { count: 10 })
        .await
        .unwrap();
    assert_eq!(
        ids,
        CommandResult::ProducerIds {
            first: 0,
            count: 10
        }
    );
    let before = store.image();
    let mut images = store.subscribe();

    // The write and its retry after releasing the reserve both fail: the core stops.
    store.fail_next_storage_writes(2);
    expect_unavailable(&store, create("lost")).await;
    assert!(!store.image().topics.contains_key("lost"));

    // Same MetadataStore, same subscription: the restarted core has every committed entry.
    let first = write_when_back(&store, MetadataCommand::AllocateProducerIds { count: 5 }).await;
    assert_eq!(
        first,
        CommandResult::ProducerIds {
            first: 10,
            count: 5
        }
    );
    assert_eq!(
        store.write(create("t0")).await.unwrap(),
        CommandResult::TopicAlreadyExists
    );
    let delete = MetadataCommand::DeleteTopic { name: "t1".into() };
    assert_eq!(
        store.write(delete).await.unwrap(),
        CommandResult::UnknownTopic
    );
    assert_eq!(
        store.write(create("after")).await.unwrap(),
        CommandResult::Ok
    );
    let after = store.image();
    assert_eq!(after.topics.len(), before.topics.len() + 1);
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.controller_id, 1);
    assert!(images.has_changed().unwrap());
    assert_eq!(images.borrow_and_update().topics, after.topics);
    assert!(store.reserve_held(), "the reserve was not re-created");
    store.shutdown().await.unwrap();

    // And a cold restart reads the same state.
    let store = start_timed(config(dir.path()), RaftTuning::default(), "restart").await;
    assert_eq!(store.image().topics, after.topics);
    assert_eq!(store.image().next_producer_id, 15);
    store.shutdown().await.unwrap();
}

/// Topics in the image of the snapshot file under `dir`.
fn snapshot_topics(dir: &Path) -> usize {
    let bytes = super::super::durable::read_atomic(&dir.join("raft/snapshot"))
        .unwrap()
        .expect("a snapshot");
    let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    file["image"]["topics"].as_object().unwrap().len()
}

#[tokio::test]
async fn a_restarted_core_never_publishes_an_older_image() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_logs_since_last: 20,
        logs_to_keep_after_snapshot: 0,
        ..RaftTuning::default()
    };
    let store = start_timed(config(dir.path()), tuning.clone(), "fresh").await;
    for i in 0..25 {
        assert_eq!(
            store.write(create(&format!("s{i}"))).await.unwrap(),
            CommandResult::Ok
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::exists(dir.path().join("raft/purged")).unwrap() {
        assert!(Instant::now() < deadline, "no snapshot was built");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..3 {
        let cmd = create(&format!("tail{i}"));
        assert_eq!(store.write(cmd).await.unwrap(), CommandResult::Ok);
    }
    let published = store.image().topics.len();
    assert!(
        snapshot_topics(dir.path()) < published,
        "the snapshot must be older than the image for this test to mean anything"
    );

    // Every image the broker sees from here on.
    let mut images = store.subscribe();
    let seen = tokio::spawn(async move {
        let mut fewest = usize::MAX;
        while images.changed().await.is_ok() {
            fewest = fewest.min(images.borrow_and_update().topics.len());
        }
        fewest
    });
    store.fail_next_storage_writes(2);
    expect_unavailable(&store, create("lost")).await;
    assert_eq!(
        write_when_back(&store, create("back")).await,
        CommandResult::Ok
    );
    assert_eq!(store.image().topics.len(), published + 1);
    store.shutdown().await.unwrap();
    drop(store);
    let fewest = tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .expect("the image channel never closed")
        .unwrap();
    assert!(
        fewest >= published,
        "an image with {fewest} topics was published after one with {published}"
    );
}

/// The deterministic half of the test above: a state machine reopened on a publisher that has
/// published a newer image (a Raft restart) does not publish its snapshot's older image.
#[tokio::test]
async fn a_reopened_state_machine_does_not_publish_its_older_snapshot() {
    use super::super::reserve::Reserve;
    use super::super::state_machine::{Publisher, StateMachineStore};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), snapshot_tuning(), "fresh").await;
    populate(&store).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::exists(dir.path().join("raft/snapshot")).unwrap() {
        assert!(Instant::now() < deadline, "no snapshot was built");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.shutdown().await.unwrap();

    // As if the image of a later entry had been published before the restart.
    let mut newer = MetadataImage::empty();
    newer.topics.insert("later".into(), topic("later", 1));
    let later = openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 1_000_000);
    let publisher = Arc::new(Publisher::new());
    publisher.publish(&newer, Some(later));
    let rx = publisher.subscribe();
    let raft_dir = dir.path().join("raft");
    let reserve = Arc::new(Reserve::open(&raft_dir, 0));
    let _sm = StateMachineStore::open(&raft_dir, publisher.clone(), reserve).unwrap();
    assert!(
        !rx.has_changed().unwrap(),
        "the older snapshot image was published"
    );
    assert_eq!(rx.borrow().topics, newer.topics);
}

#[tokio::test]
async fn a_store_whose_storage_stays_broken_answers_at_once_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_timed(config(dir.path()), RaftTuning::default(), "fresh").await;
    // Every write fails, the supervisor's probes included.
    store.fail_next_storage_writes(u32::MAX);
    expect_unavailable(&store, create("a")).await;
    for _ in 0..3 {
        expect_unavailable(&store, create("b")).await;
    }
    tokio::time::timeout(Duration::from_secs(10), store.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    match store.write(create("c")).await {
        Err(ClusterError::Raft(m)) => assert!(m.contains("shut down"), "{m}"),
        other => panic!("write after shutdown: {other:?}"),
    }
}
