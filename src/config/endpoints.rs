//! The node's listeners and quorum as the rest of the broker needs them, and the checks that the
//! listener, role and voter settings agree with each other (Kafka's `KafkaConfig.validateValues`).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::listeners::{Endpoint, HostPort, SecurityProtocol};
use super::{Config, ConfigError};

/// A listener serving the Kafka protocol to clients (every listener that is not a controller one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientListener {
    /// Its name in `listeners`, upper case (with no `listeners`: the protocol's name).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where to bind; an empty host is every interface.
    pub bind: HostPort,
    /// Its entry in `advertised.listeners`, if any (else the bound address is advertised).
    pub advertised: Option<HostPort>,
}

/// A client listener once bound: what Metadata and FindCoordinator answer on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundListener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl BoundListener {
    /// `advertised` if given, else the bound address with an unspecified IP shown as 127.0.0.1.
    pub fn new(listener: &ClientListener, addr: SocketAddr) -> BoundListener {
        let (advertised_host, advertised_port) = match &listener.advertised {
            Some(a) if !a.host.is_empty() => (a.host.clone(), a.port),
            Some(a) => (shown_ip(addr), a.port),
            None => (shown_ip(addr), addr.port()),
        };
        BoundListener {
            name: listener.name.clone(),
            protocol: listener.protocol,
            addr,
            advertised_host,
            advertised_port,
        }
    }
}

fn shown_ip(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    }
}

fn bad(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("{key}: {reason}"))
}

impl Config {
    /// Whether `listeners` is used; without it the node has one listener at `listen`, as always.
    pub fn has_named_listeners(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// The security protocol of listener `name`: `listener.security.protocol.map`, else the
    /// protocol it is named after, else PLAINTEXT for a controller listener when the map is not
    /// set and nothing uses SSL or SASL (Kafka's KRaft default).
    pub fn protocol_of(&self, name: &str) -> Option<SecurityProtocol> {
        if let Some(p) = self.listener_security_protocol_map.get(name) {
            return Some(*p);
        }
        if let Some(p) = SecurityProtocol::from_listener_name(name) {
            return Some(p);
        }
        let secure_in_use = self
            .listeners
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.controller_listener_names.iter().map(String::as_str))
            .any(|n| {
                SecurityProtocol::from_listener_name(n)
                    .is_some_and(|p| p != SecurityProtocol::Plaintext)
            });
        let controller = self.controller_listener_names.iter().any(|n| n == name);
        (controller && self.listener_security_protocol_map.is_empty() && !secure_in_use)
            .then_some(SecurityProtocol::Plaintext)
    }

    fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// The listeners the Kafka protocol is served on, in `listeners` order; the first is the
    /// default one (`Broker::start` gets its advertised address). Without `listeners`: one listener
    /// at `listen`, advertised at `advertise`, speaking what `[tls]`/`[sasl]` make it.
    pub fn client_listeners(&self) -> Vec<ClientListener> {
        if !self.has_named_listeners() {
            let protocol = self.derived_protocol();
            return vec![ClientListener {
                name: protocol.name().to_string(),
                protocol,
                bind: HostPort {
                    host: self.listen.ip().to_string(),
                    port: self.listen.port(),
                },
                advertised: self.advertise.as_deref().and_then(|a| a.parse().ok()),
            }];
        }
        self.listeners
            .iter()
            .filter(|l| !self.is_controller_listener(&l.name))
            .map(|l| ClientListener {
                name: l.name.clone(),
                protocol: self
                    .protocol_of(&l.name)
                    .unwrap_or(SecurityProtocol::Plaintext),
                bind: l.addr.clone(),
                advertised: self
                    .advertised_listeners
                    .iter()
                    .find(|a| a.name == l.name)
                    .map(|a| a.addr.clone()),
            })
            .collect()
    }

