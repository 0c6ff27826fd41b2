//! DeleteRecords (key 21): the wire side of `ReplicaManager::delete_records`, which moves
//! partitions' log start offsets forward (`kafka-delete-records`, AdminClient.deleteRecords).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(ctx: RequestContext, req: DeleteRecordsRequest) -> HandlerResult {
    let replicas = &ctx.broker.replicas;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match replicas.delete_records(&t.name.0, p.partition_index, p.offset) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result
                            .with_low_watermark(-1)
                            .with_error_code(e.code().code()),
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
