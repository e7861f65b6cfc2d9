//! The stateful processors behind DSL operators: table sources, aggregations (plain and windowed).
//! They work on type-erased values; the typed DSL builds the closures they call.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Change, Dyn, Record};
use crate::serde::ErasedSerde;
use crate::state::FlushedEntry;
use crate::window::{TimeWindows, Window};

/// (key, value, old aggregate) -> new aggregate; None when the types do not match.
pub type ErasedAgg = Arc<dyn Fn(&Dyn, &Dyn, Option<&Dyn>) -> Option<Dyn> + Send + Sync>;
/// Wraps a key into `Windowed<K>` for a window.
pub type WrapWindowed = Arc<dyn Fn(&Dyn, Window) -> Option<Dyn> + Send + Sync>;
/// (key, value) -> mapped value (None = filtered out).
pub type ChangeFn = Arc<dyn Fn(Option<&Dyn>, &Dyn) -> Option<Dyn> + Send + Sync>;

fn forward_flushed(
    ctx: &mut ProcessorContext<'_>,
    store: &str,
    ks: &ErasedSerde,
    vs: &ErasedSerde,
    entries: Vec<FlushedEntry>,
) -> Result<()> {
    for e in entries {
        let key = (ks.de)(store, &e.key)?;
        let change = Change {
            new: vs.deserialize_opt(store, e.new.as_deref())?,
            old: vs.deserialize_opt(store, e.old.as_deref())?,
        };
        ctx.forward(Record::new(Some(key), Some(Arc::new(change)), e.timestamp))?;
    }
    Ok(())
}

/// Kafka's KTableSource: upserts (or deletes, on null) each record into the table's store and
/// forwards the change, at once or when the record cache flushes.
pub struct TableSourceProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
}

impl Processor for TableSourceProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        ctx.set_flush_listener(&self.store)
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let Some(k) = r.key.as_ref() else {
            tracing::warn!(node = ctx.node_name(), "skipping record with null key");
            return Ok(());
        };
        let kb = (self.ks.ser)(&self.store, k)?;
        let vb = self.vs.serialize_opt(&self.store, r.value.as_ref())?;
        let s = ctx.store(&self.store)?;
        let cached = s.is_cached();
        let old = if cached { None } else { s.get(&kb)? };
        s.put(&kb, vb.as_deref(), r.timestamp)?;
        if !cached {
            let old = self
                .vs
                .deserialize_opt(&self.store, old.as_ref().map(|(_, b)| b.as_slice()))?;
            if old.is_none() && r.value.is_none() {
                return Ok(());
            }
            let change = Change {
                new: r.value.clone(),
                old,
            };
            ctx.forward(r.with_value(Some(Arc::new(change))))?;
        }
        Ok(())
    }
    fn on_cache_flush(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        store: &str,
        entries: Vec<FlushedEntry>,
    ) -> Result<()> {
        forward_flushed(ctx, store, &self.ks, &self.vs, entries)
    }
}

/// Kafka's KStreamAggregate / KStreamReduce.
pub struct AggregateProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub agg: ErasedAgg,
}

impl Processor for AggregateProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        ctx.set_flush_listener(&self.store)
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        // Kafka skips records with a null key or value in aggregations.
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            tracing::debug!(
                node = ctx.node_name(),
                "skipping record with null key or value"
            );
            return Ok(());
        };
        let kb = (self.ks.ser)(&self.store, k)?;
        let s = ctx.store(&self.store)?;
        let old = s.get(&kb)?;
        let (old_ts, old_v) = match &old {
            Some((ts, b)) => (*ts, Some((self.vs.de)(&self.store, b)?)),
            None => (i64::MIN, None),
        };
        let Some(new) = (self.agg)(k, v, old_v.as_ref()) else {
            return Ok(());
        };
        let ts = r.timestamp.max(old_ts);
        let nb = (self.vs.ser)(&self.store, &new)?;
        let s = ctx.store(&self.store)?;
        s.put(&kb, Some(&nb), ts)?;
        if !s.is_cached() {
            let change = Change {
                new: Some(new),
                old: old_v,
            };
            ctx.forward(Record::new(r.key.clone(), Some(Arc::new(change)), ts))?;
        }
        Ok(())
    }
    fn on_cache_flush(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        store: &str,
        entries: Vec<FlushedEntry>,
    ) -> Result<()> {
        forward_flushed(ctx, store, &self.ks, &self.vs, entries)
    }
}

