//! Strangers on the metadata port of a cluster on 127.0.0.1-3: garbage, oversized frames and
//! hellos from another cluster, an unknown node id, a duplicate id or the wrong address are
//! refused and closed; the cluster carries on with nothing applied.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::super::identity::{ClusterTag, Hello, HelloReply};
use super::super::wire::{read_frame, write_frame, MAX_HELLO_LEN};
use super::super::*;
use super::quorum::{agreed_leader, quick, Trio};
use super::{topic, wait_for};

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// The server closes the connection (EOF or reset) within a few seconds.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                // A refusal frame may come first.
                Ok(_) => continue,
            }
        }
    });
    read.await.unwrap_or(false)
}

async fn hello_from(ip: &str, to: SocketAddr, hello: Hello) -> HelloReply {
    let mut s = connect_from(ip, to).await;
    write_frame(&mut s, &hello).await.unwrap();
    let reply = read_frame(&mut s, MAX_HELLO_LEN).await.unwrap().unwrap();
    if matches!(reply, HelloReply::Refused(_)) {
        assert!(
            closed(&mut s).await,
            "a refused peer's connection stays open"
        );
    }
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_the_cluster_carries_on() {
    let trio = Trio::new(["127.0.0.1", "127.0.0.2", "127.0.0.3"], quick());
    let nodes = trio.start_all().await;
    agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let res = nodes[2]
        .write(MetadataCommand::CreateTopic(topic("t", 1)))
        .await;
    assert_eq!(res.unwrap(), CommandResult::Ok);
    for n in &nodes {
        wait_for(n, |img| img.topics.contains_key("t")).await;
    }
    let id = nodes[0].image().cluster_id.clone();
    let node1 = trio.addrs[0];

    // Garbage and an oversized frame: closed without an answer.
    let mut s = connect_from("127.0.0.9", node1).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(&mut s).await, "garbage kept the connection open");
    let mut s = connect_from("127.0.0.9", node1).await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(
        closed(&mut s).await,
        "an oversized frame kept the connection open"
    );

    let hello = |cluster: ClusterTag, node_id: u64, learner: bool| Hello {
        cluster,
        node_id,
        learner,
    };
    let ours = || ClusterTag::Id(id.clone());
    let refusals = [
        // Another cluster, from node 2's own address.
        (
            "127.0.0.2",
            hello(ClusterTag::Id("other".into()), 2, false),
            "cluster",
        ),
        // Fresh, but configured with other voters.
        (
            "127.0.0.2",
            hello(ClusterTag::Bootstrap("0".into()), 2, false),
            "voters",
        ),
        ("127.0.0.9", hello(ours(), 9, false), "unknown node id"),
        // Node 1's own id.
        ("127.0.0.9", hello(ours(), 1, false), "own id"),
        // Node 2's id from node 3's address.
        ("127.0.0.3", hello(ours(), 2, false), "connected from"),
    ];
    for (ip, h, why) in refusals {
        match hello_from(ip, node1, h.clone()).await {
            HelloReply::Refused(reason) => {
                assert!(reason.contains(why), "{h:?}: {reason}")
            }
            HelloReply::Welcome(_) => panic!("{h:?} from {ip} was welcomed"),
        }
    }
    // The same hello from the right address is welcome: the refusals above were about them.
    match hello_from("127.0.0.2", node1, hello(ours(), 2, false)).await {
        HelloReply::Welcome(w) => assert_eq!(w.node_id, 1),
        HelloReply::Refused(r) => panic!("node 2 refused: {r}"),
    }

    // Nothing was applied, and the cluster still writes through every node.
    for n in &nodes {
        assert_eq!(n.image().topics.len(), 1);
        assert_eq!(n.image().cluster_id, id);
    }
    let res = nodes[0]
        .write(MetadataCommand::CreateTopic(topic("u", 1)))
        .await;
    assert_eq!(res.unwrap(), CommandResult::Ok);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_kept_out() {
    // Two clusters with the same voter ids; node 3 of the second is pointed at the first's
    // addresses, as a misconfigured node would be.
    let ours = Trio::new(["127.0.0.1", "127.0.0.2", "127.0.0.3"], quick());
    let nodes = ours.start_all().await;
    agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    for n in &nodes {
        wait_for(n, |img| !img.cluster_id.is_empty()).await;
    }
    let id = nodes[0].image().cluster_id.clone();
    // Node 3 goes; a stranger with node 3's address, voters and id but another cluster.id
    // starts in its place.
    let [a, b, c] = <[MetadataStore; 3]>::try_from(nodes).ok().unwrap();
    c.shutdown().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ours.cfg(2);
    cfg.data_dir = dir.path().to_path_buf();
    let stranger = MetadataStore::start_node(
        cfg,
        ClusterOptions {
            cluster_id: Some("someone-else".into()),
            ..ClusterOptions::default()
        },
        quick(),
    )
    .await
    .unwrap();
    let res = a
        .write(MetadataCommand::CreateTopic(topic("while-stranger", 1)))
        .await;
    assert_eq!(res.unwrap(), CommandResult::Ok);
    // The stranger never joins: its image stays empty, and it can't write either.
    assert!(stranger.image().topics.is_empty());
    assert_ne!(stranger.image().cluster_id, id);
    assert!(stranger
        .write(MetadataCommand::CreateTopic(topic("x", 1)))
        .await
        .is_err());
    assert!(!a.image().topics.contains_key("x"));
    stranger.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
