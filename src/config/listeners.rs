//! Kafka's listener and quorum value types (`NAME://host:port`, `id@host:port`, security protocols,
//! process roles), parsed the same way from a `server.properties` file and from TOML strings.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// What a listener speaks (Kafka's `SecurityProtocol`, minus the unsupported ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol a listener is named after, if it is named after one (Kafka's default map).
    pub fn from_listener_name(name: &str) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        SecurityProtocol::from_listener_name(&upper).ok_or_else(|| {
            format!("unknown security protocol {s:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
        })
    }
}

impl TryFrom<String> for SecurityProtocol {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A `host:port` pair; an empty host (`:9092`) means every interface when binding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// The host to bind: an empty host means every interface, as in Kafka.
    pub fn bind_host(&self) -> &str {
        if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not host:port"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?}: unclosed [ in the host"))?,
            None if host.contains(':') => {
                return Err(format!("{s:?}: write an IPv6 host in brackets, [::1]:9092"))
            }
            None => host,
        };
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(format!("{s:?}: bad host {host:?}"));
        }
        let port: u32 = port
            .parse()
            .map_err(|_| format!("{s:?}: the port {port:?} is not a number"))?;
        let port = u16::try_from(port)
            .map_err(|_| format!("{s:?}: the port {port} is out of range (0-65535)"))?;
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for HostPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`. Names are upper-cased,
/// as Kafka normalises them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Endpoint {
    pub name: String,
    pub addr: HostPort,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.addr)
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not NAME://host:port"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{s:?}: bad listener name {name:?}"));
        }
        Ok(Endpoint {
            name: name.to_ascii_uppercase(),
            addr: rest.parse()?,
        })
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Voter {
    pub id: i32,
    pub addr: HostPort,
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

impl FromStr for Voter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (id, addr) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?} is not id@host:port"))?;
        let id: i32 = id
            .parse()
            .map_err(|_| format!("{s:?}: the node id {id:?} is not a number"))?;
        if id < 0 {
            return Err(format!("{s:?}: the node id must be >= 0"));
        }
        let addr: HostPort = addr.parse()?;
        if addr.host.is_empty() || addr.port == 0 {
            return Err(format!("{s:?}: a voter needs a host and a non-zero port"));
        }
        Ok(Voter { id, addr })
    }
}

impl TryFrom<String> for Voter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// `process.roles`: `broker,controller` (combined, the default), or `broker` alone (a Raft learner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

impl Default for ProcessRoles {
    fn default() -> Self {
        ProcessRoles {
            broker: true,
            controller: true,
        }
    }
}

impl ProcessRoles {
    /// Kafka's spelling, for logs and DescribeConfigs.
    pub fn names(&self) -> &'static str {
        match (self.broker, self.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            (false, true) => "controller",
            (false, false) => "",
        }
    }
}

impl TryFrom<Vec<String>> for ProcessRoles {
    type Error = String;
    fn try_from(roles: Vec<String>) -> Result<Self, String> {
        let mut out = ProcessRoles {
            broker: false,
            controller: false,
        };
        for role in &roles {
            let seen = match role.trim() {
                "broker" => std::mem::replace(&mut out.broker, true),
                "controller" => std::mem::replace(&mut out.controller, true),
                other => {
                    return Err(format!(
                        "unknown process role {other:?} (only broker and controller)"
                    ))
                }
            };
            if seen {
                return Err(format!("duplicate role {:?}", role.trim()));
            }
        }
        match (out.broker, out.controller) {
            (false, false) => Err("no role given (broker, controller or both)".into()),
            // The broker (partitions, Metadata, groups) cannot be switched off in vltava: every node
            // hosts partitions and runs the Raft group beside them. Running a controller-only file
            // as combined would put a broker where the operator asked for none (it would register
            // and be given partitions), so it is refused instead.
            (false, true) => Err("controller alone is not supported: every vltava node is a \
                 broker, with the metadata quorum inside it; use broker,controller (a voter) \
                 or broker (a learner)"
                .into()),
            _ => Ok(out),
        }
    }
}

/// Splits a Kafka list value: comma-separated, each entry trimmed, empty entries dropped.
pub fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_kafka() {
        let e: Endpoint = "plaintext://:9092".parse().unwrap();
        assert_eq!(e.name, "PLAINTEXT");
        assert_eq!(e.addr.host, "");
        assert_eq!(e.addr.bind_host(), "0.0.0.0");
        assert_eq!(e.addr.port, 9092);
        let e: Endpoint = "CLIENT://[::1]:19092".parse().unwrap();
        assert_eq!(e.addr.host, "::1");
        assert_eq!(e.to_string(), "CLIENT://[::1]:19092");
        assert!("CLIENT://host:65536".parse::<Endpoint>().is_err());
        assert!("CLIENT://host:x".parse::<Endpoint>().is_err());
        assert!("host:9092".parse::<Endpoint>().is_err());
        assert!("A-B://host:9092".parse::<Endpoint>().is_err());
        assert!("X://::1:9092".parse::<Endpoint>().is_err());
    }

    #[test]
    fn voters_need_id_host_and_port() {
        let v: Voter = " 2@127.0.0.2:9093".parse().unwrap();
        assert_eq!(
            (v.id, v.addr.host.as_str(), v.addr.port),
            (2, "127.0.0.2", 9093)
        );
        for bad in [
            "127.0.0.1:9093",
            "x@h:1",
            "-1@h:1",
            "1@:9093",
            "1@h:0",
            "1@h",
        ] {
            assert!(bad.parse::<Voter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_and_protocols() {
        let r = |v: &[&str]| {
            ProcessRoles::try_from(v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            r(&["broker", "controller"]).unwrap(),
            ProcessRoles::default()
        );
        assert!(!r(&["broker"]).unwrap().controller);
        assert!(r(&["controller"]).unwrap_err().contains("not supported"));
        assert!(r(&["broker", "broker"]).is_err());
        assert!(r(&["zookeeper"]).is_err());
        assert!(r(&[]).is_err());
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>(),
            Ok(SecurityProtocol::SaslSsl)
        );
        assert!("GSSAPI".parse::<SecurityProtocol>().is_err());
        assert_eq!(csv(" a, ,b ,"), vec!["a", "b"]);
    }
}
