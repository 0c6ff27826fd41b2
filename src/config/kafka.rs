//! Kafka `server.properties` keys onto [`Config`]: the keys vltava uses set the same fields as the
//! TOML file; the broker keys Kafka defines that vltava does not use are returned to be named in one
//! log line; any other key, and any bad value, is an error naming the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::listeners::{csv, Endpoint, HostPort, ProcessRoles, SecurityProtocol, Voter};
use super::properties::Property;
use super::{Config, ConfigError};

/// Every broker configuration name Kafka defines (see the file's header).
const KAFKA_BROKER_KEYS: &str = include_str!("kafka_broker_keys.txt");

/// vltava's own settings, which Kafka has no key for; the `vltava.` prefix keeps them apart.
const VLTAVA_KEYS: &[&str] = &[
    "vltava.frame.read.timeout.ms",
    "vltava.max.partitions",
    "vltava.log.flush",
    "vltava.log.min.free.bytes",
];

/// What a properties file makes of a configuration.
pub struct Loaded {
    pub config: Config,
    /// Kafka keys present in the file that vltava accepts without using, sorted.
    pub ignored: Vec<String>,
}

fn kafka_keys() -> BTreeSet<&'static str> {
    KAFKA_BROKER_KEYS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

pub(super) fn bad(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("{key}: {reason}"))
}

/// The file's values by key (the last of a repeated key wins, as in Java) and what is left to use.
pub(super) struct Values {
    map: BTreeMap<String, String>,
}