    /// Where the Raft and inter-controller RPC binds: the first name of `controller.listener.names`
    /// that is in `listeners` (none without `listeners`). On a broker-only node it is where the
    /// quorum replicates the metadata log to this learner.
    pub fn controller_listener(&self) -> Option<&Endpoint> {
        self.controller_listener_names
            .iter()
            .find_map(|n| self.listeners.iter().find(|l| &l.name == n))
    }

    /// The controller listener's advertised address: its `advertised.listeners` entry, else where
    /// it binds.
    pub fn advertised_controller_listener(&self) -> Option<&Endpoint> {
        let own = self.controller_listener()?;
        Some(
            self.advertised_listeners
                .iter()
                .find(|a| a.name == own.name)
                .unwrap_or(own),
        )
    }

    /// The listener other brokers reach this one on: `inter.broker.listener.name` (or the listener
    /// named after `security.inter.broker.protocol`), PLAINTEXT by default as in Kafka; without
    /// `listeners`, the one listener.
    pub fn inter_broker_listener(&self) -> String {
        match &self.inter_broker_listener_name {
            Some(n) => n.clone(),
            None if !self.has_named_listeners() => self.derived_protocol().name().to_string(),
            None => SecurityProtocol::Plaintext.name().to_string(),
        }
    }

    /// Checks that roles, voters and listeners agree; with neither `listeners` nor a quorum this is
    /// today's single node and there is nothing to check.
    pub(super) fn validate_cluster(&self) -> Result<(), ConfigError> {
        let roles = self.process_roles;
        let voters = &self.controller_quorum_voters;
        let mut ids = BTreeSet::new();
        for v in voters {
            if !ids.insert(v.id) {
                return Err(bad(
                    "controller.quorum.voters",
                    format!("node id {} is listed twice", v.id),
                ));
            }
        }
        let quorum = !voters.is_empty() || !self.controller_quorum_bootstrap_servers.is_empty();
        if roles.controller && !voters.is_empty() && !ids.contains(&self.node_id) {
            return Err(bad(
                "controller.quorum.voters",
                format!(
                    "node.id {} is not among the voters ({}) although process.roles includes \
                     controller",
                    self.node_id,
                    ids.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !roles.controller {
            if ids.contains(&self.node_id) {
                return Err(bad(
                    "controller.quorum.voters",
                    format!(
                        "node.id {} is a voter but process.roles is broker only (a learner)",
                        self.node_id
                    ),
                ));
            }
            if !quorum {
                return Err(bad(
                    "controller.quorum.voters",
                    "a broker-only node needs controller.quorum.voters or \
                     controller.quorum.bootstrap.servers to find the quorum",
                ));
            }
        }
        if let Some(id) = &self.cluster_id {
            check_cluster_id(id)?;
        }
        if let Some(a) = &self.advertise {
            a.parse::<HostPort>().map_err(|e| bad("advertise", e))?;
        }
        if !self.has_named_listeners() {
            if !self.advertised_listeners.is_empty() {
                return Err(bad(
                    "advertised.listeners",
                    "needs listeners (or use advertise with listen)",
                ));
            }
            if quorum && roles.controller {
                return Err(bad(
                    "listeners",
                    "a controller in a quorum needs listeners with the controller listener \
                     (controller.listener.names)",
                ));
            }
            return Ok(());
        }
        self.validate_listeners(quorum)
    }

    fn validate_listeners(&self, quorum: bool) -> Result<(), ConfigError> {
        let roles = self.process_roles;
        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for l in &self.listeners {
            if !names.insert(l.name.as_str()) {
                return Err(bad(
                    "listeners",
                    format!("listener {} is defined twice", l.name),
                ));
            }
            if l.addr.port != 0 && !ports.insert((l.addr.host.as_str(), l.addr.port)) {
                return Err(bad(
                    "listeners",
                    format!("two listeners use port {}", l.addr.port),
                ));
            }
            if self.protocol_of(&l.name).is_none() {
                return Err(bad(
                    "listener.security.protocol.map",
                    format!(
                        "listener {} has no security protocol (map it, e.g. {}:PLAINTEXT)",
                        l.name, l.name
                    ),
                ));
            }
        }
        for n in &self.controller_listener_names {
            if self.protocol_of(n).is_none() {
                return Err(bad(
                    "listener.security.protocol.map",
                    format!("controller listener {n} has no security protocol"),
                ));
            }
        }
        if roles.controller {
            if let Some(n) = self
                .controller_listener_names
                .iter()
                .find(|n| !names.contains(n.as_str()))
            {
                return Err(bad(
                    "controller.listener.names",
                    format!("controller listener {n} is not in listeners"),
                ));
            }
            if quorum && self.controller_listener().is_none() {
                return Err(bad(
                    "controller.listener.names",
                    "a controller in a quorum needs a controller listener in listeners",
                ));
            }
        } else {
            if self.controller_listener_names.is_empty() {
                return Err(bad(
                    "controller.listener.names",
                    "a broker-only node must name the controllers' listener",
                ));
            }
            // Unlike Kafka's brokers, which pull metadata from the controllers, a vltava learner is
            // sent the metadata log over Raft: it listens on its own controller listener.
            if self.controller_listener().is_none() {
                return Err(bad(
                    "listeners",
                    "a broker-only node needs a controller listener in listeners: the metadata \
                     quorum replicates to it there",
                ));
            }
            if let Some(l) = self
                .advertised_listeners
                .iter()
                .find(|l| self.is_controller_listener(&l.name))
            {
                return Err(bad(
                    "advertised.listeners",
                    format!("controller listener {} is not for clients", l.name),
                ));
            }
        }
        let mut advertised = BTreeSet::new();
        for a in &self.advertised_listeners {
            if !names.contains(a.name.as_str()) {
                return Err(bad(
                    "advertised.listeners",
                    format!("{} names no listener in listeners", a.name),
                ));
            }
            if !advertised.insert(a.name.as_str()) {
                return Err(bad(
                    "advertised.listeners",
                    format!("{} is advertised twice", a.name),
                ));
            }
            if a.addr.host == "0.0.0.0" || a.addr.host == "::" || a.addr.port == 0 {
                return Err(bad(
                    "advertised.listeners",
                    format!("{a} is not an address clients can reach"),
                ));
            }
        }
        let clients = self.client_listeners();
        if clients.is_empty() {
            return Err(bad(
                "listeners",
                "no listener for clients: every listener is a controller listener",
            ));
        }
        let inter = self.inter_broker_listener();
        if !clients.iter().any(|c| c.name == inter) {
            let key = if self.inter_broker_listener_name.is_some() {
                "inter.broker.listener.name"
            } else {
                "inter.broker.listener.name (default PLAINTEXT)"
            };
            return Err(bad(
                key,
                format!(
                    "{inter} is not a client listener in listeners ({})",
                    clients
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for c in &clients {
            if c.protocol.uses_tls() && !self.tls.enabled() {
                return Err(bad(
                    "listeners",
                    format!(
                        "listener {} is {} but no certificate is configured \
                         (ssl.keystore.location, or tls.cert_file)",
                        c.name, c.protocol
                    ),
                ));
            }
            if c.protocol.uses_sasl() && self.sasl.mechanisms.is_empty() {
                return Err(bad(
                    "listeners",
                    format!(
                        "listener {} is {} but no mechanism is enabled \
                         (sasl.enabled.mechanisms, or sasl.mechanisms)",
                        c.name, c.protocol
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Kafka's cluster ids are 16 bytes in URL-safe base64 without padding (22 characters), as
/// `kafka-storage random-uuid` prints them.
fn check_cluster_id(id: &str) -> Result<(), ConfigError> {
    use base64::Engine;
    let ok = id.len() == 22
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id)
            .is_ok_and(|b| b.len() == 16);
    if ok {
        Ok(())
    } else {
        Err(bad(
            "cluster.id",
            format!("{id:?} is not a Kafka cluster id (22 characters of URL-safe base64, as kafka-storage random-uuid prints)"),
        ))
    }
}
