//! The partitions this broker hosts: opened, recovered and removed to match the metadata image,
//! with the role and leader epoch the image gives them; leadership changes are broadcast.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tracing::{info, warn};
use uuid::Uuid;

use super::dynamic::DynamicConfigs;
use super::partition::{LeadershipChange, Partition, ReplicaState};
use crate::cluster::{MetadataImage, TopicInfo};
use crate::log::{sync_filesystem, FileSync, LogConfig, LogError, PartitionLog};

/// Kafka's per-partition file recording which incarnation of a topic a directory belongs to.
const PARTITION_METADATA: &str = "partition.metadata";

type Key = (String, i32);

/// First wait before opening a partition that failed to open is tried again; doubles per failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Reconciles whose leadership changes a slow subscriber may fall behind by before it must resync
/// from [`PartitionManager::leaderships`].
const LEADERSHIP_BACKLOG: usize = 64;
/// Threads closing logs at shutdown (the work is mostly small file writes).
const CLOSE_THREADS: usize = 16;

/// A partition assigned here whose log could not be opened: it is offline until a retry succeeds.
struct OpenFailure {
    cause: String,
    retry_after: Duration,
    next_try: Instant,
}

pub struct PartitionManager {
    data_dir: PathBuf,
    node_id: i32,
    /// The log defaults of the static config file.
    static_defaults: LogConfig,
    /// The log defaults in force: the static ones with the dynamic broker configs applied.
    defaults: RwLock<LogConfig>,
    /// The dynamic broker configs as the last reconcile saw them (and applied).
    dynamic: Mutex<DynamicConfigs>,
    partitions: RwLock<HashMap<Key, Arc<Partition>>>,
    offline: Mutex<HashMap<Key, OpenFailure>>,
    /// The leadership changes of each reconcile that made some, as one message.
    leadership: broadcast::Sender<Arc<Vec<LeadershipChange>>>,
    /// Topics as the last reconcile saw them (and acted on).
    seen: Mutex<BTreeMap<String, TopicInfo>>,
    reconcile_lock: Mutex<()>,
}

impl PartitionManager {
    pub fn new(data_dir: PathBuf, node_id: i32, defaults: LogConfig) -> Self {
        PartitionManager {
            data_dir,
            node_id,
            static_defaults: defaults.clone(),
            defaults: RwLock::new(defaults),
            dynamic: Mutex::new(DynamicConfigs::default()),
            partitions: RwLock::new(HashMap::new()),
            offline: Mutex::new(HashMap::new()),
            leadership: broadcast::Sender::new(LEADERSHIP_BACKLOG),
            seen: Mutex::new(BTreeMap::new()),
            reconcile_lock: Mutex::new(()),
        }
    }

    /// The log defaults in force (static config, then the dynamic broker configs).
    pub fn defaults(&self) -> LogConfig {
        self.defaults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The log defaults of the static config file alone.
    pub fn static_defaults(&self) -> &LogConfig {
        &self.static_defaults
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(topic.to_string(), partition)).cloned()
    }

    /// The leadership changes every later reconcile applies, one message per reconcile. A
    /// subscriber that lags (`RecvError::Lagged`) resyncs from [`Self::leaderships`].
    pub fn subscribe_leadership(&self) -> broadcast::Receiver<Arc<Vec<LeadershipChange>>> {
        self.leadership.subscribe()
    }

    /// Every hosted partition's leadership as it stands.
    pub fn leaderships(&self) -> Vec<LeadershipChange> {
        self.all()
            .iter()
            .map(|p| p.leadership(&p.state()))
            .collect()
    }

