//! A transactional rdkafka producer in a process of its own, so that a test can SIGKILL it
//! mid-transaction: `vltava-txn-producer BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TIMEOUT_MS`.
//! It initialises, begins a transaction, produces COUNT records `dead-<i>` to partition 0 and, once
//! all are acknowledged, prints `produced FIRST LAST` (their offsets) and waits on stdin for ever
//! without committing or aborting.

use std::io::Read as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::producer::Producer;
use vltava_compat::kafka::{self, Rec};
use vltava_compat::txn;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, id, topic, count, timeout_ms] = args.as_slice() else {
        bail!("usage: vltava-txn-producer BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TIMEOUT_MS");
    };
    let count: usize = count.parse().context("COUNT")?;
    let p = txn::producer(bootstrap, id, timeout_ms.parse().context("TIMEOUT_MS")?);
    p.init_transactions(Duration::from_secs(30))?;
    p.begin_transaction()?;
    let recs: Vec<Rec> = (0..count)
        .map(|i| Rec::new(0, None, Some(format!("dead-{i}").as_bytes())))
        .collect();
    let mut offsets = Vec::new();
    for d in kafka::produce(&p, topic, &recs) {
        offsets.push(d?.1);
    }
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        bail!("COUNT must be at least 1");
    };
    println!("produced {first} {last}");
    // Hold the transaction open until killed (the test never closes our stdin).
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
    Ok(())
}