/// Kafka's KStreamWindowAggregate for TimeWindows: updates every window the record falls in,
/// dropping records whose window closed (end + grace <= observed stream time).
pub struct WindowAggregateProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub agg: ErasedAgg,
    pub wrap: WrapWindowed,
    pub windows: TimeWindows,
    pub observed: i64,
}

impl Processor for WindowAggregateProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        self.observed = self.observed.max(r.timestamp);
        let close_before = self.observed.saturating_sub(self.windows.grace_ms);
        let kb = (self.ks.ser)(&self.store, k)?;
        for w in self.windows.windows_for(r.timestamp) {
            if w.end <= close_before {
                tracing::debug!(
                    node = ctx.node_name(),
                    window_start = w.start,
                    "skipping record for expired window"
                );
                continue;
            }
            let s = ctx.store(&self.store)?;
            let old = s.window_fetch(&kb, w.start, w.start)?.into_iter().next();
            let (old_ts, old_v) = match &old {
                Some((_, _, ts, b)) => (*ts, Some((self.vs.de)(&self.store, b)?)),
                None => (i64::MIN, None),
            };
            let Some(new) = (self.agg)(k, v, old_v.as_ref()) else {
                return Ok(());
            };
            let ts = r.timestamp.max(old_ts);
            let nb = (self.vs.ser)(&self.store, &new)?;
            ctx.store(&self.store)?
                .window_put(&kb, w.start, 0, Some(&nb), ts)?;
            let Some(wk) = (self.wrap)(k, w) else {
                continue;
            };
            let change = Change {
                new: Some(new),
                old: old_v,
            };
            ctx.forward(Record::new(Some(wk), Some(Arc::new(change)), ts))?;
        }
        Ok(())
    }
}

/// (left value, right value) -> joined value; either side may be absent for left/outer joins.
pub type ErasedJoiner = Arc<dyn Fn(Option<&Dyn>, Option<&Dyn>) -> Option<Dyn> + Send + Sync>;

/// One side of Kafka's KStreamKStreamJoin. Each record is buffered in this side's window store
/// and joined with the other side's records within the JoinWindows. For left/outer joins a record
/// that found no partner is kept in the shared outer store and emitted with a null partner once
/// its window closed (window end + grace passed in stream time), as Kafka 3.1+ does.
pub struct StreamJoinProcessor {
    pub this_store: String,
    pub other_store: String,
    pub outer_store: Option<String>,
    pub left_side: bool,
    /// Other-side timestamps that join with `ts` are in [ts - lower, ts + upper].
    pub lower: i64,
    pub upper: i64,
    pub grace: i64,
    pub emit_unmatched: bool,
    pub joiner: ErasedJoiner,
    pub ks: ErasedSerde,
    pub this_vs: ErasedSerde,
    pub other_vs: ErasedSerde,
    pub seq: u32,
}

fn outer_key(ts: i64, left: bool, seq: u32, key: &[u8]) -> Vec<u8> {
    let mut b = crate::state::ts_key(ts).to_vec();
    b.push(u8::from(!left));
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(key);
    b
}

impl StreamJoinProcessor {
    fn join(&self, this: Option<&Dyn>, other: Option<&Dyn>) -> Option<Dyn> {
        if self.left_side {
            (self.joiner)(this, other)
        } else {
            (self.joiner)(other, this)
        }
    }

    /// Emits unmatched outer-store entries whose join window has closed.
    fn emit_expired(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        let Some(outer) = self.outer_store.clone() else {
            return Ok(());
        };
        let now = ctx.current_stream_time_ms();
        // Entries are ordered by timestamp; a left record closes after ts + after + grace, a right
        // one after ts + before + grace: use the larger bound to scan, then check each.
        let limit = now.saturating_sub(self.lower.max(self.upper) + self.grace);
        let hi = crate::state::ts_key(limit);
        let entries = ctx.store(&outer)?.range(None, Some(&hi))?;
        for (k, ts, v) in entries {
            if k.len() < 13 {
                continue;
            }
            let left = k[8] == 0;
            let window_after = if left == self.left_side {
                self.upper
            } else {
                self.lower
            };
            if ts + window_after + self.grace >= now {
                continue;
            }
            let key = (self.ks.de)(&outer, &k[13..])?;
            let (vs, out) = if left == self.left_side {
                (&self.this_vs, true)
            } else {
                (&self.other_vs, false)
            };
            let val = (vs.de)(&outer, &v)?;
            let joined = if out {
                self.join(Some(&val), None)
            } else {
                self.join(None, Some(&val))
            };
            ctx.store(&outer)?.put(&k, None, ts)?;
            if let Some(j) = joined {
                ctx.forward(Record::new(Some(key), Some(j), ts))?;
            }
        }
        Ok(())
    }
}