    /// Whether a partition assigned here is offline: its log could not be opened.
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        self.lock_offline()
            .contains_key(&(topic.to_string(), partition))
    }

    /// Whether some partition assigned here is offline (and so worth another reconcile).
    pub fn any_offline(&self) -> bool {
        !self.lock_offline().is_empty()
    }

    fn lock_offline(&self) -> std::sync::MutexGuard<'_, HashMap<Key, OpenFailure>> {
        self.offline.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// The log config of a topic: broker defaults with the topic's overrides.
    pub fn topic_log_config(&self, topic: &TopicInfo) -> Result<LogConfig, LogError> {
        self.defaults()
            .with_overrides(topic.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Makes the hosted partitions match `image`: opens (and recovers) the logs of partitions
    /// assigned here, closes and deletes those of topics that are gone or were re-created, and
    /// applies each partition's role, leader epoch, replicas and ISR. Idempotent; called after
    /// every metadata change. Returns (and broadcasts) the leadership changes it applied.
    pub fn reconcile(&self, image: &MetadataImage) -> Vec<LeadershipChange> {
        let mut changes = Vec::new();
        let _serial = self
            .reconcile_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // New dynamic broker configs change the defaults of every topic: re-apply them all.
        let all_topics = self.apply_dynamic(image);
        // Partitions of topics that are gone, re-created under the same name, or shrunk.
        for (name, old) in seen.iter() {
            let now = image.topics.get(name).filter(|t| t.id == old.id);
            let count = now.map_or(0, |t| t.partitions.len());
            for p in old
                .partitions
                .iter()
                .filter(|p| p.partition as usize >= count)
            {
                let key = (name.clone(), p.partition);
                let removed = {
                    let mut map = self.partitions.write().unwrap_or_else(|p| p.into_inner());
                    map.remove(&key)
                };
                if let Some(removed) = removed {
                    let state = removed.state();
                    if removed.is_leader() {
                        changes.push(LeadershipChange {
                            is_leader: false,
                            ..removed.leadership(&state)
                        });
                    }
                    self.delete_dir(name, p.partition);
                }
                self.lock_offline().remove(&key);
            }
        }
        seen.retain(|name, old| image.topics.get(name).is_some_and(|t| t.id == old.id));
        self.lock_offline().retain(|(topic, index), _| {
            image.topics.get(topic).is_some_and(|t| {
                t.partitions
                    .iter()
                    .any(|p| p.partition == *index && p.replicas.contains(&self.node_id))
            })
        });
        let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let now = Instant::now();
        for topic in image.topics.values() {
            // A topic as it was last time has nothing to do, unless one of its partitions is offline:
            // this keeps a metadata change O(topics), not O(partitions).
            let offline_here = || self.lock_offline().keys().any(|(t, _)| *t == topic.name);
            if !all_topics && seen.get(&topic.name) == Some(topic) && !offline_here() {
                continue;
            }
            seen.insert(topic.name.clone(), topic.clone());
            // Hosted logs follow the topic's configs as they change (AlterConfigs).
            let config = self.topic_log_config(topic);
            for p in &topic.partitions {
                let key = (topic.name.clone(), p.partition);
                let present = {
                    let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
                    map.get(&key).cloned()
                };
                if !p.replicas.contains(&self.node_id) {
                    // A log kept here after the partition moved away serves nothing.
                    if let Some(partition) = present {
                        changes.extend(partition.apply(p, self.node_id));
                    }
                    continue;
                }
                if let Some(partition) = present {
                    changes.extend(partition.apply(p, self.node_id));
                    if let Ok(config) = &config {
                        partition.with_log(|l| {
                            if l.config() != config {
                                l.set_config(config.clone())
                            }
                        });
                    }
                    continue;
                }
                if self
                    .lock_offline()
                    .get(&key)
                    .is_some_and(|f| now < f.next_try)
                {
                    continue;
                }
                let state = ReplicaState::from_image(p, self.node_id);
                match self.open(topic, p.partition, state) {
                    Ok(partition) => {
                        if self.lock_offline().remove(&key).is_some() {
                            info!(topic = %topic.name, partition = p.partition, "partition back online");
                        }
                        changes.push(partition.leadership(&partition.state()));
                        let mut map = self.partitions.write().unwrap_or_else(|p| p.into_inner());
                        map.insert(key, Arc::new(partition));
                    }
                    Err(e) => {
                        let cause = e.to_string();
                        let mut offline = self.lock_offline();
                        let retry_after = offline
                            .get(&key)
                            .map_or(RETRY_FIRST, |f| (f.retry_after * 2).min(RETRY_MAX));
                        let known = offline.get(&key).is_some_and(|f| f.cause == cause);
                        offline.insert(
                            key,
                            OpenFailure {
                                cause: cause.clone(),
                                retry_after,
                                next_try: now + retry_after,
                            },
                        );
                        if !known {
                            let entry = failures.entry(cause).or_insert((0, String::new()));
                            entry.0 += 1;
                            entry.1 = format!("{}-{}", topic.name, p.partition);
                        }
                    }
                }
            }
        }
        // One line per cause, not one per partition: a full descriptor table fails thousands at once.
        for (cause, (count, example)) in failures {
            warn!(partitions = count, example = %example, error = %cause,
                "cannot open partition logs; they stay offline and are retried with back-off");
        }
        if !changes.is_empty() {
            // No subscriber yet (start-up) is not an error: they read `leaderships` first.
            let _ = self.leadership.send(Arc::new(changes.clone()));
        }
        changes
    }

    /// Takes up the dynamic broker configs of `image`; whether they changed since the last call.
    fn apply_dynamic(&self, image: &MetadataImage) -> bool {
        let now = DynamicConfigs::from_image(image, self.node_id);
        let mut last = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        if *last == now {
            return false;
        }
        match now.effective(&self.static_defaults) {
            Ok(config) => {
                info!(cluster = ?now.cluster, broker = ?now.broker, "dynamic broker configs applied");
                *self.defaults.write().unwrap_or_else(|p| p.into_inner()) = config;
            }
            // Validated before they were written; keep the defaults in force if they still fail.
            Err(e) => warn!(error = %e, "cannot apply the dynamic broker configs"),
        }
        *last = now;
        true
    }

    /// Removes partition directories no topic in `image` owns (a delete interrupted by a crash).
    pub fn remove_orphans(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with("-delete") && path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let Some(id) = read_topic_id(&path) else {
                continue;
            };
            let Some((topic, index)) = split_dir_name(name) else {
                continue;
            };
            let owned = image
                .topics
                .get(topic)
                .is_some_and(|t| t.id == id && (index as usize) < t.partitions.len());
            if !owned {
                info!(dir = %path.display(), "removing log of a deleted topic");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    fn dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    fn open(
        &self,
        topic: &TopicInfo,
        index: i32,
        state: ReplicaState,
    ) -> Result<Partition, LogError> {
        let dir = self.dir(&topic.name, index);
        if let Some(existing) = read_topic_id(&dir) {
            if existing != topic.id {
                info!(dir = %dir.display(), "removing log of an earlier topic with the same name");
                std::fs::remove_dir_all(&dir)?;
            }
        }
        let config = self.topic_log_config(topic)?;
        let log = PartitionLog::open(&dir, config)?;
        write_topic_id(&dir, topic.id)?;
        info!(topic = %topic.name, partition = index, log_end_offset = log.log_end_offset(), "partition online");
        Ok(Partition::new(
            topic.name.clone(),
            topic.id,
            index,
            state,
            log,
        ))
    }

    fn delete_dir(&self, topic: &str, index: i32) {
        let dir = self.dir(topic, index);
        // Rename first so that a crash mid-removal leaves a directory that start-up recognises as garbage.
        let doomed = self.data_dir.join(format!(
            "{topic}-{index}.{}-delete",
            Uuid::new_v4().simple()
        ));
        let target = match std::fs::rename(&dir, &doomed) {
            Ok(()) => doomed,
            Err(_) => dir,
        };
        if let Err(e) = std::fs::remove_dir_all(&target) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(dir = %target.display(), error = %e, "cannot remove deleted partition");
            }
        } else {
            info!(topic, partition = index, "partition deleted");
        }
    }

    pub fn flush_all(&self) {
        for p in self.all() {
            if let Err(e) = p.flush() {
                warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }

    pub fn enforce_retention(&self, now_ms: i64) {
        for p in self.all() {
            match p.enforce_retention(now_ms) {
                Ok(0) => {}
                Ok(n) => {
                    info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Runs the log cleaner over every compacted partition that is due a pass.
    pub fn clean_all(&self, now_ms: i64) {
        for p in self.all() {
            if let Err(e) = p.clean(now_ms) {
                warn!(topic = %p.topic, partition = p.index, error = %e, "log compaction failed");
            }
        }
    }

    /// Flushes and closes every log (graceful shutdown). Closing one log fsyncs several files; closing
    /// thousands that way takes minutes on a real disk. So every log writes its files unsynced (on
    /// several threads), one `syncfs` makes them all durable, and only then are the clean-shutdown
    /// markers written, followed by a second `syncfs`. If a sync fails no marker is written, and the
    /// next start recovers the logs as after a crash.
    pub fn close_all(&self) {
        let drained: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write().unwrap_or_else(|p| p.into_inner());
            map.drain().map(|(_, p)| p).collect()
        };
        let closed: Mutex<Vec<Partition>> = Mutex::new(Vec::with_capacity(drained.len()));
        on_threads(drained, |p| {
            let (topic, index) = (p.topic.clone(), p.index);
            // Connections are gone by now, so this is normally the last reference.
            let result = match Arc::try_unwrap(p) {
                Ok(p) => p.close_files(FileSync::Later).map(|()| {
                    closed.lock().unwrap_or_else(|p| p.into_inner()).push(p);
                }),
                Err(p) => p.flush(),
            };
            if let Err(e) = result {
                warn!(%topic, partition = index, error = %e, "close failed");
            }
        });
        let closed = closed.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sync_filesystem(&self.data_dir) {
            warn!(dir = %self.data_dir.display(), error = %e,
                "cannot sync the data directory; logs will be recovered at the next start");
            return;
        }
        on_threads(closed, |p| {
            let (topic, index) = (p.topic.clone(), p.index);
            if let Err(e) = p.mark_clean(FileSync::Later) {
                warn!(%topic, partition = index, error = %e, "close failed");
            }
        });
        if let Err(e) = sync_filesystem(&self.data_dir) {
            warn!(dir = %self.data_dir.display(), error = %e, "cannot sync the data directory");
        }
    }
}

/// Runs `work` on every item, spread over [`CLOSE_THREADS`] threads.
fn on_threads<T: Send>(items: Vec<T>, work: impl Fn(T) + Sync) {
    let threads = CLOSE_THREADS.min(items.len());
    let queue = Mutex::new(items);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let Some(item) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return;
                };
                work(item);
            });
        }
    });
}

/// `<topic>-<index>` → (topic, index); topics may contain '-'.
fn split_dir_name(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    Some((topic, index.parse().ok()?))
}

fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

fn write_topic_id(dir: &Path, id: Uuid) -> std::io::Result<()> {
    let path = dir.join(PARTITION_METADATA);
    if read_topic_id(dir) == Some(id) {
        return Ok(());
    }
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, format!("version: 0\ntopic_id: {id}\n"))?;
    std::fs::rename(&tmp, &path)
}
