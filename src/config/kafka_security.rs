//! The TLS and SASL keys of a Kafka `server.properties` file: PEM key and trust stores, the enabled
//! mechanisms, and the users of `sasl.jaas.config` lines.

use std::path::PathBuf;

use super::kafka::{bad, Values};
use super::listeners::csv;
use super::{Config, ConfigError};

pub(super) fn apply(
    v: &Values,
    jaas: &[(String, String)],
    c: &mut Config,
) -> Result<(), ConfigError> {
    if let Some(m) = v.str("sasl.enabled.mechanisms") {
        c.sasl.mechanisms = csv(m).into_iter().map(|m| m.to_ascii_uppercase()).collect();
    }
    if let Some(d) = v.long("connection.failed.authentication.delay.ms", 0)? {
        c.sasl.connection_failed_authentication_delay_ms = d;
    }
    for (key, value) in jaas {
        for (user, password) in jaas_users(value).map_err(|e| bad(key, e))? {
            c.sasl.users.insert(user, password);
        }
    }
    for key in [
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
        "ssl.truststore.certificates",
    ] {
        if v.str(key).is_some() {
            return Err(bad(
                key,
                "inline PEM is not supported; put the PEM in a file and set \
                 ssl.keystore.location / ssl.truststore.location with type PEM",
            ));
        }
    }
    let pem = |type_key: &str, location: &str| -> Result<PathBuf, ConfigError> {
        match v.str(type_key) {
            Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(PathBuf::from(location)),
            other => Err(bad(
                type_key,
                format!(
                    "{} stores are not supported; vltava reads PEM files (set {type_key}=PEM)",
                    other.unwrap_or("JKS (the default)")
                ),
            )),
        }
    };
    if let Some(location) = v.str("ssl.keystore.location") {
        // A PEM keystore holds the certificate chain and the private key in one file.
        let file = pem("ssl.keystore.type", location)?;
        c.tls.cert_file = Some(file.clone());
        c.tls.key_file = Some(file);
    }
    let truststore = match v.str("ssl.truststore.location") {
        Some(location) => Some(pem("ssl.truststore.type", location)?),
        None => None,
    };
    match v
        .str("ssl.client.auth")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => {}
        Some("required") => {
            c.tls.client_ca_file = Some(truststore.ok_or_else(|| {
                bad(
                    "ssl.client.auth",
                    "required needs ssl.truststore.location (PEM)",
                )
            })?);
        }
        Some(other) => {
            return Err(bad(
                "ssl.client.auth",
                format!("{other:?} is not supported (none or required)"),
            ))
        }
    }
    Ok(())
}

/// The `user_<name>="<password>"` options of a JAAS line (Kafka's PlainLoginModule form), the way
/// Kafka's shipped SASL examples declare users.
fn jaas_users(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut users = Vec::new();
    let mut rest = line.trim().trim_end_matches(';');
    while let Some(i) = rest.find("user_") {
        let after = &rest[i + "user_".len()..];
        let (name, value) = after
            .split_once('=')
            .ok_or_else(|| "user_<name> without =\"<password>\"".to_string())?;
        let value = value.trim_start();
        let Some(quoted) = value.strip_prefix('"') else {
            return Err(format!("the password of user_{name} must be quoted"));
        };
        let end = quoted
            .find('"')
            .ok_or_else(|| format!("unclosed quote in user_{name}"))?;
        users.push((name.trim().to_string(), quoted[..end].to_string()));
        rest = &quoted[end + 1..];
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_users_are_read() {
        let line = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="a" user_admin="a" user_alice="s3 cret";"#;
        assert_eq!(
            jaas_users(line).unwrap(),
            vec![
                ("admin".to_string(), "a".to_string()),
                ("alice".to_string(), "s3 cret".to_string())
            ]
        );
        assert!(jaas_users("x required user_bob=unquoted;").is_err());
    }
}
