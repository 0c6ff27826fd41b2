//! A history checker for transactions under faults (issue 13): each transaction is kept with its
//! records (unique values, each with the partition it was sent to and, if its delivery report came
//! back, the offset) and its outcome; after healing, a read_committed read of every partition from
//! the earliest offset up to its last stable offset (which must have reached the high watermark)
//! must show no record of an aborted transaction, every record of every committed transaction, all
//! or nothing of each transaction whose outcome is unknown, no duplicate and nothing never sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use crate::history::{Anomaly, Read};

/// What the producer learnt about one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// commit_transaction returned Ok.
    Committed,
    /// abort_transaction returned Ok.
    Aborted,
    /// Never committed: commit_transaction was never called (the abort failed, or the producer was
    /// fenced or replaced first). No EndTxn(commit) was sent, so nothing of it may be visible.
    NeverCommitted { why: String },
    /// commit_transaction failed or timed out: all of it or nothing may be visible.
    Unknown { why: String },
}

/// One record sent within a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub value: String,
    pub partition: i32,
    /// The offset of its delivery report, if one came back Ok.
    pub offset: Option<i64>,
}

/// One transaction: its records and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    pub records: Vec<Sent>,
    pub outcome: TxnOutcome,
}

/// A partition whose last stable offset stayed below its high watermark: a transaction left open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hanging {
    pub partition: i32,
    pub lso: i64,
    pub high_watermark: i64,
}

/// Everything a transactional fault test observed.
#[derive(Clone, Debug, Default)]
pub struct TxnHistory {
    /// Transaction name (unique) -> the transaction.
    pub txns: BTreeMap<String, Txn>,
    /// read_committed records read while the faults went on.
    pub run_reads: Vec<Read>,
    /// The full read_committed read after healing.
    pub final_reads: Vec<Read>,
    /// The full read_uncommitted read after healing: what the log holds, aborted records too.
    pub log_reads: Vec<Read>,
    /// Partitions whose LSO did not reach the high watermark before the final read.
    pub hanging: Vec<Hanging>,
}

/// The checker's findings.
#[derive(Clone, Debug, Default)]
pub struct TxnReport {
    pub committed: usize,
    pub aborted: usize,
    pub never_committed: usize,
    pub unknown: usize,
    /// Unknown-outcome transactions the final read shows in full (they committed after all).
    pub unknown_visible: usize,
    pub records_sent: usize,
    pub run_read: usize,
    pub final_read: usize,
    /// Records of aborted (or never committed) transactions the read_uncommitted read found in the
    /// log: the read_committed read had to leave them out.
    pub aborted_in_log: usize,
    /// Why transactions ended unknown or never committed: reason -> count.
    pub reasons: BTreeMap<String, usize>,
    /// A record of an aborted (or never committed) transaction was read.
    pub aborted_read: Anomaly,
    /// A committed transaction of which the final read lacks some (or all) records.
    pub committed_partial: Anomaly,
    /// An unknown-outcome transaction of which the final read holds some records but not all.
    pub unknown_partial: Anomaly,
    /// A value read at more than one (partition, offset), or twice by the final read.
    pub duplicates: Anomaly,
    /// A value read that no transaction sent.
    pub never_sent: Anomaly,
    /// A value read on another partition than it was sent to, or at another offset than its
    /// delivery report gave.
    pub misplaced: Anomaly,
    /// Read during the run, absent from the final read.
    pub vanished: Anomaly,
    /// A partition whose LSO never reached its high watermark.
    pub hanging: Anomaly,
}

