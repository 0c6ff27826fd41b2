//! A segment's aborted transactions: the `.txnindex` kept in memory and written as it changes.

use std::io;
use std::path::PathBuf;

use tracing::warn;

use super::{remove_if_present, segment_path, Segment};
use crate::log::recovery::FileSync;
use crate::log::txn::{self, AbortedTxn};

impl Segment {
    pub(super) fn txn_index_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, "txnindex")
    }

    /// Loads the `.txnindex` into memory; false when it is missing or damaged (to be rebuilt).
    pub(crate) fn load_txn_index(&mut self) -> io::Result<bool> {
        match txn::read_index(&self.txn_index_path())? {
            Some(entries) => {
                self.aborted = entries;
                Ok(true)
            }
            None => {
                self.aborted.clear();
                Ok(false)
            }
        }
    }

    /// Adds an aborted transaction whose marker is in this segment, to memory and the file. The
    /// marker is already in the log, so a failed write (a full disk) does not undo it: the file
    /// goes instead, and the next open rebuilds every index from the batches.
    pub(crate) fn push_aborted(&mut self, entry: AbortedTxn, sync: FileSync) {
        self.aborted.push(entry);
        let path = self.txn_index_path();
        if let Err(error) = txn::append_index(&path, &entry, sync) {
            warn!(file = %path.display(), %error,
                "cannot write the transaction index; removing it for the next start to rebuild");
            if let Err(error) = remove_if_present(&path) {
                warn!(file = %path.display(), %error, "cannot remove the transaction index");
            }
        }
    }

    /// Writes the in-memory aborted transactions as the whole `.txnindex`.
    pub(crate) fn persist_aborted(&self) -> io::Result<()> {
        txn::write_index(&self.txn_index_path(), &self.aborted)
    }

    /// Forgets the aborted transactions whose marker is at or after `offset` (the log is cut there,
    /// or they are about to be rebuilt) and rewrites the file; `rewrite` forces the write (the
    /// file was missing or damaged).
    pub(crate) fn retain_aborted_below(&mut self, offset: i64, rewrite: bool) -> io::Result<()> {
        let before = self.aborted.len();
        self.aborted.retain(|t| t.last_offset < offset);
        if rewrite || self.aborted.len() != before {
            txn::write_index(&self.txn_index_path(), &self.aborted)?;
        }
        Ok(())
    }
}
