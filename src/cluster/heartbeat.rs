//! Broker liveness as KRaft keeps it (KIP-631): heartbeats answered from the controller's memory
//! (only fence/unfence/shutdown changes go through Raft), the controller task that fences a
//! broker after `broker_session_timeout` without heartbeats, and the broker's heartbeat loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::controller::{local_write, Controller, ControllerReply, ControllerRequest};
use super::error::ClusterError;
use super::image::{CommandResult, MetadataCommand};
use super::store::{Inner, MetadataStore};

/// What a broker tells the controller every heartbeat interval (BrokerHeartbeatRequest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub broker_id: i32,
    /// From its registration ([`MetadataStore::register_broker`]).
    pub broker_epoch: i64,
    /// The last metadata log index applied on the broker ([`MetadataStore::metadata_offset`]).
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shutdown: bool,
}

/// The controller's answer (BrokerHeartbeatResponse).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The broker has applied the metadata log up to its own registration.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    /// The broker asked to shut down and leads nothing any more (or is fenced): it may stop.
    pub should_shutdown: bool,
}

/// The controller's memory of when each broker last heartbeated; not replicated: a new
/// controller gives every broker a fresh session from when it took over.
#[derive(Default)]
pub(super) struct Liveness {
    seen: Mutex<HashMap<i32, Instant>>,
}

impl Liveness {
    fn touch(&self, broker: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(broker, Instant::now());
    }

    fn last_seen(&self, broker: i32) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&broker).copied()
    }
}

