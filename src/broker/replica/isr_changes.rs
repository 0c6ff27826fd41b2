//! Sending the leaders' ISR changes to the controller (Kafka's `AlterPartitionManager`): changes
//! queue from follower fetches (expansions) and the lag check (shrinks), go out batched as one
//! AlterPartition metadata write, and each partition hears back so that it may ask again. The new
//! ISR itself reaches the partition through the metadata image, like every other assignment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::broker::Partition;
use crate::cluster::{CommandResult, IsrChange, MetadataCommand, MetadataImage, MetadataStore};

type Queued = (Arc<Partition>, IsrChange);

/// After a failed write, the next batch waits this long (the controller may be being elected).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

pub struct IsrChanges {
    tx: mpsc::UnboundedSender<Queued>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
}

impl Default for IsrChanges {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        IsrChanges {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl IsrChanges {
    /// Queues `change` of `partition` (which marked it pending).
    pub fn submit(&self, partition: Arc<Partition>, change: IsrChange) {
        if let Err(mpsc::error::SendError((p, c))) = self.tx.send((partition, change)) {
            p.isr_change_answered(c.partition_epoch);
        }
    }

    /// Starts the sender; it ends when the broker (and with it this queue) is dropped.
    pub fn start(&self, metadata: MetadataStore, node_id: i32) {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(send_loop(rx, metadata, node_id));
        }
    }
}

async fn send_loop(mut rx: mpsc::UnboundedReceiver<Queued>, metadata: MetadataStore, node_id: i32) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let image = metadata.image();
        let Some(broker_epoch) = image.registrations.get(&node_id).map(|r| r.epoch) else {
            answer_all(&batch);
            continue;
        };
        // Joining replicas the image already says are ineligible (fenced, shutting down, registered
        // again since their fetch) would only be refused: drop those changes here (Kafka's
        // `isReplicaIsrEligible`), or every fetch of a fenced follower would ask again.
        let (send, skip): (Vec<Queued>, Vec<Queued>) = batch
            .into_iter()
            .partition(|(p, c)| joiners_eligible(&image, p, c));
        answer_all(&skip);
        if send.is_empty() {
            continue;
        }
        let changes: Vec<IsrChange> = send
            .iter()
            .map(|(_, c)| {
                let mut c = c.clone();
                for (id, epoch) in &mut c.new_isr {
                    if *id == node_id {
                        *epoch = broker_epoch;
                    }
                }
                c
            })
            .collect();
        let cmd = MetadataCommand::AlterPartition {
            broker: node_id,
            broker_epoch,
            changes,
        };
        match metadata.write(cmd).await {
            Ok(CommandResult::PartitionsAltered(outcomes)) => {
                for ((p, c), outcome) in send.iter().zip(outcomes) {
                    match outcome {
                        // Applied: the image brings the new ISR and epoch, which clears the
                        // pending change (an unchanged ISR keeps the epoch: clear it here).
                        Ok(info) => {
                            debug!(topic = %p.topic, partition = p.index, isr = ?info.isr,
                                partition_epoch = info.partition_epoch, "ISR change applied");
                            if info.partition_epoch == c.partition_epoch {
                                p.isr_change_answered(c.partition_epoch);
                            }
                        }
                        Err(refused) => {
                            info!(topic = %p.topic, partition = p.index, new_isr = ?c.new_isr,
                                reason = %refused, "ISR change refused by the controller");
                            p.isr_change_answered(c.partition_epoch);
                        }
                    }
                }
            }
            Ok(other) => {
                warn!(result = ?other, "unexpected answer to an ISR change");
                answer_all(&send);
            }
            Err(e) => {
                // No quorum, or no controller yet: the ISR stays as it is (and so does the high
                // watermark, if a member is gone); the lag check or the next fetch asks again.
                warn!(error = %e, partitions = send.len(), "cannot send ISR changes to the controller");
                answer_all(&send);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

fn answer_all(batch: &[Queued]) {
    for (p, c) in batch {
        p.isr_change_answered(c.partition_epoch);
    }
}

/// Whether every replica `change` adds to the ISR is registered, unfenced, not shutting down and,
/// if the leader saw its broker epoch, still at that epoch.
fn joiners_eligible(image: &MetadataImage, p: &Partition, change: &IsrChange) -> bool {
    let isr = p.state().isr;
    change
        .new_isr
        .iter()
        .filter(|(id, _)| !isr.contains(id))
        .all(|(id, epoch)| {
            image.registrations.get(id).is_some_and(|r| {
                !r.fenced && !r.in_controlled_shutdown && (*epoch < 0 || r.epoch == *epoch)
            })
        })
}
