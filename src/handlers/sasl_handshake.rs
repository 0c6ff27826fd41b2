//! SaslHandshake (key 17): picks the SASL mechanism for the tokens that follow: in SaslAuthenticate
//! requests after v1 (KIP-152), as bare size-prefixed frames after v0 (`server::dispatch` reads them).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{HandlerResult, RequestContext};
use crate::server::sasl::SaslError;

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(ctx: RequestContext, req: SaslHandshakeRequest) -> HandlerResult {
    let session = &ctx.session;
    let code = match session.handshake(req.mechanism.as_str(), ctx.api_version) {
        Ok(()) => 0,
        Err(e) => {
            info!(peer = %ctx.peer, mechanism = %req.mechanism.as_str(), error = %e, "SASL handshake refused");
            match e {
                SaslError::UnsupportedMechanism(_) => ResponseError::UnsupportedSaslMechanism,
                _ => ResponseError::IllegalSaslState,
            }
            .code()
        }
    };
    let mechanisms = session
        .mechanisms()
        .into_iter()
        .map(StrBytes::from_static_str)
        .collect();
    Ok(Some(
        SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(mechanisms)
            .into(),
    ))
}
