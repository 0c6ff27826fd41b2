//! InitProducerId (key 22): a producer id and epoch for idempotent producers. Transactional ids are answered
//! as a Kafka broker that is not their transaction coordinator answers them (transactions are unsupported).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{debug, warn};

use super::{HandlerResult, RequestContext};

/// v6 (KIP-939, two-phase commit) is not in kafka-protocol 0.18's request schema, so it is not served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Kafka's default `transaction.max.timeout.ms`.
const TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;

pub async fn handle(ctx: RequestContext, req: InitProducerIdRequest) -> HandlerResult {
    // As KafkaApis does (KIP-360, v3+): a producer id without an epoch, or an epoch without an id, is malformed.
    if (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
        return Ok(Some(failed(ResponseError::InvalidRequest)));
    }
    let code = match req.transactional_id {
        // Kafka's TransactionCoordinator "blindly accepts" a non-transactional request: a new producer id with
        // epoch 0, whether or not the request carries an earlier id and epoch (KIP-360 bumps only apply to
        // transactional ids). The producer's sequences restart at 0 with the new id.
        None => {
            return match ctx.broker.producer_ids.next(&ctx.broker.metadata).await {
                Ok(id) => {
                    debug!(peer = %ctx.peer, producer_id = id, previous = req.producer_id.0,
                        "issued producer id");
                    Ok(Some(
                        InitProducerIdResponse::default()
                            .with_producer_id(ProducerId(id))
                            .with_producer_epoch(0)
                            .into(),
                    ))
                }
                Err(e) => {
                    // Kafka's producer id manager answers COORDINATOR_LOAD_IN_PROGRESS (retriable) while it
                    // has no block of ids to hand out.
                    warn!(error = %e, "cannot allocate a producer id");
                    Ok(Some(failed(ResponseError::CoordinatorLoadInProgress)))
                }
            };
        }
        // The coordinator's own checks, in its order.
        Some(t) if t.0.is_empty() => ResponseError::InvalidRequest,
        Some(_)
            if req.transaction_timeout_ms <= 0
                || req.transaction_timeout_ms > TRANSACTION_MAX_TIMEOUT_MS =>
        {
            ResponseError::InvalidTransactionTimeout
        }
        // Kafka's TransactionStateManager answers NOT_COORDINATOR for a transactional id whose
        // `__transaction_state` partition this broker does not lead; this broker leads none, so that is the
        // answer for every transactional id. It is retriable and makes a client look the coordinator up with
        // FindCoordinator, which (like the other transactional APIs) we do not advertise, so real clients stop
        // there with "transactions not supported" instead of looping.
        Some(t) => {
            debug!(peer = %ctx.peer, transactional_id = %t.0.as_str(), "transactional InitProducerId refused");
            ResponseError::NotCoordinator
        }
    };
    Ok(Some(failed(code)))
}

/// Kafka's `initTransactionError`: no producer id, no epoch.
fn failed(error: ResponseError) -> kafka_protocol::messages::ResponseKind {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .into()
}