impl Processor for StreamJoinProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        let ts = r.timestamp;
        let now = ctx.current_stream_time_ms();
        if ts + self.upper.max(self.lower) + self.grace < now {
            tracing::debug!(
                node = ctx.node_name(),
                "skipping record for expired join window"
            );
            return Ok(());
        }
        let kb = (self.ks.ser)(&self.this_store, k)?;
        let vb = (self.this_vs.ser)(&self.this_store, v)?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        ctx.store(&self.this_store)?
            .window_put(&kb, ts, seq, Some(&vb), ts)?;
        let matches =
            ctx.store(&self.other_store)?
                .window_fetch(&kb, ts - self.lower, ts + self.upper)?;
        for (other_ts, other_seq, _, ob) in &matches {
            let other = (self.other_vs.de)(&self.other_store, ob)?;
            if let Some(outer) = self.outer_store.clone() {
                // The other record found a partner: it will not be emitted with a null.
                let ok = outer_key(*other_ts, !self.left_side, *other_seq, &kb);
                ctx.store(&outer)?.put(&ok, None, *other_ts)?;
            }
            if let Some(j) = self.join(Some(v), Some(&other)) {
                ctx.forward(Record::new(Some(k.clone()), Some(j), ts.max(*other_ts)))?;
            }
        }
        if matches.is_empty()
            && self.emit_unmatched
            && let Some(outer) = self.outer_store.clone()
        {
            let ok = outer_key(ts, self.left_side, seq, &kb);
            ctx.store(&outer)?.put(&ok, Some(&vb), ts)?;
        }
        self.emit_expired(ctx)
    }
}

/// One side of Kafka's KTableKTableJoin (primary key): on a change of this table, look up the
/// other table's current value and forward the joined change.
pub struct TableJoinProcessor {
    pub other_store: String,
    pub left_side: bool,
    /// Emit when this side has a value and the other has none.
    pub this_alone: bool,
    /// Emit when the other side has a value and this side has none.
    pub other_alone: bool,
    pub joiner: ErasedJoiner,
    pub ks: ErasedSerde,
    pub other_vs: ErasedSerde,
}

impl Processor for TableJoinProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let Some(k) = r.key.as_ref() else {
            return Ok(());
        };
        let Some(c) = r.value_as::<Change>() else {
            return Ok(());
        };
        let kb = (self.ks.ser)(&self.other_store, k)?;
        let other = match ctx.store(&self.other_store)?.get(&kb)? {
            Some((_, b)) => Some((self.other_vs.de)(&self.other_store, &b)?),
            None => None,
        };
        let join = |this: Option<&Dyn>| -> Option<Dyn> {
            match (this, other.as_ref()) {
                (Some(_), Some(_)) => {}
                (Some(_), None) if self.this_alone => {}
                (None, Some(_)) if self.other_alone => {}
                _ => return None,
            }
            if self.left_side {
                (self.joiner)(this, other.as_ref())
            } else {
                (self.joiner)(other.as_ref(), this)
            }
        };
        let out = Change {
            new: join(c.new.as_ref()),
            old: join(c.old.as_ref()),
        };
        if out.new.is_none() && out.old.is_none() {
            return Ok(());
        }
        ctx.forward(Record::new(
            Some(k.clone()),
            Some(Arc::new(out)),
            r.timestamp,
        ))
    }
}

/// (key, aggregate a, aggregate b) -> merged aggregate (Kafka's Merger).
pub type ErasedMerger = Arc<dyn Fn(&Dyn, &Dyn, &Dyn) -> Option<Dyn> + Send + Sync>;

