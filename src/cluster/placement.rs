//! Replica placement for new topics and partitions, as Kafka's AdminUtils places them:
//! round-robin from a random start with a shifting second replica, rack-alternating when brokers
//! have racks, over the brokers that may take replicas; manual assignments checked instead.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use super::image::MetadataImage;

/// Why replicas could not be placed (Kafka's INVALID_REPLICATION_FACTOR, 38, and
/// INVALID_REPLICA_ASSIGNMENT, 39).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
}

/// A broker that may take replicas, with its rack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// The brokers new replicas go to: registered, unfenced and not shutting down. While no broker
/// is unfenced at all (liveness not running, as for a single node before its first heartbeat,
/// or an image from before registrations), every registered broker.
pub fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    let live = |id: &i32| image.can_lead(*id);
    let any_live = image.brokers.keys().any(live);
    image
        .brokers
        .values()
        .filter(|b| !any_live || live(&b.id))
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// Replica lists for partitions `first..first + count` with `rf` replicas each, over `brokers`
/// (any order), starting at a random broker. `rf` above the number of brokers is refused.
pub fn place(
    brokers: &[Candidate],
    first: usize,
    count: usize,
    rf: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut rng = rand::rng();
    let n = brokers.len().max(1);
    place_from(
        brokers,
        first,
        count,
        rf,
        rng.random_range(0..n),
        rng.random_range(0..n),
    )
}

