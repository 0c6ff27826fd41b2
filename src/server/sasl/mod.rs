//! SASL authentication on the listener (Kafka's SASL_PLAINTEXT): PLAIN and SCRAM-SHA-256/512
//! against the users of the `[sasl]` config. A connection may send only ApiVersions, SaslHandshake
//! and SaslAuthenticate until it has authenticated; anything else closes it, as in Kafka.

mod plain;
mod scram;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use serde::Deserialize;

pub use scram::ScramCredential;

/// The `[sasl]` settings: which mechanisms the listener requires, and who may authenticate.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaslSettings {
    /// Kafka's `sasl.enabled.mechanisms`; empty: the listener is PLAINTEXT, nobody authenticates.
    pub mechanisms: Vec<String>,
    /// User name to password (Kafka's `user_<name>` JAAS options and SCRAM credentials in one).
    pub users: BTreeMap<String, String>,
    /// Kafka's `connection.failed.authentication.delay.ms`: a refused client gets its error this
    /// long before the connection closes, so that it reads the error instead of a bare disconnect.
    pub connection_failed_authentication_delay_ms: u64,
}

impl Default for SaslSettings {
    fn default() -> Self {
        SaslSettings {
            mechanisms: Vec::new(),
            users: BTreeMap::new(),
            connection_failed_authentication_delay_ms: 100,
        }
    }
}

/// A SASL mechanism this broker implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The listener's authentication setup, shared by every connection.
pub struct Authenticator {
    mechanisms: Vec<Mechanism>,
    passwords: BTreeMap<String, String>,
    /// Per user, the SCRAM credentials of each enabled SCRAM mechanism (computed once).
    scram: BTreeMap<(String, Mechanism), ScramCredential>,
}

impl Authenticator {
    /// `None` when no mechanism is enabled (a PLAINTEXT listener).
    pub fn from_settings(s: &SaslSettings) -> Result<Option<Authenticator>, String> {
        if s.mechanisms.is_empty() {
            return Ok(None);
        }
        let mut mechanisms = Vec::new();
        for name in &s.mechanisms {
            let m =
                Mechanism::parse(name).ok_or_else(|| format!("unknown SASL mechanism {name:?}"))?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if s.users.is_empty() {
            return Err("SASL is enabled but [sasl.users] names nobody".into());
        }
        let mut scram = BTreeMap::new();
        for m in mechanisms.iter().filter(|m| **m != Mechanism::Plain) {
            for (user, password) in &s.users {
                scram.insert((user.clone(), *m), ScramCredential::new(*m, password));
            }
        }
        Ok(Some(Authenticator {
            mechanisms,
            passwords: s.users.clone(),
            scram,
        }))
    }

    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }
}

/// Why a SASL request is refused; each maps to Kafka's error code for it.
#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("{0}")]
    IllegalState(String),
    #[error("Unsupported SASL mechanism {0}")]
    UnsupportedMechanism(String),
    #[error("{0}")]
    AuthenticationFailed(String),
}

enum State {
    /// Nothing to authenticate: the listener is PLAINTEXT.
    Open,
    /// Waiting for SaslHandshake.
    AwaitingHandshake,
    /// SaslHandshake chose this mechanism; waiting for SaslAuthenticate.
    Handshaken(Mechanism),
    /// SCRAM between its first and final message.
    Scram(scram::Exchange),
    Authenticated {
        principal: String,
    },
    /// Refused: the connection is closed once the answer is sent.
    Failed,
}

/// One connection's authentication state.
pub struct Session {
    auth: Option<Arc<Authenticator>>,
    state: Mutex<State>,
    /// SaslHandshake v0 was used: the tokens come as bare size-prefixed frames, not as
    /// SaslAuthenticate requests (the flow before KIP-152, which librdkafka still negotiates).
    raw_tokens: std::sync::atomic::AtomicBool,
    /// The name of the listener the connection came in on: Metadata and FindCoordinator answer with
    /// the brokers' endpoints of that listener, as Kafka does.
    listener: Arc<str>,
}

impl Session {
    /// A session on the default listener (or the only one).
    pub fn new(auth: Option<Arc<Authenticator>>) -> Session {
        Session::on_listener(auth, Arc::from(""))
    }

