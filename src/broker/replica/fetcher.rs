//! The replica fetcher (Kafka's `ReplicaFetcherManager` / `ReplicaFetcherThread`): for every partition
//! this broker follows, copy the leader's log. One task per leader broker batches that broker's
//! partitions into one Fetch; a supervisor starts and stops the tasks as reconcile changes roles.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::peer::{PeerConnection, PeerError};
use super::ReplicaError;
use crate::broker::partition::{Partition, Role};
use crate::broker::partitions::PartitionManager;
use crate::cluster::MetadataStore;
use crate::log::validate_fetched;

/// How long the leader may hold a fetch with nothing new (`replica.fetch.wait.max.ms`, Kafka's 500).
const MAX_WAIT: Duration = Duration::from_millis(500);
/// `replica.fetch.max.bytes` (per partition) and `replica.fetch.response.max.bytes`, Kafka's defaults.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// The answer must come this long after `MAX_WAIT`, or the connection is given up.
const ANSWER_GRACE: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every fetcher task needs to know about this broker.
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    pub node_id: i32,
    /// The listener of the leader to connect to (`inter.broker.listener.name`).
    pub listener: String,
    /// Its security protocol: replica fetching speaks PLAINTEXT only so far.
    pub listener_protocol: crate::config::SecurityProtocol,
    /// This node's own address, the source of its outgoing connections.
    pub bind_ip: Option<IpAddr>,
}

