//! The `vltava` command: parse flags, load configuration, run the broker until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

use vltava::broker::Broker;
use vltava::config::{BoundListener, Config, Endpoint, HostPort};

/// A Kafka-compatible broker. With no arguments: a single node on 127.0.0.1:9092, data in ./vltava-data.
#[derive(Parser, Debug)]
#[command(name = "vltava", version, about)]
struct Args {
    /// Configuration file: vltava's TOML (see config/vltava.toml) or Kafka's server.properties
    /// (by extension, else by content); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to serve the Kafka protocol on (port 0 picks a free port); with `listeners`, the
    /// first client listener's.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port advertised to clients (default: the bound address); with `listeners`, the first
    /// client listener's.
    #[arg(long)]
    advertise: Option<String>,
    /// Directory for partition logs and the Raft metadata log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This broker's node id.
    #[arg(long)]
    node_id: Option<i32>,
    /// Flush policy: os, always, or interval:<ms> (see README, Durability).
    #[arg(long)]
    flush: Option<String>,
}

/// Standard output for log lines, where a failed write is dropped: a broker whose output pipe was
/// closed keeps serving (tracing's own fallback would print to stderr, and panic if that is closed
/// too), as Kafka keeps running when its log output is gone.
struct LogOutput(std::io::Stdout);

impl std::io::Write for LogOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(|| LogOutput(std::io::stdout()))
        .init();

    let mut config = match &args.config {
        Some(path) => {
            let loaded = Config::load_file(path)?;
            if !loaded.ignored_kafka_keys.is_empty() {
                info!(
                    keys = %loaded.ignored_kafka_keys.join(","),
                    "Kafka settings accepted but not used by vltava"
                );
            }
            loaded.config
        }
        None => Config::default(),
    };
    if let Some(v) = args.listen {
        config.listen = v;
        if let Some(first) = first_client_listener(&mut config) {
            first.addr = HostPort {
                host: v.ip().to_string(),
                port: v.port(),
            };
        }
    }
    if let Some(v) = args.advertise {
        if config.has_named_listeners() {
            let addr: HostPort = v.parse().map_err(|e| anyhow::anyhow!("--advertise: {e}"))?;
            let name = first_client_listener(&mut config).map(|l| l.name.clone());
            if let Some(name) = name {
                config.advertised_listeners.retain(|a| a.name != name);
                config.advertised_listeners.push(Endpoint { name, addr });
            }
        }
        config.advertise = Some(v);
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.node_id {
        config.node_id = v;
    }
    if let Some(v) = args.flush {
        config.log.flush = v;
    }
    config.apply_cluster_id_env(std::env::var("CLUSTER_ID").ok())?;
    config.validate()?;

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(config, started))
}

async fn run(mut config: Config, started: Instant) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for l in config.client_listeners() {
        let socket = TcpListener::bind((l.bind.bind_host(), l.bind.port))
            .await
            .with_context(|| format!("cannot listen on {}://{}", l.name, l.bind))?;
        let bound = BoundListener::new(&l, socket.local_addr()?);
        info!(
            listener = %bound.name,
            protocol = %bound.protocol,
            bound = %bound.addr,
            advertised = %format!("{}:{}", bound.advertised_host, bound.advertised_port),
            "listening"
        );
        config.bound_listeners.push(bound);
        listeners.push(vltava::server::Listener {
            socket,
            name: l.name,
            protocol: l.protocol,
        });
    }
    let Some(first) = config.bound_listeners.first().cloned() else {
        anyhow::bail!("no client listener to serve on");
    };
    if config.has_named_listeners() {
        config.listen = first.addr;
    }
    let broker = Broker::start(
        config,
        first.advertised_host.clone(),
        i32::from(first.advertised_port),
    )
    .await?;
    info!(
        addr = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
        node_id = broker.node_id,
        listeners = %broker
            .config
            .bound_listeners
            .iter()
            .map(|b| format!("{}://{}:{}", b.name, b.advertised_host, b.advertised_port))
            .collect::<Vec<_>>()
            .join(","),
        startup_ms = started.elapsed().as_millis() as u64,
        "accepting connections"
    );
    let draining = broker.clone();
    let stop = async move {
        shutdown_signal().await;
        draining.controlled_shutdown().await;
    };
    let served = vltava::server::run(listeners, broker.clone(), stop).await;
    broker.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("listener: {e}"))
}

/// The first listener in `listeners` that serves clients, for `--listen` and `--advertise`.
fn first_client_listener(config: &mut Config) -> Option<&mut Endpoint> {
    let controllers = config.controller_listener_names.clone();
    config
        .listeners
        .iter_mut()
        .find(|l| !controllers.contains(&l.name))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
}