/// Kafka's KStreamSessionWindowAggregate: a record extends (and may merge) the sessions of its key
/// within the inactivity gap; the sessions it merges with are forwarded as deletes (even one whose
/// window the merged session keeps, as Kafka deletes and re-puts it); records whose merged
/// session ended before stream time - grace are dropped as late.
pub struct SessionAggregateProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub init: Arc<dyn Fn() -> Dyn + Send + Sync>,
    pub agg: ErasedAgg,
    pub merger: ErasedMerger,
    pub wrap: WrapWindowed,
    pub gap: i64,
    pub grace: i64,
    pub observed: i64,
}

impl Processor for SessionAggregateProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed.saturating_sub(self.grace);
        let kb = (self.ks.ser)(&self.store, k)?;
        let found = ctx.store(&self.store)?.find_sessions(
            &kb,
            ts.saturating_sub(self.gap),
            ts.saturating_add(self.gap),
        )?;
        let mut window = Window::new(ts, ts);
        let mut agg = (self.init)();
        let mut merged = Vec::new();
        for (start, end, b) in found {
            let val = (self.vs.de)(&self.store, &b)?;
            if let Some(m) = (self.merger)(k, &agg, &val) {
                agg = m;
            }
            window = Window::new(window.start.min(start), window.end.max(end));
            merged.push((Window::new(start, end), val));
        }
        if window.end < close {
            tracing::debug!(
                node = ctx.node_name(),
                "skipping record for expired session"
            );
            return Ok(());
        }
        // As Kafka: unless the record starts a session of its own ([ts, ts]), every session it
        // merged with is deleted and forwarded as a delete, even one whose window the merged
        // session keeps (its new value follows under the same windowed key).
        if window == Window::new(ts, ts) {
            merged.clear();
        }
        for (w, old) in merged {
            ctx.store(&self.store)?
                .session_put(&kb, w.start, w.end, None)?;
            if let Some(wk) = (self.wrap)(k, w) {
                let change = Change {
                    new: None,
                    old: Some(old),
                };
                ctx.forward(Record::new(Some(wk), Some(Arc::new(change)), w.end))?;
            }
        }
        let Some(new) = (self.agg)(k, v, Some(&agg)) else {
            return Ok(());
        };
        let nb = (self.vs.ser)(&self.store, &new)?;
        ctx.store(&self.store)?
            .session_put(&kb, window.start, window.end, Some(&nb))?;
        if let Some(wk) = (self.wrap)(k, window) {
            let change = Change {
                new: Some(new),
                old: None,
            };
            ctx.forward(Record::new(Some(wk), Some(Arc::new(change)), window.end))?;
        }
        Ok(())
    }
}

/// Kafka's KTableSuppressProcessor for `untilWindowCloses`: keeps the latest value per windowed key
/// in a logged store (keyed by window end, so the oldest come first) and emits each once stream
/// time reaches window end + grace.
pub struct SuppressProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub grace: i64,
    pub window_end: Arc<dyn Fn(&Dyn) -> Option<i64> + Send + Sync>,
}

impl Processor for SuppressProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let Some(k) = r.key.as_ref() else {
            return Ok(());
        };
        let Some(c) = r.value_as::<Change>() else {
            return Ok(());
        };
        let Some(end) = (self.window_end)(k) else {
            return Ok(());
        };
        let kb = (self.ks.ser)(&self.store, k)?;
        let mut key = crate::state::ts_key(end).to_vec();
        key.extend_from_slice(&kb);
        // One flag byte: 1 = value follows, 0 = the window's row was deleted.
        let mut val = Vec::new();
        match &c.new {
            Some(v) => {
                val.push(1);
                val.extend_from_slice(&(self.vs.ser)(&self.store, v)?);
            }
            None => val.push(0),
        }
        ctx.store(&self.store)?.put(&key, Some(&val), r.timestamp)?;
        let now = ctx.current_stream_time_ms();
        let limit = crate::state::ts_key(now.saturating_sub(self.grace));
        let hi = crate::state::ts_key(now.saturating_sub(self.grace).saturating_add(1));
        let due = ctx.store(&self.store)?.range(None, Some(&hi))?;
        for (bk, ts, v) in due {
            if bk.len() < 8 || bk[..8] > limit[..] {
                continue;
            }
            ctx.store(&self.store)?.put(&bk, None, ts)?;
            let key = (self.ks.de)(&self.store, &bk[8..])?;
            let new = match v.split_first() {
                Some((1, rest)) => Some((self.vs.de)(&self.store, rest)?),
                _ => None,
            };
            let change = Change { new, old: None };
            ctx.forward(Record::new(Some(key), Some(Arc::new(change)), ts))?;
        }
        Ok(())
    }
}