impl Values {
    pub(super) fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|v| v.trim())
    }

    fn num<T: FromStr>(&self, key: &str, min: i64, max: i64) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.str(key) else {
            return Ok(None);
        };
        let n: i64 = raw
            .parse()
            .map_err(|_| bad(key, format!("{raw:?} is not a number")))?;
        if n < min || n > max {
            return Err(bad(key, format!("{n} is out of range ({min} to {max})")));
        }
        raw.parse::<T>()
            .map(Some)
            .map_err(|_| bad(key, format!("{raw:?} is out of range")))
    }

    fn int<T: FromStr>(&self, key: &str, min: i64) -> Result<Option<T>, ConfigError> {
        self.num(key, min, i32::MAX as i64)
    }

    pub(super) fn long<T: FromStr>(&self, key: &str, min: i64) -> Result<Option<T>, ConfigError> {
        self.num(key, min, i64::MAX)
    }

    fn short(&self, key: &str, min: i64) -> Result<Option<i16>, ConfigError> {
        self.num(key, min, i16::MAX as i64)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.str(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(bad(key, format!("{other:?} is not true or false"))),
        }
    }

    fn list<T: FromStr<Err = String>>(&self, key: &str) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(raw) = self.str(key) else {
            return Ok(None);
        };
        csv(raw)
            .iter()
            .map(|s| s.parse::<T>().map_err(|e| bad(key, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The keys this module reads; everything else is a Kafka key to ignore or an unknown key.
const USED: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
    "cluster.id",
    "broker.rack",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.segment.bytes",
    "transaction.max.timeout.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transactional.id.expiration.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "min.insync.replicas",
    "default.replication.factor",
    "replica.lag.time.max.ms",
    "unclean.leader.election.enable",
    "auto.create.topics.enable",
    "num.partitions",
    "socket.request.max.bytes",
    "max.connections",
    "max.connections.per.ip",
    "connections.max.idle.ms",
    "queued.max.request.bytes",
    "log.retention.check.interval.ms",
    "log.cleaner.backoff.ms",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offsets.topic.num.partitions",
    "offsets.topic.segment.bytes",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offsets.commit.timeout.ms",
    "offset.metadata.max.bytes",
    "producer.id.expiration.ms",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "message.max.bytes",
    "log.message.timestamp.type",
    "log.flush.interval.ms",
    "log.flush.interval.messages",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "connection.failed.authentication.delay.ms",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
];

/// Builds a [`Config`] from the file's properties (defaults for absent keys).
pub fn load(props: &[Property]) -> Result<Loaded, ConfigError> {
    let known = kafka_keys();
    let mut map = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    let mut ignored = BTreeSet::new();
    let mut jaas = Vec::new();
    for p in props {
        let key = p.key.as_str();
        if USED.contains(&key) || VLTAVA_KEYS.contains(&key) {
            map.insert(p.key.clone(), p.value.clone());
        } else if let Some(rest) = key.strip_prefix("listener.name.") {
            // Per-listener overrides: only the SASL users (JAAS) are read, merged for every
            // listener; vltava has one set of TLS and SASL settings for all listeners.
            if rest.ends_with(".sasl.jaas.config") {
                jaas.push((p.key.clone(), p.value.clone()));
            } else {
                return Err(bad(
                    key,
                    "per-listener settings are not supported: vltava applies the broker-wide \
                     ssl.* and sasl.* settings to every listener (only \
                     listener.name.<listener>.<mechanism>.sasl.jaas.config is read, for its users)",
                ));
            }
        } else if known.contains(key) {
            ignored.insert(p.key.clone());
        } else {
            unknown.insert(p.key.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(ConfigError::Unknown(unknown.into_iter().collect()));
    }
    let v = Values { map };
    if let Some(j) = v.str("sasl.jaas.config") {
        jaas.push(("sasl.jaas.config".into(), j.to_string()));
    }
    let mut c = Config::default();
    apply_identity(&v, &mut c)?;
    apply_listeners(&v, &mut c)?;
    apply_settings(&v, &mut c, &mut ignored)?;
    super::kafka_security::apply(&v, &jaas, &mut c)?;
    Ok(Loaded {
        config: c,
        ignored: ignored.into_iter().collect(),
    })
}

fn apply_identity(v: &Values, c: &mut Config) -> Result<(), ConfigError> {
    let node_id = v.int::<i32>("node.id", 0)?;
    let broker_id = v.int::<i32>("broker.id", 0)?;
    match (node_id, broker_id) {
        (Some(n), Some(b)) if n != b => {
            return Err(bad(
                "broker.id",
                format!("{b} differs from node.id {n}; set them to the same value"),
            ))
        }
        (Some(id), _) | (None, Some(id)) => c.node_id = id,
        // As Kafka: a KRaft file must say which node it is; a default would let two nodes of one
        // cluster start with the same id.
        (None, None) if v.str("process.roles").is_some() => {
            return Err(bad(
                "node.id",
                "missing; it is required when process.roles is set (KRaft)",
            ))
        }
        (None, None) => {}
    }
    if let Some(roles) = v.str("process.roles") {
        c.process_roles =
            ProcessRoles::try_from(csv(roles)).map_err(|e| bad("process.roles", e))?;
    }
    if let Some(voters) = v.list::<Voter>("controller.quorum.voters")? {
        c.controller_quorum_voters = voters;
    }
    if let Some(servers) = v.list::<HostPort>("controller.quorum.bootstrap.servers")? {
        c.controller_quorum_bootstrap_servers = servers;
    }
    // Kafka takes log.dirs over log.dir.
    let dirs = v
        .str("log.dirs")
        .map(|d| ("log.dirs", d))
        .or_else(|| v.str("log.dir").map(|d| ("log.dir", d)));
    if let Some((key, dirs)) = dirs {
        let dirs = csv(dirs);
        match dirs.as_slice() {
            [one] => c.data_dir = PathBuf::from(one),
            [] => return Err(bad(key, "no directory given")),
            _ => {
                return Err(bad(
                    key,
                    format!(
                        "{} directories given; vltava stores everything in one directory",
                        dirs.len()
                    ),
                ))
            }
        }
    }
    if let Some(meta) = v.str("metadata.log.dir") {
        if c.data_dir != Path::new(meta) {
            return Err(bad(
                "metadata.log.dir",
                "vltava keeps the metadata log in the log directory (log.dirs); remove this key \
                 or set it to the same directory",
            ));
        }
    }
    c.cluster_id = v.str("cluster.id").map(str::to_string);
    c.broker_rack = v
        .str("broker.rack")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(())
}

fn apply_listeners(v: &Values, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(l) = v.list::<Endpoint>("listeners")? {
        c.listeners = l;
    }
    if let Some(l) = v.list::<Endpoint>("advertised.listeners")? {
        c.advertised_listeners = l;
    }
    if let Some(raw) = v.str("listener.security.protocol.map") {
        for entry in csv(raw) {
            let (name, protocol) = entry.split_once(':').ok_or_else(|| {
                bad(
                    "listener.security.protocol.map",
                    format!("{entry:?} is not LISTENER:PROTOCOL"),
                )
            })?;
            let protocol: SecurityProtocol = protocol
                .parse()
                .map_err(|e| bad("listener.security.protocol.map", e))?;
            let name = name.trim().to_ascii_uppercase();
            if c.listener_security_protocol_map
                .insert(name.clone(), protocol)
                .is_some()
            {
                return Err(bad(
                    "listener.security.protocol.map",
                    format!("{name} is mapped twice"),
                ));
            }
        }
    }
    if let Some(names) = v.str("controller.listener.names") {
        c.controller_listener_names = csv(names)
            .into_iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
    }
    let name = v.str("inter.broker.listener.name");
    let protocol = v.str("security.inter.broker.protocol");
    c.inter_broker_listener_name = match (name, protocol) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "security.inter.broker.protocol",
                "set only one of inter.broker.listener.name and security.inter.broker.protocol",
            ))
        }
        (Some(n), None) => Some(n.to_ascii_uppercase()),
        (None, Some(p)) => Some(
            p.parse::<SecurityProtocol>()
                .map_err(|e| bad("security.inter.broker.protocol", e))?
                .name()
                .to_string(),
        ),
        (None, None) => None,
    };
    Ok(())
}

