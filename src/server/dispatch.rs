//! Request dispatch: parse the header, check the API table, decode, run the handler, encode the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, RequestHeader, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::{debug, warn};

use super::prewalk::prewalk;
use super::response::{ChunkedBuf, Frame};
use super::sasl::Session;
use crate::broker::Broker;
use crate::handlers::{self, api_versions, RequestContext};

/// What the connection does with a request.
pub enum Outcome {
    /// A complete response frame, size prefix included.
    Respond(Frame),
    /// Nothing to send back (Produce with acks=0).
    NoResponse,
    /// Close the connection, as Kafka does for requests it cannot parse or does not support.
    Close(String),
    /// Send this frame, then close (a refused SASL authentication).
    RespondAndClose(Frame),
}

/// Bytes before the variable part of every request header: api key, api version, correlation id.
const FIXED_HEADER: usize = 8;

pub async fn dispatch(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    peer: SocketAddr,
    frame: Bytes,
) -> Outcome {
    if session.takes_raw_tokens() {
        return raw_sasl_token(session, &frame);
    }
    if frame.len() < FIXED_HEADER {
        return Outcome::Close(format!("request of {} bytes has no header", frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);

    let Some(api) = handlers::lookup(api_key) else {
        return Outcome::Close(format!("unsupported api key {api_key}"));
    };
    if !api.supports(version) {
        if api.key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 shape with UNSUPPORTED_VERSION and our ranges; the client retries.
            debug!(%peer, version, "ApiVersions version not supported; sending our ranges");
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version_response());
            return encode(api.key, correlation_id, 0, &body);
        }
        return Outcome::Close(format!(
            "{:?} v{version} is not supported (supported v{}-v{})",
            api.key, api.min_version, api.max_version
        ));
    }

    if !session.allows(api.key) {
        // Kafka closes a connection that sends anything else before it has authenticated.
        return Outcome::Close(format!(
            "unexpected {:?} request during SASL authentication",
            api.key
        ));
    }
    // Bounded walk first: kafka-protocol reserves array capacity from wire counts (see `prewalk`).
    if let Err(e) = prewalk(
        &frame,
        api_key,
        version,
        api.key.request_header_version(version),
    ) {
        return Outcome::Close(format!("refused {:?} v{version} request: {e}", api.key));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, api.key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("bad {:?} request header: {e}", api.key)),
    };
    debug!(%peer, api = ?api.key, version, correlation_id, "request received");
    let request = match (api.decode)(&mut buf, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("bad {:?} v{version} request: {e:#}", api.key)),
    };
    let ctx = RequestContext {
        broker: broker.clone(),
        api_version: version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        peer,
        session: session.clone(),
    };
    let started = std::time::Instant::now();
    let result = (api.handle)(ctx, request).await;
    debug!(%peer, api = ?api.key, version, correlation_id, elapsed_us = started.elapsed().as_micros() as u64, "request handled");
    match result {
        // A refused authentication is answered, then the connection closes.
        Ok(Some(response)) if session.must_close() => {
            match encode(api.key, correlation_id, version, &response) {
                Outcome::Respond(bytes) => Outcome::RespondAndClose(bytes),
                other => other,
            }
        }
        Ok(Some(response)) => encode(api.key, correlation_id, version, &response),
        Ok(None) => Outcome::NoResponse,
        Err(e) => {
            warn!(%peer, api = ?api.key, version, error = %e, "request failed");
            Outcome::Close(e.to_string())
        }
    }
}

fn encode(key: ApiKey, correlation_id: i32, version: i16, body: &ResponseKind) -> Outcome {
    if let ResponseKind::Fetch(fetch) = body {
        return encode_fetch(correlation_id, version, fetch);
    }
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let result = header
        .encode(&mut buf, key.response_header_version(version))
        .and_then(|_| body.encode(&mut buf, version));
    if let Err(e) = result {
        return Outcome::Close(format!("cannot encode {key:?} v{version} response: {e:#}"));
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(buf.freeze().into())
}

/// A Fetch answer's record batches (up to `fetch.max.bytes`, 50 MiB by default) are referenced in
/// the frame rather than copied into it: that copy was a seventh of the broker's CPU time when
/// consumers read at full speed.
fn encode_fetch(correlation_id: i32, version: i16, body: &FetchResponse) -> Outcome {
    let records = body
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .collect();
    let mut buf = ChunkedBuf::new(records);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let result = header
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
        .and_then(|_| body.encode(&mut buf, version));
    if let Err(e) = result {
        return Outcome::Close(format!("cannot encode Fetch v{version} response: {e:#}"));
    }
    match buf.into_sized_frame() {
        Ok(frame) => Outcome::Respond(frame),
        Err(_) => Outcome::Close(format!("Fetch v{version} response over 2 GiB")),
    }
}

/// After a SaslHandshake v0 the client sends its SASL tokens as bare frames and reads the replies
/// the same way; a refused token closes the connection (that flow has no way to say why).
fn raw_sasl_token(session: &Session, token: &[u8]) -> Outcome {
    match session.authenticate(token) {
        Ok(reply) => {
            let mut buf = BytesMut::with_capacity(4 + reply.len());
            buf.put_i32(reply.len() as i32);
            buf.put_slice(&reply);
            Outcome::Respond(buf.freeze().into())
        }
        Err(e) => Outcome::Close(format!("SASL authentication failed: {e}")),
    }
}
