//! Unit tests of Transactions V2 (KIP-890 part 2) in the state machine and the coordinator's
//! decisions: the epoch bump of every EndTxn v5, its retries, aborts with nothing open, the move to
//! a new producer id when the epoch is exhausted, and the coordinator's own aborts at level 2.

use super::error::TxnError;
use super::plan::*;
use super::records::TxnLogValue;
use super::state::*;

const T: i32 = 60_000;
const MAX_CLIENT_EPOCH: i16 = i16::MAX - 1;

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

fn apply(md: &mut TxnMetadata, t: Transit) -> Transit {
    assert_eq!(md.pending, Some(t.state));
    assert!(md.complete(&t));
    t
}

/// Producer 7 at `epoch` with a V2 transaction open on `a-0` (added by a leader, started at 100).
fn ongoing_v2(epoch: i16) -> TxnMetadata {
    let mut md = TxnMetadata::new("t", 7, T, 0);
    md.producer_epoch = epoch;
    let t = plan_add_partitions(&mut md, 7, epoch, &[tp("a", 0)], 100, TV_2)
        .unwrap()
        .unwrap();
    apply(&mut md, t);
    md
}

fn end(md: &mut TxnMetadata, epoch: i16, commit: bool) -> Result<EndStep, TxnError> {
    plan_end_for(md, (7, epoch), commit, TV_2, &mut None, 1_000)
}

/// Ends the open transaction at `epoch` and completes it (markers written): the Prepare* transit.
fn end_and_complete(md: &mut TxnMetadata, epoch: i16, commit: bool) -> Transit {
    let Ok(EndStep::Write(prepared)) = end(md, epoch, commit) else {
        panic!("end at epoch {epoch} not written")
    };
    apply(md, prepared.clone());
    let complete = md.prepare_complete(2_000).unwrap();
    apply(md, complete);
    prepared
}