/// [`place`] with a fixed start index and replica shift (deterministic, for tests).
pub fn place_from(
    brokers: &[Candidate],
    first: usize,
    count: usize,
    rf: usize,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf == 0 {
        return Err(PlacementError::InvalidReplicationFactor(
            "Replication factor must be larger than 0.".into(),
        ));
    }
    if rf > brokers.len() {
        return Err(PlacementError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
            brokers.len()
        )));
    }
    let rack_aware = brokers.iter().any(|b| b.rack.is_some());
    let (list, racks) = if rack_aware {
        rack_alternated(brokers)
    } else {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        (ids, BTreeMap::new())
    };
    let n = list.len();
    let num_racks = racks.values().collect::<BTreeSet<_>>().len().max(1);
    let mut shift = shift;
    let mut out = Vec::with_capacity(count);
    for p in first..first + count {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first_index = (p + start) % n;
        let leader = list[first_index];
        let mut replicas = vec![leader];
        if !rack_aware {
            for j in 0..rf - 1 {
                replicas.push(list[replica_index(first_index, shift, j, n)]);
            }
        } else {
            let mut used_racks = BTreeSet::from([racks[&leader].clone()]);
            let mut k = 0;
            while replicas.len() < rf {
                let b = list[replica_index(first_index, shift * num_racks, k, n)];
                let rack = racks[&b].clone();
                let rack_ok = !used_racks.contains(&rack) || used_racks.len() == num_racks;
                let broker_ok = !replicas.contains(&b) || replicas.len() == n;
                if rack_ok && broker_ok {
                    replicas.push(b);
                    used_racks.insert(rack);
                }
                k += 1;
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

/// Kafka's `replicaIndex`: the j-th follower, shifted so followers spread over the brokers.
fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    let s = 1 + (shift + j) % (n - 1);
    (first + s) % n
}

/// Brokers ordered so racks alternate (each rack's brokers by id, racks by name); a broker with
/// no rack counts as one more rack, as KRaft's placer does.
fn rack_alternated(brokers: &[Candidate]) -> (Vec<i32>, BTreeMap<i32, String>) {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut racks = BTreeMap::new();
    for b in brokers {
        let rack = b.rack.clone().unwrap_or_default();
        by_rack.entry(rack.clone()).or_default().push(b.id);
        racks.insert(b.id, rack);
    }
    let mut iters: Vec<std::vec::IntoIter<i32>> = by_rack
        .into_values()
        .map(|mut ids| {
            ids.sort_unstable();
            ids.into_iter()
        })
        .collect();
    let mut list = Vec::with_capacity(brokers.len());
    let mut r = 0;
    while list.len() < brokers.len() {
        if let Some(id) = iters[r].next() {
            list.push(id);
        }
        r = (r + 1) % iters.len();
    }
    (list, racks)
}

/// Checks manual replica lists: each non-empty, of one length, without duplicates, naming only
/// registered brokers.
pub fn validate_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
) -> Result<(), PlacementError> {
    let rf = assignments.first().map_or(0, Vec::len);
    for (p, replicas) in assignments.iter().enumerate() {
        let bad = |why: String| Err(PlacementError::InvalidReplicaAssignment(why));
        if replicas.is_empty() {
            return bad(format!(
                "The manual partition assignment of partition {p} is empty."
            ));
        }
        if replicas.len() != rf {
            return bad(format!(
                "The manual partition assignment of partition {p} has {} replicas, partition 0 has {rf}.",
                replicas.len()
            ));
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return bad(format!(
                "The manual partition assignment of partition {p} names a broker twice: {replicas:?}."
            ));
        }
        if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
            return bad(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32], racks: Option<&[&str]>) -> Vec<Candidate> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                id: *id,
                rack: racks.map(|r| r[i].to_string()),
            })
            .collect()
    }

    #[test]
    fn round_robin_matches_kafkas_fixed_start_example() {
        // AdminUtilsTest.testReplicaAssignment: 5 brokers, 10 partitions, RF 3, start 0.
        let got = place_from(&brokers(&[0, 1, 2, 3, 4], None), 0, 10, 3, 0, 0).unwrap();
        let want: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn leaders_and_replicas_spread_evenly_from_any_start() {
        let b = brokers(&[1, 2, 3], None);
        for _ in 0..20 {
            let got = place(&b, 0, 6, 2).unwrap();
            let mut leaders = BTreeMap::new();
            let mut replicas = BTreeMap::new();
            for r in &got {
                assert_eq!(r.len(), 2);
                assert_ne!(r[0], r[1]);
                *leaders.entry(r[0]).or_insert(0) += 1;
                for x in r {
                    *replicas.entry(*x).or_insert(0) += 1;
                }
            }
            assert!(leaders.values().all(|c| *c == 2), "{got:?}");
            assert!(replicas.values().all(|c| *c == 4), "{got:?}");
        }
    }

    #[test]
    fn racks_alternate_and_each_partition_spans_racks() {
        let b = brokers(&[1, 2, 3, 4, 5, 6], Some(&["a", "a", "b", "b", "c", "c"]));
        let (list, _) = rack_alternated(&b);
        assert_eq!(list, vec![1, 3, 5, 2, 4, 6]);
        for start in 0..6 {
            let got = place_from(&b, 0, 12, 3, start, start).unwrap();
            for r in &got {
                let racks: BTreeSet<_> = r.iter().map(|id| (id - 1) / 2).collect();
                assert_eq!(racks.len(), 3, "{r:?} repeats a rack");
            }
        }
        // RF above the rack count: every rack first, then any broker not yet used.
        let two_racks = brokers(&[1, 2, 3, 4], Some(&["a", "a", "b", "b"]));
        for r in place(&two_racks, 0, 8, 3).unwrap() {
            let distinct: BTreeSet<_> = r.iter().collect();
            assert_eq!(distinct.len(), 3);
            let racks: BTreeSet<_> = r.iter().map(|id| (id - 1) / 2).collect();
            assert_eq!(racks.len(), 2);
        }
    }

    #[test]
    fn replication_above_the_broker_count_is_refused() {
        let err = place(&brokers(&[1, 2], None), 0, 3, 3).unwrap_err();
        assert!(
            matches!(err, PlacementError::InvalidReplicationFactor(m) if m.contains("only 2 broker"))
        );
        assert!(place(&brokers(&[1], None), 0, 1, 0).is_err());
    }

    #[test]
    fn manual_assignments_are_checked_against_registered_brokers() {
        let mut image = MetadataImage::empty();
        for id in [1, 2] {
            image.brokers.insert(
                id,
                super::super::image::BrokerInfo {
                    id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    listeners: Vec::new(),
                },
            );
        }
        assert!(validate_assignments(&image, &[vec![1, 2], vec![2, 1]]).is_ok());
        for bad in [
            vec![vec![1, 3]],
            vec![vec![1, 1]],
            vec![vec![1, 2], vec![1]],
            vec![vec![]],
        ] {
            assert!(validate_assignments(&image, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_brokers_that_may_lead_are_candidates_once_any_can() {
        use super::super::image::{BrokerInfo, MetadataCommand};
        let mut image = MetadataImage::empty();
        for id in [1, 2, 3] {
            let info = BrokerInfo {
                id,
                host: "h".into(),
                port: 1,
                rack: None,
                listeners: Vec::new(),
            };
            image.apply_at(MetadataCommand::RegisterBroker(info), id as u64);
        }
        // No broker heartbeated yet (liveness not running): all registered ones.
        let ids = |c: Vec<Candidate>| c.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(candidates(&image)), vec![1, 2, 3]);
        for id in [1, 3] {
            image.apply(MetadataCommand::UnfenceBroker {
                id,
                epoch: id as i64,
            });
        }
        assert_eq!(ids(candidates(&image)), vec![1, 3]);
        image.apply(MetadataCommand::ControlledShutdown { id: 3, epoch: 3 });
        assert_eq!(ids(candidates(&image)), vec![1]);
        let err = place(&candidates(&image), 0, 1, 2).unwrap_err();
        assert!(matches!(err, PlacementError::InvalidReplicationFactor(_)));
    }
}
