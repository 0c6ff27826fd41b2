//! What DescribeTransactions and ListTransactions (KIP-664) read: the coordinator's view of the ids
//! it holds, as Kafka's TransactionStateManager answers them.

use super::coordinator::TransactionCoordinator;
use super::error::TxnError;
use super::state::{TxnMetadata, TxnState};
use crate::broker::coordinator_shards::ShardStatus;

/// One row of ListTransactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// ListTransactions' answer: the rows, and the state filters that name no state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnList {
    pub transactions: Vec<TxnListing>,
    pub unknown_state_filters: Vec<String>,
}

fn state_named(name: &str) -> Option<TxnState> {
    (0..8)
        .filter_map(TxnState::from_code)
        .find(|s| s.name() == name)
}

impl TransactionCoordinator {
    /// DescribeTransactions for one id: TRANSACTIONAL_ID_NOT_FOUND when this coordinator has no
    /// state for it (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when it is not its to answer).
    pub fn describe_transaction(&self, transactional_id: &str) -> Result<TxnMetadata, TxnError> {
        self.coordinator_epoch(transactional_id)?;
        self.lock()
            .get(transactional_id)
            .filter(|md| md.state != TxnState::Dead)
            .cloned()
            .ok_or(TxnError::TransactionalIdNotFound)
    }

    /// ListTransactions: the ids held here whose state is one of `states` and producer id one of
    /// `producer_ids` (empty: any), open longer than `min_duration_ms` (negative: any), sorted by id.
    /// COORDINATOR_LOAD_IN_PROGRESS while a partition led here is loading.
    pub fn list_transactions(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Result<TxnList, TxnError> {
        let loading = (0..self.log.partition_count())
            .any(|p| matches!(self.shards.status(p), ShardStatus::Loading { .. }));
        if loading {
            return Err(TxnError::CoordinatorLoadInProgress);
        }
        let mut unknown_state_filters = Vec::new();
        let mut wanted = Vec::new();
        for name in states {
            match state_named(name) {
                Some(s) => wanted.push(s),
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let now = self.now_ms();
        let mut transactions: Vec<TxnListing> = self
            .lock()
            .values()
            .filter(|md| md.state != TxnState::Dead)
            .filter(|md| producer_ids.is_empty() || producer_ids.contains(&md.producer_id))
            .filter(|md| states.is_empty() || wanted.contains(&md.state))
            .filter(|md| min_duration_ms < 0 || now.saturating_sub(md.start_ms) > min_duration_ms)
            .map(|md| TxnListing {
                transactional_id: md.transactional_id.clone(),
                producer_id: md.producer_id,
                state: md.state,
            })
            .collect();
        transactions.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(TxnList {
            transactions,
            unknown_state_filters,
        })
    }
}
