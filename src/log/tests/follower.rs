//! A replica's appends of the leader's batches: byte-for-byte copies, chaining checks, the epochs and
//! producer state they carry, and what survives a reopen.

use bytes::Bytes;

use super::*;

/// A leader's log with batches of three producers' records in epochs 1 and 3.
fn leader_log(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, LogConfig::default()).unwrap();
    for (n, epoch, pid, seq) in [
        (3, 1, 7i64, 0i32),
        (2, 1, -1, -1),
        (4, 3, 7, 3),
        (1, 3, 9, 0),
    ] {
        let mut b = batch_ts(n, crate::clock::now_ms(), 10);
        if pid >= 0 {
            b[43..51].copy_from_slice(&pid.to_be_bytes());
            b[51..53].copy_from_slice(&0i16.to_be_bytes());
            b[53..57].copy_from_slice(&seq.to_be_bytes());
            fix_crc(&mut b);
        }
        let headers = validate_batches(&b, u32::MAX).unwrap();
        log.append(BytesMut::from(&b[..]), &headers, epoch, 0)
            .unwrap();
    }
    log
}

fn copy(follower: &mut PartitionLog, fetched: Bytes) -> Result<AppendInfo, LogError> {
    let (headers, len) = validate_fetched(&fetched).unwrap();
    follower.append_as_follower(fetched.slice(..len), &headers, 0)
}

fn segment_bytes(dir: &Path) -> Vec<u8> {
    files(dir, "log")
        .iter()
        .flat_map(|p| fs::read(p).unwrap())
        .collect()
}

#[test]
fn copies_are_byte_for_byte_with_epochs_and_producers() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = leader_log(ld.path());
    let mut follower = PartitionLog::open(fd.path(), LogConfig::default()).unwrap();
    // Two fetches, the second from where the first ended.
    let first = leader.read(0, 1, true).unwrap().bytes;
    let a = copy(&mut follower, first).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    let rest = leader.read(3, usize::MAX, true).unwrap().bytes;
    copy(&mut follower, rest).unwrap();
    assert_eq!(follower.log_end_offset(), 10);
    assert_eq!(segment_bytes(fd.path()), segment_bytes(ld.path()));
    assert_eq!(
        follower.leader_epochs().entries(),
        leader.leader_epochs().entries()
    );
    assert_eq!(follower.end_offset_for_epoch(1), (1, 5));
    // The producer state is the leader's: a retry of producer 7's last batch is a duplicate here too.
    let p7 = follower.producer_state().get(7).unwrap();
    assert_eq!((p7.last_seq(), p7.epoch), (6, 0));
    assert_eq!(follower.producer_state().get(9).unwrap().last_seq(), 0);
    let mut retry = batch_ts(4, crate::clock::now_ms(), 10);
    retry[43..51].copy_from_slice(&7i64.to_be_bytes());
    retry[51..53].copy_from_slice(&0i16.to_be_bytes());
    retry[53..57].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut retry);
    let headers = validate_batches(&retry, u32::MAX).unwrap();
    let dup = follower
        .append(BytesMut::from(&retry[..]), &headers, 4, 0)
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (5, 8));
}

#[test]
fn batches_that_do_not_chain_are_refused() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = leader_log(ld.path());
    let mut follower = PartitionLog::open(fd.path(), LogConfig::default()).unwrap();
    let all = leader.read(0, usize::MAX, true).unwrap().bytes;
    copy(&mut follower, leader.read(0, 1, true).unwrap().bytes).unwrap();
    // Starting below the log end: the first batch again.
    let again = copy(&mut follower, all.clone());
    assert!(
        matches!(again, Err(LogError::NotChained { .. })),
        "{again:?}"
    );
    // Batches out of order: the fourth before the third.
    let (headers, _) = validate_fetched(&all).unwrap();
    let starts: Vec<usize> = headers
        .iter()
        .scan(0, |pos, h| {
            let s = *pos;
            *pos += h.total_size();
            Some(s)
        })
        .collect();
    let (third, fourth) = (&all[starts[2]..starts[3]], &all[starts[3]..all.len()]);
    let swapped = Bytes::from([&all[starts[1]..starts[2]], fourth, third].concat());
    let out_of_order = copy(&mut follower, swapped);
    assert!(
        matches!(out_of_order, Err(LogError::NotChained { .. })),
        "{out_of_order:?}"
    );
    // A flipped byte in the records: the CRC check refuses it before any append.
    let mut damaged = all[starts[1]..].to_vec();
    let n = damaged.len();
    damaged[n - 3] ^= 0xff;
    assert!(validate_fetched(&damaged).is_err());
    // A batch with no leader epoch (as a client sends it) is not a leader's batch.
    let fresh = batch(2);
    let mut moved = fresh.clone();
    moved[0..8].copy_from_slice(&3i64.to_be_bytes());
    let no_epoch = copy(&mut follower, Bytes::from(moved));
    assert!(
        matches!(no_epoch, Err(LogError::NotChained { .. })),
        "{no_epoch:?}"
    );
    assert_eq!(follower.log_end_offset(), 3, "nothing refused was written");
    // A partial batch at the end of a fetch is left for the next one.
    let cut = all.slice(starts[1]..all.len() - 5);
    let a = copy(&mut follower, cut).unwrap();
    assert_eq!(a.last_offset, 8);
}

#[test]
fn a_copy_survives_reopen_clean_or_not() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = leader_log(ld.path());
    let mut follower = PartitionLog::open(fd.path(), LogConfig::default()).unwrap();
    copy(
        &mut follower,
        leader.read(0, usize::MAX, true).unwrap().bytes,
    )
    .unwrap();
    drop(follower); // unclean
    let follower = PartitionLog::open(fd.path(), LogConfig::default()).unwrap();
    assert_eq!(follower.log_end_offset(), 10);
    assert_eq!(
        follower.leader_epochs().entries(),
        leader.leader_epochs().entries()
    );
    assert_eq!(follower.producer_state().get(7).unwrap().last_seq(), 6);
    follower.close().unwrap();
    let mut follower = PartitionLog::open(fd.path(), LogConfig::default()).unwrap();
    assert_eq!(follower.producer_state().get(9).unwrap().last_seq(), 0);
    assert_eq!(segment_bytes(fd.path()), segment_bytes(ld.path()));
    // Emptied and restarted further on (the leader's log start moved past this replica's end).
    assert_eq!(follower.truncate_fully_and_start_at(40).unwrap(), 40);
    assert!(follower.leader_epochs().entries().is_empty());
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (40, 40)
    );
}
