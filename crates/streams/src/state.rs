//! State stores: an ordered byte backend (in memory or fjall on disk), and the key-value, window and
//! session stores built on it, each with an optional record cache and changelog. Stores know nothing
//! of Kafka clients: changelog writes are queued here and sent by the task that owns the store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Result, StreamsError};

/// An ordered map of bytes, shared with interactive queries (hence `&self` with interior locking).
pub trait KvBackend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&self, key: &[u8]) -> Result<()>;
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    fn clear(&self) -> Result<()>;
}

/// In-memory backend (TopologyTestDriver and in-memory stores).
#[derive(Default)]
pub struct MemBackend(RwLock<BTreeMap<Vec<u8>, Vec<u8>>>);

impl KvBackend for MemBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.read().get(key).cloned())
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.write().insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        self.0.write().remove(key);
        Ok(())
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(Vec::new());
        }
        Ok(self
            .0
            .read()
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn clear(&self) -> Result<()> {
        self.0.write().clear();
        Ok(())
    }
}

/// A persistent backend: one fjall keyspace per store and task.
pub struct FjallBackend {
    pub keyspace: fjall::Keyspace,
}

impl FjallBackend {
    /// Opens (or creates) the keyspace for `store` in task `task` inside `db`.
    pub fn open(db: &fjall::Database, store: &str, task: &str) -> Result<Self> {
        let mut name: String = format!("{store}.{task}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-.#$".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.len() > 200 {
            // fjall caps names at 255 bytes; keep a readable prefix and make the rest unique.
            let h = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            name = format!("{}#{h:016x}", &name[..150]);
        }
        let keyspace = db
            .keyspace(&name, fjall::KeyspaceCreateOptions::default)
            .map_err(|e| StreamsError::Store {
                store: store.to_string(),
                reason: e.to_string(),
            })?;
        Ok(FjallBackend { keyspace })
    }
}

fn store_err(e: fjall::Error) -> StreamsError {
    StreamsError::Store {
        store: "fjall".into(),
        reason: e.to_string(),
    }
}

impl KvBackend for FjallBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .keyspace
            .get(key)
            .map_err(store_err)?
            .map(|v| v.to_vec()))
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.keyspace.insert(key, value).map_err(store_err)
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        self.keyspace.remove(key).map_err(store_err)
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for g in self.keyspace.range::<&[u8], _>((from, to)) {
            let (k, v) = g.into_inner().map_err(store_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
    fn clear(&self) -> Result<()> {
        self.keyspace.clear().map_err(store_err)
    }
}

/// The kind of a store, which fixes its changelog key layout and cleanup policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    KeyValue,
    /// Window store with retention (ms) and whether duplicates are kept (join buffers).
    Window {
        retention_ms: i64,
        retain_duplicates: bool,
    },
    Session {
        retention_ms: i64,
    },
}

/// A write waiting to go to the changelog topic: key, value (None = tombstone), timestamp.
pub type ChangelogWrite = (Vec<u8>, Option<Vec<u8>>, i64);

/// An entry that left the record cache at flush: what the key now holds and what it held before.
#[derive(Clone, Debug)]
pub struct FlushedEntry {
    pub key: Vec<u8>,
    pub new: Option<Vec<u8>>,
    pub old: Option<Vec<u8>>,
    pub timestamp: i64,
}

struct CacheEntry {
    value: Option<Vec<u8>>,
    timestamp: i64,
}

/// A state store instance inside one task. Backend values hold an 8-byte timestamp then the value,
/// as Kafka's timestamped stores do; the changelog carries the bare value with the timestamp on the
/// record.
pub struct StateStore {
    pub name: String,
    pub kind: StoreKind,
    pub backend: Arc<dyn KvBackend>,
    /// Full changelog topic name, when logging is enabled.
    pub changelog: Option<String>,
    cache: Option<BTreeMap<Vec<u8>, CacheEntry>>,
    cache_bytes: usize,
    pending_log: Vec<ChangelogWrite>,
    /// The node whose processor receives this store's flushed cache entries (Kafka's flush listener).
    pub flush_listener: Option<usize>,
    /// Largest window end seen; entries older than end - retention are dropped.
    observed_time: i64,
}

fn with_ts(ts: i64, v: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v.len() + 8);
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(v);
    b
}

/// Splits a backend value into (timestamp, value).
pub fn split_ts(b: &[u8]) -> (i64, Vec<u8>) {
    if b.len() < 8 {
        return (0, b.to_vec());
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[..8]);
    (i64::from_be_bytes(t), b[8..].to_vec())
}

/// Order-preserving encoding of a signed timestamp (sign bit flipped).
pub fn ts_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1u64 << 63)).to_be_bytes()
}
fn ts_from_key(b: &[u8]) -> i64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(t) ^ (1u64 << 63)) as i64
}

