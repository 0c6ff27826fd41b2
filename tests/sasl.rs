//! SASL on the listener over the wire against the real binary: what may be sent before
//! authenticating, PLAIN with good and bad passwords, unsupported mechanisms, and Kafka's errors.
//! SCRAM is driven by the real clients in compat-tests/.

mod common;

use bytes::Bytes;
use common::{BrokerProcess, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;

fn start(dir: &std::path::Path) -> BrokerProcess {
    let cfg = dir.join("sasl.toml");
    std::fs::write(
        &cfg,
        "[sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-256\"]\n[sasl.users]\nalice = \"alice-secret\"\n",
    )
    .unwrap();
    BrokerProcess::start(&dir.join("data"), &["--config", cfg.to_str().unwrap()])
}

fn handshake(c: &mut Client, mechanism: &str) -> SaslHandshakeResponse {
    let req = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(mechanism.to_string()));
    match c.request(ApiKey::SaslHandshake, 1, req) {
        Some(ResponseKind::SaslHandshake(r)) => r,
        other => panic!("SaslHandshake: {other:?}"),
    }
}

fn authenticate(c: &mut Client, v: i16, token: &[u8]) -> Option<SaslAuthenticateResponse> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    match c.request(ApiKey::SaslAuthenticate, v, req) {
        Some(ResponseKind::SaslAuthenticate(r)) => Some(r),
        None => None,
        other => panic!("SaslAuthenticate: {other:?}"),
    }
}

fn metadata(c: &mut Client) -> Option<ResponseKind> {
    c.request(ApiKey::Metadata, 12, MetadataRequest::default())
}

#[test]
fn only_authenticated_connections_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());

    // Anything but ApiVersions and SaslHandshake before authenticating closes the connection.
    let mut c = broker.connect();
    assert!(c
        .request(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
        .is_some());
    assert!(metadata(&mut c).is_none(), "Metadata before authentication");

    for v in 0..=2 {
        let mut c = broker.connect();
        let r = handshake(&mut c, "PLAIN");
        assert_eq!(r.error_code, 0);
        let mechanisms: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256"]);
        let r = authenticate(&mut c, v, b"\0alice\0alice-secret").unwrap();
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0), "v{v}");
        assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));
        // A second handshake or authentication on an authenticated connection: ILLEGAL_SASL_STATE.
        assert_eq!(handshake(&mut c, "PLAIN").error_code, ILLEGAL_SASL_STATE);
        let r = authenticate(&mut c, v, b"\0alice\0alice-secret").unwrap();
        assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
        assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));
    }

    // A wrong password, a wrong user, an authorization id of someone else, garbage: refused, then closed.
    for token in [
        &b"\0alice\0wrong"[..],
        b"\0bob\0alice-secret",
        b"mallory\0alice\0alice-secret",
        b"\xff\0",
    ] {
        let mut c = broker.connect();
        assert_eq!(handshake(&mut c, "PLAIN").error_code, 0);
        let r = authenticate(&mut c, 2, token).unwrap();
        assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED, "{token:?}");
        assert!(r
            .error_message
            .unwrap()
            .starts_with("Authentication failed"));
        assert!(
            metadata(&mut c).is_none(),
            "the connection closes after a failure"
        );
    }

    // A mechanism the listener does not offer: UNSUPPORTED_SASL_MECHANISM with the offered ones.
    let mut c = broker.connect();
    let r = handshake(&mut c, "GSSAPI");
    assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(r.mechanisms.len(), 2);
    assert!(authenticate(&mut c, 2, b"\0alice\0alice-secret").is_none());

    // SaslAuthenticate before SaslHandshake is out of order: closed, as in Kafka.
    let mut c = broker.connect();
    assert!(authenticate(&mut c, 2, b"\0alice\0alice-secret").is_none());
}

#[test]
fn a_plaintext_listener_refuses_sasl_requests_with_illegal_sasl_state() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let r = handshake(&mut c, "PLAIN");
    assert_eq!((r.error_code, r.mechanisms.len()), (ILLEGAL_SASL_STATE, 0));
    let r = authenticate(&mut c, 2, b"\0alice\0x").unwrap();
    assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
    assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));
}

#[test]
fn after_a_v0_handshake_tokens_travel_as_bare_frames() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let v0 = |c: &mut Client| {
        let req =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        match c.request(ApiKey::SaslHandshake, 0, req) {
            Some(ResponseKind::SaslHandshake(r)) => r.error_code,
            other => panic!("SaslHandshake v0: {other:?}"),
        }
    };
    let mut c = broker.connect();
    assert_eq!(v0(&mut c), 0);
    c.send_frame(b"\0alice\0alice-secret");
    let reply = c.read_frame().expect("a bare reply frame");
    assert!(
        reply.is_empty(),
        "PLAIN answers success with an empty token"
    );
    assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));

    let mut c = broker.connect();
    assert_eq!(v0(&mut c), 0);
    c.send_frame(b"\0alice\0wrong");
    assert!(
        c.read_frame().is_none(),
        "a refused token closes the connection"
    );
}
