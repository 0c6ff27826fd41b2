//! EndTxn (key 26): commits or aborts a producer's transaction (the coordinator writes the prepare
//! record, answers, then writes the markers). v5 is Transactions V2 (KIP-890 part 2): every
//! transaction ends with an epoch bump, and the answer carries the producer id and epoch to go on with.

use kafka_protocol::messages::EndTxnRequest;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(ctx: RequestContext, req: EndTxnRequest) -> HandlerResult {
    let answer = crate::txn::api::end_txn(&ctx.broker.txn, &req, ctx.api_version).await;
    Ok(Some(answer.into()))
}