/// Backend key of a windowed entry: len(key) | key | time1 | time2 (| seq), so one key's entries are
/// contiguous and ordered by time.
fn composite(key: &[u8], t1: i64, t2: i64, seq: Option<u32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(key.len() + 24);
    b.extend_from_slice(&(key.len() as u32).to_be_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&ts_key(t1));
    b.extend_from_slice(&ts_key(t2));
    if let Some(s) = seq {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b
}

fn parse_composite(b: &[u8]) -> Option<(Vec<u8>, i64, i64)> {
    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let key = b.get(4..4 + n)?.to_vec();
    let t1 = ts_from_key(b.get(4 + n..12 + n)?);
    let t2 = ts_from_key(b.get(12 + n..20 + n)?);
    Some((key, t1, t2))
}

impl StateStore {
    pub fn new(
        name: String,
        kind: StoreKind,
        backend: Arc<dyn KvBackend>,
        changelog: Option<String>,
        cached: bool,
    ) -> Self {
        StateStore {
            name,
            kind,
            backend,
            changelog,
            cache: cached.then(BTreeMap::new),
            cache_bytes: 0,
            pending_log: Vec::new(),
            flush_listener: None,
            observed_time: i64::MIN,
        }
    }

    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    // ---- key-value view ----

    /// The value and its timestamp (cache first, then the backend).
    pub fn get(&self, key: &[u8]) -> Result<Option<(i64, Vec<u8>)>> {
        if let Some(c) = &self.cache
            && let Some(e) = c.get(key)
        {
            return Ok(e.value.clone().map(|v| (e.timestamp, v)));
        }
        Ok(self.backend.get(key)?.map(|b| split_ts(&b)))
    }

    /// Puts (Some) or deletes (None) a key.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        if let Some(c) = &mut self.cache {
            let add = key.len() + value.map_or(0, |v| v.len()) + 16;
            if let Some(old) = c.insert(
                key.to_vec(),
                CacheEntry {
                    value: value.map(|v| v.to_vec()),
                    timestamp,
                },
            ) {
                self.cache_bytes = self
                    .cache_bytes
                    .saturating_sub(key.len() + old.value.map_or(0, |v| v.len()) + 16);
            }
            self.cache_bytes += add;
            return Ok(());
        }
        self.write_through(key, value, timestamp)
    }

    fn write_through(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        match value {
            Some(v) => self.backend.put(key, &with_ts(timestamp, v))?,
            None => self.backend.delete(key)?,
        }
        if self.changelog.is_some() {
            self.pending_log
                .push((key.to_vec(), value.map(|v| v.to_vec()), timestamp));
        }
        Ok(())
    }

    /// Key-value pairs with from <= key <= to (None = unbounded), merged with the cache.
    pub fn range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, i64, Vec<u8>)>> {
        let lo = from.map_or(Bound::Unbounded, Bound::Included);
        let hi = to.map_or(Bound::Unbounded, Bound::Included);
        let mut m: BTreeMap<Vec<u8>, Option<(i64, Vec<u8>)>> = self
            .backend
            .range(lo, hi)?
            .into_iter()
            .map(|(k, v)| (k, Some(split_ts(&v))))
            .collect();
        if let Some(c) = &self.cache {
            for (k, e) in c.range::<[u8], _>((lo, hi)) {
                m.insert(k.clone(), e.value.clone().map(|v| (e.timestamp, v)));
            }
        }
        Ok(m.into_iter()
            .filter_map(|(k, v)| v.map(|(t, v)| (k, t, v)))
            .collect())
    }

    /// Writes the cache to the backend and changelog. Returns what changed, for the flush listener.
    pub fn flush(&mut self) -> Result<Vec<FlushedEntry>> {
        let Some(c) = self.cache.take() else {
            return Ok(Vec::new());
        };
        self.cache = Some(BTreeMap::new());
        self.cache_bytes = 0;
        let mut out = Vec::with_capacity(c.len());
        for (k, e) in c {
            let old = self.backend.get(&k)?.map(|b| split_ts(&b).1);
            if old.is_none() && e.value.is_none() {
                continue;
            }
            self.write_through(&k, e.value.as_deref(), e.timestamp)?;
            out.push(FlushedEntry {
                key: k,
                new: e.value,
                old,
                timestamp: e.timestamp,
            });
        }
        Ok(out)
    }

    /// Changelog writes made since the last call.
    pub fn take_changelog(&mut self) -> Vec<ChangelogWrite> {
        std::mem::take(&mut self.pending_log)
    }

    /// Applies one changelog record during restoration (no logging, no cache).
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        match self.kind {
            StoreKind::KeyValue => match value {
                Some(v) => self.backend.put(key, &with_ts(timestamp, v)),
                None => self.backend.delete(key),
            },
            StoreKind::Window { .. } => {
                // Kafka's window changelog key: key | window start (8) | sequence number (4).
                if key.len() < 12 {
                    return Ok(());
                }
                let (k, rest) = key.split_at(key.len() - 12);
                let start = i64::from_be_bytes(rest[..8].try_into().unwrap_or([0; 8]));
                let seq = u32::from_be_bytes(rest[8..].try_into().unwrap_or([0; 4]));
                let bk = composite(k, start, 0, Some(seq));
                match value {
                    Some(v) => self.backend.put(&bk, &with_ts(timestamp, v)),
                    None => self.backend.delete(&bk),
                }
            }
            StoreKind::Session { .. } => {
                // Kafka's session changelog key: key | end (8) | start (8).
                if key.len() < 16 {
                    return Ok(());
                }
                let (k, rest) = key.split_at(key.len() - 16);
                let end = i64::from_be_bytes(rest[..8].try_into().unwrap_or([0; 8]));
                let start = i64::from_be_bytes(rest[8..].try_into().unwrap_or([0; 8]));
                let bk = composite(k, end, start, None);
                match value {
                    Some(v) => self.backend.put(&bk, &with_ts(timestamp, v)),
                    None => self.backend.delete(&bk),
                }
            }
        }
    }

    // ---- window view (no cache: window results are forwarded as they change) ----

    /// Puts the aggregate of `key` in the window starting at `start`; `seq` distinguishes duplicates
    /// in join buffers (0 otherwise).
    pub fn window_put(
        &mut self,
        key: &[u8],
        start: i64,
        seq: u32,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        let bk = composite(key, start, 0, Some(seq));
        match value {
            Some(v) => self.backend.put(&bk, &with_ts(timestamp, v))?,
            None => self.backend.delete(&bk)?,
        }
        if self.changelog.is_some() {
            let mut ck = key.to_vec();
            ck.extend_from_slice(&start.to_be_bytes());
            ck.extend_from_slice(&seq.to_be_bytes());
            self.pending_log
                .push((ck, value.map(|v| v.to_vec()), timestamp));
        }
        Ok(())
    }

    /// Entries of `key` whose window start is in [from, to]: (start, seq, timestamp, value).
    pub fn window_fetch(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, u32, i64, Vec<u8>)>> {
        let lo = composite(key, from, i64::MIN, Some(0));
        let hi = composite(key, to, i64::MAX, Some(u32::MAX));
        let mut out = Vec::new();
        for (k, v) in self
            .backend
            .range(Bound::Included(&lo), Bound::Included(&hi))?
        {
            let Some((_, start, _)) = parse_composite(&k) else {
                continue;
            };
            let seq = k
                .get(k.len().saturating_sub(4)..)
                .and_then(|s| s.try_into().ok())
                .map_or(0, u32::from_be_bytes);
            let (ts, val) = split_ts(&v);
            out.push((start, seq, ts, val));
        }
        Ok(out)
    }

    /// All window entries with start in [from, to], any key: (key, start, value).
    pub fn window_fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Vec<u8>, i64, Vec<u8>)>> {
        let mut out = Vec::new();
        for (k, v) in self.backend.range(Bound::Unbounded, Bound::Unbounded)? {
            if let Some((key, start, _)) = parse_composite(&k)
                && start >= from
                && start <= to
            {
                out.push((key, start, split_ts(&v).1));
            }
        }
        Ok(out)
    }

    /// Drops window or session entries that fell out of retention, given the newest stream time.
    pub fn expire(&mut self, stream_time: i64) -> Result<()> {
        let retention = match self.kind {
            StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } => {
                retention_ms
            }
            StoreKind::KeyValue => return Ok(()),
        };
        // Scanning everything is O(n); only do it when time moved on by a retention's worth.
        if stream_time.saturating_sub(self.observed_time) < retention.max(1) {
            return Ok(());
        }
        self.observed_time = stream_time;
        let limit = stream_time.saturating_sub(retention);
        for (k, _) in self.backend.range(Bound::Unbounded, Bound::Unbounded)? {
            if let Some((_, t1, _)) = parse_composite(&k)
                && t1 < limit
            {
                self.backend.delete(&k)?;
            }
        }
        Ok(())
    }

    // ---- session view ----

    /// Puts (or with None removes) the session [start, end] of `key`.
    pub fn session_put(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let bk = composite(key, end, start, None);
        match value {
            Some(v) => self.backend.put(&bk, &with_ts(end, v))?,
            None => self.backend.delete(&bk)?,
        }
        if self.changelog.is_some() {
            let mut ck = key.to_vec();
            ck.extend_from_slice(&end.to_be_bytes());
            ck.extend_from_slice(&start.to_be_bytes());
            self.pending_log.push((ck, value.map(|v| v.to_vec()), end));
        }
        Ok(())
    }

    /// Sessions of `key` that end at or after `earliest_end` and start at or before `latest_start`:
    /// (start, end, value).
    pub fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>> {
        let lo = composite(key, earliest_end, i64::MIN, None);
        let hi = composite(key, i64::MAX, i64::MAX, None);
        let mut out = Vec::new();
        for (k, v) in self
            .backend
            .range(Bound::Included(&lo), Bound::Included(&hi))?
        {
            if let Some((_, end, start)) = parse_composite(&k)
                && start <= latest_start
            {
                out.push((start, end, split_ts(&v).1));
            }
        }
        Ok(out)
    }

    /// Kafka's `findSessions(keyFrom, keyTo, earliestSessionEndTime, latestSessionStartTime)`:
    /// sessions of every key with `from <= key <= to` in serialized-key order (None = unbounded),
    /// as (key, start, end, value). Keys are stored length-prefixed, so a key range is not one
    /// contiguous backend range: this scans the store, as `window_fetch_all` does.
    pub fn find_sessions_in_key_range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Vec<u8>, i64, i64, Vec<u8>)>> {
        let mut out = Vec::new();
        for (k, v) in self.backend.range(Bound::Unbounded, Bound::Unbounded)? {
            if let Some((key, end, start)) = parse_composite(&k)
                && from.is_none_or(|f| key.as_slice() >= f)
                && to.is_none_or(|t| key.as_slice() <= t)
                && end >= earliest_end
                && start <= latest_start
            {
                out.push((key, start, end, split_ts(&v).1));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dedupes_and_reports_old_values() {
        let mut s = StateStore::new(
            "s".into(),
            StoreKind::KeyValue,
            Arc::new(MemBackend::default()),
            Some("app-s-changelog".into()),
            true,
        );
        s.put(b"a", Some(b"1"), 1).unwrap();
        s.put(b"a", Some(b"2"), 2).unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some((2, b"2".to_vec())));
        let f = s.flush().unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].new.as_deref(), Some(&b"2"[..]));
        assert_eq!(f[0].old, None);
        assert_eq!(
            s.take_changelog().len(),
            1,
            "two puts, one changelog record"
        );
        s.put(b"a", Some(b"3"), 3).unwrap();
        let f = s.flush().unwrap();
        assert_eq!(f[0].old.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn window_and_session_layouts() {
        let mut s = StateStore::new(
            "w".into(),
            StoreKind::Window {
                retention_ms: 100,
                retain_duplicates: false,
            },
            Arc::new(MemBackend::default()),
            Some("c".into()),
            false,
        );
        s.window_put(b"k", 10, 0, Some(b"x"), 12).unwrap();
        s.window_put(b"k2", 10, 0, Some(b"y"), 12).unwrap();
        s.window_put(b"k", 20, 0, Some(b"z"), 22).unwrap();
        let got = s.window_fetch(b"k", 0, 15).unwrap();
        assert_eq!(got, vec![(10, 0, 12, b"x".to_vec())]);
        let log = s.take_changelog();
        assert_eq!(
            log[0].0,
            [&b"k"[..], &10i64.to_be_bytes(), &0u32.to_be_bytes()].concat()
        );
        let mut ss = StateStore::new(
            "s".into(),
            StoreKind::Session { retention_ms: 100 },
            Arc::new(MemBackend::default()),
            None,
            false,
        );
        ss.session_put(b"k", 5, 9, Some(b"v")).unwrap();
        assert_eq!(ss.find_sessions(b"k", 8, 20).unwrap().len(), 1);
        assert_eq!(ss.find_sessions(b"k", 10, 20).unwrap().len(), 0);
        ss.session_put(b"a", 1, 2, Some(b"w")).unwrap();
        ss.session_put(b"m", 30, 40, Some(b"y")).unwrap();
        ss.session_put(b"z", 3, 4, Some(b"x")).unwrap();
        let keys = |v: Vec<(Vec<u8>, i64, i64, Vec<u8>)>| -> Vec<Vec<u8>> {
            v.into_iter().map(|(k, ..)| k).collect()
        };
        // "m" sorts between "k" and "z" although its length prefix is the same: bounds are on keys.
        let mut got = keys(
            ss.find_sessions_in_key_range(Some(b"b"), Some(b"y"), i64::MIN, i64::MAX)
                .unwrap(),
        );
        got.sort();
        assert_eq!(got, vec![b"k".to_vec(), b"m".to_vec()]);
        assert_eq!(
            ss.find_sessions_in_key_range(None, None, 10, 35).unwrap(),
            vec![(b"m".to_vec(), 30, 40, b"y".to_vec())],
            "ends at or after 10 and starts at or before 35"
        );
    }
}
