//! One rdkafka group member in a process of its own, so that a test can SIGKILL it (no LeaveGroup):
//! `vltava-group-member BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS`. Its stdout is the test's view of
//! it: `assigned P,P,...` after each assignment, `revoked` before each revocation, and per record
//! `got P O` before the synchronous commit and `committed P O` once the commit succeeded.

use std::time::Duration;

use anyhow::bail;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::ClientContext;
use vltava_compat::kafka;

struct ReportRebalances;

impl ClientContext for ReportRebalances {}

impl ConsumerContext for ReportRebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            println!("revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let parts: Vec<String> = list
                .elements()
                .iter()
                .map(|e| e.partition().to_string())
                .collect();
            println!("assigned {}", parts.join(","));
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, topic, session_ms] = args.as_slice() else {
        bail!("usage: vltava-group-member BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS");
    };
    let consumer: BaseConsumer<ReportRebalances> =
        kafka::group_consumer_config(bootstrap, group, session_ms.parse()?)
            .create_with_context(ReportRebalances)?;
    consumer.subscribe(&[topic])?;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                println!("got {} {}", m.partition(), m.offset());
                if consumer.commit_message(&m, CommitMode::Sync).is_ok() {
                    println!("committed {} {}", m.partition(), m.offset());
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
}
