//! ListTransactions (key 66, KIP-664): the transactional ids this broker coordinates, filtered by
//! state, producer id and (v1, KIP-994) how long they have been open. v2's id pattern (KIP-1152) is
//! not served.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(ctx: RequestContext, req: ListTransactionsRequest) -> HandlerResult {
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = if ctx.api_version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let response = match ctx
        .broker
        .txn
        .list_transactions(&states, &producer_ids, min_duration)
    {
        Err(e) => ListTransactionsResponse::default().with_error_code(e.response_error().code()),
        Ok(list) => ListTransactionsResponse::default()
            .with_unknown_state_filters(
                list.unknown_state_filters
                    .into_iter()
                    .map(StrBytes::from_string)
                    .collect(),
            )
            .with_transaction_states(
                list.transactions
                    .into_iter()
                    .map(|t| {
                        TransactionState::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_string(
                                t.transactional_id,
                            )))
                            .with_producer_id(ProducerId(t.producer_id))
                            .with_transaction_state(StrBytes::from_static_str(t.state.name()))
                    })
                    .collect(),
            ),
    };
    Ok(Some(response.into()))
}
