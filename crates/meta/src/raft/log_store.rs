//! The Raft log and vote on disk, in the metadata directory (`raft/`).
//!
//! `raft/log` is an append-only file of frames (4-byte big-endian length, JSON entry); a torn
//! last frame (crash mid-append) is cut off at start. Appends are fsynced before openraft is told
//! they are durable. Truncation and purging rewrite the file through a temporary file (the
//! metadata log is small and both are rare). `raft/state.json` holds the vote, the last purged
//! log id and the last known committed id, replaced atomically.

use super::TypeConfig;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Nid = u64;

#[derive(Default, Serialize, Deserialize)]
struct PersistentState {
    vote: Option<Vote<Nid>>,
    committed: Option<LogId<Nid>>,
    last_purged: Option<LogId<Nid>>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    state: PersistentState,
}

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io(e: impl std::error::Error + 'static) -> StorageError<Nid> {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let state: PersistentState = match fs::read(dir.join("state.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PersistentState::default(),
            Err(e) => return Err(e),
        };
        let path = dir.join("log");
        let mut entries = BTreeMap::new();
        let mut valid_len = 0u64;
        if let Ok(mut f) = File::open(&path) {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            let mut pos = 0usize;
            while pos + 4 <= buf.len() {
                let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])
                    as usize;
                let Some(body) = buf.get(pos + 4..pos + 4 + len) else {
                    break;
                };
                let Ok(entry) = serde_json::from_slice::<Entry<TypeConfig>>(body) else {
                    break;
                };
                entries.insert(entry.log_id.index, entry);
                pos += 4 + len;
                valid_len = pos as u64;
            }
            if (valid_len as usize) < buf.len() {
                tracing::warn!(
                    path = %path.display(),
                    kept = valid_len,
                    size = buf.len(),
                    "metadata log has a torn tail (crash during an append); cutting it off"
                );
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(valid_len)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                state,
            })),
        })
    }
}

impl Inner {
    fn save_state(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(std::io::Error::other)?;
        crate::store::write_atomically(&self.dir, "state.json", &bytes)
            .map_err(std::io::Error::other)
    }

    /// Rewrite the log file with the entries kept in memory.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.dir.join("log.tmp");
        let mut f = File::create(&tmp)?;
        let mut buf = Vec::new();
        for e in self.entries.values() {
            frame(&mut buf, e)?;
        }
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join("log"))?;
        self.file = OpenOptions::new().append(true).open(self.dir.join("log"))?;
        Ok(())
    }
}

fn frame(buf: &mut Vec<u8>, e: &Entry<TypeConfig>) -> std::io::Result<()> {
    let body = serde_json::to_vec(e).map_err(std::io::Error::other)?;
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<Nid>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<Nid>> {
        let inner = self.inner.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.state.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.state.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<Nid>) -> Result<(), StorageError<Nid>> {
        let mut inner = self.inner.lock();
        inner.state.vote = Some(*vote);
        inner
            .save_state()
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<Nid>>, StorageError<Nid>> {
        Ok(self.inner.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<Nid>>,
    ) -> Result<(), StorageError<Nid>> {
        let mut inner = self.inner.lock();
        inner.state.committed = committed;
        inner.save_state().map_err(io)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<Nid>>, StorageError<Nid>> {
        Ok(self.inner.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock();
        let mut buf = Vec::new();
        let mut new = Vec::new();
        for e in entries {
            frame(&mut buf, &e).map_err(io)?;
            new.push(e);
        }
        let result = inner
            .file
            .write_all(&buf)
            .and_then(|_| inner.file.sync_data());
        match result {
            Ok(()) => {
                for e in new {
                    inner.entries.insert(e.log_id.index, e);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(e));
                Err(io(std::io::Error::other(msg)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        let mut inner = self.inner.lock();
        let _ = inner.entries.split_off(&log_id.index);
        inner.rewrite().map_err(io)
    }

    async fn purge(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        let mut inner = self.inner.lock();
        inner.state.last_purged = Some(log_id);
        inner.save_state().map_err(io)?;
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite().map_err(io)
    }
}
