//! Unit tests of `server.properties` loading: Kafka's shipped files, each mapped key, and each bad or
//! contradictory setting named in its error.

use std::path::Path;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kafka")
        .join(name)
}

fn load(text: &str) -> Result<Config, ConfigError> {
    let (c, _) = Config::from_properties(text)?;
    c.validate()?;
    Ok(c)
}

/// The error for `text`, which must name `key`.
fn refused(text: &str, key: &str) {
    match load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(key), "error {msg:?} does not name {key}");
        }
    }
}

const COMBINED: &str = "process.roles=broker,controller\nnode.id=1\n\
    controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.2:19093,3@127.0.0.3:19093\n\
    listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
    controller.listener.names=CONTROLLER\n";

#[test]
fn kafka_shipped_server_properties_loads_unchanged() {
    let loaded = Config::load_file(&fixture("server.properties")).unwrap();
    assert_eq!(loaded.format, FileFormat::Properties);
    let c = loaded.config;
    c.validate().unwrap();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.process_roles, ProcessRoles::default());
    assert!(c.controller_quorum_voters.is_empty());
    assert_eq!(
        c.controller_quorum_bootstrap_servers,
        vec!["localhost:9093".parse::<HostPort>().unwrap()]
    );
    let clients = c.client_listeners();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].name, "PLAINTEXT");
    assert_eq!(clients[0].protocol, SecurityProtocol::Plaintext);
    assert_eq!(clients[0].bind.bind_host(), "0.0.0.0");
    assert_eq!(clients[0].bind.port, 9092);
    assert_eq!(
        clients[0].advertised,
        Some("localhost:9092".parse().unwrap())
    );
    let controller = c.controller_listener().unwrap();
    assert_eq!(
        (controller.name.as_str(), controller.addr.port),
        ("CONTROLLER", 9093)
    );
    assert_eq!(
        c.advertised_controller_listener().unwrap().addr.host,
        "localhost"
    );
    assert_eq!(c.inter_broker_listener(), "PLAINTEXT");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/kraft-combined-logs"));
    assert_eq!(c.log.retention_ms, 168 * 3_600_000);
    assert_eq!(c.log.segment_bytes, 1 << 30);
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(c.transaction_state_log_min_isr, 1);
    for k in [
        "num.network.threads",
        "num.io.threads",
        "socket.send.buffer.bytes",
        "num.recovery.threads.per.data.dir",
        "share.coordinator.state.topic.min.isr",
    ] {
        assert!(loaded.ignored_kafka_keys.iter().any(|i| i == k), "{k}");
    }
    assert!(!loaded.ignored_kafka_keys.iter().any(|i| i == "log.dirs"));
}

#[test]
fn kafka_static_quorum_file_loads() {
    let c = Config::from_file(&fixture("kraft-static-server.properties")).unwrap();
    c.validate().unwrap();
    assert_eq!(c.controller_quorum_voters.len(), 1);
    assert_eq!(c.controller_quorum_voters[0].id, 1);
    assert_eq!(c.controller_quorum_voters[0].addr.host, "localhost");
    // The controller listener is not advertised: its advertised address is where it binds.
    assert_eq!(c.advertised_controller_listener().unwrap().addr.port, 9093);
}

#[test]
fn cluster_keys_map_to_fields() {
    let text = format!(
        "{COMBINED}broker.rack=r1\nbroker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n\
         offsets.topic.replication.factor=3\ntransaction.state.log.replication.factor=3\n\
         transaction.state.log.min.isr=2\nmin.insync.replicas=2\ndefault.replication.factor=3\n\
         transaction.state.log.num.partitions=7\ntransaction.max.timeout.ms=60000\n\
         transactional.id.expiration.ms=1000\n\
         transaction.abort.timed.out.transaction.cleanup.interval.ms=500\n\
         replica.lag.time.max.ms=3000\nunclean.leader.election.enable=TRUE\n\
         cluster.id=MkU3OEVBNTcwNTJENDM2Qg\nadvertised.listeners=PLAINTEXT://node1.example:9092\n"
    );
    let c = load(&text).unwrap();
    assert_eq!(c.controller_quorum_voters.len(), 3);
    assert_eq!(
        c.controller_quorum_voters[2].to_string(),
        "3@127.0.0.3:19093"
    );
    assert_eq!(c.broker_rack.as_deref(), Some("r1"));
    assert_eq!(c.broker_session_timeout_ms, 3000);
    assert_eq!(c.broker_heartbeat_interval_ms, 500);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.transaction_state_log_replication_factor, 3);
    assert_eq!(c.transaction_state_log_min_isr, 2);
    assert_eq!(c.transaction_state_log_num_partitions, 7);
    assert_eq!(c.transaction_max_timeout_ms, 60_000);
    assert_eq!(c.transactional_id_expiration_ms, 1000);
    assert_eq!(
        c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        500
    );
    assert_eq!(c.min_insync_replicas, 2);
    assert_eq!(c.default_replication_factor, 3);
    assert_eq!(c.replica_lag_time_max_ms, 3000);
    assert!(c.unclean_leader_election_enable);
    assert_eq!(c.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qg"));
    assert_eq!(
        c.client_listeners()[0].advertised,
        Some("node1.example:9092".parse().unwrap())
    );
    assert_eq!(
        c.controller_listener().unwrap().addr.to_string(),
        "127.0.0.1:19093"
    );
}

