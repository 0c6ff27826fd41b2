//! AddPartitionsToTxn (key 24): a transactional producer adds partitions to its transaction before
//! producing to them. The client form (v0-3) only; v4+ is the brokers' verification form of
//! Transactions V2 (KIP-890), not served.

use kafka_protocol::messages::AddPartitionsToTxnRequest;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 3);

pub async fn handle(ctx: RequestContext, req: AddPartitionsToTxnRequest) -> HandlerResult {
    let image = ctx.broker.metadata.image();
    let answer =
        crate::txn::api::add_partitions_to_txn(&ctx.broker.txn, &image, &req, ctx.api_version)
            .await;
    Ok(Some(answer.into()))
}