    /// A session on the listener named `listener` ("" when listeners are not named).
    pub fn on_listener(auth: Option<Arc<Authenticator>>, listener: Arc<str>) -> Session {
        let state = if auth.is_some() {
            State::AwaitingHandshake
        } else {
            State::Open
        };
        Session {
            auth,
            state: Mutex::new(state),
            raw_tokens: std::sync::atomic::AtomicBool::new(false),
            listener,
        }
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every transition completes before the lock is released, so a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request of `key` may be handled now: before the handshake only ApiVersions and
    /// SaslHandshake, during the exchange only SaslAuthenticate (Kafka's SaslServerAuthenticator).
    pub fn allows(&self, key: ApiKey) -> bool {
        // The common case, a PLAINTEXT listener, takes no lock on the request path.
        if self.auth.is_none() {
            return true;
        }
        match *self.state() {
            State::Open | State::Authenticated { .. } => true,
            State::Failed => false,
            State::AwaitingHandshake => matches!(key, ApiKey::ApiVersions | ApiKey::SaslHandshake),
            State::Handshaken(_) | State::Scram(_) => key == ApiKey::SaslAuthenticate,
        }
    }

    /// True once a refusal was answered: the connection must close.
    pub fn must_close(&self) -> bool {
        self.auth.is_some() && matches!(*self.state(), State::Failed)
    }

    /// The authenticated user, if any.
    pub fn principal(&self) -> Option<String> {
        match &*self.state() {
            State::Authenticated { principal } => Some(principal.clone()),
            _ => None,
        }
    }

    /// The listener's mechanisms (empty on a PLAINTEXT listener).
    pub fn mechanisms(&self) -> Vec<&'static str> {
        self.auth
            .as_ref()
            .map(|a| a.mechanism_names())
            .unwrap_or_default()
    }

    /// Whether the next frame is a bare SASL token (after a v0 handshake, until authenticated).
    pub fn takes_raw_tokens(&self) -> bool {
        self.raw_tokens.load(std::sync::atomic::Ordering::Relaxed)
            && matches!(*self.state(), State::Handshaken(_) | State::Scram(_))
    }

    /// SaslHandshake: selects `mechanism` for the tokens that follow, in SaslAuthenticate requests
    /// (`version` 1) or as bare frames (`version` 0).
    pub fn handshake(&self, mechanism: &str, version: i16) -> Result<(), SaslError> {
        let mut state = self.state();
        let Some(auth) = &self.auth else {
            return Err(SaslError::IllegalState(
                "SASL is not enabled on this listener".into(),
            ));
        };
        if !matches!(*state, State::AwaitingHandshake) {
            return Err(SaslError::IllegalState(
                "Unexpected SaslHandshake request".into(),
            ));
        }
        match Mechanism::parse(mechanism).filter(|m| auth.mechanisms.contains(m)) {
            Some(m) => {
                *state = State::Handshaken(m);
                self.raw_tokens
                    .store(version == 0, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            None => {
                *state = State::Failed;
                Err(SaslError::UnsupportedMechanism(mechanism.to_string()))
            }
        }
    }

    /// SaslAuthenticate: one round of the chosen mechanism; returns the bytes for the client.
    pub fn authenticate(&self, token: &[u8]) -> Result<Bytes, SaslError> {
        let mut state = self.state();
        let Some(auth) = &self.auth else {
            return Err(SaslError::IllegalState(
                "SASL is not enabled on this listener".into(),
            ));
        };
        let current = std::mem::replace(&mut *state, State::Failed);
        let (next, answer) = match current {
            State::Handshaken(Mechanism::Plain) => match plain::authenticate(auth, token) {
                Ok(principal) => (State::Authenticated { principal }, Ok(Bytes::new())),
                Err(e) => (State::Failed, Err(e)),
            },
            State::Handshaken(m) => match scram::Exchange::first(auth, m, token) {
                Ok((exchange, reply)) => (State::Scram(exchange), Ok(reply)),
                Err(e) => (State::Failed, Err(e)),
            },
            State::Scram(exchange) => match exchange.finish(token) {
                Ok((principal, reply)) => (State::Authenticated { principal }, Ok(reply)),
                Err(e) => (State::Failed, Err(e)),
            },
            other => {
                // After authentication (the only other state `allows` lets this request reach),
                // Kafka refuses it without ending the session.
                *state = other;
                return Err(SaslError::IllegalState(
                    "SaslAuthenticate request received after successful authentication".into(),
                ));
            }
        };
        *state = next;
        answer
    }
}
