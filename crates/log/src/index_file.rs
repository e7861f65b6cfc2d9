//! A file of fixed-size, sorted index entries, shared by the offset and the time index.
//!
//! Kafka preallocates and mmaps its index files. We keep plain append-only files instead: an
//! entry is written with one `pwrite` only every `index.interval.bytes`, so the write cost is
//! negligible, there is no preallocated tail to trim at close or to mistake for entries after
//! a crash, and no `unsafe` mapping that a truncated file could turn into a SIGBUS. Lookups use
//! an in-memory copy that is loaded on first use, so opening a large log reads no index data
//! beyond each file's last entry.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::error::{LogError, Result};

pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    entry_size: usize,
    state: RwLock<IndexState>,
}

struct IndexState {
    /// Number of complete entries in the file.
    len: usize,
    /// The last entry, kept so appends and start-up need not read the file.
    last: Option<Vec<u8>>,
    /// All entries, loaded lazily for lookups.
    entries: Option<Vec<u8>>,
}

impl IndexFile {
    /// Opens (creating if missing) an index file. A torn trailing partial entry is ignored and
    /// overwritten by the next append.
    pub fn open(path: &Path, entry_size: usize) -> Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io("opening index", path, e))?;
        let bytes = file
            .metadata()
            .map_err(|e| LogError::io("reading metadata of index", path, e))?
            .len();
        let len = usize::try_from(bytes).unwrap_or(usize::MAX) / entry_size;
        let mut last = None;
        if len > 0 {
            let mut entry = vec![0u8; entry_size];
            file.read_exact_at(&mut entry, ((len - 1) * entry_size) as u64)
                .map_err(|e| LogError::io("reading last entry of index", path, e))?;
            last = Some(entry);
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            entry_size,
            state: RwLock::new(IndexState {
                len,
                last,
                entries: None,
            }),
        })
    }

    /// Replaces the file's contents with `entries` (a rebuilt index).
    pub fn rewrite(&self, entries: Vec<u8>) -> Result<()> {
        let len = entries.len() / self.entry_size;
        let entries_bytes = len * self.entry_size;
        let mut state = self.state.write();
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&entries[..entries_bytes], 0))
            .and_then(|()| self.file.set_len(entries_bytes as u64))
            .map_err(|e| LogError::io("rewriting index", &self.path, e))?;
        state.len = len;
        state.last =
            (len > 0).then(|| entries[(len - 1) * self.entry_size..entries_bytes].to_vec());
        state.entries = Some(entries[..entries_bytes].to_vec());
        Ok(())
    }

    /// Whether the file holds only whole entries (a partial one means it was torn).
    pub fn is_whole(&self) -> Result<bool> {
        let bytes = self
            .file
            .metadata()
            .map_err(|e| LogError::io("reading metadata of index", &self.path, e))?
            .len();
        Ok(bytes % self.entry_size as u64 == 0)
    }

    pub fn len(&self) -> usize {
        self.state.read().len
    }

    pub fn last_entry(&self) -> Option<Vec<u8>> {
        self.state.read().last.clone()
    }

    pub fn append(&self, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len(), self.entry_size);
        let mut state = self.state.write();
        let at = (state.len * self.entry_size) as u64;
        self.file
            .write_all_at(entry, at)
            .map_err(|e| LogError::io("appending to index", &self.path, e))?;
        state.len += 1;
        state.last = Some(entry.to_vec());
        if let Some(entries) = state.entries.as_mut() {
            entries.extend_from_slice(entry);
        }
        Ok(())
    }

    /// The last entry for which `at_or_below(entry)` holds, given that it holds for a prefix of
    /// the (sorted) entries.
    pub fn floor(&self, at_or_below: impl Fn(&[u8]) -> bool) -> Result<Option<Vec<u8>>> {
        self.ensure_loaded()?;
        let state = self.state.read();
        let Some(entries) = state.entries.as_ref() else {
            return Ok(None);
        };
        let count = entries.len() / self.entry_size;
        let entry = |i: usize| &entries[i * self.entry_size..(i + 1) * self.entry_size];
        // Binary search for the first entry above the target.
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at_or_below(entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok((lo > 0).then(|| entry(lo - 1).to_vec()))
    }

    fn ensure_loaded(&self) -> Result<()> {
        if self.state.read().entries.is_some() {
            return Ok(());
        }
        let mut state = self.state.write();
        if state.entries.is_some() {
            return Ok(());
        }
        let mut entries = vec![0u8; state.len * self.entry_size];
        self.file
            .read_exact_at(&mut entries, 0)
            .map_err(|e| LogError::io("loading index", &self.path, e))?;
        state.entries = Some(entries);
        Ok(())
    }

    pub fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io("syncing index", &self.path, e))
    }
}