#[test]
fn broker_only_node_is_a_learner() {
    let text = "process.roles=broker\nnode.id=4\n\
        controller.quorum.voters=1@127.0.0.1:19093\n\
        listeners=PLAINTEXT://127.0.0.4:9092,CONTROLLER://127.0.0.4:19093\n\
        controller.listener.names=CONTROLLER\n";
    let c = load(text).unwrap();
    assert!(!c.process_roles.controller);
    assert_eq!(
        c.controller_listener().map(|l| l.addr.to_string()),
        Some("127.0.0.4:19093".into()),
        "a learner is replicated to on its controller listener"
    );
    let without = "process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@127.0.0.1:19093\n\
        listeners=PLAINTEXT://127.0.0.4:9092\ncontroller.listener.names=CONTROLLER\n";
    let err = load(without).unwrap_err().to_string();
    assert!(err.contains("listeners"), "{err}");
    // The controllers' listener has PLAINTEXT by Kafka's KRaft default (no map, nothing secure).
    assert_eq!(
        c.protocol_of("CONTROLLER"),
        Some(SecurityProtocol::Plaintext)
    );
}

#[test]
fn mirrored_settings_map_like_the_toml() {
    let text = "broker.id=7\nlog.dir=/data/v\nauto.create.topics.enable=false\nnum.partitions=3\n\
        socket.request.max.bytes=2048\nmax.connections=10\nmax.connections.per.ip=5\n\
        connections.max.idle.ms=1000\nqueued.max.request.bytes=-1\n\
        log.retention.check.interval.ms=10\nlog.cleaner.backoff.ms=20\n\
        group.initial.rebalance.delay.ms=3000\ngroup.min.session.timeout.ms=10\n\
        group.max.session.timeout.ms=20\ngroup.max.size=4\noffsets.topic.num.partitions=5\n\
        offsets.topic.segment.bytes=4096\noffsets.retention.minutes=6\n\
        offsets.retention.check.interval.ms=7\noffset.metadata.max.bytes=8\n\
        offsets.commit.timeout.ms=13\n\
        producer.id.expiration.ms=9\nlog.roll.hours=2\nlog.retention.minutes=3\n\
        log.retention.bytes=11\nmessage.max.bytes=12\nlog.message.timestamp.type=LogAppendTime\n\
        log.flush.interval.ms=50\nsasl.enabled.mechanisms=plain,SCRAM-SHA-256\n\
        sasl.jaas.config=x required user_alice=\"pw\";\n\
        connection.failed.authentication.delay.ms=0\nvltava.log.min.free.bytes=0\n\
        vltava.frame.read.timeout.ms=99\nvltava.max.partitions=100\n";
    let c = load(text).unwrap();
    assert_eq!(c.node_id, 7);
    assert_eq!(c.data_dir, PathBuf::from("/data/v"));
    assert!(!c.auto_create_topics);
    assert_eq!(c.num_partitions, 3);
    assert_eq!(c.socket_request_max_bytes, 2048);
    assert_eq!(c.max_connections, 10);
    assert_eq!(c.limits.max_connections_per_ip, 5);
    assert_eq!(c.limits.connections_max_idle_ms, 1000);
    assert_eq!(c.limits.queued_max_request_bytes, u32::MAX);
    assert_eq!(c.retention_check_interval_ms, 10);
    assert_eq!(c.log_cleaner_backoff_ms, 20);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 10);
    assert_eq!(c.group_max_session_timeout_ms, 20);
    assert_eq!(c.group_max_size, 4);
    assert_eq!(c.offsets_topic_num_partitions, 5);
    assert_eq!(c.offsets_topic_segment_bytes, 4096);
    assert_eq!(c.offsets_retention_minutes, 6);
    assert_eq!(c.offsets_retention_check_interval_ms, 7);
    assert_eq!(c.offsets_commit_timeout_ms, 13);
    assert_eq!(c.offset_metadata_max_bytes, 8);
    assert_eq!(c.producer_id_expiration_ms, 9);
    assert_eq!(c.log.segment_ms, 2 * 3_600_000);
    assert_eq!(c.log.retention_ms, 3 * 60_000);
    assert_eq!(c.log.retention_bytes, 11);
    assert_eq!(c.log.max_message_bytes, 12);
    assert_eq!(c.log.message_timestamp_type, "LogAppendTime");
    assert_eq!(c.log.flush, "interval:50");
    assert_eq!(c.sasl.mechanisms, vec!["PLAIN", "SCRAM-SHA-256"]);
    assert_eq!(c.sasl.users.get("alice").map(String::as_str), Some("pw"));
    assert_eq!(c.sasl.connection_failed_authentication_delay_ms, 0);
    assert_eq!(c.log.min_free_bytes, 0);
    assert_eq!(c.limits.frame_read_timeout_ms, 99);
    assert_eq!(c.limits.max_partitions, 100);
    // The legacy single listener speaks what [sasl] makes it.
    assert_eq!(c.security_protocol(), "SASL_PLAINTEXT");
    // ms beats minutes beats hours, as Kafka's synonyms.
    let c =
        load("log.retention.ms=5\nlog.retention.hours=1\nlog.flush.interval.messages=1").unwrap();
    assert_eq!(c.log.retention_ms, 5);
    assert_eq!(c.log.flush, "always");
    assert_eq!(load("log.retention.hours=-1").unwrap().log.retention_ms, -1);
}

