//! Named listeners with different security protocols in one Kafka `server.properties` file: a
//! PLAINTEXT, a SASL_PLAINTEXT and an SSL listener of one node each speak their own protocol, with
//! the users taken from `sasl.jaas.config` and the certificate from a PEM `ssl.keystore.location`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{BrokerProcess, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rcgen::{CertificateParams, CertifiedKey, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const WAIT: Duration = Duration::from_secs(30);

fn bound_addr(broker: &BrokerProcess, listener: &str) -> String {
    let lines = broker
        .lines_until(&["listening", &format!("listener={listener} ")], WAIT)
        .unwrap_or_else(|| panic!("no listening line for {listener}"));
    let line = lines.last().expect("a line");
    assert!(line.contains("bound="), "{line}");
    line.split("bound=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("bound=")
        .to_string()
}

fn ca_and_server() -> (CertifiedKey, CertifiedKey) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = CertifiedKey {
        cert: params.self_signed(&key).unwrap(),
        key_pair: key,
    };
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
    (
        ca,
        CertifiedKey {
            cert,
            key_pair: key,
        },
    )
}

fn metadata(c: &mut Client) -> Option<ResponseKind> {
    c.request(ApiKey::Metadata, 12, MetadataRequest::default())
}

/// ApiVersions v0 (correlation id 7) over TLS; true when answered.
fn tls_answers(addr: &str, ca: &CertifiedKey) -> bool {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    let mut frame = 10i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    if s.write_all(&frame).and_then(|_| s.flush()).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    s.read_exact(&mut body).is_ok() && body.get(..4) == Some(&7i32.to_be_bytes()[..])
}

#[test]
fn each_listener_speaks_its_own_security_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, server) = ca_and_server();
    // A PEM keystore: the certificate chain and the private key in one file.
    let keystore = dir.path().join("broker.pem");
    std::fs::write(
        &keystore,
        format!("{}{}", server.cert.pem(), server.key_pair.serialize_pem()),
    )
    .unwrap();
    let path = dir.path().join("node.properties");
    std::fs::write(
        &path,
        format!(
            "listeners=PLAINTEXT://127.0.0.1:0,AUTH://127.0.0.1:0,SECURE://127.0.0.1:0\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,AUTH:SASL_PLAINTEXT,SECURE:SSL\n\
             sasl.enabled.mechanisms=PLAIN\n\
             listener.name.auth.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \\\n\
             \x20 required username=\"admin\" password=\"x\" user_alice=\"alice-secret\";\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\nlog.dirs={}\n",
            keystore.display(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let broker = BrokerProcess::start_in(Path::new("."), &["--config", path.to_str().unwrap()]);
    let plain = bound_addr(&broker, "PLAINTEXT");
    let auth = bound_addr(&broker, "AUTH");
    let secure = bound_addr(&broker, "SECURE");

    // PLAINTEXT: served without authentication, even though SASL is configured for AUTH.
    let mut c = Client::connect(&plain);
    assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));

    // SASL_PLAINTEXT: Metadata before authenticating closes the connection; alice from the JAAS
    // line gets in.
    let mut c = Client::connect(&auth);
    assert!(metadata(&mut c).is_none(), "Metadata before authentication");
    let mut c = Client::connect(&auth);
    let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let Some(ResponseKind::SaslHandshake(r)) = c.request(ApiKey::SaslHandshake, 1, hs) else {
        panic!("SaslHandshake");
    };
    assert_eq!(r.error_code, 0);
    let token = SaslAuthenticateRequest::default()
        .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret"));
    let Some(ResponseKind::SaslAuthenticate(r)) = c.request(ApiKey::SaslAuthenticate, 2, token)
    else {
        panic!("SaslAuthenticate");
    };
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(matches!(metadata(&mut c), Some(ResponseKind::Metadata(_))));

    // SSL: a TLS client is served; a plaintext request is not.
    assert!(tls_answers(&secure, &ca));
    let mut c = Client::connect(&secure);
    c.send_frame(&[0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff]);
    assert!(c.read_frame().is_none(), "plaintext on the SSL listener");
}
