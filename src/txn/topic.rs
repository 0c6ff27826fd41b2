//! `__transaction_state` as Kafka creates it, and its replay: the last record per transactional id
//! wins, a tombstone forgets the id. A transactional id lives on partition
//! `abs(javaHashCode(id)) % transaction.state.log.num.partitions`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tracing::{info, warn};

use super::ports::TxnLog;
use super::records::{decode_key, TxnLogValue};
use super::state::TxnMetadata;
use crate::broker::internal_topic::InternalTopicSpec;
use crate::config::Config;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's `request.timeout.ms` default, which bounds its transaction-log appends.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The partition of `__transaction_state` that holds `transactional_id`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::records::partition_for(transactional_id, partitions)
}

/// Compacted, kept forever, `min.insync.replicas` = `transaction.state.log.min.isr`, uncompressed,
/// never led by an out-of-sync replica (TransactionStateManager's topic configs).
pub fn topic_spec(config: &Config) -> InternalTopicSpec {
    let segment_bytes = config.transaction_state_log_segment_bytes.to_string();
    let min_isr = config.transaction_state_log_min_isr.to_string();
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("compression.type", "uncompressed"),
        ("min.insync.replicas", min_isr.as_str()),
        ("segment.bytes", segment_bytes.as_str()),
        ("unclean.leader.election.enable", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    InternalTopicSpec {
        name: TRANSACTION_STATE_TOPIC,
        partitions: config.transaction_state_log_num_partitions,
        replication_factor: config.transaction_state_log_replication_factor,
        configs,
        write_timeout: WRITE_TIMEOUT,
    }
}

/// Reads one partition into the transactional ids it holds; `None` when it is not hosted here.
pub fn replay_partition(log: &dyn TxnLog, partition: i32) -> Option<HashMap<String, TxnMetadata>> {
    let mut txns: HashMap<String, TxnMetadata> = HashMap::new();
    let mut records = 0u64;
    let hosted = log.replay(partition, &mut |r| {
        records += 1;
        let Some(key) = r.key else { return };
        let id = match decode_key(key) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                warn!(partition, offset = r.offset, error = %e, "skipping transaction log key");
                return;
            }
        };
        match r.value.map(TxnLogValue::decode) {
            None => {
                txns.remove(&id);
            }
            Some(Ok(v)) => {
                txns.insert(id.clone(), TxnMetadata::from_value(&id, &v));
            }
            Some(Err(e)) => {
                warn!(partition, offset = r.offset, error = %e, "skipping transaction log value")
            }
        }
    });
    if !hosted {
        return None;
    }
    info!(
        partition,
        transactional_ids = txns.len(),
        records,
        "replayed transaction state from {TRANSACTION_STATE_TOPIC}"
    );
    Some(txns)
}