#[test]
fn bad_values_name_their_key() {
    refused("no.such.setting=1\nnum.io.threads=8", "no.such.setting");
    refused("num.partitions=abc", "num.partitions");
    refused("num.partitions=0", "num.partitions");
    refused("node.id=2147483648", "node.id");
    refused("node.id=1\nbroker.id=2", "broker.id");
    refused(
        "unclean.leader.election.enable=yes",
        "unclean.leader.election.enable",
    );
    refused(
        "controller.quorum.voters=1@localhost",
        "controller.quorum.voters",
    );
    refused(
        "controller.quorum.voters=one@h:1",
        "controller.quorum.voters",
    );
    refused(
        "controller.quorum.voters=1@h:1,1@h:2",
        "controller.quorum.voters",
    );
    refused("listeners=PLAINTEXT://:70000", "listeners");
    refused("listeners=PLAINTEXT://:x", "listeners");
    refused("listeners=PLAINTEXT://:1,PLAINTEXT://:2", "listeners");
    refused("log.dirs=/a,/b", "log.dirs");
    refused("metadata.log.dir=/elsewhere", "metadata.log.dir");
    refused("process.roles=controller\nnode.id=1", "process.roles");
    refused("process.roles=broker,controller", "node.id");
    refused("process.roles=broker,zookeeper\nnode.id=1", "process.roles");
    refused("cluster.id=not-a-uuid", "cluster.id");
    refused(
        "log.message.timestamp.type=Now",
        "log.message.timestamp.type",
    );
    refused(
        "listener.security.protocol.map=A:KERBEROS",
        "listener.security.protocol.map",
    );
    refused(
        "inter.broker.listener.name=A\nsecurity.inter.broker.protocol=SSL",
        "security.inter.broker.protocol",
    );
    refused("ssl.keystore.location=/k.jks", "ssl.keystore.type");
    refused("ssl.client.auth=required", "ssl.client.auth");
    refused(
        "listener.name.client.ssl.keystore.location=/k.pem",
        "listener.name.client.ssl.keystore.location",
    );
    refused(
        "sasl.jaas.config=x required user_bob=pw;",
        "sasl.jaas.config",
    );
    refused("log.retention.ms=0", "log.retention.ms");
}

