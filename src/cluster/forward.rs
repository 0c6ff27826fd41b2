//! Getting a controller request to the Raft leader from any node (KIP-590's forwarding): run it
//! here when this node leads, else send it over the metadata port to the leader; wait through
//! elections, and give up at the deadline with the error the broker maps to a Kafka code.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::controller::{ControllerReply, ControllerRequest};
use super::durable::MAX_RECORD_LEN;
use super::error::ClusterError;
use super::store::Inner;
use super::types::{NodeId, RaftInstance};
use super::wire::{dial, read_frame, write_frame, Request, Response};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// How one attempt ended when it did not answer.
enum Miss {
    /// Nothing was done: the node asked is not the leader (with its view of who is).
    NotLeader(Option<NodeId>),
    /// Nothing was done: the node could not be reached.
    Unreachable(io::Error),
}

impl Inner {
    /// Sends `req` to the controller and returns its answer. Waits for a leader (elections,
    /// unreachable nodes) until `deadline`; then fails with
    /// `ClusterError::NotLeader { leader: None }` if no leader could be reached (Kafka's
    /// NOT_CONTROLLER, retriable) or `ClusterError::Timeout` if a leader took the request but did
    /// not commit it in time (REQUEST_TIMED_OUT: e.g. it lost its majority).
    pub(super) async fn to_controller(
        &self,
        req: ControllerRequest,
        deadline: Instant,
    ) -> Result<ControllerReply, ClusterError> {
        let mut backoff = BACKOFF_MIN;
        // A leader named by a node we asked, tried before our own view of the leader.
        let mut hint: Option<NodeId> = None;
        // Round-robin over the configured voters while no leader is known.
        let mut next_voter = 0usize;
        let mut last_miss = Miss::NotLeader(None);
        loop {
            let raft = self.current();
            if let Some(fatal) = super::instance::stopped(&raft) {
                return Err(self.unavailable(fatal));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(give_up(last_miss, self.tuning.write_timeout));
            }
            let (leader, addr) = match hint
                .take()
                .or_else(|| raft.metrics().borrow().current_leader)
            {
                Some(l) => (Some(l), self.node_addr(&raft, l)),
                None => match self
                    .voters
                    .iter()
                    .nth(next_voter % self.voters.len().max(1))
                {
                    Some((id, addr)) => {
                        next_voter += 1;
                        (Some(*id), Some(addr.clone()))
                    }
                    None => (None, None),
                },
            };
            let attempt = match (leader, addr) {
                (Some(l), _) if l == self.shared.node_id => {
                    match self.controller.handle(req.clone(), remaining).await {
                        Ok(reply) => return Ok(reply),
                        Err(ClusterError::NotLeader { leader }) => Miss::NotLeader(leader),
                        // The core stopped under the write: say why, as a stopped core does.
                        Err(e) => {
                            return Err(match super::instance::stopped(&raft) {
                                Some(fatal) => self.unavailable(fatal),
                                None => e,
                            })
                        }
                    }
                }
                (Some(l), Some(addr)) => match self.send(&addr, l, &req, remaining).await {
                    Ok(Ok(reply)) => return Ok(reply),
                    Ok(Err(ClusterError::NotLeader { leader })) => Miss::NotLeader(leader),
                    Ok(Err(e)) => return Err(e),
                    Err(miss) => miss,
                },
                _ => Miss::NotLeader(None),
            };
            if let Miss::NotLeader(Some(l)) = &attempt {
                if Some(*l) != leader {
                    hint = Some(*l);
                }
            }
            tracing::debug!(?leader, miss = ?attempt_text(&attempt), "controller request not answered yet; retrying");
            last_miss = attempt;
            let left = deadline.saturating_duration_since(Instant::now());
            if hint.is_some() {
                // Go to the named leader at once, but not in a tight loop should two nodes
                // keep naming each other while their views settle.
                tokio::time::sleep(BACKOFF_MIN.min(left)).await;
            } else {
                // Sooner if our view of the leadership changes.
                let mut metrics = raft.metrics();
                let _ = tokio::time::timeout(backoff.min(left), metrics.changed()).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// The Raft address of `node`: from the membership, else from the configuration.
    fn node_addr(&self, raft: &RaftInstance, node: NodeId) -> Option<String> {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&node)
            .map(|n| n.addr.clone())
            .or_else(|| self.voters.get(&node).cloned())
    }

    /// One exchange with `addr`. `Err` only when nothing reached the peer; a lost connection
    /// after the request was sent is an error, as the request may have been executed.
    async fn send(
        &self,
        addr: &str,
        target: NodeId,
        req: &ControllerRequest,
        timeout: Duration,
    ) -> Result<Result<ControllerReply, ClusterError>, Miss> {
        let (mut stream, _) = dial(&self.identity, addr, Some(target))
            .await
            .map_err(Miss::Unreachable)?;
        let frame = Request::Controller {
            req: req.clone(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let exchange = async {
            write_frame(&mut stream, &frame).await?;
            read_frame::<Response>(&mut stream, MAX_RECORD_LEN)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
        };
        // A little beyond the controller's own deadline, so its answer (maybe a timeout) arrives.
        let answer =
            match tokio::time::timeout(timeout + Duration::from_millis(200), exchange).await {
                Err(_) => {
                    return Ok(Err(ClusterError::Timeout(format!(
                        "the controller at {addr} did not answer within {timeout:?}"
                    ))))
                }
                Ok(Err(e)) => {
                    return Ok(Err(ClusterError::Raft(format!(
                        "lost the connection to the controller at {addr}: {e}"
                    ))))
                }
                Ok(Ok(answer)) => answer,
            };
        Ok(match answer {
            Response::Controller(r) => r.map_err(ClusterError::from),
            _ => Err(ClusterError::Raft(format!(
                "the controller at {addr} answered with another kind of response"
            ))),
        })
    }
}

fn attempt_text(miss: &Miss) -> String {
    match miss {
        Miss::NotLeader(l) => format!("not the leader (leader: {l:?})"),
        Miss::Unreachable(e) => format!("unreachable: {e}"),
    }
}

/// No leader took the request before the deadline: Kafka's NOT_CONTROLLER, so the client
/// refreshes its metadata and retries (a leader may appear once the election ends).
fn give_up(last: Miss, timeout: Duration) -> ClusterError {
    tracing::debug!(?timeout, last = %attempt_text(&last), "no controller reachable before the deadline");
    ClusterError::NotLeader { leader: None }
}

/// The IP to bind outgoing sockets to when none is configured: the literal IP this node listens
/// on for Raft, unless it listens on every address.
pub(super) fn default_bind_ip(raft_addr: Option<std::net::SocketAddr>) -> Option<IpAddr> {
    raft_addr.map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}
