//! The metadata state machine: applies committed commands to a `MetadataImage`, publishes
//! each new image on a watch channel, and builds/installs/persists snapshots.
//!
//! Durability comes from snapshots, not from the live image: on start-up the latest snapshot
//! (`<data_dir>/raft/snapshot`) is loaded and openraft replays the log after it. When the
//! `MetadataStore` reopens a state machine on the same publisher (a Raft restart), the images of
//! that replay which are older than the one already published are not published again.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable::{atomic_write, read_atomic};
use super::image::{CommandResult, MetadataImage};
use super::reserve::Reserve;
use super::types::{
    LogEntry, LogId, SnapshotData, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "snapshot";

/// Publishes applied images, stamped with the current controller (Raft leader) id.
pub(crate) struct Publisher {
    tx: watch::Sender<Arc<MetadataImage>>,
    controller: AtomicI32,
    /// Index of the last log entry the published image contains (`None`: none yet).
    applied: Mutex<Option<u64>>,
}

impl Publisher {
    pub(crate) fn new() -> Publisher {
        let (tx, _) = watch::channel(Arc::new(MetadataImage::empty()));
        Publisher {
            tx,
            controller: AtomicI32::new(-1),
            applied: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.tx.subscribe()
    }

    /// Publish a freshly applied image that contains the log up to `applied`. An image older
    /// than the one published (a restarted state machine replaying its log) is not published:
    /// the broker would take its missing topics for deleted ones. Applied entries are committed,
    /// so the replay reaches the published index again with the same image. The controller id is
    /// read inside the channel's write lock so a concurrent `set_controller` can never be
    /// overwritten with a stale value.
    pub(super) fn publish(&self, image: &MetadataImage, applied: Option<LogId>) {
        let index = applied.map(|l| l.index);
        let mut published = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if *published > index {
            tracing::debug!(?index, published = ?*published, "not republishing an older image");
            return;
        }
        *published = index;
        self.tx.send_modify(|cur| {
            let mut img = image.clone();
            img.controller_id = self.controller.load(Ordering::SeqCst);
            *cur = Arc::new(img);
        });
    }

    pub(crate) fn set_controller(&self, controller: i32) {
        self.controller.store(controller, Ordering::SeqCst);
        self.tx.send_if_modified(|cur| {
            if cur.controller_id == controller {
                return false;
            }
            Arc::make_mut(cur).controller_id = controller;
            true
        });
    }
}

/// What the snapshot file holds: the Raft snapshot metadata plus the image it describes.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: MetadataImage,
}

struct CurrentSnapshot {
    meta: SnapshotMeta,
    /// The serialized image, as shipped to followers.
    data: Vec<u8>,
}

struct SmInner {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The replicated state; its `controller_id` is never meaningful (see `Publisher`).
    image: MetadataImage,
    snapshot: Option<CurrentSnapshot>,
}

/// The state machine store; clones share state (the clone is also the snapshot builder).
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Mutex<SmInner>>,
    dir: Arc<PathBuf>,
    publisher: Arc<Publisher>,
    reserve: Arc<Reserve>,
}

fn snap_err(meta: Option<&SnapshotMeta>, write: bool, e: impl Into<AnyError>) -> StorageError {
    let sig = meta.map(|m| m.signature());
    if write {
        StorageIOError::write_snapshot(sig, e).into()
    } else {
        StorageIOError::read_snapshot(sig, e).into()
    }
}

impl StateMachineStore {
    /// Load the latest snapshot under `dir` (if any) and publish its image (unless a newer one
    /// is published already). Snapshot writes go through `reserve`.
    pub(crate) fn open(
        dir: &Path,
        publisher: Arc<Publisher>,
        reserve: Arc<Reserve>,
    ) -> io::Result<StateMachineStore> {
        let path = dir.join(SNAPSHOT_FILE);
        let mut inner = SmInner {
            last_applied: None,
            membership: StoredMembership::default(),
            image: MetadataImage::empty(),
            snapshot: None,
        };
        if let Some(bytes) = read_atomic(&path)? {
            let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            let data = serde_json::to_vec(&file.image).map_err(io::Error::other)?;
            tracing::info!(last_log_id = ?file.meta.last_log_id, "loaded metadata snapshot");
            inner.last_applied = file.meta.last_log_id;
            inner.membership = file.meta.last_membership.clone();
            inner.image = file.image;
            inner.snapshot = Some(CurrentSnapshot {
                meta: file.meta,
                data,
            });
        }
        publisher.publish(&inner.image, inner.last_applied);
        Ok(StateMachineStore {
            inner: Arc::new(Mutex::new(inner)),
            dir: Arc::new(dir.to_path_buf()),
            publisher,
            reserve,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SmInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persist `image` as the current snapshot and return the serialized image. Called with
    /// the state lock held so concurrent build/install never race on the file.
    fn persist(&self, meta: &SnapshotMeta, image: &MetadataImage) -> io::Result<Vec<u8>> {
        let file = SnapshotFile {
            meta: meta.clone(),
            image: image.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        let path = self.dir.join(SNAPSHOT_FILE);
        self.reserve
            .write("raft snapshot", || atomic_write(&path, &bytes))?;
        serde_json::to_vec(image).map_err(io::Error::other)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let mut inner = self.lock();
        let snapshot_id = match inner.last_applied {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id,
                l.index,
                uuid::Uuid::new_v4().simple()
            ),
            None => format!("none-{}", uuid::Uuid::new_v4().simple()),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id,
        };
        let data = self
            .persist(&meta, &inner.image)
            .map_err(|e| snap_err(Some(&meta), true, AnyError::error(e)))?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "built metadata snapshot");
        inner.snapshot = Some(CurrentSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut results = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let res = match entry.payload {
                EntryPayload::Blank => CommandResult::Ok,
                EntryPayload::Normal(cmd) => inner.image.apply_at(cmd, entry.log_id.index),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResult::Ok
                }
            };
            results.push(res);
        }
        if !results.is_empty() {
            // Published before apply() returns, so a client_write response is only seen after
            // the image that contains its effect is visible.
            self.publisher.publish(&inner.image, inner.last_applied);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| snap_err(Some(meta), false, &e))?;
        let mut inner = self.lock();
        let data = self
            .persist(meta, &image)
            .map_err(|e| snap_err(Some(meta), true, AnyError::error(e)))?;
        tracing::info!(last_log_id = ?meta.last_log_id, "installed metadata snapshot");
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.image = image;
        inner.snapshot = Some(CurrentSnapshot {
            meta: meta.clone(),
            data,
        });
        self.publisher.publish(&inner.image, inner.last_applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let inner = self.lock();
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