fn apply_settings(
    v: &Values,
    c: &mut Config,
    ignored: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    macro_rules! set {
        ($field:expr, $value:expr) => {
            if let Some(x) = $value {
                $field = x;
            }
        };
    }
    set!(
        c.broker_session_timeout_ms,
        v.int("broker.session.timeout.ms", 1)?
    );
    set!(
        c.broker_heartbeat_interval_ms,
        v.int("broker.heartbeat.interval.ms", 1)?
    );
    set!(
        c.offsets_topic_replication_factor,
        v.short("offsets.topic.replication.factor", 1)?
    );
    set!(
        c.transaction_state_log_replication_factor,
        v.short("transaction.state.log.replication.factor", 1)?
    );
    set!(
        c.transaction_state_log_min_isr,
        v.int("transaction.state.log.min.isr", 1)?
    );
    set!(
        c.transaction_state_log_num_partitions,
        v.int("transaction.state.log.num.partitions", 1)?
    );
    set!(
        c.transaction_state_log_segment_bytes,
        v.int("transaction.state.log.segment.bytes", 1)?
    );
    set!(
        c.transaction_max_timeout_ms,
        v.int("transaction.max.timeout.ms", 1)?
    );
    set!(
        c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        v.int(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            1
        )?
    );
    set!(
        c.transactional_id_expiration_ms,
        v.int("transactional.id.expiration.ms", 1)?
    );
    set!(
        c.transaction_remove_expired_transaction_cleanup_interval_ms,
        v.int(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            1
        )?
    );
    set!(c.min_insync_replicas, v.int("min.insync.replicas", 1)?);
    set!(
        c.default_replication_factor,
        v.short("default.replication.factor", 1)?
    );
    set!(
        c.replica_lag_time_max_ms,
        v.long("replica.lag.time.max.ms", 1)?
    );
    set!(
        c.unclean_leader_election_enable,
        v.bool("unclean.leader.election.enable")?
    );
    set!(c.auto_create_topics, v.bool("auto.create.topics.enable")?);
    set!(c.num_partitions, v.int("num.partitions", 1)?);
    set!(
        c.socket_request_max_bytes,
        v.int("socket.request.max.bytes", 1)?
    );
    set!(c.max_connections, v.int("max.connections", 1)?);
    set!(
        c.limits.max_connections_per_ip,
        v.int("max.connections.per.ip", 1)?
    );
    set!(
        c.limits.connections_max_idle_ms,
        v.long("connections.max.idle.ms", 1)?
    );
    // Kafka: -1 (its default) or any value <= 0 means unlimited.
    if let Some(n) = v.num::<i64>("queued.max.request.bytes", i64::MIN, u32::MAX as i64)? {
        c.limits.queued_max_request_bytes = if n <= 0 { u32::MAX } else { n as u32 };
    }
    set!(
        c.retention_check_interval_ms,
        v.long("log.retention.check.interval.ms", 1)?
    );
    set!(
        c.log_cleaner_backoff_ms,
        v.long("log.cleaner.backoff.ms", 0)?
    );
    set!(
        c.group_initial_rebalance_delay_ms,
        v.int("group.initial.rebalance.delay.ms", 0)?
    );
    set!(
        c.group_min_session_timeout_ms,
        v.int("group.min.session.timeout.ms", 0)?
    );
    set!(
        c.group_max_session_timeout_ms,
        v.int("group.max.session.timeout.ms", 0)?
    );
    set!(c.group_max_size, v.int("group.max.size", 1)?);
    set!(
        c.offsets_topic_num_partitions,
        v.int("offsets.topic.num.partitions", 1)?
    );
    set!(
        c.offsets_topic_segment_bytes,
        v.int("offsets.topic.segment.bytes", 1)?
    );
    set!(
        c.offsets_retention_minutes,
        v.int("offsets.retention.minutes", 1)?
    );
    set!(
        c.offsets_retention_check_interval_ms,
        v.long("offsets.retention.check.interval.ms", 1)?
    );
    // Kafka's type is INT, at least 1.
    set!(
        c.offsets_commit_timeout_ms,
        v.int("offsets.commit.timeout.ms", 1)?
    );
    set!(
        c.offset_metadata_max_bytes,
        v.int("offset.metadata.max.bytes", 0)?
    );
    set!(
        c.producer_id_expiration_ms,
        v.int("producer.id.expiration.ms", 1)?
    );
    set!(c.log.segment_bytes, v.int("log.segment.bytes", 14)?);
    // Kafka's synonyms: the first one set wins (ServerTopicConfigSynonyms).
    if let Some(ms) = v.long::<i64>("log.roll.ms", 1)? {
        c.log.segment_ms = ms;
    } else if let Some(h) = v.int::<i64>("log.roll.hours", 1)? {
        c.log.segment_ms = h * 3_600_000;
    }
    let retention = if let Some(ms) = v.long::<i64>("log.retention.ms", i64::MIN)? {
        Some(ms)
    } else if let Some(m) = v.int::<i64>("log.retention.minutes", i32::MIN as i64)? {
        Some(m * 60_000)
    } else {
        v.int::<i64>("log.retention.hours", i32::MIN as i64)?
            .map(|h| h * 3_600_000)
    };
    if let Some(ms) = retention {
        // Kafka: any negative value keeps data forever; 0 is refused.
        if ms == 0 {
            return Err(bad(
                "log.retention.ms",
                "0 is not allowed (-1 keeps data forever)",
            ));
        }
        c.log.retention_ms = if ms < 0 { -1 } else { ms };
    }
    set!(
        c.log.retention_bytes,
        v.long("log.retention.bytes", i64::MIN)?
    );
    set!(c.log.max_message_bytes, v.int("message.max.bytes", 0)?);
    if let Some(t) = v.str("log.message.timestamp.type") {
        if t != "CreateTime" && t != "LogAppendTime" {
            return Err(bad(
                "log.message.timestamp.type",
                format!("{t:?} is not CreateTime or LogAppendTime"),
            ));
        }
        c.log.message_timestamp_type = t.to_string();
    }
    // Kafka flushes every N messages or T ms; vltava's policies are "always" (every append, as
    // N = 1) and "interval:<ms>". Other message counts keep the OS default, and are named.
    let messages = v.long::<i64>("log.flush.interval.messages", 1)?;
    if let Some(ms) = v.long::<i64>("log.flush.interval.ms", 0)? {
        c.log.flush = format!("interval:{ms}");
    }
    match messages {
        Some(1) => c.log.flush = "always".into(),
        Some(_) => {
            ignored.insert("log.flush.interval.messages".into());
        }
        None => {}
    }
    if let Some(f) = v.str("vltava.log.flush") {
        c.log.flush = f.to_string();
    }
    set!(
        c.log.min_free_bytes,
        v.long("vltava.log.min.free.bytes", -1)?
    );
    set!(
        c.limits.frame_read_timeout_ms,
        v.long("vltava.frame.read.timeout.ms", 1)?
    );
    set!(c.limits.max_partitions, v.int("vltava.max.partitions", 1)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_key_list_is_loaded() {
        let keys = kafka_keys();
        assert!(keys.len() > 300);
        for k in [
            "num.network.threads",
            "socket.send.buffer.bytes",
            "log.retention.hours",
        ] {
            assert!(keys.contains(k), "{k}");
        }
        // Every key vltava reads (bar its own extensions) is a Kafka key.
        for k in USED {
            assert!(keys.contains(k) || *k == "cluster.id", "{k}");
        }
    }
}
