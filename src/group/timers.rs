//! The coordinator's timers, as tokio tasks: a member's session expiry, the expiry of a member id
//! handed out with MEMBER_ID_REQUIRED, the join-phase deadline (rebalance timeout or initial
//! delay) and the sync-phase deadline (rebalance timeout). Each task holds only a weak reference to the coordinator and re-checks under the lock that
//! what it was scheduled for still holds (member incarnation `uid`, group `join_epoch`).

use std::time::Duration;

use tokio::time::{sleep, sleep_until, Instant};
use tracing::info;

use super::coordinator::GroupCoordinator;
use super::group::{Group, GroupState};

impl GroupCoordinator {
    /// Expires `member` once it has been silent for its session timeout. A member waiting in
    /// JoinGroup or SyncGroup is alive (it is waiting on us).
    pub(super) fn spawn_member_expiry(&self, group: &str, member: &str, uid: u64, session_ms: i32) {
        let weak = self.me.clone();
        let (group, member) = (group.to_string(), member.to_string());
        let session = Duration::from_millis(session_ms.max(1) as u64);
        self.spawner.spawn(async move {
            let mut deadline = Instant::now() + session;
            loop {
                sleep_until(deadline).await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                let mut groups = coordinator.lock();
                let Some(g) = groups.get_mut(&group) else {
                    return;
                };
                let Some(m) = g.members.get(&member).filter(|m| m.uid == uid) else {
                    return;
                };
                let now = Instant::now();
                if m.join_waiter.is_some() || m.sync_waiter.is_some() {
                    deadline = now + session;
                    continue;
                }
                let due = m.last_heartbeat + session;
                if due > now {
                    deadline = due;
                    continue;
                }
                info!(group = %group, member = %member, session_ms, "member session expired");
                coordinator.remove_member_and_update(g, &member, "member session expired");
                return;
            }
        });
    }

    /// Forgets a member id handed out with MEMBER_ID_REQUIRED if it does not join within its session.
    pub(super) fn spawn_pending_expiry(&self, group: &str, member: &str, session_ms: i32) {
        let member = member.to_string();
        self.after(
            group,
            Duration::from_millis(session_ms.max(1) as u64),
            move |coordinator, g| {
                if g.pending.remove(&member) {
                    info!(group = %g.id, member = %member, "pending member did not join in time");
                    coordinator.try_complete_join(g);
                }
            },
        );
    }

    /// Ends the join phase after `delay_ms` unless the group moved on (its `join_epoch` changed).
    pub(super) fn spawn_join_timer(&self, group: &str, epoch: u64, delay_ms: u64) {
        self.after(
            group,
            Duration::from_millis(delay_ms),
            move |coordinator, g| {
                if g.join_epoch == epoch && g.state == GroupState::PreparingRebalance {
                    coordinator.on_join_timer(g);
                }
            },
        );
    }

    /// Ends a sync phase that outlives the rebalance timeout (see `on_sync_timeout`).
    pub(super) fn spawn_sync_timer(&self, group: &str, epoch: u64, delay_ms: u64) {
        self.after(
            group,
            Duration::from_millis(delay_ms),
            move |coordinator, g| {
                if g.join_epoch == epoch && g.state == GroupState::CompletingRebalance {
                    coordinator.on_sync_timeout(g);
                }
            },
        );
    }

    /// Runs `act` on `group` under the coordinator lock after `delay`, unless the coordinator or the
    /// group is gone by then; `act` re-checks that what it was scheduled for still holds.
    fn after(
        &self,
        group: &str,
        delay: Duration,
        act: impl FnOnce(&GroupCoordinator, &mut Group) + Send + 'static,
    ) {
        let weak = self.me.clone();
        let group = group.to_string();
        self.spawner.spawn(async move {
            sleep(delay).await;
            let Some(coordinator) = weak.upgrade() else {
                return;
            };
            let mut groups = coordinator.lock();
            if let Some(g) = groups.get_mut(&group) {
                act(&coordinator, g);
            }
        });
    }
}