impl Controller {
    /// The controller's side of a heartbeat (this node leads).
    pub(super) async fn answer_heartbeat(
        &self,
        hb: BrokerHeartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatReply, ClusterError> {
        let raft = self.raft.borrow().clone();
        {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if m.state != ServerState::Leader {
                return Err(ClusterError::NotLeader {
                    leader: m.current_leader,
                });
            }
        }
        let image = self.images.borrow().clone();
        let id = hb.broker_id;
        let Some(reg) = image.registrations.get(&id).cloned() else {
            return Err(ClusterError::StaleBrokerEpoch(format!(
                "no registration for broker {id}"
            )));
        };
        if reg.epoch != hb.broker_epoch {
            return Err(ClusterError::StaleBrokerEpoch(format!(
                "broker {id} heartbeats with epoch {} but its registration has {}",
                hb.broker_epoch, reg.epoch
            )));
        }
        self.liveness.touch(id);
        let caught_up = hb.current_metadata_offset >= reg.epoch;
        let epoch = reg.epoch;
        let change = if hb.want_fence && !reg.fenced {
            Some(MetadataCommand::FenceBroker { id, epoch })
        } else if hb.want_shutdown && !reg.in_controlled_shutdown && !reg.fenced {
            Some(MetadataCommand::ControlledShutdown { id, epoch })
        } else if !hb.want_fence && !hb.want_shutdown && reg.fenced && caught_up {
            Some(MetadataCommand::UnfenceBroker { id, epoch })
        } else {
            None
        };
        if let Some(cmd) = change {
            tracing::info!(
                broker_id = id,
                broker_epoch = epoch,
                ?cmd,
                "broker state change"
            );
            if let (CommandResult::StaleBrokerEpoch, _) = local_write(&raft, cmd, timeout).await? {
                return Err(ClusterError::StaleBrokerEpoch(format!(
                    "broker {id} registered again meanwhile"
                )));
            }
        }
        let image = self.images.borrow().clone();
        let reg = image.registrations.get(&id).cloned().unwrap_or(reg);
        Ok(HeartbeatReply {
            is_caught_up: caught_up,
            is_fenced: reg.fenced,
            should_shutdown: hb.want_shutdown
                && (reg.fenced || (reg.in_controlled_shutdown && image.leaderships(id) == 0)),
        })
    }
}

/// On the leader: fences every unfenced broker that has not heartbeated for the session
/// timeout. Runs until the store is dropped.
pub(super) async fn fence_expired(inner: Weak<Inner>, session: Duration) {
    let tick = (session / 4).max(Duration::from_millis(20));
    let mut leader_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = inner.upgrade() else { return };
        let leading = inner.current().metrics().borrow().state == ServerState::Leader;
        if !leading {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let image = inner.subscribe().borrow().clone();
        for (id, reg) in &image.registrations {
            // Only brokers that heartbeated into the unfenced state can miss heartbeats; a
            // fresh registration stays as it is until its first heartbeat.
            if reg.fenced {
                continue;
            }
            let last = inner
                .controller
                .liveness
                .last_seen(*id)
                .map_or(since, |t| t.max(since));
            if last.elapsed() < session {
                continue;
            }
            tracing::info!(
                broker_id = id,
                broker_epoch = reg.epoch,
                silent_ms = last.elapsed().as_millis() as u64,
                "fencing a broker that missed its heartbeats"
            );
            let fence = MetadataCommand::FenceBroker {
                id: *id,
                epoch: reg.epoch,
            };
            let timeout = inner.tuning.write_timeout;
            let raft = inner.current();
            if let Err(e) = local_write(&raft, fence, timeout).await {
                tracing::warn!(broker_id = id, error = %e, "fencing a broker failed; retrying");
            }
        }
    }
}

/// How often a broker in controlled shutdown heartbeats (at most).
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// A running heartbeat loop ([`MetadataStore::spawn_heartbeats`]); dropping it stops the loop.
pub struct Heartbeats {
    replies: watch::Receiver<Option<Result<HeartbeatReply, String>>>,
    want_shutdown: Arc<AtomicBool>,
    /// Wakes the loop early: a shutdown request goes out at once, not at the next interval.
    wake: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Heartbeats {
    /// The last answer (or why the last heartbeat failed); `None` before the first.
    pub fn last(&self) -> Option<Result<HeartbeatReply, String>> {
        self.replies.borrow().clone()
    }

    /// Waits (up to `timeout`) for an answer `f` accepts; false on timeout or a stopped loop.
    pub async fn wait_for(&self, timeout: Duration, f: impl Fn(&HeartbeatReply) -> bool) -> bool {
        let mut rx = self.replies.clone();
        let seen = rx.wait_for(|r| matches!(r, Some(Ok(reply)) if f(reply)));
        let ok = matches!(tokio::time::timeout(timeout, seen).await, Ok(Ok(_)));
        ok
    }

    /// Controlled shutdown: asks the controller to move this broker's leaderships away and
    /// waits (up to `timeout`) until it answers should_shutdown.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        self.want_shutdown.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.wait_for(timeout, |r| r.should_shutdown).await
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetadataStore {
    /// Registers (or re-registers) this node's broker; returns its broker epoch. The broker
    /// starts fenced until its heartbeats say it has caught up.
    pub async fn register_broker(&self, info: super::BrokerInfo) -> Result<i64, ClusterError> {
        match self.write(MetadataCommand::RegisterBroker(info)).await? {
            CommandResult::BrokerRegistered { epoch } => Ok(epoch),
            other => Err(ClusterError::Raft(format!(
                "registration answered {other:?}"
            ))),
        }
    }

    /// The last metadata log index applied here (-1 before any).
    pub fn metadata_offset(&self) -> i64 {
        let applied = self.inner.current().metrics().borrow().last_applied;
        applied.map_or(-1, |l| l.index as i64)
    }

    /// One heartbeat to the controller (forwarded like a write). `StaleBrokerEpoch` when the
    /// broker is not registered with that epoch (Kafka's STALE_BROKER_EPOCH, 77).
    pub async fn heartbeat(&self, hb: BrokerHeartbeat) -> Result<HeartbeatReply, ClusterError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        match self
            .inner
            .to_controller(ControllerRequest::Heartbeat(hb), deadline)
            .await?
        {
            ControllerReply::Heartbeat(reply) => Ok(reply),
            other => Err(ClusterError::Raft(format!("heartbeat answered {other:?}"))),
        }
    }

    /// Heartbeats for `broker_id` every `interval` with this node's metadata offset, until the
    /// returned handle is dropped (or the epoch turns stale: the broker must register again).
    pub fn spawn_heartbeats(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        interval: Duration,
    ) -> Heartbeats {
        let (tx, replies) = watch::channel(None);
        let want_shutdown = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let store = self.clone();
        let shutdown = want_shutdown.clone();
        let woken = wake.clone();
        let task = tokio::spawn(async move {
            loop {
                let hb = BrokerHeartbeat {
                    broker_id,
                    broker_epoch,
                    current_metadata_offset: store.metadata_offset(),
                    want_fence: false,
                    want_shutdown: shutdown.load(Ordering::SeqCst),
                };
                let res = store.heartbeat(hb).await;
                let stale = matches!(res, Err(ClusterError::StaleBrokerEpoch(_)));
                if let Err(e) = &res {
                    tracing::warn!(broker_id, error = %e, "broker heartbeat failed");
                }
                tx.send_replace(Some(res.map_err(|e| e.to_string())));
                if stale {
                    return;
                }
                // While shutting down, ask again soon: the controller answers should_shutdown once
                // the leaderships have moved, and the broker is waiting for that to stop.
                let pause = if shutdown.load(Ordering::SeqCst) {
                    interval.min(SHUTDOWN_POLL)
                } else {
                    interval
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = woken.notified() => {}
                }
            }
        });
        Heartbeats {
            replies,
            want_shutdown,
            wake,
            task,
        }
    }
}
