//! The Raft state machine: the metadata image, with snapshots of it in `raft/snapshot.json`.
//!
//! The image is kept in memory and published to subscribers after every applied batch; on
//! restart it is rebuilt from the last snapshot plus the committed log entries after it.

use super::TypeConfig;
use crate::command::{self, CommandOutcome};
use crate::image::MetadataImage;
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

type Nid = u64;

#[derive(Serialize, Deserialize, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<Nid, BasicNode>,
    image: MetadataImage,
}

struct Inner {
    dir: PathBuf,
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, BasicNode>,
    image: MetadataImage,
    snapshot: Option<StoredSnapshot>,
    snapshot_seq: u64,
}

#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Arc<MetadataImage>>>,
}

impl StateMachine {
    pub fn open(
        dir: &Path,
        published: Arc<watch::Sender<Arc<MetadataImage>>>,
    ) -> std::io::Result<StateMachine> {
        let snapshot: Option<StoredSnapshot> = match std::fs::read(dir.join("snapshot.json")) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(std::io::Error::other)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (last_applied, membership, image) = match &snapshot {
            Some(s) => (
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                s.image.clone(),
            ),
            None => (None, StoredMembership::default(), MetadataImage::default()),
        };
        published.send_replace(Arc::new(image.clone()));
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                last_applied,
                membership,
                image,
                snapshot,
                snapshot_seq: 0,
            })),
            published,
        })
    }
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<Nid> {
    StorageIOError::write_state_machine(&e).into()
}

impl Inner {
    fn save_snapshot(&mut self, s: StoredSnapshot) -> Result<(), StorageError<Nid>> {
        let bytes = serde_json::to_vec(&s).map_err(sm_err)?;
        crate::store::write_atomically(&self.dir, "snapshot.json", &bytes)
            .map_err(|e| StorageError::from(StorageIOError::<Nid>::write_snapshot(None, &e)))?;
        self.snapshot = Some(s);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<Nid>> {
        let mut inner = self.inner.lock();
        inner.snapshot_seq += 1;
        let snapshot_id = match inner.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.snapshot_seq),
            None => format!("--{}", inner.snapshot_seq),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            image: inner.image.clone(),
        };
        let data = serde_json::to_vec(&stored.image).map_err(sm_err)?;
        inner.save_snapshot(stored)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, BasicNode>), StorageError<Nid>> {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock();
        let mut out = Vec::new();
        for e in entries {
            inner.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Ok(command::CommandResult::Done)),
                EntryPayload::Normal(cmd) => out.push(command::apply(&mut inner.image, &cmd)),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Ok(command::CommandResult::Done));
                }
            }
        }
        self.published.send_replace(Arc::new(inner.image.clone()));
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut inner = self.inner.lock();
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.image = image.clone();
        inner.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            image: image.clone(),
        })?;
        self.published.send_replace(Arc::new(image));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<Nid>> {
        let inner = self.inner.lock();
        match &inner.snapshot {
            Some(s) => {
                let data = serde_json::to_vec(&s.image).map_err(sm_err)?;
                Ok(Some(Snapshot {
                    meta: s.meta.clone(),
                    snapshot: Box::new(Cursor::new(data)),
                }))
            }
            None => Ok(None),
        }
    }
}
