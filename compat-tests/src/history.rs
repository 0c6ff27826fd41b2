//! A history checker for fault tests, in the spirit of Jepsen's Kafka checker: every send carries a
//! unique value and a recorded outcome, reads record which value sat at which (partition, offset), and
//! [`History::check`] reports lost acknowledged writes, duplicates, offsets holding two values, values
//! acknowledged at an offset that holds another, values seen during the run that vanished from the
//! final read, and reads of values nobody sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What the producer learnt about one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this position.
    Ok { partition: i32, offset: i64 },
    /// Definitely never written (e.g. NOT_ENOUGH_REPLICAS before the append, or never sent).
    Failed { error: String },
    /// Indeterminate: timed out, or possibly persisted before an error.
    Unknown { why: String },
}

/// One record as a consumer read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Everything a fault test observed.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// value -> outcome of its send.
    pub sends: BTreeMap<String, Outcome>,
    /// Records read while the faults went on.
    pub run_reads: Vec<Read>,
    /// The full read from the earliest offset of every partition after healing.
    pub final_reads: Vec<Read>,
}

/// How often one anomaly happened, with a few examples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Anomaly {
    pub count: usize,
    pub examples: Vec<String>,
}

const EXAMPLES: usize = 8;

impl Anomaly {
    pub(crate) fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }
}

/// The checker's findings.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown outcomes whose value the final read holds (they were written after all).
    pub unknown_present: usize,
    pub final_read: usize,
    /// Why sends failed or stayed unknown: reason -> count.
    pub reasons: BTreeMap<String, usize>,
    /// Acknowledged, absent from the final read.
    pub lost: Anomaly,
    /// A value at more than one (partition, offset) across all reads.
    pub duplicates: Anomaly,
    /// A (partition, offset) holding different values across all reads.
    pub inconsistent_offsets: Anomaly,
    /// Acknowledged at a position that holds another value, or read elsewhere than acknowledged.
    pub wrong_offset: Anomaly,
    /// Read during the run, absent from the final read.
    pub vanished: Anomaly,
    /// Read, but never sent.
    pub never_sent: Anomaly,
    /// A definite failure that was read after all.
    pub failed_but_present: Anomaly,
}

impl Report {
    /// No anomaly of any kind.
    pub fn is_clean(&self) -> bool {
        [
            &self.lost,
            &self.duplicates,
            &self.inconsistent_offsets,
            &self.wrong_offset,
            &self.vanished,
            &self.never_sent,
            &self.failed_but_present,
        ]
        .iter()
        .all(|a| a.count == 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sent {} acked {} failed {} unknown {} (present {}) final read {}",
            self.sent, self.acked, self.failed, self.unknown, self.unknown_present, self.final_read
        )?;
        if !self.reasons.is_empty() {
            writeln!(f, "  failed/unknown because: {:?}", self.reasons)?;
        }
        for (name, a) in [
            ("lost", &self.lost),
            ("duplicates", &self.duplicates),
            ("inconsistent offsets", &self.inconsistent_offsets),
            ("wrong offset", &self.wrong_offset),
            ("vanished", &self.vanished),
            ("never sent", &self.never_sent),
            ("failed but present", &self.failed_but_present),
        ] {
            writeln!(f, "  {name}: {} {:?}", a.count, a.examples)?;
        }
        Ok(())
    }
}

impl History {
    pub fn check(&self) -> Report {
        let mut r = Report {
            sent: self.sends.len(),
            final_read: self.final_reads.len(),
            ..Report::default()
        };
        let all = || self.run_reads.iter().chain(&self.final_reads);
        // value -> positions, and position -> values, over every read.
        let mut positions: BTreeMap<&str, BTreeSet<(i32, i64)>> = BTreeMap::new();
        let mut values: BTreeMap<(i32, i64), BTreeSet<&str>> = BTreeMap::new();
        for read in all() {
            let at = (read.partition, read.offset);
            positions.entry(&read.value).or_default().insert(at);
            values.entry(at).or_default().insert(&read.value);
        }
        let in_final: BTreeSet<&str> = self.final_reads.iter().map(|x| x.value.as_str()).collect();

        for (value, outcome) in &self.sends {
            let read_at = positions.get(value.as_str());
            match outcome {
                Outcome::Ok { partition, offset } => {
                    r.acked += 1;
                    if !in_final.contains(value.as_str()) {
                        r.lost
                            .add(|| format!("{value} acked at {partition}@{offset}"));
                    }
                    let holds_other = values
                        .get(&(*partition, *offset))
                        .is_some_and(|vs| vs.iter().any(|v| v != value));
                    let elsewhere =
                        read_at.is_some_and(|ps| ps.iter().any(|p| *p != (*partition, *offset)));
                    if holds_other || elsewhere {
                        r.wrong_offset.add(|| {
                            format!(
                                "{value} acked at {partition}@{offset}, which holds {:?}; {value} read at {:?}",
                                values.get(&(*partition, *offset)),
                                read_at
                            )
                        });
                    }
                }
                Outcome::Failed { error } => {
                    r.failed += 1;
                    *r.reasons.entry(format!("failed: {error}")).or_default() += 1;
                    if let Some(ps) = read_at {
                        r.failed_but_present
                            .add(|| format!("{value} failed ({error}), read at {ps:?}"));
                    }
                }
                Outcome::Unknown { why } => {
                    r.unknown += 1;
                    *r.reasons.entry(format!("unknown: {why}")).or_default() += 1;
                    if in_final.contains(value.as_str()) {
                        r.unknown_present += 1;
                    }
                }
            }
        }
        for (value, ps) in &positions {
            if ps.len() > 1 {
                r.duplicates.add(|| {
                    let fin: Vec<_> = self
                        .final_reads
                        .iter()
                        .filter(|x| x.value == *value)
                        .map(|x| (x.partition, x.offset))
                        .collect();
                    format!("{value} at {ps:?} (in the final read at {fin:?})")
                });
            }
            if !self.sends.contains_key(*value) {
                r.never_sent.add(|| format!("{value} at {ps:?}"));
            }
        }
        // Which read saw what, for the examples: the run's reads or the final one.
        let in_run: BTreeSet<(i32, i64, &str)> = self
            .run_reads
            .iter()
            .map(|x| (x.partition, x.offset, x.value.as_str()))
            .collect();
        for ((p, o), vs) in &values {
            if vs.len() > 1 {
                r.inconsistent_offsets.add(|| {
                    let seen: Vec<String> =
                        vs.iter()
                            .map(|v| {
                                let run = in_run.contains(&(*p, *o, *v));
                                let fin = self.final_reads.iter().any(|x| {
                                    (x.partition, x.offset, x.value.as_str()) == (*p, *o, *v)
                                });
                                format!("{v} (run {run}, final {fin})")
                            })
                            .collect();
                    format!("{p}@{o} holds {seen:?}")
                });
            }
        }
        let mut vanished = BTreeSet::new();
        for read in &self.run_reads {
            if !in_final.contains(read.value.as_str()) && vanished.insert(read.value.as_str()) {
                r.vanished
                    .add(|| format!("{} read at {}@{}", read.value, read.partition, read.offset));
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: i32, o: i64) -> Outcome {
        Outcome::Ok {
            partition: p,
            offset: o,
        }
    }

    fn read(p: i32, o: i64, v: &str) -> Read {
        Read {
            partition: p,
            offset: o,
            value: v.into(),
        }
    }

    /// Three acknowledged values at 0@0..2, all read back where acknowledged.
    fn clean() -> History {
        let mut h = History::default();
        for i in 0..3 {
            h.sends.insert(format!("v{i}"), ok(0, i));
            h.final_reads.push(read(0, i, &format!("v{i}")));
        }
        h.run_reads.push(read(0, 1, "v1"));
        h
    }

    #[test]
    fn a_clean_history_reports_nothing() {
        let r = clean().check();
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.sent, r.acked, r.final_read), (3, 3, 3));
    }

