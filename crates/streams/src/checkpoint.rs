//! A task's `.checkpoint` file (Kafka's OffsetCheckpoint): changelog topic -> the next changelog
//! offset the task's local stores do not hold yet. It is what lets a store opened again restore
//! only the tail of its changelog; no file means the store is rebuilt from the beginning.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;

const FILE: &str = ".checkpoint";

/// The checkpoint in `task_dir`; empty when there is none or it does not parse (the store is then
/// rebuilt, which is always correct).
pub(crate) fn read(task_dir: &Path) -> BTreeMap<String, i64> {
    std::fs::read_to_string(task_dir.join(FILE))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Writes the checkpoint through a temporary file and a rename, so a crash leaves the old file or
/// the new one, never half of one.
pub(crate) fn write(task_dir: &Path, offsets: &BTreeMap<String, i64>) -> Result<()> {
    std::fs::create_dir_all(task_dir)?;
    let tmp = task_dir.join(format!("{FILE}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_string(offsets).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, task_dir.join(FILE))?;
    Ok(())
}

/// Deletes the checkpoint: the store is about to diverge from it (an active task writes to it).
pub(crate) fn delete(task_dir: &Path) {
    let _ = std::fs::remove_file(task_dir.join(FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let task = d.path().join("1_0");
        assert!(read(&task).is_empty());
        let offsets: BTreeMap<String, i64> = [("app-counts-changelog".to_string(), 42)].into();
        write(&task, &offsets).unwrap();
        assert_eq!(read(&task), offsets);
        delete(&task);
        assert!(read(&task).is_empty());
    }
}
