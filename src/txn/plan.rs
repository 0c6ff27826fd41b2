//! The coordinator's decisions, as Kafka's TransactionCoordinator makes them, on one transactional
//! id's state: which error to answer or which transition to write. Pure: the caller holds the lock,
//! writes the transition and completes it.

use super::error::TxnError;
use super::state::{
    bumps_epoch, epoch_exhausted, TopicPartition, Transit, TxnMetadata, TxnState, NO_EPOCH,
    NO_PRODUCER_ID,
};

/// What InitProducerId does next.
#[derive(Debug, PartialEq, Eq)]
pub enum InitStep {
    /// A fresh producer id is needed (the epoch is exhausted): fetch one and decide again.
    NeedProducerId,
    /// Write this (Empty, bumped epoch or new id) and answer its producer id and epoch.
    Write(Transit),
    /// An open transaction was fenced: write this PrepareAbort, complete the abort, and answer
    /// CONCURRENT_TRANSACTIONS so that the producer retries (and gets a second bump).
    AbortOngoing(Transit),
}

/// KIP-360: a producer id named in the request is acceptable if the state has no epoch yet (just
/// created), it is the current id (the epoch is checked by the bump), or it is the previous id with
/// an exhausted epoch (a retry after a rotation whose answer was lost).
fn valid_producer_id(md: &TxnMetadata, expected: (i64, i16)) -> bool {
    md.producer_epoch == NO_EPOCH
        || expected.0 == md.producer_id
        || (expected.0 == md.last_producer_id && epoch_exhausted(expected.1))
}

/// InitProducerId with a transactional id (Kafka's `handleInitProducerId`). `spare_id` is a
/// producer id fetched for a rotation; it is taken when used. `server_tv` is the finalized
/// transaction version an abort of the fenced producer's transaction follows.
pub fn plan_init(
    md: &mut TxnMetadata,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    spare_id: &mut Option<i64>,
    now_ms: i64,
    server_tv: i16,
) -> Result<InitStep, TxnError> {
    if md.pending.is_some() {
        return Err(TxnError::ConcurrentTransactions);
    }
    if expected.is_some_and(|e| !valid_producer_id(md, e)) {
        return Err(TxnError::ProducerFenced);
    }
    match md.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let rotate = epoch_exhausted(md.producer_epoch)
                && expected.is_none_or(|e| e.1 == md.producer_epoch);
            if !rotate {
                return md
                    .prepare_increment_epoch(timeout_ms, expected.map(|e| e.1), now_ms)
                    .map(InitStep::Write);
            }
            match spare_id.take() {
                None => Ok(InitStep::NeedProducerId),
                Some(id) => md
                    .prepare_producer_id_rotation(id, timeout_ms, now_ms, expected.is_some())
                    .map(InitStep::Write),
            }
        }
        TxnState::Ongoing => {
            md.prepare_fence_epoch()?;
            md.prepare_abort_or_commit(false, now_ms, server_tv, NO_PRODUCER_ID)
                .map(InitStep::AbortOngoing)
        }
        // Dead lives only while its tombstone is written (pending); PrepareEpochFence is never a
        // durable state. Either way another transition is under way.
        TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnError::ConcurrentTransactions),
    }
}

/// AddPartitionsToTxn (client form v0-3, or a leader's implicit add for Produce v12 /
/// TxnOffsetCommit v5 at `client_tv` 2) and AddOffsetsToTxn: the transition to write, or `None`
/// when every partition is in the transaction already.
pub fn plan_add_partitions(
    md: &mut TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TopicPartition],
    now_ms: i64,
    client_tv: i16,
) -> Result<Option<Transit>, TxnError> {
    // First, as Kafka: a pending transition may be moving the producer to a new id or epoch that
    // this request already carries.
    if md.pending.is_some() || md.state.is_prepare() {
        return Err(TxnError::ConcurrentTransactions);
    }
    if md.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if md.producer_epoch != producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    if md.state == TxnState::Ongoing && partitions.iter().all(|p| md.partitions.contains(p)) {
        return Ok(None);
    }
    md.prepare_add_partitions(partitions.iter().cloned(), now_ms, client_tv)
        .map(Some)
}

/// What EndTxn does next.
#[derive(Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Already done (a retry of a completed EndTxn): answer success with this producer id and
    /// epoch (the current ones).
    Done(i64, i16),
    /// Write this Prepare*, answer, then send markers.
    Write(Transit),
    /// Transactions V2 with the epoch exhausted: fetch a producer id and decide again.
    NeedProducerId,
}