#[test]
fn contradictions_name_their_key() {
    refused(
        &COMBINED.replace("node.id=1", "node.id=4"),
        "controller.quorum.voters",
    );
    refused(
        &COMBINED.replace(",CONTROLLER://127.0.0.1:19093", ""),
        "controller.listener.names",
    );
    refused(
        &format!("{COMBINED}advertised.listeners=OTHER://h:1"),
        "advertised.listeners",
    );
    refused(
        &format!("{COMBINED}advertised.listeners=PLAINTEXT://0.0.0.0:9092"),
        "advertised.listeners",
    );
    refused(
        &format!("{COMBINED}inter.broker.listener.name=INTERNAL"),
        "inter.broker.listener.name",
    );
    refused(
        &COMBINED.replace("PLAINTEXT://", "CLIENT://"),
        "listener.security.protocol.map",
    );
    // With CLIENT mapped, the default inter-broker listener PLAINTEXT does not exist.
    refused(
        &format!(
            "{}listener.security.protocol.map=CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT\n",
            COMBINED.replace("PLAINTEXT://", "CLIENT://")
        ),
        "inter.broker.listener.name",
    );
    let learner = "process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@127.0.0.1:19093\n\
        controller.listener.names=CONTROLLER\n";
    refused(
        &format!("{learner}listeners=PLAINTEXT://:9092,CONTROLLER://:9093\nadvertised.listeners=PLAINTEXT://h:9092,CONTROLLER://h:9093"),
        "advertised.listeners",
    );
    // A learner is replicated to on its controller listener: it must have one.
    refused(
        &format!("{learner}listeners=PLAINTEXT://:9092"),
        "listeners",
    );
    refused(
        &learner.replace("node.id=4", "node.id=1"),
        "controller.quorum.voters",
    );
    refused(
        "process.roles=broker\nnode.id=4",
        "controller.quorum.voters",
    );
    refused(
        "listeners=SSL://:9093\ninter.broker.listener.name=SSL",
        "ssl.keystore.location",
    );
    refused(
        "listeners=SASL_PLAINTEXT://:9093\ninter.broker.listener.name=SASL_PLAINTEXT",
        "sasl.enabled.mechanisms",
    );
    refused("controller.quorum.voters=1@h:9093", "listeners");
}

#[test]
fn toml_takes_the_same_settings() {
    let c: Config = toml::from_str(
        r#"
        node_id = 2
        process_roles = ["broker", "controller"]
        controller_quorum_voters = ["1@127.0.0.1:19093", "2@127.0.0.2:19093"]
        listeners = ["PLAINTEXT://127.0.0.2:9092", "EXTERNAL://127.0.0.2:9094", "CONTROLLER://127.0.0.2:19093"]
        advertised_listeners = ["EXTERNAL://broker2.example:9094"]
        listener_security_protocol_map = { EXTERNAL = "PLAINTEXT", CONTROLLER = "PLAINTEXT" }
        controller_listener_names = ["CONTROLLER"]
        inter_broker_listener_name = "PLAINTEXT"
        cluster_id = "MkU3OEVBNTcwNTJENDM2Qg"
        broker_rack = "a"
        broker_session_timeout_ms = 3000
        min_insync_replicas = 2
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    let names: Vec<_> = c.client_listeners().into_iter().map(|l| l.name).collect();
    assert_eq!(names, vec!["PLAINTEXT", "EXTERNAL"]);
    assert_eq!(c.controller_listener().unwrap().addr.host, "127.0.0.2");
    assert_eq!(c.broker_session_timeout_ms, 3000);
    let bad = toml::from_str::<Config>(r#"controller_quorum_voters = ["1@h"]"#).unwrap_err();
    assert!(
        bad.to_string().contains("controller_quorum_voters"),
        "{bad}"
    );
    let bad = toml::from_str::<Config>(r#"process_roles = ["controller"]"#).unwrap_err();
    assert!(bad.to_string().contains("not supported"), "{bad}");
}

#[test]
fn format_is_detected_by_extension_then_content() {
    let p = Path::new("node1.cfg");
    assert_eq!(
        FileFormat::detect(p, "# c\nnode.id=1\n"),
        FileFormat::Properties
    );
    assert_eq!(
        FileFormat::detect(p, "! c\nlog.dirs : /x\n"),
        FileFormat::Properties
    );
    assert_eq!(FileFormat::detect(p, "node_id = 1\n"), FileFormat::Toml);
    assert_eq!(
        FileFormat::detect(p, "[log]\nflush = \"os\"\n"),
        FileFormat::Toml
    );
    assert_eq!(
        FileFormat::detect(Path::new("a.toml"), "node.id=1"),
        FileFormat::Toml
    );
    assert_eq!(
        FileFormat::detect(Path::new("a.properties"), "x = 1"),
        FileFormat::Properties
    );
}

#[test]
fn cluster_id_env_fills_in_or_must_agree() {
    let mut c = Config::default();
    c.apply_cluster_id_env(Some("MkU3OEVBNTcwNTJENDM2Qg".into()))
        .unwrap();
    assert_eq!(c.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qg"));
    c.apply_cluster_id_env(Some("MkU3OEVBNTcwNTJENDM2Qg".into()))
        .unwrap();
    let err = c
        .apply_cluster_id_env(Some("AAAAAAAAAAAAAAAAAAAAAA".into()))
        .unwrap_err();
    assert!(err.to_string().contains("cluster.id"));
    let mut d = Config::default();
    d.apply_cluster_id_env(None).unwrap();
    assert!(d.cluster_id.is_none());
}
