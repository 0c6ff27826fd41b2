//! InitProducerId (key 22): a producer id and epoch for idempotent producers; for a transactional id,
//! the transaction coordinator's answer (epoch bump, fencing of the previous producer).

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::{debug, warn};

use super::{HandlerResult, RequestContext};

/// v6 (KIP-939) adds two-phase-commit flags; kafka-protocol 0.18 lists v6 but its request codec stops
/// at v5, so `decode` and `encode_request` below handle v6 themselves.
pub const VERSIONS: (i16, i16) = (0, 6);

/// The last version kafka-protocol 0.18 can decode and encode for this request.
const CODEC_MAX_VERSION: i16 = 5;

pub async fn handle(ctx: RequestContext, req: InitProducerIdRequest) -> HandlerResult {
    // As KafkaApis does (KIP-360, v3+): a producer id without an epoch, or an epoch without an id, is malformed.
    if (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
        return Ok(Some(failed(ResponseError::InvalidRequest)));
    }
    // Two-phase commit (v6) only means something for a transactional producer.
    if (req.enable_2_pc || req.keep_prepared_txn) && req.transactional_id.is_none() {
        return Ok(Some(failed(ResponseError::InvalidRequest)));
    }
    if req.transactional_id.is_none() {
        // Kafka's TransactionCoordinator "blindly accepts" a non-transactional request: a new producer id with
        // epoch 0, whether or not the request carries an earlier id and epoch (KIP-360 bumps only apply to
        // transactional ids). The producer's sequences restart at 0 with the new id.
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
                // has no block of ids to hand out, as here when the metadata storage is unavailable
                // (the response has no message field: the log line says why).
                warn!(error = %e, "cannot allocate a producer id");
                Ok(Some(failed(ResponseError::CoordinatorLoadInProgress)))
            }
        };
    }
    // KIP-939's two-phase commit is off, as with Kafka's default
    // `transaction.two.phase.commit.enable=false`, which answers this code.
    if req.enable_2_pc || req.keep_prepared_txn {
        return Ok(Some(failed(
            ResponseError::TransactionalIdAuthorizationFailed,
        )));
    }
    let answer = crate::txn::api::init_producer_id(&ctx.broker.txn, &req, ctx.api_version).await;
    debug!(peer = %ctx.peer, transactional_id = ?req.transactional_id.as_ref().map(|t| t.0.as_str()),
        code = answer.error_code, producer_id = answer.producer_id.0,
        epoch = answer.producer_epoch, "transactional InitProducerId");
    Ok(Some(answer.into()))
}

/// Kafka's `initTransactionError`: no producer id, no epoch.
fn failed(error: ResponseError) -> kafka_protocol::messages::ResponseKind {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .into()
}

/// Decodes a request body. v6 is v5 with `enable_2pc` and `keep_prepared_txn` (booleans) after
/// `producer_epoch`: the two bytes are taken out and the rest decoded by the codec as v5.
pub fn decode(buf: &mut Bytes, version: i16) -> anyhow::Result<RequestKind> {
    if version <= CODEC_MAX_VERSION {
        return RequestKind::decode(ApiKey::InitProducerId, buf, version);
    }
    let at = v6_flags_position(buf, 2)?;
    let (enable_2_pc, keep_prepared_txn) = (buf[at] != 0, buf[at + 1] != 0);
    let mut v5 = BytesMut::with_capacity(buf.len() - 2);
    v5.extend_from_slice(&buf[..at]);
    v5.extend_from_slice(&buf[at + 2..]);
    let req = InitProducerIdRequest::decode(&mut v5.freeze(), CODEC_MAX_VERSION)?;
    buf.advance(buf.len());
    Ok(RequestKind::InitProducerId(
        req.with_enable_2_pc(enable_2_pc)
            .with_keep_prepared_txn(keep_prepared_txn),
    ))
}

/// Encodes a request body at `version` (client side: tests and tools), v6 included.
pub fn encode_request(
    req: &InitProducerIdRequest,
    version: i16,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    if version <= CODEC_MAX_VERSION {
        return req.encode(out, version);
    }
    let mut v5 = BytesMut::new();
    req.encode(&mut v5, CODEC_MAX_VERSION)?;
    let at = v6_flags_position(&v5, 0)?;
    out.extend_from_slice(&v5[..at]);
    out.extend_from_slice(&[req.enable_2_pc as u8, req.keep_prepared_txn as u8]);
    out.extend_from_slice(&v5[at..]);
    Ok(())
}

/// Where the v6 flags sit: after the compact nullable `transactional_id`, the timeout (4 bytes),
/// the producer id (8) and the producer epoch (2). `flags` bytes (2 in a v6 body, 0 in the v5
/// encoding they are added to) and the tagged-field count must follow.
fn v6_flags_position(body: &[u8], flags: usize) -> anyhow::Result<usize> {
    // The compact string's length prefix: an unsigned varint holding length + 1 (0 = null).
    let mut n: u64 = 0;
    let mut prefix = 0;
    loop {
        let byte = *body
            .get(prefix)
            .ok_or_else(|| anyhow::anyhow!("truncated InitProducerId v6 body"))?;
        anyhow::ensure!(prefix < 5, "InitProducerId v6: varint longer than 5 bytes");
        n |= ((byte & 0x7f) as u64) << (7 * prefix);
        prefix += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let string_len = n.saturating_sub(1) as usize;
    let at = prefix + string_len + 4 + 8 + 2;
    anyhow::ensure!(
        body.len() > at + flags,
        "InitProducerId v6 body of {} bytes is truncated",
        body.len()
    );
    Ok(at)
}
