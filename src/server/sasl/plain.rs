//! SASL/PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked as Kafka's PlainSaslServer does.

use subtle::ConstantTimeEq;

use super::{Authenticator, SaslError};

pub(super) fn authenticate(auth: &Authenticator, token: &[u8]) -> Result<String, SaslError> {
    let failed = |m: &str| SaslError::AuthenticationFailed(format!("Authentication failed: {m}"));
    let text = std::str::from_utf8(token).map_err(|_| failed("Invalid SASL/PLAIN message"))?;
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts.as_slice() else {
        return Err(failed("Invalid SASL/PLAIN response: expected 3 tokens"));
    };
    if user.is_empty() {
        return Err(failed("username not specified"));
    }
    if password.is_empty() {
        return Err(failed("password not specified"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(failed(
            "Client requested an authorization id that is different from username",
        ));
    }
    let known = auth
        .passwords
        .get(*user)
        .is_some_and(|p| bool::from(p.as_bytes().ct_eq(password.as_bytes())));
    if !known {
        return Err(failed("Invalid username or password"));
    }
    Ok(user.to_string())
}
