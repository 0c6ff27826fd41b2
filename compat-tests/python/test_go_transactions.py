"""franz-go (kgo, kadm; the version in compat-tests/go/go.mod) transactions against vltava under
Transactions V2 (KIP-890 part 2), driven by ``franz txn`` (compat-tests/go/franz/txn*.go), which checks
everything itself and exits non-zero with the reason on the first mismatch:

- ApiVersions: transaction.version finalized at 2, and an ApiVersions v5 request (franz-go's first on
  every connection) answered as Kafka does (KIP-511), or franz-go learns no features on it.
- A committed, an aborted and a committed transaction over 3 partitions: read_committed reads exactly
  the committed records at their offsets, read_uncommitted all of them; DescribeTransactions shows the
  producer epoch one higher after every ended transaction (V1 would keep it).
- Consume-transform-produce in a GroupTransactSession: group offsets committed in the transaction
  (TxnOffsetCommit v5, no AddOffsetsToTxn); OffsetFetch shows them after a commit, unchanged after an
  abort, after which the same input is read again.
- Fencing: a second producer with the same transactional id fences the first mid-transaction (its
  commit: PRODUCER_FENCED); a third fences the second (its produce: INVALID_PRODUCER_EPOCH).
- On the wire (request headers read from the client's connections): Produce v12+, EndTxn v5, no
  AddPartitionsToTxn or AddOffsetsToTxn.
"""

from __future__ import annotations

import subprocess
import uuid

from test_go import RUN_TIMEOUT, gbroker  # noqa: F401  (fixture)

# The lines the program prints for what franz-go surfaced; asserted below.
EXPECTED_LINES = [
    "feature: transaction.version finalized at 2",
    "txn: transaction 0 t0-commit, DescribeTransactions: CompleteCommit",
    "txn: transaction 1 t1-abort, DescribeTransactions: CompleteAbort",
    "txn: transaction 2 t2-commit, DescribeTransactions: CompleteCommit",
    "txn: read_committed read the 24 committed records once each, none of the aborted",
    "txn: read_uncommitted read all 36 records, the aborted ones too",
    "eos: after the abort the group's offsets are still",
    "eos: 10 records copied, CompleteAbort, epoch now 2",
    "fence: a's commit after b initialised: PRODUCER_FENCED",
    "fence: a's next begin: producer ID has a fatal, unrecoverable error, err: PRODUCER_FENCED",
    "INVALID_PRODUCER_EPOCH",
    "fence: b's commit after the failed produce: OPERATION_NOT_ATTEMPTED",
    "fence: b's abort: PRODUCER_FENCED",
]

def test_franz_go_transactions_v2(go_bins, gbroker):  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    done = subprocess.run(
        [str(go_bins / "franz"), "txn", gbroker.bootstrap, f"franz-txn-{suffix}", f"franz-txn-g-{suffix}"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("ok: transactions V2 with franz-go"), done.stdout
    for want in EXPECTED_LINES:
        assert any(want in line for line in lines), f"no line with {want!r}:\n{done.stdout}"
    # Every transaction ran V2 on the wire and bumped the epoch once.
    wire = [line for line in lines if "requests written:" in line]
    assert len(wire) == 2 and all("AddPartitionsToTxn [] x0" in w and "EndTxn [5] x3" in w for w in wire), wire
