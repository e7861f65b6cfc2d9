//! Interactive queries: typed read-only views of a store's partitions (Kafka's
//! ReadOnlyKeyValueStore, ReadOnlyWindowStore and ReadOnlySessionStore). They read the store's backend, i.e. what the
//! last flush (commit) wrote; unflushed cache entries are not visible.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::record::Dyn;
use crate::serde::ErasedSerde;
use crate::state::{KvBackend, StateStore, StoreKind, split_ts};
use crate::topology::StoreDef;
use crate::window::{Window, Windowed};

fn typed<T: 'static + Clone>(d: Dyn, store: &str) -> Result<T> {
    d.downcast_ref::<T>().cloned().ok_or_else(|| {
        StreamsError::Streams(format!(
            "store {store} does not hold values of type {}",
            std::any::type_name::<T>()
        ))
    })
}

fn serdes(def: &StoreDef) -> Result<(ErasedSerde, ErasedSerde)> {
    match (&def.key_serde, &def.value_serde) {
        (Some(k), Some(v)) => Ok((k.clone(), v.clone())),
        _ => Err(StreamsError::Streams(format!(
            "store {} has no serdes to query with",
            def.name
        ))),
    }
}

/// Kafka's ReadOnlyKeyValueStore over every local partition of a store.
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    parts: Vec<Arc<dyn KvBackend>>,
    ks: ErasedSerde,
    vs: ErasedSerde,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K: Send + Sync + Clone + 'static, V: Send + Sync + Clone + 'static>
    ReadOnlyKeyValueStore<K, V>
{
    pub(crate) fn new(def: &StoreDef, parts: Vec<Arc<dyn KvBackend>>) -> Result<Self> {
        if def.kind != StoreKind::KeyValue {
            return Err(StreamsError::Streams(format!(
                "store {} is not a key-value store",
                def.name
            )));
        }
        let (ks, vs) = serdes(def)?;
        Ok(ReadOnlyKeyValueStore {
            name: def.name.clone(),
            parts,
            ks,
            vs,
            _p: PhantomData,
        })
    }

    /// The value of `key`, if any local partition holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let kb = (self.ks.ser)(&self.name, &(Arc::new(key.clone()) as Dyn))?;
        for p in &self.parts {
            if let Some(b) = p.get(&kb)? {
                let (_, v) = split_ts(&b);
                return Ok(Some(typed((self.vs.de)(&self.name, &v)?, &self.name)?));
            }
        }
        Ok(None)
    }

    /// Pairs with from <= key <= to in serialized-key order (None = unbounded).
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        let ser = |k: Option<&K>| -> Result<Option<Vec<u8>>> {
            k.map(|k| (self.ks.ser)(&self.name, &(Arc::new(k.clone()) as Dyn)))
                .transpose()
                .map_err(Into::into)
        };
        let (lo, hi) = (ser(from)?, ser(to)?);
        let mut all = Vec::new();
        for p in &self.parts {
            let lo_b = lo
                .as_deref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
            let hi_b = hi
                .as_deref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
            for (k, v) in p.range(lo_b, hi_b)? {
                all.push((k, split_ts(&v).1));
            }
        }
        all.sort();
        all.into_iter()
            .map(|(k, v)| {
                Ok((
                    typed((self.ks.de)(&self.name, &k)?, &self.name)?,
                    typed((self.vs.de)(&self.name, &v)?, &self.name)?,
                ))
            })
            .collect()
    }

    /// Every pair.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.range(None, None)
    }
}

/// Kafka's ReadOnlyWindowStore.
pub struct ReadOnlyWindowStore<K, V> {
    name: String,
    parts: Vec<Arc<dyn KvBackend>>,
    kind: StoreKind,
    ks: ErasedSerde,
    vs: ErasedSerde,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K: Send + Sync + Clone + 'static, V: Send + Sync + Clone + 'static> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(def: &StoreDef, parts: Vec<Arc<dyn KvBackend>>) -> Result<Self> {
        if !matches!(def.kind, StoreKind::Window { .. }) {
            return Err(StreamsError::Streams(format!(
                "store {} is not a window store",
                def.name
            )));
        }
        let (ks, vs) = serdes(def)?;
        Ok(ReadOnlyWindowStore {
            name: def.name.clone(),
            parts,
            kind: def.kind,
            ks,
            vs,
            _p: PhantomData,
        })
    }

