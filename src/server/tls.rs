//! TLS on the listener (Kafka's SSL, or SASL_SSL with `[sasl]`): rustls with the `[tls]` certificate
//! chain and key; client certificates are required when a CA is given (`ssl.client.auth=required`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// The `[tls]` settings; without a certificate the listener is plain TCP.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of the broker, its own first (Kafka's keystore).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, clients must present a certificate one of them signed
    /// (Kafka's truststore with `ssl.client.auth=required`).
    pub client_ca_file: Option<PathBuf>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

fn certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The acceptor for `s`, or `None` when TLS is off. Every problem with the files is reported here,
/// before the broker starts.
pub fn acceptor(s: &TlsSettings) -> Result<Option<TlsAcceptor>, String> {
    let Some(cert_file) = &s.cert_file else {
        if s.key_file.is_some() || s.client_ca_file.is_some() {
            return Err("tls: key_file and client_ca_file need cert_file".into());
        }
        return Ok(None);
    };
    let key_file = s.key_file.as_ref().ok_or("tls: cert_file needs key_file")?;
    let chain = certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read the private key in {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match &s.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls: bad CA certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls: certificate and key do not make a server identity: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
