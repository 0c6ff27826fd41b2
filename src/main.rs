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
use vltava::config::Config;

/// A Kafka-compatible broker. With no arguments: a single node on 127.0.0.1:9092, data in ./vltava-data.
#[derive(Parser, Debug)]
#[command(name = "vltava", version, about)]
struct Args {
    /// TOML configuration file (see config/vltava.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to serve the Kafka protocol on (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port advertised to clients (default: the bound address).
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

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.advertise {
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
    config.validate()?;

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(config, started))
}

async fn run(config: Config, started: Instant) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let (host, port) = advertised(&config, bound)?;
    let broker = Broker::start(config, host, port).await?;
    info!(
        addr = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
        node_id = broker.node_id,
        startup_ms = started.elapsed().as_millis() as u64,
        "accepting connections"
    );
    let served = vltava::server::run(listener, broker.clone(), shutdown_signal()).await;
    broker.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("listener: {e}"))
}

/// The advertised host and port: `--advertise`, else the bound address with 0.0.0.0 shown as 127.0.0.1.
fn advertised(config: &Config, bound: SocketAddr) -> anyhow::Result<(String, i32)> {
    if let Some(adv) = &config.advertise {
        let (host, port) = adv
            .rsplit_once(':')
            .with_context(|| format!("--advertise {adv:?} is not host:port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("bad port in --advertise {adv:?}"))?;
        return Ok((host.trim_matches(['[', ']']).to_string(), port as i32));
    }
    let host = if bound.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        bound.ip().to_string()
    };
    Ok((host, bound.port() as i32))
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