    /// Kafka's `fetch(key, timeFrom, timeTo)`: (window start, value) for windows starting in range.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let kb = (self.ks.ser)(&self.name, &(Arc::new(key.clone()) as Dyn))?;
        let mut out = Vec::new();
        for p in &self.parts {
            let view = StateStore::new(self.name.clone(), self.kind, p.clone(), None, false);
            for (start, _, _, v) in view.window_fetch(&kb, from, to)? {
                out.push((start, typed((self.vs.de)(&self.name, &v)?, &self.name)?));
            }
        }
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }
}

/// Kafka's ReadOnlySessionStore: session aggregates by key, each with its session window
/// (start and end inclusive).
pub struct ReadOnlySessionStore<K, V> {
    name: String,
    parts: Vec<Arc<dyn KvBackend>>,
    kind: StoreKind,
    ks: ErasedSerde,
    vs: ErasedSerde,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K: Send + Sync + Clone + 'static, V: Send + Sync + Clone + 'static>
    ReadOnlySessionStore<K, V>
{
    pub(crate) fn new(def: &StoreDef, parts: Vec<Arc<dyn KvBackend>>) -> Result<Self> {
        if !matches!(def.kind, StoreKind::Session { .. }) {
            return Err(StreamsError::Streams(format!(
                "store {} is not a session store",
                def.name
            )));
        }
        let (ks, vs) = serdes(def)?;
        Ok(ReadOnlySessionStore {
            name: def.name.clone(),
            parts,
            kind: def.kind,
            ks,
            vs,
            _p: PhantomData,
        })
    }

    fn view(&self, p: &Arc<dyn KvBackend>) -> StateStore {
        StateStore::new(self.name.clone(), self.kind, p.clone(), None, false)
    }

    /// Kafka's `fetch(key)`: every session of `key`, by end time then start time.
    pub fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Kafka's `findSessions(key, earliestSessionEndTime, latestSessionStartTime)`: the sessions of
    /// `key` ending at or after `earliest_end` and starting at or before `latest_start`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let kb = (self.ks.ser)(&self.name, &(Arc::new(key.clone()) as Dyn))?;
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(
                self.view(p)
                    .find_sessions(&kb, earliest_end, latest_start)?,
            );
        }
        out.sort_by_key(|(start, end, _)| (*end, *start));
        out.into_iter()
            .map(|(start, end, v)| {
                Ok((
                    Windowed {
                        key: key.clone(),
                        window: Window::new(start, end),
                    },
                    typed((self.vs.de)(&self.name, &v)?, &self.name)?,
                ))
            })
            .collect()
    }

    /// Kafka's `fetch(keyFrom, keyTo)`: the sessions of every key with from <= key <= to in
    /// serialized-key order (None = unbounded), by key, then end and start time.
    pub fn fetch_range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(Windowed<K>, V)>> {
        let ser = |k: Option<&K>| -> Result<Option<Vec<u8>>> {
            k.map(|k| (self.ks.ser)(&self.name, &(Arc::new(k.clone()) as Dyn)))
                .transpose()
                .map_err(Into::into)
        };
        let (lo, hi) = (ser(from)?, ser(to)?);
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(self.view(p).find_sessions_in_key_range(
                lo.as_deref(),
                hi.as_deref(),
                i64::MIN,
                i64::MAX,
            )?);
        }
        out.sort_by(|a, b| (&a.0, a.2, a.1).cmp(&(&b.0, b.2, b.1)));
        out.into_iter()
            .map(|(k, start, end, v)| {
                Ok((
                    Windowed {
                        key: typed((self.ks.de)(&self.name, &k)?, &self.name)?,
                        window: Window::new(start, end),
                    },
                    typed((self.vs.de)(&self.name, &v)?, &self.name)?,
                ))
            })
            .collect()
    }
}