/// Kafka's KTableSuppressProcessor for `untilTimeLimit`: keeps the latest value per key and emits
/// it once stream time reaches the time the key was first buffered + the limit, or earlier when the
/// buffer is full (`emitEarlyWhenFull`; `shutDownWhenFull` fails the task instead). The buffer is
/// one logged store with two row kinds: `i`+key -> buffer time (so a key keeps its first time, as
/// Kafka's buffer does) and `t`+time+key -> flag byte (1 = value follows) and the value.
pub struct SuppressTimeLimitProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub limit: i64,
    pub buffer: crate::options::BufferConfig,
    /// (records, bytes) in the buffer; counted from the store on first use, so a restored buffer
    /// is sized right.
    pub size: Option<(usize, usize)>,
}

impl SuppressTimeLimitProcessor {
    fn emit(&mut self, ctx: &mut ProcessorContext<'_>, tk: &[u8], ts: i64, v: &[u8]) -> Result<()> {
        let kb = &tk[9..];
        let mut ik = vec![b'i'];
        ik.extend_from_slice(kb);
        let st = ctx.store(&self.store)?;
        st.put(tk, None, ts)?;
        st.put(&ik, None, ts)?;
        if let Some((n, b)) = self.size.as_mut() {
            *n = n.saturating_sub(1);
            *b = b.saturating_sub(kb.len() + v.len());
        }
        let key = (self.ks.de)(&self.store, kb)?;
        let new = match v.split_first() {
            Some((1, rest)) => Some((self.vs.de)(&self.store, rest)?),
            _ => None,
        };
        ctx.forward(Record::new(
            Some(key),
            Some(Arc::new(Change { new, old: None })),
            ts,
        ))
    }

    fn oldest(&self, ctx: &mut ProcessorContext<'_>) -> Result<Option<(Vec<u8>, i64, Vec<u8>)>> {
        // Rows `t`+time+key sort by time; the first one is the oldest.
        Ok(ctx
            .store(&self.store)?
            .range(Some(b"t"), Some(b"u"))?
            .into_iter()
            .find(|(k, _, _)| k.len() >= 9))
    }
}

impl Processor for SuppressTimeLimitProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let Some(k) = r.key.as_ref() else {
            return Ok(());
        };
        let Some(c) = r.value_as::<Change>() else {
            return Ok(());
        };
        if self.size.is_none() {
            let rows = ctx.store(&self.store)?.range(Some(b"t"), Some(b"u"))?;
            let bytes = rows
                .iter()
                .map(|(k, _, v)| k.len().saturating_sub(9) + v.len())
                .sum();
            self.size = Some((rows.len(), bytes));
        }
        let kb = (self.ks.ser)(&self.store, k)?;
        let mut val = Vec::new();
        match &c.new {
            Some(v) => {
                val.push(1);
                val.extend_from_slice(&(self.vs.ser)(&self.store, v)?);
            }
            None => val.push(0),
        }
        let mut ik = vec![b'i'];
        ik.extend_from_slice(&kb);
        let st = ctx.store(&self.store)?;
        let first = match st.get(&ik)? {
            Some((_, t)) if t.len() == 8 => {
                Some(i64::from_be_bytes(t[..8].try_into().unwrap_or([0; 8])) ^ i64::MIN)
            }
            _ => None,
        };
        let time = first.unwrap_or(r.timestamp);
        let mut tk = vec![b't'];
        tk.extend_from_slice(&crate::state::ts_key(time));
        tk.extend_from_slice(&kb);
        let old_len = st.get(&tk)?.map(|(_, v)| v.len());
        st.put(&tk, Some(&val), r.timestamp)?;
        if first.is_none() {
            st.put(&ik, Some(&crate::state::ts_key(time)), r.timestamp)?;
        }
        if let Some((n, b)) = self.size.as_mut() {
            match old_len {
                Some(ol) => *b = (*b + val.len()).saturating_sub(ol),
                None => {
                    *n += 1;
                    *b += kb.len() + val.len();
                }
            }
        }
        // Emit what has waited long enough, oldest first.
        let expiry = ctx.current_stream_time_ms().saturating_sub(self.limit);
        while let Some((tk, ts, v)) = self.oldest(ctx)? {
            let t = i64::from_be_bytes(tk[1..9].try_into().unwrap_or([0; 8])) ^ i64::MIN;
            let (n, b) = self.size.unwrap_or((0, 0));
            let full = self.buffer.max_records.is_some_and(|m| n > m)
                || self.buffer.max_bytes.is_some_and(|m| b > m);
            if t > expiry && !full {
                break;
            }
            if t > expiry && self.buffer.shut_down_when_full {
                return Err(crate::error::StreamsError::Streams(format!(
                    "suppression buffer of {} is full ({n} records, {b} bytes) and is configured to shut down when full",
                    self.store
                )));
            }
            self.emit(ctx, &tk, ts, &v)?;
        }
        Ok(())
    }
}

