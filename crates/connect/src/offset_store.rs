//! Source offsets for standalone mode (`FileOffsetBackingStore` + `OffsetStorageWriter`).
//!
//! Each entry is keyed like Kafka's: the JSON array `["<connector>", {<source partition>}]`, with
//! the offset map as JSON. Kafka writes its file with Java serialization; strom writes JSON
//! (`{"offsets": [[key, value], ...]}`), so an offsets file does not move between the two. Writes
//! go to a temporary file that is synced and renamed over the old one, so a crash leaves either
//! the old or the new offsets, never a torn file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::connector::{OffsetStorageReader, SourceOffset, SourcePartition};
use crate::error::{ConnectError, Result};

/// Where a worker keeps source offsets (`OffsetBackingStore`): a file in standalone mode, the
/// offset topic in distributed mode.
pub trait OffsetBackingStore: Send + Sync {
    /// The committed offset of one source partition of a connector.
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset>;
    /// Every (partition, offset) of a connector, for `GET /connectors/{name}/offsets`.
    fn connector_offsets(&self, connector: &str) -> Vec<(serde_json::Value, serde_json::Value)>;
    /// Records offsets durably before returning.
    fn commit(&self, connector: &str, offsets: &[(SourcePartition, SourceOffset)]) -> Result<()>;
    /// Sets (`Some`) or removes (`None`) offsets of a stopped connector, for
    /// `PATCH|DELETE /connectors/{name}/offsets` (KIP-875); durable before returning.
    fn write_offsets(
        &self,
        connector: &str,
        entries: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<()>;
}

impl OffsetBackingStore for FileOffsetStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        FileOffsetStore::get(self, connector, partition)
    }
    fn connector_offsets(&self, connector: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
        FileOffsetStore::connector_offsets(self, connector)
    }
    fn commit(&self, connector: &str, offsets: &[(SourcePartition, SourceOffset)]) -> Result<()> {
        FileOffsetStore::commit(self, connector, offsets)
    }
    fn write_offsets(
        &self,
        connector: &str,
        entries: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<()> {
        let _w = self.write_lock.lock();
        let snapshot = {
            let mut data = self.data.lock();
            for (p, o) in entries {
                let key = Self::key(connector, p);
                match o {
                    Some(o) => data.insert(key, serde_json::Value::Object(o.clone()).to_string()),
                    None => data.remove(&key),
                };
            }
            data.clone()
        };
        self.write_file(&snapshot)
    }
}

/// The offsets file and its contents in memory.
pub struct FileOffsetStore {
    path: PathBuf,
    data: Mutex<BTreeMap<String, String>>,
    /// Serializes writers of the file, so an older snapshot never lands after a newer one.
    write_lock: Mutex<()>,
}

impl FileOffsetStore {
    /// Opens (or starts) the offsets file; a file that cannot be parsed is an error, not data loss.
    pub fn open(path: &Path) -> Result<FileOffsetStore> {
        let mut data = BTreeMap::new();
        match std::fs::read(path) {
            Ok(bytes) if !bytes.is_empty() => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectError::connect(format!(
                        "offsets file {} is not valid JSON: {e}",
                        path.display()
                    ))
                })?;
                let entries = v.get("offsets").and_then(|o| o.as_array()).ok_or_else(|| {
                    ConnectError::connect(format!(
                        "offsets file {} has no \"offsets\" array",
                        path.display()
                    ))
                })?;
                for e in entries {
                    if let (Some(k), Some(v)) = (
                        e.get(0).and_then(|k| k.as_str()),
                        e.get(1).and_then(|v| v.as_str()),
                    ) {
                        data.insert(k.to_string(), v.to_string());
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConnectError::io(
                    format!("cannot read offsets file {}", path.display()),
                    e,
                ));
            }
        }
        Ok(FileOffsetStore {
            path: path.to_path_buf(),
            data: Mutex::new(data),
            write_lock: Mutex::new(()),
        })
    }

    pub(crate) fn key(connector: &str, partition: &SourcePartition) -> String {
        serde_json::Value::Array(vec![
            serde_json::Value::String(connector.to_string()),
            serde_json::Value::Object(partition.clone()),
        ])
        .to_string()
    }

    /// The committed offset of one source partition of a connector.
    pub fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        let data = self.data.lock();
        let v = data.get(&Self::key(connector, partition))?;
        match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// Every (partition, offset) of a connector, for `GET /connectors/{name}/offsets`.
    pub fn connector_offsets(
        &self,
        connector: &str,
    ) -> Vec<(serde_json::Value, serde_json::Value)> {
        let data = self.data.lock();
        data.iter()
            .filter_map(|(k, v)| {
                let key: serde_json::Value = serde_json::from_str(k).ok()?;
                if key.get(0)?.as_str()? != connector {
                    return None;
                }
                Some((key.get(1)?.clone(), serde_json::from_str(v).ok()?))
            })
            .collect()
    }

    /// Records offsets and writes the whole file durably before returning.
    pub fn commit(
        &self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let _w = self.write_lock.lock();
        let snapshot = {
            let mut data = self.data.lock();
            for (p, o) in offsets {
                data.insert(
                    Self::key(connector, p),
                    serde_json::Value::Object(o.clone()).to_string(),
                );
            }
            data.clone()
        };
        self.write_file(&snapshot)
    }

    fn write_file(&self, data: &BTreeMap<String, String>) -> Result<()> {
        let entries: Vec<serde_json::Value> = data
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect();
        let body = serde_json::json!({ "offsets": entries }).to_string();
        let tmp = self.path.with_extension("tmp");
        let io = |what: &str, e| ConnectError::io(format!("{what} {}", self.path.display()), e);
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot write offsets file", e))?;
        f.write_all(body.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("cannot write offsets file", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("cannot replace offsets file", e))?;
        // The rename is durable only once the directory is synced.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// A connector's view of the store (`OffsetStorageReaderImpl`).
pub struct ConnectorOffsetReader {
    pub store: Arc<dyn OffsetBackingStore>,
    pub connector: String,
}

impl OffsetStorageReader for ConnectorOffsetReader {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.store.get(&self.connector, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("connect.offsets");
        let mut p = SourcePartition::new();
        p.insert("filename".into(), "/a".into());
        let mut o = SourceOffset::new();
        o.insert("position".into(), 42.into());
        {
            let s = FileOffsetStore::open(&path).expect("open");
            assert_eq!(s.get("c", &p), None);
            s.commit("c", &[(p.clone(), o.clone())]).expect("commit");
        }
        let s = FileOffsetStore::open(&path).expect("reopen");
        assert_eq!(s.get("c", &p), Some(o));
        assert_eq!(s.get("other", &p), None);
        assert_eq!(s.connector_offsets("c").len(), 1);
        std::fs::write(&path, "garbage").expect("write");
        assert!(FileOffsetStore::open(&path).is_err());
    }
}
