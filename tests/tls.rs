//! The TLS listener against hostile and broken clients (the real clients' TLS paths are in
//! compat-tests/): a silent client is dropped after the handshake deadline, bytes that are not
//! TLS close the connection, a client without the required certificate is refused, and a client
//! with one is served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use rcgen::{CertificateParams, CertifiedKey, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

struct Certs {
    ca: CertifiedKey,
    server: CertifiedKey,
    client: CertifiedKey,
}

fn issue(ca: &CertifiedKey, name: &str) -> CertifiedKey {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
    CertifiedKey {
        cert,
        key_pair: key,
    }
}

fn certs() -> Certs {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let ca = CertifiedKey {
        cert,
        key_pair: key,
    };
    Certs {
        server: issue(&ca, "vltava-server"),
        client: issue(&ca, "vltava-client"),
        ca,
    }
}

/// A broker with TLS (client certificates required) and a 1 s handshake deadline.
fn start(dir: &std::path::Path, c: &Certs) -> BrokerProcess {
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let cert = write("server.pem", c.server.cert.pem());
    let key = write("server.key", c.server.key_pair.serialize_pem());
    let ca = write("ca.pem", c.ca.cert.pem());
    let cfg = dir.join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "[limits]\nframe_read_timeout_ms = 1000\n[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nclient_ca_file = \"{ca}\"\n"
        ),
    )
    .unwrap();
    BrokerProcess::start(&dir.join("data"), &["--config", cfg.to_str().unwrap()])
}

fn tls_client(addr: &str, c: &Certs, with_cert: bool) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(c.ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        let chain = vec![CertificateDer::from(c.client.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.client.key_pair.serialize_der()));
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    StreamOwned::new(conn, tcp)
}

/// An ApiVersions v0 request frame (header v1, no client id).
fn api_versions_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Whether the stream answers one ApiVersions request with correlation id 7.
fn answers(s: &mut impl ReadWrite) -> bool {
    if s.write_all(&api_versions_frame()).is_err() || s.flush().is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    let mut frame = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    s.read_exact(&mut frame).is_ok() && frame.get(..4) == Some(&7i32.to_be_bytes()[..])
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads until EOF or error; true when the peer closed (rather than the read timing out).
fn closed_by_peer(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    }
}

#[test]
fn the_tls_listener_serves_verified_clients_and_drops_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs();
    let broker = start(dir.path(), &c);

    // A client with the CA's certificate is served over TLS.
    let mut ok = tls_client(&broker.addr, &c, true);
    assert!(answers(&mut ok), "a verified client gets its answer");

    // Without a client certificate the handshake is refused.
    let mut anonymous = tls_client(&broker.addr, &c, false);
    assert!(
        !answers(&mut anonymous),
        "no client certificate, no service"
    );

    // A plaintext Kafka request is not a ClientHello: the connection closes.
    let mut plain = TcpStream::connect(&broker.addr).unwrap();
    plain.write_all(&api_versions_frame()).unwrap();
    assert!(closed_by_peer(plain));

    // A client that never starts the handshake is dropped at the handshake deadline (1 s).
    let started = Instant::now();
    let silent = TcpStream::connect(&broker.addr).unwrap();
    assert!(closed_by_peer(silent));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // The verified client's connection is unaffected by all of the above.
    assert!(answers(&mut ok));
}
