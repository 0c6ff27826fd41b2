//! In-process harness (as mini-redis's tests/server.rs): `Broker::start` and `server::run` on
//! 127.0.0.1:0 inside the test's own runtime, with the group coordinator on `Clock::tokio()`, so
//! tests on paused tokio time (`#[tokio::test(start_paused = true)]`) drive session expiry, rebalance
//! timeouts and the initial delay without waiting for them; plus an async raw-protocol client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use vltava::broker::Broker;
use vltava::clock::Clock;
use vltava::config::Config;

pub struct InProcess {
    pub broker: Arc<Broker>,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts a broker on a fresh data directory with `config` (its `data_dir` is replaced).
    pub async fn start(mut config: Config) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        config.data_dir = dir.path().to_path_buf();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker::start_with_clock(
            config,
            addr.ip().to_string(),
            addr.port() as i32,
            Clock::tokio(),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = vec![vltava::server::Listener {
            socket: listener,
            name: "PLAINTEXT".into(),
            protocol: vltava::config::SecurityProtocol::Plaintext,
        }];
        let server = tokio::spawn(vltava::server::run(listeners, broker.clone(), stopped));
        InProcess {
            broker,
            addr,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    pub async fn connect(&self) -> AsyncClient {
        AsyncClient {
            stream: TcpStream::connect(self.addr).await.unwrap(),
            correlation: 0,
        }
    }

    /// Stops the server (draining its connections) and the broker.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.broker.shutdown().await;
    }
}

/// A raw-protocol client on the test's runtime.
pub struct AsyncClient {
    stream: TcpStream,
    correlation: i32,
}

impl AsyncClient {
    /// Sends a request and decodes its response; `None` when the broker closed the connection.
    pub async fn request(
        &mut self,
        key: ApiKey,
        version: i16,
        body: impl Into<RequestKind>,
    ) -> Option<ResponseKind> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("vltava-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.into().encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await.ok()?;
        let size = self.stream.read_i32().await.ok()?;
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame).await.ok()?;
        let mut frame = bytes::Bytes::from(frame);
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let response = ResponseKind::decode(key, &mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0, "{key:?} v{version}: trailing bytes");
        Some(response)
    }
}