impl TxnReport {
    fn anomalies(&self) -> [(&'static str, &Anomaly); 8] {
        [
            ("aborted read", &self.aborted_read),
            ("committed partly visible", &self.committed_partial),
            ("unknown partly visible", &self.unknown_partial),
            ("duplicates", &self.duplicates),
            ("never sent", &self.never_sent),
            ("misplaced", &self.misplaced),
            ("vanished", &self.vanished),
            ("hanging", &self.hanging),
        ]
    }

    /// No anomaly of any kind.
    pub fn is_clean(&self) -> bool {
        self.anomalies().iter().all(|(_, a)| a.count == 0)
    }
}

impl fmt::Display for TxnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "transactions: committed {} aborted {} never committed {} unknown {} (visible {}); records sent {} read during the run {} final read {} aborted records in the log {}",
            self.committed,
            self.aborted,
            self.never_committed,
            self.unknown,
            self.unknown_visible,
            self.records_sent,
            self.run_read,
            self.final_read,
            self.aborted_in_log
        )?;
        if !self.reasons.is_empty() {
            writeln!(f, "  unknown/never committed because: {:?}", self.reasons)?;
        }
        for (name, a) in self.anomalies() {
            writeln!(f, "  {name}: {} {:?}", a.count, a.examples)?;
        }
        Ok(())
    }
}

impl TxnHistory {
    pub fn check(&self) -> TxnReport {
        let mut r = TxnReport {
            run_read: self.run_reads.len(),
            final_read: self.final_reads.len(),
            ..TxnReport::default()
        };
        // value -> (transaction, record).
        let mut sent: BTreeMap<&str, (&str, &Sent)> = BTreeMap::new();
        for (name, t) in &self.txns {
            for s in &t.records {
                r.records_sent += 1;
                sent.insert(&s.value, (name, s));
            }
        }
        // value -> positions, over every read_committed read; and over the log read as well.
        let mut positions: BTreeMap<&str, BTreeSet<(i32, i64)>> = BTreeMap::new();
        for x in self.run_reads.iter().chain(&self.final_reads) {
            positions
                .entry(&x.value)
                .or_default()
                .insert((x.partition, x.offset));
        }
        let mut everywhere = positions.clone();
        let mut in_log: BTreeMap<&str, usize> = BTreeMap::new();
        for x in &self.log_reads {
            everywhere
                .entry(&x.value)
                .or_default()
                .insert((x.partition, x.offset));
            *in_log.entry(&x.value).or_default() += 1;
        }
        let mut in_final: BTreeMap<&str, usize> = BTreeMap::new();
        for x in &self.final_reads {
            *in_final.entry(&x.value).or_default() += 1;
        }

        for (name, t) in &self.txns {
            let visible = t
                .records
                .iter()
                .filter(|s| in_final.contains_key(s.value.as_str()))
                .count();
            let read_any = t
                .records
                .iter()
                .any(|s| positions.contains_key(s.value.as_str()));
            let summary = || {
                format!(
                    "{name}: {visible} of {} visible ({:?})",
                    t.records.len(),
                    t.records
                        .iter()
                        .map(|s| format!(
                            "{}@{}{}",
                            s.value,
                            s.partition,
                            if in_final.contains_key(s.value.as_str()) {
                                "+"
                            } else {
                                "-"
                            }
                        ))
                        .collect::<Vec<_>>()
                )
            };
            match &t.outcome {
                TxnOutcome::Committed => {
                    r.committed += 1;
                    if visible < t.records.len() {
                        r.committed_partial.add(summary);
                    }
                }
                TxnOutcome::Aborted | TxnOutcome::NeverCommitted { .. } => {
                    if let TxnOutcome::NeverCommitted { why } = &t.outcome {
                        r.never_committed += 1;
                        *r.reasons
                            .entry(format!("never committed: {why}"))
                            .or_default() += 1;
                    } else {
                        r.aborted += 1;
                    }
                    if read_any {
                        r.aborted_read.add(summary);
                    }
                    r.aborted_in_log += t
                        .records
                        .iter()
                        .filter(|s| in_log.contains_key(s.value.as_str()))
                        .count();
                }
                TxnOutcome::Unknown { why } => {
                    r.unknown += 1;
                    *r.reasons.entry(format!("unknown: {why}")).or_default() += 1;
                    if visible == t.records.len() && visible > 0 {
                        r.unknown_visible += 1;
                    } else if visible > 0 {
                        r.unknown_partial.add(summary);
                    } else if read_any {
                        // Seen during the run but not at the end: caught as vanished below.
                    }
                }
            }
        }

        for (value, ps) in &everywhere {
            let twice = in_final.get(value).is_some_and(|n| *n > 1)
                || in_log.get(value).is_some_and(|n| *n > 1);
            if ps.len() > 1 || twice {
                r.duplicates.add(|| format!("{value} at {ps:?}"));
            }
            match sent.get(value) {
                None => r.never_sent.add(|| format!("{value} at {ps:?}")),
                Some((name, s)) => {
                    let elsewhere = ps.iter().any(|(p, o)| {
                        *p != s.partition || s.offset.is_some_and(|acked| acked != *o)
                    });
                    if elsewhere {
                        r.misplaced.add(|| {
                            format!(
                                "{value} of {name} sent to {} (acked at {:?}), read at {ps:?}",
                                s.partition, s.offset
                            )
                        });
                    }
                }
            }
        }
        let mut vanished = BTreeSet::new();
        for x in &self.run_reads {
            if !in_final.contains_key(x.value.as_str()) && vanished.insert(x.value.as_str()) {
                r.vanished
                    .add(|| format!("{} read at {}@{}", x.value, x.partition, x.offset));
            }
        }
        for h in &self.hanging {
            r.hanging.add(|| {
                format!(
                    "partition {}: LSO {} below high watermark {}",
                    h.partition, h.lso, h.high_watermark
                )
            });
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(name: &str, n: i64, outcome: TxnOutcome) -> (String, Txn) {
        let records = (0..n)
            .map(|i| Sent {
                value: format!("{name}-{i}"),
                partition: (i % 2) as i32,
                offset: None,
            })
            .collect();
        (name.to_string(), Txn { records, outcome })
    }

    fn unknown() -> TxnOutcome {
        TxnOutcome::Unknown {
            why: "timed out".into(),
        }
    }

    /// Appends every record of `name` to the final read at the next offsets of its partitions.
    fn show(h: &mut TxnHistory, name: &str, only: Option<usize>) {
        let t = h.txns[name].clone();
        for s in t.records.iter().take(only.unwrap_or(usize::MAX)) {
            let next = h
                .final_reads
                .iter()
                .filter(|x| x.partition == s.partition)
                .map(|x| x.offset + 1)
                .max()
                .unwrap_or(0);
            h.final_reads.push(Read {
                partition: s.partition,
                offset: next,
                value: s.value.clone(),
            });
        }
    }

    /// c committed (visible), a aborted (invisible), u unknown (visible in full), v unknown (not
    /// visible at all).
    fn clean() -> TxnHistory {
        let mut h = TxnHistory::default();
        h.txns.extend([
            txn("c", 3, TxnOutcome::Committed),
            txn("a", 3, TxnOutcome::Aborted),
            txn("u", 2, unknown()),
            txn("v", 2, unknown()),
        ]);
        show(&mut h, "c", None);
        show(&mut h, "u", None);
        h
    }

    #[test]
    fn a_clean_history_reports_nothing() {
        let r = clean().check();
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.committed, r.aborted, r.unknown), (1, 1, 2), "{r}");
        assert_eq!(
            (r.unknown_visible, r.records_sent, r.final_read),
            (1, 10, 5)
        );
    }