    #[test]
    fn an_acknowledged_value_missing_from_the_final_read_is_lost() {
        let mut h = clean();
        h.final_reads.retain(|x| x.value != "v2");
        let r = h.check();
        assert_eq!(r.lost.count, 1, "{r}");
        assert!(r.lost.examples[0].starts_with("v2"));
        assert!(!r.is_clean());
    }

    #[test]
    fn a_value_at_two_offsets_is_a_duplicate() {
        let mut h = clean();
        h.final_reads.push(read(0, 3, "v2"));
        let r = h.check();
        assert_eq!(r.duplicates.count, 1, "{r}");
        // v2 was also read away from where it was acknowledged.
        assert_eq!(r.wrong_offset.count, 1, "{r}");
        assert_eq!(r.lost.count, 0);
    }

    #[test]
    fn an_offset_read_with_two_values_is_inconsistent() {
        let mut h = clean();
        h.sends
            .insert("u".into(), Outcome::Unknown { why: "t".into() });
        h.run_reads.push(read(0, 3, "u"));
        h.final_reads.push(read(0, 3, "w"));
        h.sends
            .insert("w".into(), Outcome::Unknown { why: "t".into() });
        let r = h.check();
        assert_eq!(r.inconsistent_offsets.count, 1, "{r}");
        assert_eq!(r.vanished.count, 1, "u was seen, then gone: {r}");
        assert_eq!((r.unknown, r.unknown_present), (2, 1));
    }

    #[test]
    fn an_acknowledged_offset_holding_another_value_is_a_wrong_offset() {
        let mut h = clean();
        h.sends.insert("x".into(), ok(0, 1));
        h.final_reads.push(read(0, 5, "x"));
        let r = h.check();
        assert_eq!(r.wrong_offset.count, 1, "{r}");
        assert!(r.wrong_offset.examples[0].contains("x acked at 0@1"));
        assert_eq!(r.lost.count, 0);
    }

    #[test]
    fn a_value_seen_during_the_run_and_not_at_the_end_vanished() {
        let mut h = clean();
        h.sends
            .insert("y".into(), Outcome::Unknown { why: "t".into() });
        h.run_reads.push(read(1, 0, "y"));
        let r = h.check();
        assert_eq!(r.vanished.count, 1, "{r}");
        assert_eq!(r.lost.count, 0, "never acknowledged, so not lost");
    }

    #[test]
    fn a_read_of_a_value_nobody_sent_is_reported() {
        let mut h = clean();
        h.final_reads.push(read(0, 3, "ghost"));
        let r = h.check();
        assert_eq!(r.never_sent.count, 1, "{r}");
    }

    #[test]
    fn a_definite_failure_that_was_written_is_reported() {
        let mut h = clean();
        h.sends.insert(
            "f".into(),
            Outcome::Failed {
                error: "NOT_ENOUGH_REPLICAS".into(),
            },
        );
        h.final_reads.push(read(0, 3, "f"));
        let r = h.check();
        assert_eq!(r.failed_but_present.count, 1, "{r}");
        assert_eq!(r.failed, 1);
    }

    #[test]
    fn examples_are_capped_but_counts_are_not() {
        let mut h = History::default();
        for i in 0..20 {
            h.sends.insert(format!("v{i}"), ok(0, i));
        }
        let r = h.check();
        assert_eq!(r.lost.count, 20);
        assert_eq!(r.lost.examples.len(), EXAMPLES);
    }
}