/// The serde of a `Change` on a table repartition topic: one tag byte (1 = the new value to add,
/// 0 = the old value to subtract) and the value's bytes. Internal to strom-streams.
pub fn change_serde(inner: ErasedSerde) -> ErasedSerde {
    let i2 = inner.clone();
    ErasedSerde {
        ser: Arc::new(move |topic, d| {
            let c = d.downcast_ref::<Change>().ok_or_else(|| {
                crate::error::SerdeError::new(topic, "table repartition value is not a Change")
            })?;
            let (tag, v) = match (&c.new, &c.old) {
                (Some(v), _) => (1u8, v),
                (None, Some(v)) => (0u8, v),
                (None, None) => return Ok(vec![2]),
            };
            let mut b = vec![tag];
            b.extend_from_slice(&(inner.ser)(topic, v)?);
            Ok(b)
        }),
        de: Arc::new(move |topic, b| {
            let (tag, rest) = b
                .split_first()
                .ok_or_else(|| crate::error::SerdeError::new(topic, "empty Change"))?;
            let v = if *tag == 2 {
                None
            } else {
                Some((i2.de)(topic, rest)?)
            };
            let c = if *tag == 1 {
                Change { new: v, old: None }
            } else {
                Change { new: None, old: v }
            };
            Ok(Arc::new(c) as Dyn)
        }),
        // A value serde: values do not choose partitions.
        partition: crate::serde::by_serialized_bytes(),
    }
}

/// Kafka's KTableAggregate: subtracts the old value and adds the new one for each change.
pub struct TableAggregateProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    /// None for reduce: the first value added is the aggregate.
    pub init: Option<Arc<dyn Fn() -> Dyn + Send + Sync>>,
    pub adder: ErasedAgg,
    pub subtractor: ErasedAgg,
}

impl Processor for TableAggregateProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        ctx.set_flush_listener(&self.store)
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let Some(k) = r.key.as_ref() else {
            return Ok(());
        };
        let Some(c) = r.value_as::<Change>() else {
            return Ok(());
        };
        let kb = (self.ks.ser)(&self.store, k)?;
        let old = ctx.store(&self.store)?.get(&kb)?;
        let (old_ts, old_v) = match &old {
            Some((ts, b)) => (*ts, Some((self.vs.de)(&self.store, b)?)),
            None => (i64::MIN, None),
        };
        let mut agg = old_v.clone().or_else(|| self.init.as_ref().map(|i| i()));
        if let (Some(o), Some(a)) = (&c.old, &agg)
            && let Some(a) = (self.subtractor)(k, o, Some(a))
        {
            agg = Some(a);
        }
        if let Some(n) = &c.new
            && let Some(a) = (self.adder)(k, n, agg.as_ref())
        {
            agg = Some(a);
        }
        let Some(agg) = agg else { return Ok(()) };
        let ts = r.timestamp.max(old_ts);
        let nb = (self.vs.ser)(&self.store, &agg)?;
        let s = ctx.store(&self.store)?;
        s.put(&kb, Some(&nb), ts)?;
        if !s.is_cached() {
            let change = Change {
                new: Some(agg),
                old: old_v,
            };
            ctx.forward(Record::new(Some(k.clone()), Some(Arc::new(change)), ts))?;
        }
        Ok(())
    }
    fn on_cache_flush(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        store: &str,
        entries: Vec<FlushedEntry>,
    ) -> Result<()> {
        forward_flushed(ctx, store, &self.ks, &self.vs, entries)
    }
}

