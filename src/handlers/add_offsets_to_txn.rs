//! AddOffsetsToTxn (key 25): a transactional producer adds a group's `__consumer_offsets` partition
//! to its transaction before TxnOffsetCommit (`sendOffsetsToTransaction`).

use kafka_protocol::messages::AddOffsetsToTxnRequest;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(ctx: RequestContext, req: AddOffsetsToTxnRequest) -> HandlerResult {
    let partitions = ctx.broker.group.offsets_partition_count();
    let answer =
        crate::txn::api::add_offsets_to_txn(&ctx.broker.txn, &req, ctx.api_version, partitions)
            .await;
    Ok(Some(answer.into()))
}
