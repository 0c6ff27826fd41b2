//! DescribeLogDirs (key 35): the one log directory with the size of every partition in it and,
//! from v4, the volume's total and usable bytes (above the free-space floor; what kafka-ui and
//! `kafka-log-dirs` show).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::log::volume;

/// Kafka 4 removed v0 (KIP-896).
pub const VERSIONS: (i16, i16) = (1, 4);

pub async fn handle(ctx: RequestContext, req: DescribeLogDirsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    // null asks for every partition; otherwise only the named ones (unknown ones are left out).
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in broker.partitions.all() {
        let asked = wanted.as_ref().is_none_or(|w| {
            w.get(p.topic.as_str())
                .is_some_and(|ps| ps.contains(&p.index))
        });
        if !asked {
            continue;
        }
        let size = p.with_log(|l| l.size_bytes());
        by_topic.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = &broker.config.data_dir;
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    // Kafka's UNKNOWN_VOLUME_BYTES where the volume cannot be asked. Usable: what produce may still
    // take, the free bytes above the free-space floor.
    let (total, usable) = volume::space(dir)
        .map(|(t, u)| (t as i64, u.saturating_sub(broker.disk.floor()) as i64))
        .unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(shown.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    Ok(Some(
        DescribeLogDirsResponse::default()
            .with_results(vec![result])
            .into(),
    ))
}
