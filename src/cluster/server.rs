//! The server side of the metadata port: accepts connections and answers each frame, Raft RPCs
//! with the current Raft instance and controller requests with the local `Controller`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::controller::Controller;
use super::durable::MAX_RECORD_LEN;
use super::wire::{read_frame, write_frame, Request, Response};

/// The longest a forwarded request is worked on, whatever its sender asks.
const MAX_CONTROLLER_WAIT: Duration = Duration::from_secs(120);

/// Answers requests arriving on `listener` until the task is dropped/aborted (aborting it also
/// aborts its per-connection tasks, which live in a `JoinSet`). Each request goes to the Raft
/// instance current at the time: the `MetadataStore` replaces it when it restarts Raft.
pub(super) async fn serve(listener: TcpListener, controller: Arc<Controller>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let controller = controller.clone();
                    conns.spawn(async move {
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