/// Kafka's sliding-window aggregation (KStreamSlidingWindowAggregate): the windows are those that
/// records define, each of size `d` with both ends inclusive: a record at t opens its left window
/// [t - d, t] and, when a later record falls within d after it, its right window [t + 1, t + 1 + d].
/// Only the aggregates are stored (each window's timestamp is its newest record's): a record
/// updates the stored windows it falls into and creates its missing windows from the aggregates
/// of its neighbours, in the same order as Kafka, so every update matches Kafka's record for record.
pub struct SlidingAggregateProcessor {
    pub store: String,
    pub ks: ErasedSerde,
    pub vs: ErasedSerde,
    pub init: Arc<dyn Fn() -> Dyn + Send + Sync>,
    pub agg: ErasedAgg,
    pub wrap: WrapWindowed,
    pub d: i64,
    pub grace: i64,
    pub observed: i64,
}

/// A stored sliding window: its start, the timestamp of its newest record and its aggregate.
struct SlidingWindow {
    start: i64,
    ts: i64,
    agg: Dyn,
}

/// What a record found among the stored windows around it.
#[derive(Default)]
struct SlidingNeighbours {
    /// Starts of the windows fetched, so that no window is created twice.
    starts: std::collections::HashSet<i64>,
    /// The aggregate that the record's left window starts from (the previous record's window).
    left: Option<(i64, Dyn)>,
    /// The aggregate of the later records, which the record's right window takes as is.
    right: Option<(i64, Dyn)>,
    left_exists: bool,
    right_exists: bool,
    /// The newest record before this one that is within 2d of it.
    previous: Option<i64>,
}

/// The record being aggregated.
struct SlidingInput<'a> {
    key: &'a Dyn,
    kb: &'a [u8],
    value: &'a Dyn,
    ts: i64,
    close: i64,
}

