//! Broker configuration: an embedded default, an optional file (vltava's TOML or Kafka's
//! `server.properties`), then command-line overrides.

mod endpoints;
mod file;
mod kafka;
mod kafka_security;
pub mod listeners;
pub mod properties;
#[cfg(test)]
mod tests_properties;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use endpoints::{BoundListener, ClientListener};
pub use file::{FileFormat, LoadedFile};
pub use listeners::{Endpoint, HostPort, ProcessRoles, SecurityProtocol, Voter};

use crate::log::{FlushPolicy, LogConfig, TimestampType};
pub use crate::server::limits::Limits;
pub use crate::server::sasl::SaslSettings;
pub use crate::server::tls::TlsSettings;

/// Kafka's code default for `group.initial.rebalance.delay.ms`, which its shipped
/// `config/server.properties` overrides with 0 (and so does vltava's default).
pub const KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: u64 = 3000;

/// Everything the broker reads at start-up. Field comments name the Kafka setting each mirrors.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `node.id` (or `broker.id`)
    pub node_id: i32,
    /// `process.roles`: `["broker", "controller"]` (default: a Raft voter) or `["broker"]` (a learner).
    pub process_roles: ProcessRoles,
    /// `controller.quorum.voters`: `["1@host:port", ...]`, each voter's controller listener. Empty
    /// (and no bootstrap servers): a single node that is its own quorum, as always.
    pub controller_quorum_voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers`: `["host:port", ...]` (KIP-853 dynamic quorum).
    pub controller_quorum_bootstrap_servers: Vec<HostPort>,
    /// The one client listener when `listeners` is empty (Kafka's `listeners` before named
    /// listeners). Port 0 picks a free port. With `listeners`, the first client listener once bound.
    pub listen: SocketAddr,
    /// `advertised.listeners` of the `listen` listener, as host:port; defaults to the bound address
    /// (0.0.0.0 becomes 127.0.0.1).
    pub advertise: Option<String>,
    /// `listeners`: `["NAME://host:port", ...]`. Every listener not in `controller_listener_names`
    /// serves the Kafka protocol; an empty host binds every interface. Empty: one listener at `listen`.
    pub listeners: Vec<Endpoint>,
    /// `advertised.listeners`: `["NAME://host:port", ...]`, per listener; a listener not listed
    /// advertises its bound address.
    pub advertised_listeners: Vec<Endpoint>,
    /// `listener.security.protocol.map`: listener name to PLAINTEXT, SSL, SASL_PLAINTEXT or
    /// SASL_SSL. A listener named after a protocol needs no entry.
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `controller.listener.names`: the listeners the Raft quorum speaks on (never served to clients).
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name` (or `security.inter.broker.protocol`); PLAINTEXT by default.
    pub inter_broker_listener_name: Option<String>,
    /// `log.dirs` / `log.dir` (one directory): partition logs and the Raft metadata log.
    pub data_dir: PathBuf,
    /// `cluster.id` (or the `CLUSTER_ID` environment variable): the id to format a new cluster with.
    pub cluster_id: Option<String>,
    /// `broker.rack`
    pub broker_rack: Option<String>,
    /// `broker.session.timeout.ms`: a broker without heartbeats for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`
    pub broker_heartbeat_interval_ms: u64,
    /// `offsets.topic.replication.factor` (1, as Kafka's shipped `server.properties`; code default 3)
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor` (1, as the shipped file; code default 3)
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr` (1, as the shipped file; code default 2)
    pub transaction_state_log_min_isr: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` (fixed once it exists).
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`.
    pub transaction_state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions open
    /// longer than their timeout are looked for and aborted.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transactional.id.expiration.ms`: a transactional id idle for this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often idle ids are expired.
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// The finalized level of Kafka's `transaction.version` feature (0-2; Kafka sets it with
    /// `kafka-features.sh`): 2 is Transactions V2 (KIP-890 part 2), which clients that know it use.
    pub transaction_version: i16,
    /// `min.insync.replicas`: the broker-wide default of the topic config.
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `unclean.leader.election.enable`: the broker-wide default of the topic config.
    pub unclean_leader_election_enable: bool,
    /// The client listeners as bound (filled in at start-up, not configured): each one's bound
    /// address and the host/port Metadata answers with to clients connected through it.
    #[serde(skip)]
    pub bound_listeners: Vec<BoundListener>,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`
    pub default_replication_factor: i16,
    /// `socket.request.max.bytes`: frames above this close the connection before anything is allocated.
    pub socket_request_max_bytes: u32,
    /// `max.connections`: open connections; further clients wait in the accept backlog. Kafka's
    /// default, unlimited (2147483647).
    pub max_connections: usize,
    /// Hostile-input limits (`connections.max.idle.ms`, `max.connections.per.ip`, …).
    pub limits: Limits,
    /// `log.retention.check.interval.ms` (also when idempotent-producer state is expired)
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: how often compacted logs are checked for a cleaning pass.
    pub log_cleaner_backoff_ms: u64,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for
    /// more members (extended by this much per new member, up to the rebalance timeout). 0 by
    /// default, as Kafka's shipped `config/server.properties` sets it (its code default is
    /// [`KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS`]).
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`
    pub group_max_size: i32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` (fixed once it exists).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets` (fixed once it exists).
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.retention.minutes`: committed offsets of an empty group expire after this.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: u64,
    /// `offsets.commit.timeout.ms`: how long an offset commit or group write waits for the offsets
    /// partition's in-sync replicas before it fails (COORDINATOR_NOT_AVAILABLE).
    pub offsets_commit_timeout_ms: u64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `producer.id.expiration.ms`: idempotent-producer state is dropped this long after the producer's
    /// last batch in a partition (Kafka has no topic-level override).
    pub producer_id_expiration_ms: i64,
    /// Defaults for every partition log; topic configs override them.
    pub log: LogSettings,
    /// SASL on the listener (`sasl.enabled.mechanisms` and its users); off by default.
    pub sasl: SaslSettings,
    /// TLS on the listener (Kafka's SSL / SASL_SSL); off by default.
    pub tls: TlsSettings,
}

/// Broker-wide log defaults (Kafka's `log.*` settings).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `log.segment.bytes`
    pub segment_bytes: u64,
    /// `log.roll.ms`
    pub segment_ms: i64,
    /// `log.retention.ms` (-1: keep forever)
    pub retention_ms: i64,
    /// `log.retention.bytes` (-1: no size limit)
    pub retention_bytes: i64,
    /// `message.max.bytes`
    pub max_message_bytes: u32,
    /// `log.message.timestamp.type`: "CreateTime" or "LogAppendTime"
    pub message_timestamp_type: String,
    /// When appended data is fsynced: "os", "always" or "interval:<ms>" (see README, Durability).
    pub flush: String,
    /// Free bytes the data directory keeps: below them client produce gets KAFKA_STORAGE_ERROR, so
    /// metadata and committed offsets still have room (no Kafka equivalent; Kafka takes a full log
    /// directory offline). -1: 1% of the volume, at most 64 MiB; 0: no floor.
    pub min_free_bytes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            process_roles: ProcessRoles::default(),
            controller_quorum_voters: Vec::new(),
            controller_quorum_bootstrap_servers: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertise: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: BTreeMap::new(),
            controller_listener_names: Vec::new(),
            inter_broker_listener_name: None,
            data_dir: PathBuf::from("./vltava-data"),
            cluster_id: None,
            broker_rack: None,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            offsets_topic_replication_factor: 1,
            transaction_state_log_replication_factor: 1,
            transaction_state_log_min_isr: 1,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_segment_bytes: 104_857_600,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_version: 2,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            unclean_leader_election_enable: false,
            bound_listeners: Vec::new(),
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_connections: i32::MAX as usize,
            limits: Limits::default(),
            retention_check_interval_ms: 300_000,
            log_cleaner_backoff_ms: 15_000,
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offsets_commit_timeout_ms: 5000,
            offset_metadata_max_bytes: 4096,
            producer_id_expiration_ms: LogConfig::default().producer_id_expiration_ms,
            log: LogSettings::default(),
            sasl: SaslSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        let d = LogConfig::default();
        LogSettings {
            segment_bytes: d.segment_bytes,
            segment_ms: d.segment_ms,
            retention_ms: d.retention_ms,
            retention_bytes: d.retention_bytes,
            max_message_bytes: d.max_message_bytes,
            message_timestamp_type: "CreateTime".into(),
            flush: "os".into(),
            min_free_bytes: -1,
        }
    }
}

/// A configuration that cannot be used; reported before the broker starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("bad config file {path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("invalid setting {0}")]
    Invalid(String),
    #[error("unknown setting(s) {}: not Kafka broker configs vltava knows", .0.join(", "))]
    Unknown(Vec<String>),
}

impl Config {
    /// The broker-wide defaults every partition log starts from.
    pub fn log_config(&self) -> Result<LogConfig, ConfigError> {
        let flush: FlushPolicy = self
            .log
            .flush
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("log.flush = {:?}", self.log.flush)))?;
        let timestamp_type = match self.log.message_timestamp_type.as_str() {
            "CreateTime" => TimestampType::CreateTime,
            "LogAppendTime" => TimestampType::LogAppendTime,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "log.message_timestamp_type = {other:?}"
                )))
            }
        };
        Ok(LogConfig {
            segment_bytes: self.log.segment_bytes,
            segment_ms: self.log.segment_ms,
            retention_ms: self.log.retention_ms,
            retention_bytes: self.log.retention_bytes,
            max_message_bytes: self.log.max_message_bytes,
            flush,
            timestamp_type,
            producer_id_expiration_ms: self.producer_id_expiration_ms,
            min_insync_replicas: self.min_insync_replicas,
            ..LogConfig::default()
        })
    }

    /// Kafka's name for what the default (first) client listener speaks: PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL.
    pub fn security_protocol(&self) -> &'static str {
        self.client_listeners()
            .first()
            .map_or(self.derived_protocol(), |l| l.protocol)
            .name()
    }

    /// What the single `listen` listener speaks: whatever `[tls]` and `[sasl]` turn on.
    fn derived_protocol(&self) -> SecurityProtocol {
        match (self.sasl.mechanisms.is_empty(), self.tls.enabled()) {
            (true, false) => SecurityProtocol::Plaintext,
            (true, true) => SecurityProtocol::Ssl,
            (false, false) => SecurityProtocol::SaslPlaintext,
            (false, true) => SecurityProtocol::SaslSsl,
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id < 0 {
            return Err(ConfigError::Invalid("node_id must be >= 0".into()));
        }
        if self.num_partitions < 1 {
            return Err(ConfigError::Invalid("num_partitions must be >= 1".into()));
        }
        if self.default_replication_factor < 1 {
            return Err(ConfigError::Invalid(
                "default_replication_factor must be >= 1".into(),
            ));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(ConfigError::Invalid(
                "offsets_topic_num_partitions must be >= 1".into(),
            ));
        }
        if !(14..=i32::MAX as u64).contains(&self.offsets_topic_segment_bytes) {
            return Err(ConfigError::Invalid(
                "offsets_topic_segment_bytes must be between 14 and 2147483647".into(),
            ));
        }
        if self.group_max_size < 1 {
            return Err(ConfigError::Invalid("group_max_size must be >= 1".into()));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Invalid(
                "group_min_session_timeout_ms must not exceed group_max_session_timeout_ms".into(),
            ));
        }
        if self.offsets_retention_minutes < 1 {
            return Err(ConfigError::Invalid(
                "offsets_retention_minutes must be >= 1".into(),
            ));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(ConfigError::Invalid(
                "producer_id_expiration_ms must be >= 1".into(),
            ));
        }
        self.limits.validate()?;
        crate::server::sasl::Authenticator::from_settings(&self.sasl)
            .map_err(|e| ConfigError::Invalid(format!("sasl: {e}")))?;
        crate::server::tls::acceptor(&self.tls).map_err(ConfigError::Invalid)?;
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid("max_connections must be >= 1".into()));
        }
        self.validate_replication()?;
        self.validate_cluster()?;
        self.log_config().map(|_| ())
    }
}

impl Config {
    fn validate_replication(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "broker.session.timeout.ms",
                self.broker_session_timeout_ms as i64,
            ),
            (
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms as i64,
            ),
            (
                "offsets.topic.replication.factor",
                self.offsets_topic_replication_factor.into(),
            ),
            (
                "transaction.state.log.replication.factor",
                self.transaction_state_log_replication_factor.into(),
            ),
            (
                "transaction.state.log.min.isr",
                self.transaction_state_log_min_isr.into(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transaction_state_log_num_partitions.into(),
            ),
            (
                "transaction.state.log.segment.bytes",
                self.transaction_state_log_segment_bytes
                    .min(i64::MAX as u64) as i64,
            ),
            (
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms.into(),
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transaction_abort_timed_out_transaction_cleanup_interval_ms
                    .min(i64::MAX as u64) as i64,
            ),
            (
                "transactional.id.expiration.ms",
                self.transactional_id_expiration_ms,
            ),
            (
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                self.transaction_remove_expired_transaction_cleanup_interval_ms
                    .min(i64::MAX as u64) as i64,
            ),
            ("min.insync.replicas", self.min_insync_replicas.into()),
            (
                "offsets.commit.timeout.ms",
                self.offsets_commit_timeout_ms.min(i64::MAX as u64) as i64,
            ),
            (
                "replica.lag.time.max.ms",
                self.replica_lag_time_max_ms as i64,
            ),
        ];
        for (key, value) in positive {
            if value < 1 {
                return Err(ConfigError::Invalid(format!("{key}: must be >= 1")));
            }
        }
        if !(0..=2).contains(&self.transaction_version) {
            return Err(ConfigError::Invalid(
                "transaction_version: must be 0, 1 or 2".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_file_parses_and_matches_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vltava.toml");
        let cfg = Config::from_file(&path).unwrap();
        cfg.validate().unwrap();
        let d = Config::default();
        assert_eq!(cfg.listen, d.listen);
        assert_eq!(cfg.num_partitions, d.num_partitions);
        assert_eq!(cfg.max_connections, d.max_connections);
        assert_eq!(cfg.log.flush, d.log.flush);
        assert_eq!(cfg.log.retention_ms, d.log.retention_ms);
        assert_eq!(cfg.log_cleaner_backoff_ms, d.log_cleaner_backoff_ms);
        assert_eq!(
            cfg.limits.connections_max_idle_ms,
            d.limits.connections_max_idle_ms
        );
        assert_eq!(
            cfg.limits.frame_read_timeout_ms,
            d.limits.frame_read_timeout_ms
        );
        assert_eq!(
            cfg.limits.max_connections_per_ip,
            d.limits.max_connections_per_ip
        );
        assert_eq!(cfg.limits.max_partitions, d.limits.max_partitions);
        assert_eq!(
            cfg.limits.queued_max_request_bytes,
            d.limits.queued_max_request_bytes
        );
        assert_eq!(
            cfg.group_initial_rebalance_delay_ms,
            d.group_initial_rebalance_delay_ms
        );
        assert_eq!(
            cfg.offsets_topic_num_partitions,
            d.offsets_topic_num_partitions
        );
        assert_eq!(cfg.offsets_retention_minutes, d.offsets_retention_minutes);
        assert_eq!(cfg.offsets_commit_timeout_ms, d.offsets_commit_timeout_ms);
        assert_eq!(cfg.group_max_size, d.group_max_size);
        assert_eq!(cfg.process_roles, d.process_roles);
        assert_eq!(cfg.broker_session_timeout_ms, d.broker_session_timeout_ms);
        assert_eq!(
            cfg.broker_heartbeat_interval_ms,
            d.broker_heartbeat_interval_ms
        );
        assert_eq!(
            cfg.offsets_topic_replication_factor,
            d.offsets_topic_replication_factor
        );
        assert_eq!(
            cfg.transaction_state_log_replication_factor,
            d.transaction_state_log_replication_factor
        );
        assert_eq!(
            cfg.transaction_state_log_min_isr,
            d.transaction_state_log_min_isr
        );
        assert_eq!(cfg.min_insync_replicas, d.min_insync_replicas);
        assert_eq!(
            cfg.transaction_state_log_num_partitions,
            d.transaction_state_log_num_partitions
        );
        assert_eq!(
            cfg.transaction_state_log_segment_bytes,
            d.transaction_state_log_segment_bytes
        );
        assert_eq!(cfg.transaction_max_timeout_ms, d.transaction_max_timeout_ms);
        assert_eq!(
            cfg.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            d.transaction_abort_timed_out_transaction_cleanup_interval_ms
        );
        assert_eq!(
            cfg.transactional_id_expiration_ms,
            d.transactional_id_expiration_ms
        );
        assert_eq!(
            cfg.transaction_remove_expired_transaction_cleanup_interval_ms,
            d.transaction_remove_expired_transaction_cleanup_interval_ms
        );
        assert_eq!(cfg.replica_lag_time_max_ms, d.replica_lag_time_max_ms);
        assert_eq!(
            cfg.unclean_leader_election_enable,
            d.unclean_leader_election_enable
        );
        assert!(cfg.listeners.is_empty() && cfg.controller_quorum_voters.is_empty());
    }

    #[test]
    fn sasl_needs_known_mechanisms_and_users() {
        let bad =
            toml::from_str::<Config>("[sasl]\nmechanisms = [\"GSSAPI\"]\n[sasl.users]\na = \"b\"")
                .unwrap();
        assert!(bad.validate().is_err());
        let nobody: Config = toml::from_str("[sasl]\nmechanisms = [\"PLAIN\"]").unwrap();
        assert!(nobody.validate().is_err());
        let ok: Config =
            toml::from_str("[sasl]\nmechanisms = [\"SCRAM-SHA-512\"]\n[sasl.users]\na = \"b\"")
                .unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_flush_are_rejected() {
        assert!(toml::from_str::<Config>("no_such_key = 1").is_err());
        let cfg: Config = toml::from_str("[log]\nflush = \"sometimes\"").unwrap();
        assert!(cfg.validate().is_err());
        let cfg: Config = toml::from_str("[log]\nflush = \"interval:50\"").unwrap();
        cfg.validate().unwrap();
    }
}
