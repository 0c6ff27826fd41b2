//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side as Kafka's
//! ScramSaslServer runs it: client-first → server-first (nonce, salt, 4096 iterations),
//! client-final (proof) → server-final (server signature). No channel binding.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{Authenticator, Mechanism, SaslError};

/// Kafka's minimum (and its default) for SCRAM credentials.
const ITERATIONS: u32 = 4096;

fn hmac(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn with<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length; an empty result could only fail a comparison.
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match m {
        Mechanism::ScramSha512 => with::<Hmac<Sha512>>(key, data),
        _ => with::<Hmac<Sha256>>(key, data),
    }
}

fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
    match m {
        Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

fn salted_password(m: Mechanism, password: &str, salt: &[u8]) -> Vec<u8> {
    match m {
        Mechanism::ScramSha512 => {
            let mut out = [0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, ITERATIONS, &mut out);
            out.to_vec()
        }
        _ => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ITERATIONS, &mut out);
            out.to_vec()
        }
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rand::rng().fill_bytes(&mut out);
    out
}

/// What the server keeps of a password (never the password itself during an exchange).
#[derive(Clone)]
pub struct ScramCredential {
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramCredential {
    pub fn new(m: Mechanism, password: &str) -> ScramCredential {
        let salt = random_bytes(24);
        let salted = salted_password(m, password, &salt);
        let client_key = hmac(m, &salted, b"Client Key");
        ScramCredential {
            stored_key: hash(m, &client_key),
            server_key: hmac(m, &salted, b"Server Key"),
            salt,
        }
    }
}

/// An exchange between its first and final message.
pub struct Exchange {
    mechanism: Mechanism,
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

fn failed(m: Mechanism) -> SaslError {
    SaslError::AuthenticationFailed(format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        m.name()
    ))
}

/// RFC 5802 saslname: `=2C` is ',' and `=3D` is '='.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl Exchange {
    /// client-first-message → server-first-message.
    pub(super) fn first(
        auth: &Authenticator,
        m: Mechanism,
        token: &[u8],
    ) -> Result<(Exchange, Bytes), SaslError> {
        let bad = |what: &str| {
            SaslError::AuthenticationFailed(format!("Invalid SCRAM client first message: {what}"))
        };
        let text = std::str::from_utf8(token).map_err(|_| bad("not UTF-8"))?;
        // gs2-header: only "n" (no channel binding) is supported, as in Kafka.
        let rest = text
            .strip_prefix("n,")
            .ok_or_else(|| bad("channel binding is not supported"))?;
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
        let gs2_header = format!("n,{authzid},");
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                user = unescape(v);
            } else if let Some(v) = attr.strip_prefix("r=") {
                client_nonce = Some(v.to_string());
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(bad("no user name or nonce"));
        };
        if client_nonce.is_empty() || user.is_empty() {
            return Err(bad("empty user name or nonce"));
        }
        if let Some(id) = authzid.strip_prefix("a=") {
            if unescape(id).as_deref() != Some(user.as_str()) {
                return Err(SaslError::AuthenticationFailed(
                    "Authentication failed: Client requested an authorization id that is different from username".into(),
                ));
            }
        }
        let credential = auth
            .scram
            .get(&(user.clone(), m))
            .cloned()
            .ok_or_else(|| failed(m))?;
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes(18)));
        let server_first = format!(
            "r={nonce},s={},i={ITERATIONS}",
            B64.encode(&credential.salt)
        );
        let reply = Bytes::from(server_first.clone());
        Ok((
            Exchange {
                mechanism: m,
                user,
                credential,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first,
                nonce,
            },
            reply,
        ))
    }

    /// client-final-message → server-final-message, and the authenticated user.
    pub(super) fn finish(self, token: &[u8]) -> Result<(String, Bytes), SaslError> {
        let m = self.mechanism;
        let text = std::str::from_utf8(token).map_err(|_| failed(m))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| failed(m))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("c=") {
                binding = Some(v);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        // Kafka checks that the nonce ends with the server's: librdkafka before 2.2 sends its own
        // nonce again in front of it (the proof is computed over what was sent either way).
        let nonce_ok = nonce.is_some_and(|n| n.ends_with(self.nonce.as_str()));
        if binding != Some(B64.encode(&self.gs2_header).as_str()) || !nonce_ok {
            return Err(failed(m));
        }
        let proof = B64.decode(proof).map_err(|_| failed(m))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed(m));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(hash(m, &client_key).ct_eq(&self.credential.stored_key)) {
            return Err(failed(m));
        }
        let server_signature = hmac(m, &self.credential.server_key, auth_message.as_bytes());
        let reply = Bytes::from(format!("v={}", B64.encode(server_signature)));
        Ok((self.user, reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sasl::SaslSettings;

    /// The client side of RFC 5802, enough to drive the server through a whole exchange; the
    /// nonce it sends back is `nonce_prefix` followed by the server's.
    fn client_final(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce_prefix: &str,
    ) -> String {
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        // PBKDF2 is slow in debug builds: one derivation per (mechanism, password, salt).
        thread_local! {
            static SALTED: std::cell::RefCell<std::collections::HashMap<(Mechanism, String, String), Vec<u8>>> =
                Default::default();
        }
        let salt_b64 = attr("s=");
        let salted = SALTED.with(|c| {
            c.borrow_mut()
                .entry((m, password.to_string(), salt_b64.clone()))
                .or_insert_with(|| salted_password(m, password, &B64.decode(&salt_b64).unwrap()))
                .clone()
        });
        let client_key = hmac(m, &salted, b"Client Key");
        let stored = hash(m, &client_key);
        let without_proof = format!("c=biws,r={nonce_prefix}{}", attr("r="));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(m, &stored, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn authenticator() -> Authenticator {
        let settings = SaslSettings {
            mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()],
            users: [("al,=ice".to_string(), "s3cret".to_string())].into(),
            ..SaslSettings::default()
        };
        Authenticator::from_settings(&settings).unwrap().unwrap()
    }

    #[test]
    fn a_whole_exchange_succeeds_with_the_password_and_fails_without_it() {
        let auth = authenticator();
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let bare = "n=al=2C=3Dice,r=fyko+d2lbbFgONRv9qkxdawL";
            let (ex, server_first) =
                Exchange::first(&auth, m, format!("n,,{bare}").as_bytes()).unwrap();
            let server_first = std::str::from_utf8(&server_first).unwrap().to_string();
            assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
            let fin = client_final(m, "s3cret", bare, &server_first, "");
            let (user, server_final) = ex.finish(fin.as_bytes()).unwrap();
            assert_eq!(user, "al,=ice");
            assert!(server_final.starts_with(b"v="));

            let (ex, server_first) =
                Exchange::first(&auth, m, format!("n,,{bare}").as_bytes()).unwrap();
            let server_first = std::str::from_utf8(&server_first).unwrap();
            let fin = client_final(m, "wrong", bare, server_first, "");
            assert!(matches!(
                ex.finish(fin.as_bytes()),
                Err(SaslError::AuthenticationFailed(_))
            ));
        }
    }

    #[test]
    fn a_final_nonce_that_repeats_the_client_nonce_in_front_is_accepted_as_kafka_does() {
        // librdkafka before 2.2 sends r=<client nonce><server's r>; Kafka checks `endsWith`.
        let auth = authenticator();
        let m = Mechanism::ScramSha256;
        let bare = "n=al=2C=3Dice,r=cnonce";
        let (ex, first) = Exchange::first(&auth, m, format!("n,,{bare}").as_bytes()).unwrap();
        let fin = client_final(
            m,
            "s3cret",
            bare,
            std::str::from_utf8(&first).unwrap(),
            "cnonce",
        );
        assert!(ex.finish(fin.as_bytes()).is_ok());
        // A nonce that does not end with the server's is refused.
        let (ex, first) = Exchange::first(&auth, m, format!("n,,{bare}").as_bytes()).unwrap();
        let fin = client_final(m, "s3cret", bare, std::str::from_utf8(&first).unwrap(), "");
        let tampered = fin.replacen(",p=", "x,p=", 1);
        assert!(ex.finish(tampered.as_bytes()).is_err());
    }

    #[test]
    fn random_and_mutated_messages_never_panic_and_a_changed_final_message_never_passes() {
        use crate::server::prewalk::gen::Rng;
        let auth = authenticator();
        let mut rng = Rng(0x5eed);
        let bare = "n=al=2C=3Dice,r=cnonce";
        for i in 0..2000 {
            let m = if i % 2 == 0 {
                Mechanism::ScramSha256
            } else {
                Mechanism::ScramSha512
            };
            // Random bytes, and the valid first message with one byte changed.
            let random: Vec<u8> = (0..rng.below(40)).map(|_| rng.below(256) as u8).collect();
            let _ = Exchange::first(&auth, m, &random);
            let mut first = format!("n,,{bare}").into_bytes();
            let at = rng.below(first.len() as u64) as usize;
            first[at] = rng.below(256) as u8;
            let _ = Exchange::first(&auth, m, &first);
            let _ = super::super::plain::authenticate(&auth, &random);

            // A valid final message with one byte changed is refused (and does not panic).
            let (ex, server_first) =
                Exchange::first(&auth, m, format!("n,,{bare}").as_bytes()).unwrap();
            let server_first = std::str::from_utf8(&server_first).unwrap();
            let mut fin = client_final(m, "s3cret", bare, server_first, "").into_bytes();
            let at = rng.below(fin.len() as u64) as usize;
            let was = fin[at];
            fin[at] = was.wrapping_add(1 + rng.below(255) as u8);
            assert!(
                ex.finish(&fin).is_err(),
                "byte {at} changed: {:?}",
                String::from_utf8_lossy(&fin)
            );
        }
    }

    #[test]
    fn unknown_users_channel_binding_and_garbage_are_refused() {
        let auth = authenticator();
        let m = Mechanism::ScramSha256;
        for first in [
            &b"n,,n=bob,r=abc"[..],
            b"p=tls-unique,,n=al=2C=3Dice,r=abc",
            b"n,,r=abc",
            b"n,a=mallory,n=al=2C=3Dice,r=abc",
            b"\xff\xfe",
            b"",
        ] {
            assert!(Exchange::first(&auth, m, first).is_err(), "{first:?}");
        }
        let (ex, _) = Exchange::first(&auth, m, b"n,,n=al=2C=3Dice,r=abc").unwrap();
        assert!(ex.finish(b"c=biws,r=abc-not-ours,p=AAAA").is_err());
    }
}
