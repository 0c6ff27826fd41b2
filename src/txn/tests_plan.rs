//! Unit tests of the state machine and the coordinator's decisions (`state.rs`, `plan.rs`): every
//! transition and every error, with times passed in.

use super::error::TxnError;
use super::plan::*;
use super::state::*;

const T: i32 = 60_000;

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

/// Completes the transition `t` as a durable write would.
fn apply(md: &mut TxnMetadata, t: Transit) -> Transit {
    assert_eq!(md.pending, Some(t.state));
    assert!(md.complete(&t));
    t
}

fn init(md: &mut TxnMetadata, expected: Option<(i64, i16)>) -> Result<InitStep, TxnError> {
    plan_init(md, T, expected, &mut None, 1000, 0)
}

fn initialised(epoch: i16) -> TxnMetadata {
    let mut md = TxnMetadata::new("t", 7, T, 0);
    md.producer_epoch = epoch;
    md
}

fn ongoing(partitions: &[TopicPartition]) -> TxnMetadata {
    let mut md = initialised(3);
    let t = plan_add_partitions(&mut md, 7, 3, partitions, 100, 0)
        .unwrap()
        .unwrap();
    apply(&mut md, t);
    md
}

#[test]
fn a_new_id_gets_epoch_zero_and_a_pending_write_blocks_others() {
    let mut md = TxnMetadata::new("t", 7, T, 0);
    let InitStep::Write(t) = init(&mut md, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        (t.producer_id, t.producer_epoch, t.state),
        (7, 0, TxnState::Empty)
    );
    assert_eq!(init(&mut md, None), Err(TxnError::ConcurrentTransactions));
    assert_eq!(
        plan_add_partitions(&mut md, 7, 0, &[tp("a", 0)], 1, 0),
        Err(TxnError::ConcurrentTransactions),
        "the epoch being written: wait for it"
    );
    assert_eq!(
        md.producer_epoch, NO_EPOCH,
        "not taken on before the write is durable"
    );
    apply(&mut md, t);
    assert_eq!(md.producer_epoch, 0);
    // A failed write drops the pending transition and changes nothing else.
    let InitStep::Write(_) = init(&mut md, None).unwrap() else {
        panic!()
    };
    md.abort_pending();
    assert_eq!((md.pending, md.producer_epoch), (None, 0));
}

#[test]
fn init_bumps_the_epoch_from_every_idle_state() {
    for state in [
        TxnState::Empty,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ] {
        let mut md = initialised(5);
        md.state = state;
        let InitStep::Write(t) = init(&mut md, None).unwrap() else {
            panic!()
        };
        let t = apply(&mut md, t);
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (6, NO_EPOCH));
        assert_eq!((md.state, md.timeout_ms), (TxnState::Empty, T));
    }
}

#[test]
fn kip_360_expected_producer_id_and_epoch() {
    // The current epoch: bumped, and the previous one remembered.
    let mut md = initialised(5);
    let InitStep::Write(t) = init(&mut md, Some((7, 5))).unwrap() else {
        panic!()
    };
    apply(&mut md, t);
    assert_eq!((md.producer_epoch, md.last_producer_epoch), (6, 5));
    // A retry with the previous epoch (its answer was lost): the same epoch again.
    let InitStep::Write(t) = init(&mut md, Some((7, 5))).unwrap() else {
        panic!()
    };
    apply(&mut md, t);
    assert_eq!(md.producer_epoch, 6);
    // Any other epoch, or another producer id, is fenced.
    assert_eq!(init(&mut md, Some((7, 2))), Err(TxnError::ProducerFenced));
    assert_eq!(init(&mut md, Some((8, 6))), Err(TxnError::ProducerFenced));
    // The previous producer id with an exhausted epoch is a retry after a rotation.
    md.last_producer_id = 3;
    assert!(matches!(
        init(&mut md, Some((3, i16::MAX - 1))),
        Err(TxnError::ProducerFenced)
    ));
    md.pending = None;
    // A state without an epoch yet accepts any id (recovery from UNKNOWN_PRODUCER_ID).
    let mut fresh = TxnMetadata::new("t", 9, T, 0);
    let InitStep::Write(t) = init(&mut fresh, Some((4, 2))).unwrap() else {
        panic!()
    };
    assert_eq!(t.producer_epoch, 0);
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut md = initialised(i16::MAX - 1);
    let mut spare = None;
    let old = Some((7, i16::MAX - 1));
    assert_eq!(
        plan_init(&mut md, T, old, &mut spare, 1, 0),
        Ok(InitStep::NeedProducerId)
    );
    assert_eq!(md.pending, None);
    spare = Some(99);
    let InitStep::Write(t) = plan_init(&mut md, T, old, &mut spare, 1, 0).unwrap() else {
        panic!()
    };
    assert_eq!(spare, None);
    apply(&mut md, t);
    assert_eq!(
        (md.producer_id, md.producer_epoch, md.last_producer_id),
        (99, 0, 7)
    );
    // The old producer retrying with its exhausted epoch is recognised as a retry: the same id
    // and epoch again.
    let InitStep::Write(t) = plan_init(&mut md, T, old, &mut None, 2, 0).unwrap() else {
        panic!()
    };
    assert_eq!((t.producer_id, t.producer_epoch), (99, 0));
    md.abort_pending();
    // Without an expected epoch a rotation forgets the old epoch.
    let mut md = initialised(i16::MAX - 1);
    let InitStep::Write(t) = plan_init(&mut md, T, None, &mut Some(5), 1, 0).unwrap() else {
        panic!()
    };
    assert_eq!((t.producer_id, t.last_producer_epoch), (5, NO_EPOCH));
}