impl SlidingAggregateProcessor {
    /// Stored windows of the key with start in [from, to], in ascending start order.
    fn fetch(
        &self,
        ctx: &mut ProcessorContext<'_>,
        kb: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<SlidingWindow>> {
        ctx.store(&self.store)?
            .window_fetch(kb, from, to)?
            .into_iter()
            .map(|(start, _, ts, b)| {
                Ok(SlidingWindow {
                    start,
                    ts,
                    agg: (self.vs.de)(&self.store, &b)?,
                })
            })
            .collect()
    }

    /// Adds the record to the window starting at `start` whose aggregate so far is `old` (with
    /// its timestamp), stores and forwards the result; a closed window is left as it is.
    fn update(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &SlidingInput<'_>,
        start: i64,
        old: (i64, Dyn),
    ) -> Result<()> {
        let end = start + self.d;
        if end < r.close {
            tracing::debug!(
                node = ctx.node_name(),
                start,
                end,
                "skipping record for expired sliding window"
            );
            return Ok(());
        }
        let (old_ts, old) = old;
        let Some(agg) = (self.agg)(r.key, r.value, Some(&old)) else {
            return Ok(());
        };
        let ts = r.ts.max(old_ts);
        self.put_and_forward(ctx, r, start, ts, agg, Some(old))
    }

    fn put_and_forward(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &SlidingInput<'_>,
        start: i64,
        ts: i64,
        agg: Dyn,
        old: Option<Dyn>,
    ) -> Result<()> {
        let ab = (self.vs.ser)(&self.store, &agg)?;
        ctx.store(&self.store)?
            .window_put(r.kb, start, 0, Some(&ab), ts)?;
        if let Some(wk) = (self.wrap)(r.key, Window::new(start, start + self.d)) {
            let change = Change {
                new: Some(agg),
                old,
            };
            ctx.forward(Record::new(Some(wk), Some(Arc::new(change)), ts))?;
        }
        Ok(())
    }

    /// The record's right window [ts + 1, ts + 1 + d] holds exactly the later records that
    /// `right` aggregates, so it takes that aggregate and its timestamp unchanged.
    fn create_right(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &SlidingInput<'_>,
        n: &SlidingNeighbours,
    ) -> Result<()> {
        match &n.right {
            Some((t, agg)) if !n.right_exists && *t > r.ts => {
                self.put_and_forward(ctx, r, r.ts + 1, *t, agg.clone(), None)
            }
            _ => Ok(()),
        }
    }

    /// A record at or after d: walks the stored windows from the latest start (ts + 1) back to
    /// ts - 2d, adding the record to those holding it, until it meets the previous record's
    /// window.
    fn process_window(&self, ctx: &mut ProcessorContext<'_>, r: &SlidingInput<'_>) -> Result<()> {
        let mut n = SlidingNeighbours::default();
        let windows = self.fetch(ctx, r.kb, (r.ts - 2 * self.d).max(0), r.ts + 1)?;
        for w in windows.into_iter().rev() {
            n.starts.insert(w.start);
            let end = w.start + self.d;
            if w.start == r.ts + 1 {
                n.right_exists = true;
            } else if end > r.ts {
                if n.right.is_none() {
                    n.right = Some((w.ts, w.agg.clone()));
                }
                self.update(ctx, r, w.start, (w.ts, w.agg))?;
            } else if end == r.ts {
                n.left_exists = true;
                self.update(ctx, r, w.start, (w.ts, w.agg))?;
                if w.ts >= r.ts {
                    // Another record has this timestamp: its windows are all there already.
                    return Ok(());
                }
                n.previous = Some(w.ts);
            } else {
                n.previous = Some(w.ts);
                n.left = Some((w.ts, w.agg));
                break;
            }
        }
        // The previous record's right window, when this record is the first one after it.
        if let Some(p) = n.previous
            && !n.starts.contains(&(p + 1))
            && p + 1 + self.d >= r.ts
        {
            self.update(ctx, r, p + 1, (r.ts, (self.init)()))?;
        }
        if !n.left_exists {
            let base = match (&n.left, n.previous) {
                (Some((_, agg)), Some(p)) if r.ts - self.d <= p => agg.clone(),
                _ => (self.init)(),
            };
            self.update(ctx, r, r.ts - self.d, (r.ts, base))?;
        }
        self.create_right(ctx, r, &n)
    }

    /// A record before d: windows cannot start before 0, so every such record goes into the
    /// window [0, d], which stands in for their left windows.
    fn process_early(&self, ctx: &mut ProcessorContext<'_>, r: &SlidingInput<'_>) -> Result<()> {
        let mut n = SlidingNeighbours::default();
        let mut combined = None;
        for w in self.fetch(ctx, r.kb, 0, r.ts + 1)? {
            n.starts.insert(w.start);
            if w.start == 0 {
                if w.ts < r.ts {
                    n.previous = Some(w.ts);
                }
                combined = Some((w.ts, w.agg));
            } else if w.start <= r.ts {
                n.right = Some((w.ts, w.agg.clone()));
                self.update(ctx, r, w.start, (w.ts, w.agg))?;
            } else {
                n.right_exists = true;
            }
        }
        // With no right window found, the combined window holds only later records (had it held
        // earlier and later ones, a right window would have been found).
        if n.right.is_none()
            && let Some((t, agg)) = &combined
            && *t > r.ts
        {
            n.right = Some((*t, agg.clone()));
        }
        self.create_right(ctx, r, &n)?;
        if let Some(p) = n.previous
            && !n.starts.contains(&(p + 1))
        {
            self.update(ctx, r, p + 1, (r.ts, (self.init)()))?;
        }
        let combined = combined.unwrap_or_else(|| (r.ts, (self.init)()));
        self.update(ctx, r, 0, combined)
    }
}

impl Processor for SlidingAggregateProcessor {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed.saturating_sub(self.grace);
        // The latest window holding this record ends at ts + 1 + d (its own right window); when
        // even that one has closed, the record is late.
        if ts.saturating_add(1).saturating_add(self.d) <= close {
            tracing::debug!(
                node = ctx.node_name(),
                "skipping late record for sliding windows"
            );
            return Ok(());
        }
        if ts < 0 {
            tracing::warn!(
                node = ctx.node_name(),
                ts,
                "skipping record with a negative timestamp for sliding windows"
            );
            return Ok(());
        }
        let kb = (self.ks.ser)(&self.store, k)?;
        let input = SlidingInput {
            key: k,
            kb: &kb,
            value: v,
            ts,
            close,
        };
        if ts < self.d {
            self.process_early(ctx, &input)
        } else {
            self.process_window(ctx, &input)
        }
    }
}
