//! SaslAuthenticate (key 36): one round of the mechanism chosen by SaslHandshake. A failed
//! authentication is answered with SASL_AUTHENTICATION_FAILED, then the connection closes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::{info, warn};

use super::{HandlerResult, RequestContext};
use crate::server::sasl::SaslError;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(ctx: RequestContext, req: SaslAuthenticateRequest) -> HandlerResult {
    let session = &ctx.session;
    let response = match session.authenticate(&req.auth_bytes) {
        Ok(reply) => {
            if let Some(user) = session.principal() {
                info!(peer = %ctx.peer, %user, "SASL authentication succeeded");
            }
            // No re-authentication (connections.max.reauth.ms = 0): the session does not expire.
            SaslAuthenticateResponse::default()
                .with_auth_bytes(reply)
                .with_session_lifetime_ms(0)
        }
        Err(e) => {
            warn!(peer = %ctx.peer, error = %e, "SASL authentication failed");
            let code = match e {
                SaslError::AuthenticationFailed(_) => ResponseError::SaslAuthenticationFailed,
                _ => ResponseError::IllegalSaslState,
            };
            SaslAuthenticateResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        }
    };
    Ok(Some(response.into()))
}
