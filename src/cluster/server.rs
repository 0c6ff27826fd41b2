//! The server side of the metadata port: accepts connections, refuses strangers at the hello
//! (one log line, connection closed, nothing applied), and answers each later frame, Raft RPCs
//! with the current Raft instance and controller requests with the local `Controller`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::controller::Controller;
use super::durable::MAX_RECORD_LEN;
use super::identity::{Hello, HelloReply, Identity};
use super::wire::{read_frame, write_frame, Request, Response, MAX_HELLO_LEN};

/// The longest a forwarded request is worked on, whatever its sender asks.
const MAX_CONTROLLER_WAIT: Duration = Duration::from_secs(120);

/// Answers requests arriving on `listener` until the task is dropped/aborted (aborting it also
/// aborts its per-connection tasks, which live in a `JoinSet`). Each request goes to the Raft
/// instance current at the time: the `MetadataStore` replaces it when it restarts Raft.
pub(super) async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    identity: Arc<Identity>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let controller = controller.clone();
                    let identity = identity.clone();
                    conns.spawn(async move {
                        let Some(stream) = greet(stream, peer, &controller, &identity).await else {
                            return;
                        };
                        if let Err(e) = serve_conn(stream, &controller).await {
                            tracing::debug!(%peer, error = %e, "raft connection closed");
                        }
                    });
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "raft accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// A misconfigured peer reconnects several times a second: its refusal is logged at warn once
/// per this period (per peer address and reason), else at debug.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

fn loud(peer: SocketAddr, reason: &str) -> bool {
    static LAST: Mutex<Option<HashMap<(IpAddr, String), Instant>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let map = last.get_or_insert_with(HashMap::new);
    // Bounded: a flood of strangers from many addresses must not grow it without end.
    if map.len() > 1024 {
        map.retain(|_, t| t.elapsed() < REFUSAL_LOG_EVERY);
        if map.len() > 1024 {
            map.clear();
        }
    }
    let key = (peer.ip(), reason.to_string());
    match map.get(&key) {
        Some(t) if t.elapsed() < REFUSAL_LOG_EVERY => false,
        _ => {
            map.insert(key, Instant::now());
            true
        }
    }
}

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the peer's hello and answers it; `None` (after one log line) when the peer is refused.
async fn greet(
    mut stream: TcpStream,
    peer: SocketAddr,
    controller: &Controller,
    identity: &Identity,
) -> Option<TcpStream> {
    let read = tokio::time::timeout(
        HELLO_TIMEOUT,
        read_frame::<Hello>(&mut stream, MAX_HELLO_LEN),
    );
    let hello = match read.await {
        Ok(Ok(Some(hello))) => hello,
        // Closed before a word: a port probe, not worth a line.
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            if loud(peer, "garbage") {
                tracing::warn!(%peer, error = %e, "refused a metadata connection: not a hello frame");
            }
            return None;
        }
        Err(_) => {
            if loud(peer, "silent") {
                tracing::warn!(%peer, "refused a metadata connection: no hello within {HELLO_TIMEOUT:?}");
            }
            return None;
        }
    };
    let membership = controller
        .raft
        .borrow()
        .metrics()
        .borrow()
        .membership_config
        .clone();
    let reply = match identity.check_peer(&hello, peer.ip(), &membership) {
        Ok(()) => HelloReply::Welcome(identity.hello()),
        Err(why) => {
            if loud(peer, &why) {
                tracing::warn!(%peer, node_id = hello.node_id, reason = %why, "refused a metadata connection");
            } else {
                tracing::debug!(%peer, node_id = hello.node_id, reason = %why, "refused a metadata connection");
            }
            // Best effort: the peer learns why, then the connection closes.
            let _ = write_frame(&mut stream, &HelloReply::Refused(why)).await;
            return None;
        }
    };
    write_frame(&mut stream, &reply).await.ok()?;
    Some(stream)
}

async fn serve_conn(mut stream: TcpStream, controller: &Controller) -> io::Result<()> {
    while let Some(req) = read_frame::<Request>(&mut stream, MAX_RECORD_LEN).await? {
        let raft = controller.raft.borrow().clone();
        let resp = match req {
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Controller { req, timeout_ms } => {
                // The sender's deadline, bounded so a peer can't park a task here for long.
                let timeout = Duration::from_millis(timeout_ms).min(MAX_CONTROLLER_WAIT);
                Response::Controller(controller.handle(req, timeout).await.map_err(Into::into))
            }
        };
        write_frame(&mut stream, &resp).await?;
    }
    Ok(())
}