/// The running fetchers; [`ReplicaFetchers::stop`] ends them before the logs are closed.
#[derive(Default)]
pub struct ReplicaFetchers {
    running: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl ReplicaFetchers {
    pub fn start(
        &self,
        partitions: Arc<PartitionManager>,
        metadata: MetadataStore,
        config: FetcherConfig,
    ) {
        let (stop, stopped) = watch::channel(false);
        let events = partitions.subscribe_leadership();
        let shared = Arc::new(Shared {
            partitions,
            metadata,
            config,
        });
        let task = tokio::spawn(supervise(shared, events, stopped));
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some((stop, task));
    }

    /// Stops every fetcher and waits until they are gone (no append is cut: appends do not await).
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, task)) = running {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

struct Shared {
    partitions: Arc<PartitionManager>,
    metadata: MetadataStore,
    config: FetcherConfig,
}

/// The leaders this broker follows some partition of.
fn followed_leaders(partitions: &PartitionManager) -> BTreeSet<i32> {
    partitions
        .all()
        .iter()
        .filter_map(|p| match p.role() {
            Role::Follower { leader } if leader >= 0 => Some(leader),
            _ => None,
        })
        .collect()
}

async fn supervise(
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<Arc<Vec<crate::broker::partition::LeadershipChange>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tasks: HashMap<i32, JoinHandle<()>> = HashMap::new();
    loop {
        let leaders = followed_leaders(&shared.partitions);
        tasks.retain(|leader, task| {
            let keep = leaders.contains(leader) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for leader in leaders {
            tasks.entry(leader).or_insert_with(|| {
                info!(leader, "starting replica fetcher");
                let protocol = shared.config.listener_protocol;
                if protocol != crate::config::SecurityProtocol::Plaintext {
                    warn!(leader, listener = %shared.config.listener, protocol = protocol.name(),
                        "replica fetching speaks PLAINTEXT only: this listener will refuse it");
                }
                tokio::spawn(fetch_from(shared.clone(), leader))
            });
        }
        tokio::select! {
            event = events.recv() => {
                if matches!(event, Err(broadcast::error::RecvError::Closed)) {
                    break;
                }
            }
            _ = stopped.changed() => break,
        }
    }
    for (_, task) in tasks.drain() {
        task.abort();
        let _ = task.await;
    }
}

/// One followed partition as a fetch round sees it.
pub(super) struct Followed {
    pub(super) partition: Arc<Partition>,
    pub(super) leader_epoch: i32,
}

/// The fetch loop for one leader: the partitions followed from it are re-read every round, so a
/// partition that moves to another leader (or becomes led here) drops out at the next request.
async fn fetch_from(shared: Arc<Shared>, leader: i32) {
    let mut conn: Option<PeerConnection> = None;
    let mut backoff = BACKOFF_MIN;
    let mut failing: Option<String> = None;
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    let mut partition_errors: HashMap<(Uuid, i32), String> = HashMap::new();
    loop {
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let followed: Vec<Followed> = shared
            .partitions
            .all()
            .into_iter()
            .filter_map(|p| {
                let state = p.state();
                (state.role == Role::Follower { leader }).then_some(Followed {
                    partition: p,
                    leader_epoch: state.leader_epoch,
                })
            })
            .collect();
        if followed.is_empty() {
            // The supervisor starts a new task if this leader is followed again.
            return;
        }
        let ready: Vec<&Followed> = followed
            .iter()
            .filter(|f| !delayed.contains_key(&(f.partition.topic_id, f.partition.index)))
            .collect();
        if ready.is_empty() {
            let next = delayed.values().min().copied().unwrap_or(now + BACKOFF_MIN);
            tokio::time::sleep_until(next).await;
            continue;
        }
        match fetch_round(&shared, leader, &mut conn, &ready).await {
            Ok(outcomes) => {
                if failing.take().is_some() {
                    info!(leader, "replica fetching resumed");
                }
                backoff = BACKOFF_MIN;
                for (key, code) in outcomes {
                    let topic = followed
                        .iter()
                        .find(|f| (f.partition.topic_id, f.partition.index) == key)
                        .map_or("", |f| f.partition.topic.as_str());
                    match code {
                        None => {
                            if partition_errors.remove(&key).is_some() {
                                debug!(leader, topic, partition = key.1, "partition fetches again");
                            }
                        }
                        Some(cause) => {
                            if partition_errors.get(&key) != Some(&cause) {
                                warn!(leader, topic, partition = key.1, error = %cause,
                                    "partition's replica fetch failed; retrying it after a pause");
                                partition_errors.insert(key, cause);
                            }
                            delayed.insert(key, Instant::now() + BACKOFF_MAX);
                        }
                    }
                }
            }
            Err(e) => {
                conn = None;
                let cause = e.to_string();
                if failing.as_deref() != Some(cause.as_str()) {
                    warn!(leader, error = %cause, "replica fetch failed; retrying");
                    failing = Some(cause);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

type Outcome = ((Uuid, i32), Option<String>);

/// One Fetch to the leader and what came of it for each partition (`None`: fine).
async fn fetch_round(
    shared: &Shared,
    leader: i32,
    conn: &mut Option<PeerConnection>,
    followed: &[&Followed],
) -> Result<Vec<Outcome>, PeerError> {
    let cfg = &shared.config;
    let image = shared.metadata.image();
    // KIP-903: this broker's epoch is its registration's, as the image has it (-1 before that).
    let broker_epoch = image
        .registrations
        .get(&cfg.node_id)
        .map_or(-1, |r| r.epoch);
    if conn.is_none() {
        let broker = image
            .brokers
            .get(&leader)
            .ok_or(PeerError::NoEndpoint(leader))?;
        let (host, port) = broker.endpoint(&cfg.listener);
        *conn = Some(PeerConnection::connect(host, port, cfg.bind_ip, cfg.node_id).await?);
    }
    let Some(c) = conn.as_mut() else {
        return Err(PeerError::NoEndpoint(leader));
    };
    // Grouped by topic id, as the request lists them.
    let mut by_topic: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    let mut sent: HashMap<(Uuid, i32), (&Followed, i64)> = HashMap::new();
    for f in followed {
        let (end, last_epoch) = f.partition.follower_fetch_state();
        by_topic.entry(f.partition.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(f.partition.index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(end)
                .with_last_fetched_epoch(last_epoch.unwrap_or(-1))
                .with_log_start_offset(f.partition.log_start_offset())
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
        sent.insert((f.partition.topic_id, f.partition.index), (f, end));
    }
    let request = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(cfg.node_id))
                .with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(MAX_WAIT.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = c.fetch(&request, MAX_WAIT + ANSWER_GRACE).await?;
    if response.error_code != 0 {
        return Err(PeerError::Refused(response.error_code));
    }
    let mut outcomes = Vec::new();
    for topic in response.responses {
        for data in topic.partitions {
            let key = (topic.topic_id, data.partition_index);
            let Some(&(f, end)) = sent.get(&key) else {
                continue;
            };
            let code = apply(leader, f, end, data);
            outcomes.push((key, code));
        }
    }
    Ok(outcomes)
}

/// Applies one partition's answer: appends its records, truncates a diverged tail, or returns why
/// not, which delays the partition. An answer for a role this broker no longer has is dropped.
pub(super) fn apply(leader: i32, f: &Followed, end: i64, data: PartitionData) -> Option<String> {
    let p = &f.partition;
    let from = (leader, f.leader_epoch);
    let code = data.error_code;
    let result = if code == ResponseError::OffsetOutOfRange.code() {
        // The leader's log start moved past this log's end (retention there), or this log is longer
        // than the leader's: start again where the leader's log is.
        let cut = if end < data.log_start_offset {
            p.truncate_as_follower(from, data.log_start_offset, true)
        } else {
            p.truncate_as_follower(from, data.high_watermark.max(0), false)
        };
        match cut {
            // Nothing to cut: the leader cannot place this log's last epoch; ask again later.
            Ok(new_end) if new_end == end => {
                return Some(format!(
                    "the leader answered OffsetOutOfRange at {end} (its log: {}..{})",
                    data.log_start_offset, data.high_watermark
                ))
            }
            other => other.map(|_| ()),
        }
    } else if code != 0 {
        let name = ResponseError::try_from_code(code)
            .map_or_else(|| code.to_string(), |e| format!("{e:?}"));
        return Some(format!("the leader answered {name}"));
    } else if data.diverging_epoch.epoch >= 0 {
        // Kafka's `FetchResponse.divergingEpoch`: an epoch below 0 is no divergence.
        let target = truncation_offset(
            p,
            end,
            data.diverging_epoch.epoch,
            data.diverging_epoch.end_offset,
        );
        info!(topic = %p.topic, partition = p.index, leader, diverging_epoch = data.diverging_epoch.epoch,
            diverging_end_offset = data.diverging_epoch.end_offset, truncate_to = target,
            "log diverged from the leader's; truncating");
        p.truncate_as_follower(from, target, false).map(|_| ())
    } else {
        let records = data.records.unwrap_or_default();
        match validate_fetched(&records) {
            Ok((headers, len)) => p
                .append_as_follower(
                    records.slice(..len),
                    &headers,
                    from,
                    (data.high_watermark, data.log_start_offset),
                    crate::clock::now_ms(),
                )
                .map(|_| ()),
            Err(e) => Err(crate::log::LogError::from(e).into()),
        }
    };
    match result {
        Ok(()) | Err(ReplicaError::NotLeaderOrFollower) => None,
        Err(e) => Some(format!("cannot apply the leader's answer: {e}")),
    }
}

/// Where a follower cuts its log when the leader says it diverged (Kafka's
/// `AbstractFetcherThread.getOffsetTruncationState`): at the end of the leader's epoch if this log has
/// that epoch too, else at the end of this log's largest epoch below it (a next fetch checks again).
/// Without epoch information on the leader the whole log is fetched again.
fn truncation_offset(p: &Partition, end: i64, leader_epoch: i32, leader_end: i64) -> i64 {
    if leader_end < 0 {
        return p.log_start_offset();
    }
    let (epoch, own_end) = p.end_offset_for_epoch(leader_epoch);
    if epoch < 0 || epoch == leader_epoch {
        leader_end.min(end)
    } else {
        leader_end.min(own_end).min(end)
    }
}