/// EndTxn from a client (Kafka's `endTransaction` with `isFromClient`): Transactions V2 when
/// `client_tv` is 2 (EndTxn v5+), where `spare_id` is a producer id fetched for an epoch that
/// the bump exhausts (taken when used).
pub fn plan_end_for(
    md: &mut TxnMetadata,
    (producer_id, producer_epoch): (i64, i16),
    commit: bool,
    client_tv: i16,
    spare_id: &mut Option<i64>,
    now_ms: i64,
) -> Result<EndStep, TxnError> {
    if !bumps_epoch(client_tv) {
        return plan_end(md, producer_id, producer_epoch, commit, now_ms);
    }
    // First, as Kafka (KAFKA-18464): while a transition is written, or the markers of a decided
    // transaction (Kafka has Complete* pending all along), the producer waits — the next end may
    // come right after the previous one's answer, at the epoch it handed out.
    if md.pending.is_some() || md.state.is_prepare() {
        return Err(TxnError::ConcurrentTransactions);
    }
    // A retried EndTxn whose bump (or move to the next producer id) is already done.
    let retry_on_bump = md.producer_epoch as i32 == producer_epoch as i32 + 1;
    let retry_on_overflow = md.last_producer_id == producer_id
        && producer_epoch == i16::MAX - 1
        && md.producer_epoch == 0;
    if md.producer_id != producer_id && !retry_on_overflow {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    let valid_epoch = match md.state {
        TxnState::CompleteCommit | TxnState::CompleteAbort => {
            retry_on_bump || retry_on_overflow || producer_epoch == md.producer_epoch
        }
        _ => producer_epoch == md.producer_epoch,
    };
    if !valid_epoch {
        return Err(TxnError::ProducerFenced);
    }
    let is_retry = retry_on_bump || retry_on_overflow;
    let mut end = |md: &mut TxnMetadata, commit: bool| {
        let next_id = if epoch_exhausted(md.producer_epoch) {
            match spare_id.take() {
                Some(id) => id,
                None => return Ok(EndStep::NeedProducerId),
            }
        } else {
            NO_PRODUCER_ID
        };
        md.prepare_abort_or_commit(commit, now_ms, client_tv, next_id)
            .map(EndStep::Write)
    };
    let done = Ok(EndStep::Done(md.producer_id, md.producer_epoch));
    // Kafka's table: a completed transaction answers a retry of its own end, and a new abort
    // (with nothing open) bumps the epoch again; a new commit with nothing open is invalid.
    match (md.state, commit) {
        (TxnState::Ongoing, _) => end(md, commit),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => done,
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
            if !is_retry =>
        {
            end(md, false)
        }
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// EndTxn from a client (Kafka's `endTransaction` with `isFromClient`), Transactions V1.
pub fn plan_end(
    md: &mut TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<EndStep, TxnError> {
    if md.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if md.producer_epoch != producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    // Kafka has Complete* pending while a decided transaction's markers are written.
    if md.pending.is_some() || md.state.is_prepare() {
        return Err(TxnError::ConcurrentTransactions);
    }
    match (md.state, commit) {
        (TxnState::Ongoing, _) => md
            .prepare_abort_or_commit(commit, now_ms, 0, NO_PRODUCER_ID)
            .map(EndStep::Write),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndStep::Done(md.producer_id, md.producer_epoch))
        }
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The timeout abort (Kafka's `abortTimedOutTransactions`): an Ongoing transaction older than its
/// timeout, with nothing pending, is fenced and a PrepareAbort returned (at `server_tv`, the
/// finalized transaction version).
pub fn plan_timeout_abort(md: &mut TxnMetadata, now_ms: i64, server_tv: i16) -> Option<Transit> {
    if md.pending.is_some()
        || md.state != TxnState::Ongoing
        || md.start_ms.saturating_add(md.timeout_ms as i64) >= now_ms
    {
        return None;
    }
    md.prepare_fence_epoch().ok()?;
    md.prepare_abort_or_commit(false, now_ms, server_tv, NO_PRODUCER_ID)
        .ok()
}

/// `transactional.id.expiration.ms`: an id idle that long, with no transaction open, is dropped
/// (a tombstone is written).
pub fn plan_expiry(md: &mut TxnMetadata, expiration_ms: i64, now_ms: i64) -> Option<Transit> {
    let idle = matches!(
        md.state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    );
    if md.pending.is_some() || !idle || md.last_update_ms.saturating_add(expiration_ms) > now_ms {
        return None;
    }
    md.prepare_dead().ok()
}