#[test]
fn every_end_bumps_the_epoch_and_hands_it_out() {
    let mut md = ongoing_v2(3);
    let Ok(EndStep::Write(prepared)) = end(&mut md, 3, true) else {
        panic!()
    };
    // The markers carry the bumped epoch; the client continues with it.
    assert_eq!(
        (
            prepared.state,
            prepared.producer_epoch,
            prepared.last_producer_epoch
        ),
        (TxnState::PrepareCommit, 4, 3)
    );
    assert_eq!(prepared.handed_out(), (7, 4));
    assert_eq!(prepared.client_tv, TV_2);
    apply(&mut md, prepared);
    // While the markers are written every end waits (as in Kafka, where Complete* is pending
    // meanwhile): a retry of this one, the next transaction's at the new epoch (which may come
    // right after this answer), even an older epoch's; a leader's add for the next waits too.
    assert_eq!(end(&mut md, 3, true), Err(TxnError::ConcurrentTransactions));
    assert_eq!(
        end(&mut md, 4, false),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(end(&mut md, 2, true), Err(TxnError::ConcurrentTransactions));
    assert_eq!(
        plan_add_partitions(&mut md, 7, 4, &[tp("a", 0)], 1_500, TV_2),
        Err(TxnError::ConcurrentTransactions)
    );
    let complete = md.prepare_complete(2_000).unwrap();
    assert_eq!((complete.producer_id, complete.producer_epoch), (7, 4));
    apply(&mut md, complete);
    // A retried EndTxn (the answer was lost) gets the same answer; the old epoch can do nothing
    // else; the new one starts the next transaction.
    assert_eq!(end(&mut md, 3, true), Ok(EndStep::Done(7, 4)));
    assert_eq!(end(&mut md, 3, false), Err(TxnError::InvalidTxnState));
    assert_eq!(
        plan_add_partitions(&mut md, 7, 3, &[tp("a", 0)], 2_500, TV_2),
        Err(TxnError::ProducerFenced)
    );
    let next = plan_add_partitions(&mut md, 7, 4, &[tp("b", 0)], 3_000, TV_2)
        .unwrap()
        .unwrap();
    assert_eq!((next.state, next.start_ms), (TxnState::Ongoing, 3_000));
}

#[test]
fn an_abort_with_nothing_open_bumps_the_epoch_and_a_commit_is_invalid() {
    for state in [
        TxnState::Empty,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ] {
        let mut md = TxnMetadata::new("t", 7, T, 0);
        md.producer_epoch = 5;
        md.state = state;
        assert_eq!(
            end(&mut md, 5, true),
            Err(TxnError::InvalidTxnState),
            "{state:?}"
        );
        let Ok(EndStep::Write(t)) = end(&mut md, 5, false) else {
            panic!("{state:?}")
        };
        assert_eq!(
            (t.state, t.producer_epoch, t.partitions.len(), t.start_ms),
            (TxnState::PrepareAbort, 6, 0, 1_000),
            "{state:?}"
        );
        assert_eq!(
            end(&mut md, 4, false),
            Err(TxnError::ConcurrentTransactions)
        );
    }
    // Not the current epoch and not a retry: fenced.
    let mut md = TxnMetadata::new("t", 7, T, 0);
    md.producer_epoch = 5;
    assert_eq!(end(&mut md, 3, false), Err(TxnError::ProducerFenced));
    assert_eq!(
        plan_end_for(&mut md, (8, 5), false, TV_2, &mut None, 1),
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[test]
fn an_exhausted_epoch_ends_with_the_next_producer_id() {
    let mut md = ongoing_v2(MAX_CLIENT_EPOCH);
    assert_eq!(
        end(&mut md, MAX_CLIENT_EPOCH, true),
        Ok(EndStep::NeedProducerId)
    );
    assert_eq!(md.pending, None, "nothing pending while the id is fetched");
    let mut spare = Some(900);
    let Ok(EndStep::Write(prepared)) = plan_end_for(
        &mut md,
        (7, MAX_CLIENT_EPOCH),
        true,
        TV_2,
        &mut spare,
        1_000,
    ) else {
        panic!()
    };
    assert_eq!(spare, None, "the spare id is taken");
    // Markers still go out under the old id, at the one epoch no client is handed (i16::MAX).
    assert_eq!(
        (prepared.producer_id, prepared.producer_epoch),
        (7, i16::MAX)
    );
    assert_eq!(prepared.handed_out(), (900, 0));
    // The durable record says which id comes next, so a successor resumes the same way.
    let value = TxnLogValue::decode(prepared.to_value().encode(1)).unwrap();
    assert_eq!(
        (value.next_producer_id, value.client_transaction_version),
        (900, TV_2)
    );
    apply(&mut md, prepared);
    let complete = md.prepare_complete(2_000).unwrap();
    assert_eq!(
        (
            complete.producer_id,
            complete.producer_epoch,
            complete.last_producer_id,
            complete.next_producer_id
        ),
        (900, 0, 7, NO_PRODUCER_ID)
    );
    apply(&mut md, complete);
    // A retry under the old id is recognised; the new id goes on.
    assert_eq!(
        end(&mut md, MAX_CLIENT_EPOCH, true),
        Ok(EndStep::Done(900, 0))
    );
    let next = plan_add_partitions(&mut md, 900, 0, &[tp("a", 0)], 3_000, TV_2)
        .unwrap()
        .unwrap();
    apply(&mut md, next);
    let prepared = end_and_complete_as(&mut md, 900, 0);
    assert_eq!(prepared.handed_out(), (900, 1));
}

fn end_and_complete_as(md: &mut TxnMetadata, producer_id: i64, epoch: i16) -> Transit {
    let Ok(EndStep::Write(prepared)) =
        plan_end_for(md, (producer_id, epoch), true, TV_2, &mut None, 1_000)
    else {
        panic!()
    };
    apply(md, prepared.clone());
    let complete = md.prepare_complete(2_000).unwrap();
    apply(md, complete);
    prepared
}

#[test]
fn a_timed_out_v2_transaction_is_aborted_at_the_bumped_epoch_and_the_producer_recovers() {
    let mut md = ongoing_v2(3);
    let t = plan_timeout_abort(&mut md, 100 + T as i64 + 1, TV_2).unwrap();
    assert_eq!(
        (t.state, t.producer_epoch, t.last_producer_epoch),
        (TxnState::PrepareAbort, 4, 3)
    );
    apply(&mut md, t);
    let complete = md.prepare_complete(70_000).unwrap();
    apply(&mut md, complete);
    // The producer's own abort (at its epoch 3) is the retry of that one: it goes on at 4.
    assert_eq!(end(&mut md, 3, false), Ok(EndStep::Done(7, 4)));
    // Its commit is not: the transaction is gone.
    assert_eq!(end(&mut md, 3, true), Err(TxnError::InvalidTxnState));
}

#[test]
fn v1_ends_keep_the_epoch_next_to_v2() {
    let mut md = ongoing_v2(3);
    let prepared = {
        let Ok(EndStep::Write(t)) = plan_end_for(&mut md, (7, 3), true, 0, &mut None, 1) else {
            panic!()
        };
        t
    };
    assert_eq!(
        (prepared.producer_epoch, prepared.handed_out()),
        (3, (7, 3))
    );
    apply(&mut md, prepared);
    let complete = md.prepare_complete(2).unwrap();
    apply(&mut md, complete);
    // Then a V2 transaction of the same producer bumps.
    let add = plan_add_partitions(&mut md, 7, 3, &[tp("a", 0)], 3, TV_2)
        .unwrap()
        .unwrap();
    apply(&mut md, add);
    assert_eq!(end_and_complete(&mut md, 3, false).producer_epoch, 4);
}
