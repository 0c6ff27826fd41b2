//! Resource limits against the real binary: back-pressure on a client that pipelines without reading,
//! idle and per-address connection limits, and a partition count that must not become an allocation.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{create_topic, BrokerProcess};

fn start(config: &str) -> (tempfile::TempDir, BrokerProcess) {
    common::start_with_config(config)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// An ApiVersions v3 request frame padded with a 1 KiB client software name.
fn api_versions_frame(correlation: i32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&18i16.to_be_bytes());
    p.extend_from_slice(&3i16.to_be_bytes());
    p.extend_from_slice(&correlation.to_be_bytes());
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.push(0); // header tags
    p.extend_from_slice(&[0x81, 0x08]); // compact length 1024 + 1
    p.extend(std::iter::repeat_n(b'n', 1024));
    p.extend_from_slice(&[2, b'1', 0]);
    let mut f = (p.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&p);
    f
}

#[test]
fn a_client_that_never_reads_is_held_back_not_buffered() {
    let (_dir, broker) = start("");
    let mut s = TcpStream::connect(&broker.addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let rss_before = rss_kib(broker.pid());
    // Pipeline requests without reading a single response until the socket refuses more: the broker
    // stops reading once its responses back up, so this ends long before the cap.
    let cap = 200_000;
    let mut sent = 0;
    let mut pending: Vec<u8> = Vec::new();
    let mut stalled_since: Option<Instant> = None;
    while sent < cap {
        if pending.is_empty() {
            pending = api_versions_frame(sent as i32);
        }
        match s.write(&pending) {
            Ok(n) => {
                pending.drain(..n);
                if pending.is_empty() {
                    sent += 1;
                }
                stalled_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Full: wait for the socket to stay full (the broker may still drain a little).
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        sent < cap,
        "the broker kept reading {sent} requests without their responses being read"
    );
    let rss = rss_kib(broker.pid());
    eprintln!("held back after {sent} pipelined requests; broker RSS {rss_before} -> {rss} KiB");
    assert!(
        rss < rss_before + 64 * 1024,
        "broker RSS grew from {rss_before} to {rss} KiB while held back"
    );
    // Now read: every complete request is answered, in order.
    if !pending.is_empty() {
        s.set_nonblocking(false).unwrap();
        // Finish the partial frame so the stream stays well-formed.
        let mut reader = s.try_clone().unwrap();
        let finish = std::thread::spawn(move || {
            let _ = s.write_all(&pending);
            s
        });
        let mut answered = 0;
        read_responses(&mut reader, sent + 1, &mut answered);
        finish.join().unwrap();
        assert_eq!(answered, sent + 1);
    } else {
        s.set_nonblocking(false).unwrap();
        let mut answered = 0;
        read_responses(&mut s, sent, &mut answered);
        assert_eq!(answered, sent);
    }
}

fn read_responses(s: &mut TcpStream, expected: usize, answered: &mut usize) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut size = [0u8; 4];
    while *answered < expected {
        s.read_exact(&mut size).expect("a response");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).unwrap();
        let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        assert_eq!(correlation, *answered as i32, "responses in request order");
        *answered += 1;
    }
}

#[test]
fn idle_and_excess_connections_are_closed() {
    let (_dir, broker) =
        start("[limits]\nconnections_max_idle_ms = 300\nmax_connections_per_ip = 3\n");
    // Idle: closed after connections.max.idle.ms.
    let mut idle = TcpStream::connect(&broker.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 1];
    assert!(matches!(idle.read(&mut b), Ok(0) | Err(_)));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idle);

    // Per address: three are served, the fourth is closed at once. Each proves it is served by an
    // ApiVersions round trip (which also keeps it from going idle during the check).
    let mut clients: Vec<_> = (0..3).map(|_| broker.connect()).collect();
    for c in &mut clients {
        c.send_frame(&api_versions_frame(0)[4..]);
        assert!(c.read_frame().is_some());
    }
    let mut extra = TcpStream::connect(&broker.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = extra.write_all(&api_versions_frame(0));
    assert!(
        matches!(extra.read(&mut b), Ok(0) | Err(_)),
        "fourth connection was served"
    );
}

#[test]
fn partition_counts_are_limited_before_allocation() {
    let (_dir, broker) = start("[limits]\nmax_partitions = 10\n");
    let mut c = broker.connect();
    let r = create_topic(&mut c, 7, "huge", i32::MAX, &[]);
    assert_eq!(r.topics[0].error_code, 37, "INVALID_PARTITIONS");
    let r = create_topic(&mut c, 7, "eleven", 11, &[]);
    assert_eq!(r.topics[0].error_code, 37);
    let r = create_topic(&mut c, 7, "ten", 10, &[]);
    assert_eq!(r.topics[0].error_code, 0);
    let r = create_topic(&mut c, 7, "one-more", 1, &[]);
    assert_eq!(r.topics[0].error_code, 37, "the cluster is full");
}
