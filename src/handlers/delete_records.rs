//! DeleteRecords (key 21): moves partitions' log start offsets forward (`kafka-delete-records`,
//! AdminClient.deleteRecords); whole segments below the new start are removed from disk.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::{info, warn};

use super::{HandlerResult, RequestContext};
use crate::log::LogError;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(ctx: RequestContext, req: DeleteRecordsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let topic = image.topics.get(name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result =
                        DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let refused = |code: ResponseError| {
                        result.clone().with_low_watermark(-1).with_error_code(code.code())
                    };
                    // As in Kafka: internal topics are never truncated by clients, and records of a
                    // log that is only compacted are not deleted by offset.
                    if topic.is_some_and(|t| t.internal) {
                        return refused(ResponseError::InvalidTopicException);
                    }
                    let Some(partition) = broker.partitions.get(name, p.partition_index) else {
                        return refused(ResponseError::UnknownTopicOrPartition);
                    };
                    if !partition.with_log(|l| l.config().cleanup_delete) {
                        return refused(ResponseError::PolicyViolation);
                    }
                    match partition.delete_records_before(p.offset) {
                        Ok(low) => {
                            info!(topic = %name, partition = p.partition_index, log_start_offset = low,
                                "records deleted");
                            result.with_low_watermark(low)
                        }
                        Err(LogError::OffsetOutOfRange { .. }) => {
                            refused(ResponseError::OffsetOutOfRange)
                        }
                        Err(e) => {
                            warn!(topic = %name, partition = p.partition_index, error = %e,
                                "delete records failed");
                            refused(ResponseError::KafkaStorageError)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        DeleteRecordsResponse::default().with_topics(topics).into(),
    ))
}