    #[test]
    fn a_record_of_an_aborted_transaction_read_is_reported() {
        let mut h = clean();
        show(&mut h, "a", Some(1));
        let r = h.check();
        assert_eq!(r.aborted_read.count, 1, "{r}");
        assert!(r.aborted_read.examples[0].starts_with("a:"), "{r}");
        assert!(!r.is_clean());
    }

    #[test]
    fn a_never_committed_transaction_read_during_the_run_is_an_aborted_read() {
        let mut h = clean();
        h.txns.extend([txn(
            "n",
            2,
            TxnOutcome::NeverCommitted {
                why: "fenced".into(),
            },
        )]);
        h.run_reads.push(Read {
            partition: 0,
            offset: 9,
            value: "n-0".into(),
        });
        let r = h.check();
        assert_eq!(r.aborted_read.count, 1, "{r}");
        assert_eq!(r.vanished.count, 1, "{r}");
        assert_eq!(r.never_committed, 1);
    }

    #[test]
    fn a_committed_transaction_partly_visible_is_reported() {
        let mut h = clean();
        h.final_reads.retain(|x| x.value != "c-1");
        let r = h.check();
        assert_eq!(r.committed_partial.count, 1, "{r}");
        assert!(r.committed_partial.examples[0].contains("2 of 3"), "{r}");
    }