#[test]
fn init_fences_and_aborts_an_open_transaction() {
    let mut md = ongoing(&[tp("a", 0)]);
    let InitStep::AbortOngoing(t) = init(&mut md, None).unwrap() else {
        panic!()
    };
    assert_eq!((t.state, t.producer_epoch), (TxnState::PrepareAbort, 4));
    assert_eq!(t.partitions.len(), 1);
    // The old producer is fenced at once, before the abort is durable.
    assert_eq!(md.producer_epoch, 4);
    assert_eq!(
        plan_end(&mut md, 7, 3, true, 1),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(init(&mut md, None), Err(TxnError::ConcurrentTransactions));
    apply(&mut md, t);
    // Markers pending: the retried InitProducerId waits.
    assert_eq!(init(&mut md, None), Err(TxnError::ConcurrentTransactions));
    let t = md.prepare_complete(2).unwrap();
    apply(&mut md, t);
    assert_eq!(
        (md.state, md.partitions.len()),
        (TxnState::CompleteAbort, 0)
    );
    let InitStep::Write(t) = init(&mut md, None).unwrap() else {
        panic!()
    };
    assert_eq!(t.producer_epoch, 5, "the retry bumps a second time");
}

#[test]
fn add_partitions_checks_and_transitions() {
    let mut md = initialised(3);
    let a0 = [tp("a", 0)];
    assert_eq!(
        plan_add_partitions(&mut md, 8, 3, &a0, 1, 0),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        plan_add_partitions(&mut md, 7, 2, &a0, 1, 0),
        Err(TxnError::ProducerFenced)
    );
    let t = plan_add_partitions(&mut md, 7, 3, &a0, 100, 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan_add_partitions(&mut md, 7, 3, &[tp("b", 0)], 1, 0),
        Err(TxnError::ConcurrentTransactions)
    );
    apply(&mut md, t);
    assert_eq!((md.state, md.start_ms), (TxnState::Ongoing, 100));
    assert_eq!(
        plan_add_partitions(&mut md, 7, 3, &a0, 150, 0),
        Ok(None),
        "already added"
    );
    let t = plan_add_partitions(&mut md, 7, 3, &[tp("b", 1)], 200, 0)
        .unwrap()
        .unwrap();
    apply(&mut md, t);
    assert_eq!(
        (md.start_ms, md.last_update_ms, md.partitions.len()),
        (100, 200, 2)
    );
    let t = plan_end(&mut md, 7, 3, true, 300).unwrap();
    let EndStep::Write(t) = t else { panic!() };
    apply(&mut md, t);
    assert_eq!(
        plan_add_partitions(&mut md, 7, 3, &a0, 1, 0),
        Err(TxnError::ConcurrentTransactions)
    );
    let t = md.prepare_complete(400).unwrap();
    apply(&mut md, t);
    // The next transaction starts afresh.
    let t = plan_add_partitions(&mut md, 7, 3, &[tp("c", 0)], 500, 0)
        .unwrap()
        .unwrap();
    apply(&mut md, t);
    assert_eq!((md.start_ms, md.partitions.len()), (500, 1));
}

#[test]
fn end_txn_in_every_state() {
    use TxnState::*;
    let cases = [
        (Empty, true, Err(TxnError::InvalidTxnState)),
        (CompleteCommit, true, Ok(EndStep::Done(7, 3))),
        (CompleteCommit, false, Err(TxnError::InvalidTxnState)),
        (CompleteAbort, false, Ok(EndStep::Done(7, 3))),
        (CompleteAbort, true, Err(TxnError::InvalidTxnState)),
        (PrepareCommit, true, Err(TxnError::ConcurrentTransactions)),
        (PrepareCommit, false, Err(TxnError::ConcurrentTransactions)),
        (PrepareAbort, false, Err(TxnError::ConcurrentTransactions)),
        (PrepareAbort, true, Err(TxnError::ConcurrentTransactions)),
    ];
    for (state, commit, want) in cases {
        let mut md = initialised(3);
        md.state = state;
        assert_eq!(
            plan_end(&mut md, 7, 3, commit, 1),
            want,
            "{state:?} commit={commit}"
        );
    }
    for commit in [true, false] {
        let mut md = ongoing(&[tp("a", 0), tp("a", 1)]);
        assert_eq!(
            plan_end(&mut md, 9, 3, commit, 1),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            plan_end(&mut md, 7, 4, commit, 1),
            Err(TxnError::ProducerFenced)
        );
        let Ok(EndStep::Write(t)) = plan_end(&mut md, 7, 3, commit, 5) else {
            panic!()
        };
        let want = if commit { PrepareCommit } else { PrepareAbort };
        assert_eq!(
            (t.state, t.partitions.len(), t.producer_epoch),
            (want, 2, 3)
        );
        assert_eq!(
            plan_end(&mut md, 7, 3, commit, 1),
            Err(TxnError::ConcurrentTransactions)
        );
        apply(&mut md, t);
        let t = md.prepare_complete(6).unwrap();
        let t = apply(&mut md, t);
        assert_eq!(
            t.state,
            if commit {
                CompleteCommit
            } else {
                CompleteAbort
            }
        );
    }
}

#[test]
fn completing_what_is_not_pending_changes_nothing() {
    let mut md = ongoing(&[tp("a", 0)]);
    let stale = md.clone().prepare_complete(1);
    assert_eq!(stale, Err(TxnError::InvalidTxnState));
    let Ok(EndStep::Write(t)) = plan_end(&mut md, 7, 3, true, 5) else {
        panic!()
    };
    let mut other = t.clone();
    other.state = TxnState::PrepareAbort;
    let before = md.clone();
    assert!(!md.complete(&other));
    assert_eq!(md, before);
    assert_eq!(md.prepare_dead(), Err(TxnError::ConcurrentTransactions));
}

#[test]
fn timed_out_transactions_are_fenced_and_aborted() {
    let mut md = ongoing(&[tp("a", 0)]);
    let deadline = md.start_ms + T as i64;
    assert_eq!(
        plan_timeout_abort(&mut md, deadline, 0),
        None,
        "not older than its timeout yet"
    );
    let t = plan_timeout_abort(&mut md, deadline + 1, 0).unwrap();
    assert_eq!((t.state, t.producer_epoch), (TxnState::PrepareAbort, 4));
    assert_eq!(
        plan_timeout_abort(&mut md, deadline + 2, 0),
        None,
        "pending"
    );
    let mut idle = initialised(3);
    assert_eq!(plan_timeout_abort(&mut idle, i64::MAX, 0), None);
}

#[test]
fn idle_ids_expire_but_open_ones_do_not() {
    let mut md = initialised(3);
    md.last_update_ms = 1000;
    assert_eq!(plan_expiry(&mut md, 500, 1499), None);
    let t = plan_expiry(&mut md, 500, 1500).unwrap();
    assert_eq!(t.state, TxnState::Dead);
    apply(&mut md, t);
    let mut open = ongoing(&[tp("a", 0)]);
    assert_eq!(plan_expiry(&mut open, 0, i64::MAX), None);
}

#[test]
fn records_carry_the_transition() {
    let md = ongoing(&[tp("b", 1), tp("a", 2), tp("a", 0)]);
    let mut m = md.clone();
    let Ok(EndStep::Write(t)) = plan_end(&mut m, 7, 3, true, 5) else {
        panic!()
    };
    let v = t.to_value();
    assert_eq!(
        v.partitions,
        vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])]
    );
    let back = TxnMetadata::from_value("t", &v);
    assert_eq!(
        (back.state, back.partitions, back.producer_epoch),
        (TxnState::PrepareCommit, t.partitions, 3)
    );
}
