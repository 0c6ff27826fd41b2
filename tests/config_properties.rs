//! The `vltava` binary started with Kafka `server.properties` files and TOML equivalents: Kafka's
//! shipped file serves clients, bad or contradictory settings stop the process naming the key, and
//! several client listeners all serve the Kafka protocol.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BrokerProcess, Client};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, ResponseKind};

const WAIT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kafka")
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// A port free on 127.0.0.1 a moment ago (for files that must advertise a fixed port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ApiVersions and Metadata on `addr` both answer; returns the node ids Metadata lists.
fn serves_kafka(addr: &str) -> Vec<(i32, String, i32)> {
    let mut c = Client::connect(addr);
    let Some(ResponseKind::ApiVersions(v)) =
        c.request(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
    else {
        panic!("no ApiVersions answer on {addr}");
    };
    assert_eq!(v.error_code, 0, "ApiVersions on {addr}");
    assert!(!v.api_keys.is_empty());
    let Some(ResponseKind::Metadata(m)) = c.request(
        ApiKey::Metadata,
        12,
        MetadataRequest::default().with_topics(Some(vec![])),
    ) else {
        panic!("no Metadata answer on {addr}");
    };
    m.brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect()
}

/// The bound address of `listener`, from its "listening" start-up line.
fn bound_addr(broker: &BrokerProcess, listener: &str) -> String {
    let lines = broker
        .lines_until(&["listening", &format!("listener={listener} ")], WAIT)
        .unwrap_or_else(|| panic!("no listening line for {listener}"));
    let line = lines.last().expect("a line");
    line.split("bound=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("bound=")
        .to_string()
}

#[test]
fn kafka_shipped_server_properties_serves_clients() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The file unchanged; only its machine-specific paths and ports are overridden by flags.
    let broker = BrokerProcess::start_in(
        Path::new("."),
        &[
            "--config",
            &fixture("server.properties"),
            "--listen",
            &addr,
            "--advertise",
            &addr,
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(broker.addr, addr);
    assert!(broker.wait_for_line(
        &[
            "Kafka settings accepted but not used",
            "num.network.threads",
            "socket.send.buffer.bytes",
        ],
        WAIT
    ));
    assert_eq!(
        serves_kafka(&addr),
        vec![(1, "127.0.0.1".into(), port as i32)]
    );
}

/// Runs `vltava --config <file>` (with `env`), which must exit non-zero without serving, naming `key`.
fn refused(file_name: &str, text: &str, env: &[(&str, &str)], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vltava"));
    cmd.args(["--config", path.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info,openraft=warn")
        .env_remove("CLUSTER_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn vltava");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send((child.wait().map(|s| s.success()), out, err));
    });
    let Ok((success, out, err)) = rx.recv_timeout(WAIT) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("vltava kept running with:\n{text}");
    };
    assert_eq!(success.ok(), Some(false), "exit status with:\n{text}");
    assert!(err.contains(key), "stderr {err:?} does not name {key}");
    assert!(
        !out.contains("accepting connections"),
        "it served with:\n{text}"
    );
}

const COMBINED: &str = "process.roles=broker,controller\nnode.id=1\n\
    controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.2:19093,3@127.0.0.3:19093\n\
    listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19093\n\
    controller.listener.names=CONTROLLER\n";

#[test]
fn bad_settings_stop_the_node_naming_the_key() {
    let p = "node.properties";
    refused(
        p,
        "num.io.threads=8\nno.such.setting=1\n",
        &[],
        "no.such.setting",
    );
    refused(p, "num.partitions=abc\n", &[], "num.partitions");
    refused(
        p,
        "controller.quorum.voters=1@localhost\n",
        &[],
        "controller.quorum.voters",
    );
    refused(p, "listeners=PLAINTEXT://:70000\n", &[], "listeners");
    refused(p, "log.dirs=/a,/b\n", &[], "log.dirs");
    refused(
        p,
        "process.roles=controller\nnode.id=1\n",
        &[],
        "process.roles",
    );
    refused(
        p,
        &COMBINED.replace("node.id=1", "node.id=4"),
        &[],
        "controller.quorum.voters",
    );
    refused(
        p,
        &COMBINED.replace(",CONTROLLER://127.0.0.1:19093", ""),
        &[],
        "controller.listener.names",
    );
    refused(
        p,
        &format!("{COMBINED}advertised.listeners=OTHER://h:1\n"),
        &[],
        "advertised.listeners",
    );
    refused(
        p,
        &format!("{COMBINED}inter.broker.listener.name=INTERNAL\n"),
        &[],
        "inter.broker.listener.name",
    );
    refused(
        p,
        &COMBINED.replace("PLAINTEXT://", "CLIENT://"),
        &[],
        "listener.security.protocol.map",
    );
    refused(
        p,
        "process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@127.0.0.1:19093\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19094\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:19094\n",
        &[],
        "advertised.listeners",
    );
    refused(
        p,
        "node.id=1\n",
        &[("CLUSTER_ID", "not-an-id")],
        "cluster.id",
    );
    // A file with another extension is read by its content; TOML errors name the TOML key.
    refused("node1.cfg", "node.id=x\n", &[], "node.id");
    refused(
        "node.toml",
        "controller_quorum_voters = [\"1@h\"]\n",
        &[],
        "controller_quorum_voters",
    );
}

#[test]
fn two_client_listeners_both_serve_from_properties() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node1.properties");
    let controller = free_port();
    let text = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=PLAINTEXT://127.0.0.1:0,REPLICATION://127.0.0.1:0,\\\n    CONTROLLER://127.0.0.1:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=REPLICATION\nlog.dirs={}\nnum.network.threads=3\n",
        dir.path().join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    let broker = BrokerProcess::start_in(Path::new("."), &["--config", path.to_str().unwrap()]);
    let first = bound_addr(&broker, "PLAINTEXT");
    let second = bound_addr(&broker, "REPLICATION");
    assert_ne!(first, second);
    assert_eq!(
        broker.addr, first,
        "the first client listener is the default"
    );
    for addr in [&first, &second] {
        let brokers = serves_kafka(addr);
        assert_eq!(brokers.len(), 1);
        assert_eq!(brokers[0].0, 1);
        // Metadata answers with the endpoint of the listener the client came in on, as Kafka does.
        assert_eq!(
            format!("{}:{}", brokers[0].1, brokers[0].2),
            *addr,
            "Metadata on {addr}"
        );
    }
    // A quorum of one voter has no peers to talk to: its controller listener stays unbound.
    assert!(std::net::TcpStream::connect(("127.0.0.1", controller)).is_err());
}

#[test]
fn two_client_listeners_both_serve_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vltava.toml");
    let text = format!(
        "node_id = 3\n\
         listeners = [\"CLIENT://127.0.0.1:0\", \"PLAINTEXT://127.0.0.1:0\"]\n\
         listener_security_protocol_map = {{ CLIENT = \"PLAINTEXT\" }}\n\
         data_dir = {:?}\n",
        dir.path().join("data").to_str().unwrap()
    );
    std::fs::write(&path, text).unwrap();
    let broker = BrokerProcess::start_in(Path::new("."), &["--config", path.to_str().unwrap()]);
    let client = bound_addr(&broker, "CLIENT");
    let plain = bound_addr(&broker, "PLAINTEXT");
    for addr in [&client, &plain] {
        assert_eq!(serves_kafka(addr)[0].0, 3);
    }
}
