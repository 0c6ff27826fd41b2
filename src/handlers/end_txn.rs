//! EndTxn (key 26): commits or aborts a producer's transaction (the coordinator writes the prepare
//! record, answers, then writes the markers). v0-4: v5's per-transaction epoch bump belongs to
//! Transactions V2 (KIP-890), which is not advertised.

use kafka_protocol::messages::EndTxnRequest;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(ctx: RequestContext, req: EndTxnRequest) -> HandlerResult {
    let answer = crate::txn::api::end_txn(&ctx.broker.txn, &req, ctx.api_version).await;
    Ok(Some(answer.into()))
}
