//! Running out of connection slots or descriptors against the real binary: clients beyond
//! `max_connections` wait until one closes, an `accept` that fails for want of descriptors backs off,
//! and each condition is logged once, not once per client or per failure.

mod common;

use std::time::Duration;

use common::{BrokerProcess, Client};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestKind};

fn start(config: &str) -> (tempfile::TempDir, BrokerProcess) {
    common::start_with_config(config)
}

/// Sends an ApiVersions request without waiting for its response.
fn send_api_versions(c: &mut Client) {
    let req = RequestKind::ApiVersions(ApiVersionsRequest::default());
    let frame = c.encode_request(ApiKey::ApiVersions, 0, &req);
    c.send_frame(&frame);
}

/// Whether a response arrives within `within` (false if none did, or the broker closed).
fn answered_within(c: &mut Client, within: Duration) -> bool {
    let s = c.stream_clone();
    s.set_read_timeout(Some(within)).unwrap();
    let answered = c.read_frame().is_some();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    answered
}

fn served(c: &mut Client) -> bool {
    send_api_versions(c);
    answered_within(c, Duration::from_secs(20))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn clients_beyond_max_connections_wait_until_one_closes_and_the_limit_is_logged_once() {
    let (_dir, broker) = start("max_connections = 2\n");
    let mut first = broker.connect();
    let mut second = broker.connect();
    assert!(served(&mut first) && served(&mut second));
    // Both slots taken: said once, naming the limit.
    assert!(broker.wait_for_line(
        &["connection limit reached", "max_connections=2"],
        Duration::from_secs(10)
    ));

    // A burst of three more: they connect (the kernel's backlog) but nobody answers them.
    let mut waiting: Vec<Client> = (0..3).map(|_| broker.connect()).collect();
    for c in &mut waiting {
        send_api_versions(c);
    }
    assert!(
        !answered_within(&mut waiting[0], Duration::from_millis(300)),
        "a third client was served with max_connections = 2"
    );

    // Each close lets the longest-waiting client in, and no more.
    drop(first);
    assert!(answered_within(&mut waiting[0], Duration::from_secs(20)));
    drop(second);
    assert!(answered_within(&mut waiting[1], Duration::from_secs(20)));
    let mut rest = waiting.split_off(1);
    drop(waiting);
    assert!(answered_within(&mut rest[1], Duration::from_secs(20)));

    // Once a slot is free with nobody waiting: one line, how long and how many; and the limit was
    // not reported again for each client of the burst.
    rest.remove(0);
    let lines = broker
        .lines_until(
            &["connection limit no longer reached", "clients_waited=3"],
            Duration::from_secs(10),
        )
        .expect("the end of the burst is logged");
    let repeats = lines
        .iter()
        .filter(|l| l.contains("connection limit reached"))
        .count();
    assert_eq!(
        repeats, 0,
        "limit logged again within one burst: {lines:#?}"
    );
    let mut after = broker.connect();
    assert!(served(&mut after));
}

#[test]
fn accept_failing_for_want_of_descriptors_backs_off_logs_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_with_nofile(&dir.path().join("data"), &[], 64);
    // More clients than the broker has descriptors: the first ones are served, then accept fails
    // (EMFILE) and the rest wait in the backlog.
    let mut clients: Vec<Client> = (0..80).map(|_| broker.connect()).collect();
    for c in &mut clients {
        send_api_versions(c);
    }
    assert!(
        broker.wait_for_line(
            &["accept failed", "open-file limit"],
            Duration::from_secs(10)
        ),
        "no accept failure logged"
    );
    assert!(
        answered_within(&mut clients[0], Duration::from_secs(20)),
        "the first client is served"
    );

    // While it lasts: no further lines, and the retries do not spin.
    let pid = broker.pid();
    let ticks = cpu_ticks(pid);
    let repeats = broker.count_lines_for(&["accept failed"], Duration::from_secs(2));
    let used = cpu_ticks(pid) - ticks;
    assert_eq!(repeats, 0, "accept failures logged once per failure");
    assert!(
        used < 50,
        "broker used {used} ticks of CPU in 2 s while accept failed"
    );
    assert!(broker.is_running());

    // Descriptors come back: accept succeeds again (said once) and a new client is served.
    drop(clients);
    assert!(broker.wait_for_line(&["accept succeeds again"], Duration::from_secs(10)));
    let mut late = broker.connect();
    let req = RequestKind::ApiVersions(ApiVersionsRequest::default());
    let frame = late.encode_request(ApiKey::ApiVersions, 0, &req);
    late.send_frame(&frame);
    match late.read_frame() {
        Some(_) => {}
        None => panic!("the broker did not serve a client after descriptors were freed"),
    }
    assert!(broker.is_running());
}
