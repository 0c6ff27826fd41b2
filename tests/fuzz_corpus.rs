//! Replays the fuzz corpus (`fuzz/corpus/`: the known crashers and everything the fuzz driver kept)
//! through every fuzz target on each `cargo test`: nothing may panic, abort, allocate hugely, or decode
//! beyond the pre-walk's budget.

mod fuzz_support;

use std::path::Path;

use fuzz_support::{batches, corpus, decode, CountingAlloc, Harness};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn dir(kind: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(kind)
}

#[test]
fn request_corpus_replays_cleanly() {
    let inputs = corpus(&dir("request"));
    assert!(
        inputs
            .iter()
            .any(|(n, _)| n == "metadata-v1-huge-array-14-bytes"),
        "the regression corpus is missing"
    );
    let harness = Harness::new();
    for (name, data) in &inputs {
        eprintln!("request {name}");
        harness.request(data);
        // Each whole input is also tried as one bare frame.
        decode(data);
    }
    harness.shutdown();
}

#[test]
fn batch_corpus_replays_cleanly() {
    let inputs = corpus(&dir("batches"));
    assert!(inputs.iter().any(|(n, _)| n == "gzip-bomb"));
    for (name, data) in &inputs {
        eprintln!("batches {name}");
        batches(data);
    }
}