    #[test]
    fn a_committed_transaction_not_visible_at_all_is_reported() {
        let mut h = clean();
        h.final_reads.retain(|x| !x.value.starts_with("c-"));
        let r = h.check();
        assert_eq!(r.committed_partial.count, 1, "{r}");
        assert!(r.committed_partial.examples[0].contains("0 of 3"), "{r}");
    }

    #[test]
    fn an_unknown_transaction_partly_visible_is_reported() {
        let mut h = clean();
        show(&mut h, "v", Some(1));
        let r = h.check();
        assert_eq!(r.unknown_partial.count, 1, "{r}");
        assert_eq!(r.unknown_visible, 1, "u only");
    }

    #[test]
    fn a_value_read_twice_is_a_duplicate() {
        let mut h = clean();
        let again = h.final_reads[0].clone();
        h.final_reads.push(Read {
            offset: 100,
            ..again.clone()
        });
        assert_eq!(h.check().duplicates.count, 1);
        // The same offset twice in the final read, too.
        let mut h = clean();
        h.final_reads.push(again);
        let r = h.check();
        assert_eq!(r.duplicates.count, 1, "{r}");
    }

    #[test]
    fn a_value_nobody_sent_is_reported() {
        let mut h = clean();
        h.final_reads.push(Read {
            partition: 1,
            offset: 50,
            value: "ghost".into(),
        });
        let r = h.check();
        assert_eq!(r.never_sent.count, 1, "{r}");
    }

    #[test]
    fn a_value_read_away_from_its_partition_or_acknowledged_offset_is_misplaced() {
        let mut h = clean();
        h.final_reads[0].partition = 7;
        assert_eq!(h.check().misplaced.count, 1);
        let mut h = clean();
        let first = h.final_reads[0].clone();
        let t = h.txns.get_mut("c").unwrap();
        let s = t
            .records
            .iter_mut()
            .find(|s| s.value == first.value)
            .unwrap();
        s.offset = Some(first.offset + 1);
        let r = h.check();
        assert_eq!(r.misplaced.count, 1, "{r}");
    }

    #[test]
    fn the_log_read_counts_aborted_records_and_shows_duplicates_in_the_log() {
        let mut h = clean();
        // The log holds c, a and u; a is not an aborted read, it only counts.
        let mut log = Vec::new();
        for (i, v) in ["c-0", "c-1", "c-2", "a-0", "a-1", "a-2", "u-0", "u-1"]
            .iter()
            .enumerate()
        {
            let s = h
                .txns
                .values()
                .flat_map(|t| &t.records)
                .find(|s| s.value == *v);
            let partition = s.map_or(0, |s| s.partition);
            log.push(Read {
                partition,
                offset: 100 + i as i64,
                value: v.to_string(),
            });
        }
        // Positions of c and u as the final read has them.
        for x in log.iter_mut() {
            if let Some(f) = h.final_reads.iter().find(|f| f.value == x.value) {
                *x = f.clone();
            }
        }
        h.log_reads = log.clone();
        let r = h.check();
        assert!(r.is_clean(), "{r}");
        assert_eq!(r.aborted_in_log, 3, "{r}");
        // An aborted record written twice is a duplicate even though nobody reads it committed.
        h.log_reads.push(Read {
            offset: 500,
            ..log[3].clone()
        });
        let r = h.check();
        assert_eq!(r.duplicates.count, 1, "{r}");
        assert_eq!(r.aborted_read.count, 0, "{r}");
    }

    #[test]
    fn a_hanging_partition_is_reported() {
        let mut h = clean();
        h.hanging.push(Hanging {
            partition: 1,
            lso: 3,
            high_watermark: 9,
        });
        let r = h.check();
        assert_eq!(r.hanging.count, 1, "{r}");
        assert!(!r.is_clean());
    }
}
