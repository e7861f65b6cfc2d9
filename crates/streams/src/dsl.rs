//! The Streams DSL (Kafka's StreamsBuilder, KStream, KTable, KGroupedStream, BranchedKStream,
//! TimeWindowedKStream). Each operator adds nodes to a `Topology` with Kafka's generated names; the
//! typed closures are wrapped into type-erased processors (see `dsl_ops.rs`).
//!
//! Null handling: keys reach closures as `Option<&K>`; records whose value is null (tombstones) are
//! not given to KStream value closures and are dropped by those operators. KTable operators see
//! tombstones as deletes, as Kafka's do.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::dsl_ops::*;
use crate::error::Result;
use crate::options::*;
use crate::processor::{FnProcessor, Processor, ProcessorContext};
use crate::record::{Change, Dyn, Record, RecordMetadata};
use crate::serde::{ErasedSerde, SerdeRef, Serdes};
use crate::state::StoreKind;
use crate::topology::{ProcessorSupplier, SinkTopic, StoreDef, Topology};
use crate::window::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Windowed};

/// Types that can flow through a topology.
pub trait Data: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> Data for T {}

struct Inner {
    topo: Topology,
    index: usize,
}

/// Kafka's StreamsBuilder.
#[derive(Clone)]
pub struct StreamsBuilder {
    inner: Rc<RefCell<Inner>>,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn erased<T: Data>(s: &Option<SerdeRef<T>>) -> Option<ErasedSerde> {
    s.clone().map(ErasedSerde::of)
}

impl StreamsBuilder {
    pub fn new() -> Self {
        StreamsBuilder {
            inner: Rc::new(RefCell::new(Inner {
                topo: Topology::new(),
                index: 0,
            })),
        }
    }

    /// `<prefix><10-digit counter>`, Kafka's generated names.
    pub(crate) fn new_name(&self, prefix: &str) -> String {
        let mut i = self.inner.borrow_mut();
        let n = format!("{prefix}{:010}", i.index);
        i.index += 1;
        n
    }

    pub(crate) fn error(&self, e: String) {
        self.inner.borrow_mut().topo.errors.push(e);
    }

    pub(crate) fn with_topo<R>(&self, f: impl FnOnce(&mut Topology) -> Result<R>) -> Option<R> {
        let r = f(&mut self.inner.borrow_mut().topo);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(
                    e.to_string()
                        .trim_start_matches("Invalid topology: ")
                        .to_string(),
                );
                None
            }
        }
    }

    pub(crate) fn add_processor(&self, name: &str, supplier: ProcessorSupplier, parents: &[&str]) {
        self.with_topo(|t| t.add_processor(name, supplier, parents).map(|_| ()));
    }

    pub(crate) fn add_store(&self, def: StoreDef, processors: &[&str]) {
        self.with_topo(|t| t.add_state_store(def, processors).map(|_| ()));
    }

    pub(crate) fn connect_store(&self, processor: &str, store: &str) {
        self.with_topo(|t| {
            t.connect_processor_and_state_stores(&[processor], &[store])
                .map(|_| ())
        });
    }

    /// Kafka's `stream(topic, Consumed)`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.stream_from(&[topic], consumed)
    }

    /// Kafka's `stream(Collection<String> topics, Consumed)`.
    pub fn stream_from<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let name = consumed
            .name
            .clone()
            .unwrap_or_else(|| self.new_name("KSTREAM-SOURCE-"));
        let (ks, vs) = (erased(&consumed.key_serde), erased(&consumed.value_serde));
        self.with_topo(|t| t.add_source(&name, topics, ks, vs).map(|_| ()));
        KStream {
            b: self.clone(),
            node: name,
            ks: consumed.key_serde,
            vs: consumed.value_serde,
            repartition: false,
            sources: topics.iter().map(|t| t.to_string()).collect(),
            _p: PhantomData,
        }
    }

    /// Kafka's `table(topic, Consumed, Materialized)`: the latest value per key, in a store with a
    /// changelog topic.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let source = self.stream(
            topic,
            Consumed {
                key_serde: consumed.key_serde.clone(),
                value_serde: consumed.value_serde.clone(),
                name: consumed.name,
            },
        );
        let store = materialized
            .store_name
            .clone()
            .unwrap_or_else(|| self.new_name(&format!("{topic}-STATE-STORE-")));
        let name = self.new_name("KTABLE-SOURCE-");
        let ks = materialized.key_serde.clone().or(consumed.key_serde);
        let vs = materialized.value_serde.clone().or(consumed.value_serde);
        source.make_table(name, store, ks, vs, &materialized)
    }

    /// Kafka's `globalTable(topic, Consumed, Materialized)`: every instance holds the whole topic
    /// in a store, for joins that need no co-partitioning.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let source = self.new_name("KSTREAM-SOURCE-");
        let store = materialized
            .store_name
            .clone()
            .unwrap_or_else(|| self.new_name(&format!("{topic}-STATE-STORE-")));
        let processor = self.new_name("KTABLE-SOURCE-");
        let ks = materialized.key_serde.clone().or(consumed.key_serde);
        let vs = materialized.value_serde.clone().or(consumed.value_serde);
        let (Some(eks), Some(evs)) = (erased(&ks), erased(&vs)) else {
            self.error(format!("global table {topic} needs key and value serdes"));
            return GlobalKTable {
                store,
                ks,
                vs,
                _p: PhantomData,
            };
        };
        let t = topic.to_string();
        let st = store.clone();
        self.with_topo(move |topo| {
            if topo.user_source_topics().contains(&t) {
                return Err(crate::error::StreamsError::Topology(format!(
                    "Topic {t} has already been registered by another source."
                )));
            }
            topo.globals.push(crate::topology::GlobalStoreDef {
                store: StoreDef {
                    name: st,
                    kind: StoreKind::KeyValue,
                    logging: false,
                    caching: false,
                    key_serde: Some(eks),
                    value_serde: Some(evs),
                },
                topic: t,
                source,
                processor,
            });
            Ok(())
        });
        GlobalKTable {
            store,
            ks,
            vs,
            _p: PhantomData,
        }
    }

    /// Kafka's `addStateStore`: a store that `process` nodes can be connected to.
    pub fn add_state_store(&self, def: StoreDef) {
        self.with_topo(|t| {
            if t.stores.iter().any(|s| s.name == def.name) {
                return Err(crate::error::StreamsError::Topology(format!(
                    "StateStore {} is already added.",
                    def.name
                )));
            }
            t.stores.push(def);
            Ok(())
        });
    }

    /// Kafka's `build()`: the finished topology, or the first TopologyException found.
    pub fn build(&self) -> Result<Topology> {
        let t = self.inner.borrow().topo.clone();
        t.validate()?;
        Ok(t)
    }
}

/// Kafka's KStream.
pub struct KStream<K, V> {
    pub(crate) b: StreamsBuilder,
    pub(crate) node: String,
    pub(crate) ks: Option<SerdeRef<K>>,
    pub(crate) vs: Option<SerdeRef<V>>,
    /// Set after a key-changing operation: grouping or joining must repartition first.
    pub(crate) repartition: bool,
    /// The source topics feeding this stream (for co-partitioning checks).
    pub(crate) sources: BTreeSet<String>,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            b: self.b.clone(),
            node: self.node.clone(),
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            repartition: self.repartition,
            sources: self.sources.clone(),
            _p: PhantomData,
        }
    }
}

fn supplier<F>(f: F) -> ProcessorSupplier
where
    F: Fn(&mut ProcessorContext<'_>, Record) -> Result<()> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Arc::new(move || {
        let f = f.clone();
        Box::new(FnProcessor(
            move |c: &mut ProcessorContext<'_>, r: Record| f(c, r),
        )) as Box<dyn Processor>
    })
}

impl<K: Data, V: Data> KStream<K, V> {
    /// The node name (for `describe()` and Processor API wiring).
    pub fn name(&self) -> &str {
        &self.node
    }

    fn child<K2, V2>(
        &self,
        node: String,
        ks: Option<SerdeRef<K2>>,
        vs: Option<SerdeRef<V2>>,
        repartition: bool,
    ) -> KStream<K2, V2> {
        KStream {
            b: self.b.clone(),
            node,
            ks,
            vs,
            repartition,
            sources: self.sources.clone(),
            _p: PhantomData,
        }
    }

    fn stateless<K2, V2, F>(
        &self,
        prefix: &str,
        f: F,
        ks: Option<SerdeRef<K2>>,
        vs: Option<SerdeRef<V2>>,
        repartition: bool,
    ) -> KStream<K2, V2>
    where
        F: Fn(&mut ProcessorContext<'_>, Record) -> Result<()> + Send + Sync + 'static,
    {
        let name = self.b.new_name(prefix);
        self.b.add_processor(&name, supplier(f), &[&self.node]);
        self.child(name, ks, vs, repartition)
    }

    /// Keeps records for which `pred` is true.
    pub fn filter(
        &self,
        pred: impl Fn(Option<&K>, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless(
            "KSTREAM-FILTER-",
            move |ctx, r| match r.value_as::<V>() {
                Some(v) if pred(r.key_as::<K>(), v) => ctx.forward(r),
                _ => Ok(()),
            },
            self.ks.clone(),
            self.vs.clone(),
            self.repartition,
        )
    }

    /// Drops records for which `pred` is true.
    pub fn filter_not(
        &self,
        pred: impl Fn(Option<&K>, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless(
            "KSTREAM-FILTER-",
            move |ctx, r| match r.value_as::<V>() {
                Some(v) if !pred(r.key_as::<K>(), v) => ctx.forward(r),
                _ => Ok(()),
            },
            self.ks.clone(),
            self.vs.clone(),
            self.repartition,
        )
    }

    /// New key and value per record (marks the stream for repartitioning).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(Option<&K>, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.stateless(
            "KSTREAM-MAP-",
            move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                let (k2, v2) = f(r.key_as::<K>(), v);
                let out = r
                    .clone()
                    .with_key(Some(Arc::new(k2)))
                    .with_value(Some(Arc::new(v2)));
                ctx.forward(out)
            },
            None,
            None,
            true,
        )
    }

    /// New value per record; the key and its partitioning stay.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Kafka's `mapValues(ValueMapperWithKey)`.
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(Option<&K>, &V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.stateless(
            "KSTREAM-MAPVALUES-",
            move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                let v2 = f(r.key_as::<K>(), v);
                let out = r.clone().with_value(Some(Arc::new(v2)));
                ctx.forward(out)
            },
            self.ks.clone(),
            None,
            self.repartition,
        )
    }

    /// Zero or more records per record (marks the stream for repartitioning).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(Option<&K>, &V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.stateless(
            "KSTREAM-FLATMAP-",
            move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                for (k2, v2) in f(r.key_as::<K>(), v) {
                    ctx.forward(
                        r.clone()
                            .with_key(Some(Arc::new(k2)))
                            .with_value(Some(Arc::new(v2))),
                    )?;
                }
                Ok(())
            },
            None,
            None,
            true,
        )
    }

    /// Zero or more values per record, same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(&V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.stateless(
            "KSTREAM-FLATMAPVALUES-",
            move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                for v2 in f(v) {
                    ctx.forward(r.clone().with_value(Some(Arc::new(v2))))?;
                }
                Ok(())
            },
            self.ks.clone(),
            None,
            self.repartition,
        )
    }

    /// New key per record (marks the stream for repartitioning).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(Option<&K>, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.stateless(
            "KSTREAM-KEY-SELECT-",
            move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                let k2 = f(r.key_as::<K>(), v);
                ctx.forward(r.clone().with_key(Some(Arc::new(k2))))
            },
            None,
            self.vs.clone(),
            true,
        )
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(Option<&K>, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.stateless(
            "KSTREAM-PEEK-",
            move |ctx, r| {
                if let Some(v) = r.value_as::<V>() {
                    f(r.key_as::<K>(), v);
                }
                ctx.forward(r)
            },
            self.ks.clone(),
            self.vs.clone(),
            self.repartition,
        )
    }

    /// Calls `f` on each record (terminal).
    pub fn foreach(&self, f: impl Fn(Option<&K>, &V) + Send + Sync + 'static) {
        self.stateless::<K, V, _>(
            "KSTREAM-FOREACH-",
            move |_, r| {
                if let Some(v) = r.value_as::<V>() {
                    f(r.key_as::<K>(), v);
                }
                Ok(())
            },
            None,
            None,
            false,
        );
    }

    /// Kafka's `split()`: route each record to the first branch whose predicate holds.
    pub fn split(&self) -> BranchedKStream<K, V> {
        self.split_named(None)
    }

    /// Kafka's `split(Named.as(prefix))`.
    pub fn split_named(&self, prefix: Option<&str>) -> BranchedKStream<K, V> {
        let name = prefix
            .map(|p| p.to_string())
            .unwrap_or_else(|| self.b.new_name("KSTREAM-BRANCH-"));
        let branches: Arc<parking_lot::RwLock<Vec<Branch<K, V>>>> = Default::default();
        let bs = branches.clone();
        self.b.add_processor(
            &name,
            supplier(move |ctx, r| {
                let bs = bs.read();
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                for b in bs.iter() {
                    if b.pred.as_ref().is_none_or(|p| p(r.key_as::<K>(), v)) {
                        return ctx.forward_to(&b.child, r);
                    }
                }
                Ok(())
            }),
            &[&self.node],
        );
        BranchedKStream {
            stream: self.child(
                name.clone(),
                self.ks.clone(),
                self.vs.clone(),
                self.repartition,
            ),
            prefix: name,
            branches,
            index: 1,
            out: HashMap::new(),
        }
    }

    /// Kafka's `merge`: one stream with the records of both.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = self.b.new_name("KSTREAM-MERGE-");
        self.b.add_processor(
            &name,
            supplier(|ctx, r| ctx.forward(r)),
            &[&self.node, &other.node],
        );
        let mut s = self.child(
            name,
            self.ks.clone(),
            self.vs.clone(),
            self.repartition || other.repartition,
        );
        s.sources.extend(other.sources.iter().cloned());
        s
    }

    /// Kafka's `to(topic, Produced)`.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        self.to_sink(SinkTopic::Fixed(topic.to_string()), produced);
    }

    /// Kafka's `to(TopicNameExtractor, Produced)`: the topic is chosen per record.
    pub fn to_dynamic(
        &self,
        extractor: impl Fn(Option<&K>, Option<&V>, &RecordMetadata) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let f = Arc::new(move |r: &Record, m: &RecordMetadata| {
            extractor(r.key_as::<K>(), r.value_as::<V>(), m)
        });
        self.to_sink(SinkTopic::Extractor(f), produced);
    }

    fn to_sink(&self, topic: SinkTopic, produced: Produced<K, V>) {
        let name = produced
            .name
            .clone()
            .unwrap_or_else(|| self.b.new_name("KSTREAM-SINK-"));
        let ks = erased(&produced.key_serde.or_else(|| self.ks.clone()));
        let vs = erased(&produced.value_serde.or_else(|| self.vs.clone()));
        self.b
            .with_topo(|t| t.add_sink(&name, topic, ks, vs, &[&self.node]).map(|_| ()));
    }

    /// Writes through an internal repartition topic `<name>-repartition` and reads it back, so
    /// records are partitioned by their current key. Consumes three generated names as Kafka does.
    pub(crate) fn repartition_as(
        &self,
        prefix: &str,
        ks: Option<SerdeRef<K>>,
        vs: Option<SerdeRef<V>>,
        partitions: Option<i32>,
    ) -> KStream<K, V> {
        let _ = (
            self.b.new_name("KSTREAM-SINK-"),
            self.b.new_name("KSTREAM-FILTER-"),
            self.b.new_name("KSTREAM-SOURCE-"),
        );
        let (ks, vs) = (
            ks.or_else(|| self.ks.clone()),
            vs.or_else(|| self.vs.clone()),
        );
        if ks.is_none() || vs.is_none() {
            self.b.error(format!(
                "repartition topic {prefix}-repartition needs key and value serdes: pass them with Grouped::with / Repartitioned::with"
            ));
        }
        let topic = format!("{prefix}-repartition");
        let filter = format!("{prefix}-repartition-filter");
        let sink = format!("{prefix}-repartition-sink");
        let source = format!("{prefix}-repartition-source");
        // Records without a key cannot be partitioned by key: Kafka drops them here.
        self.b.add_processor(
            &filter,
            supplier(|ctx, r| {
                if r.key.is_some() {
                    ctx.forward(r)
                } else {
                    Ok(())
                }
            }),
            &[&self.node],
        );
        let (eks, evs) = (erased(&ks), erased(&vs));
        let t2 = topic.clone();
        let src2 = source.clone();
        self.b.with_topo(move |t| {
            t.internal_topics.insert(t2.clone());
            if let Some(n) = partitions {
                t.internal_partitions.insert(t2.clone(), n);
            }
            t.add_sink(
                &sink,
                SinkTopic::Fixed(t2.clone()),
                eks.clone(),
                evs.clone(),
                &[&filter],
            )?;
            t.add_source(&src2, &[&t2], eks, evs)?;
            Ok(())
        });
        KStream {
            b: self.b.clone(),
            node: source,
            ks,
            vs,
            repartition: false,
            sources: [topic].into_iter().collect(),
            _p: PhantomData,
        }
    }

    /// Kafka's `repartition(Repartitioned)`.
    pub fn repartition(&self, r: Repartitioned<K, V>) -> KStream<K, V> {
        let prefix = r
            .name
            .clone()
            .unwrap_or_else(|| self.b.new_name("KSTREAM-REPARTITION-"));
        self.repartition_as(&prefix, r.key_serde, r.value_serde, r.partitions)
    }

    /// Kafka's `groupByKey(Grouped)`.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            name: grouped.name,
            ks: grouped.key_serde.or_else(|| self.ks.clone()),
            vs: grouped.value_serde.or_else(|| self.vs.clone()),
        }
    }

    /// Kafka's `groupBy(KeyValueMapper, Grouped)`: a new key, then grouping (with repartitioning).
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(Option<&K>, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let s = self.select_key(f);
        KGroupedStream {
            name: grouped.name,
            ks: grouped.key_serde,
            vs: grouped.value_serde.or_else(|| self.vs.clone()),
            stream: s,
        }
    }

    /// Kafka's `toTable(Materialized)`.
    pub fn to_table(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let name = self.b.new_name("KSTREAM-TOTABLE-");
        let store = materialized
            .store_name
            .clone()
            .unwrap_or_else(|| self.b.new_name("KSTREAM-TOTABLE-STATE-STORE-"));
        let ks = materialized.key_serde.clone().or_else(|| self.ks.clone());
        let vs = materialized.value_serde.clone().or_else(|| self.vs.clone());
        self.make_table(name, store, ks, vs, &materialized)
    }

    pub(crate) fn make_table(
        &self,
        name: String,
        store: String,
        ks: Option<SerdeRef<K>>,
        vs: Option<SerdeRef<V>>,
        m: &Materialized<K, V>,
    ) -> KTable<K, V> {
        let (Some(eks), Some(evs)) = (erased(&ks), erased(&vs)) else {
            self.b.error(format!(
                "table store {store} needs key and value serdes (Consumed::with or Materialized)"
            ));
            return KTable::dangling(self.b.clone(), name);
        };
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        self.b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(TableSourceProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                }) as Box<dyn Processor>
            }),
            &[&self.node],
        );
        self.b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::KeyValue,
                logging: m.logging,
                caching: m.caching,
                key_serde: Some(eks),
                value_serde: Some(evs),
            },
            &[&name],
        );
        KTable {
            b: self.b.clone(),
            node: name,
            store: Some(store),
            ks,
            vs,
            sources: self.sources.clone(),
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's `process(ProcessorSupplier, stateStoreNames...)`: a Processor API node in the DSL.
    pub fn process<K2: Data, V2: Data>(
        &self,
        supplier: ProcessorSupplier,
        stores: &[&str],
    ) -> KStream<K2, V2> {
        let name = self.b.new_name("KSTREAM-PROCESSOR-");
        self.b.add_processor(&name, supplier, &[&self.node]);
        for s in stores {
            self.b.connect_store(&name, s);
        }
        self.child(name, None, None, true)
    }

    fn co_partition(&self, other: &BTreeSet<String>) {
        let mut g: BTreeSet<String> = self.sources.clone();
        g.extend(other.iter().cloned());
        self.b.with_topo(|t| {
            t.copartition_groups.push(g);
            Ok(())
        });
    }

    fn join_table_impl<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        left: bool,
        joiner: Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>,
    ) -> KStream<K, VR> {
        let Some(store) = table.store.clone() else {
            self.b.error(format!(
                "KTable {} must be materialized (Materialized::as_) to be joined",
                table.node
            ));
            return self.child(self.node.clone(), None, None, false);
        };
        let name = self.b.new_name("KSTREAM-JOIN-");
        let (Some(tks), Some(tvs)) = (erased(&table.ks), erased(&table.vs)) else {
            self.b.error(format!("KTable {} has no serdes", table.node));
            return self.child(name, None, None, false);
        };
        let st = store.clone();
        self.b.add_processor(
            &name,
            supplier(move |ctx, r| {
                let (Some(k), Some(v)) = (r.key.as_ref(), r.value_as::<V>()) else {
                    return Ok(());
                };
                let kb = (tks.ser)("", k)?;
                let found = ctx.store(&st)?.get(&kb)?;
                let tv = match found {
                    Some((_, b)) => Some((tvs.de)(&st, &b)?),
                    None => None,
                };
                let tvr = tv.as_ref().and_then(|d| d.downcast_ref::<VT>());
                if tvr.is_none() && !left {
                    return Ok(());
                }
                match joiner(v, tvr) {
                    Some(out) => ctx.forward(r.clone().with_value(Some(Arc::new(out)))),
                    None => Ok(()),
                }
            }),
            &[&self.node],
        );
        self.b.connect_store(&name, &store);
        self.co_partition(&table.sources);
        self.child(name, self.ks.clone(), None, false)
    }

    /// Kafka's KStream-KTable inner `join`.
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_table_impl(table, false, Arc::new(move |v, t| t.map(|t| joiner(v, t))))
    }

    /// Kafka's KStream-KTable `leftJoin`.
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_table_impl(table, true, Arc::new(move |v, t| Some(joiner(v, t))))
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn need_serdes<T>(&self, what: &str, s: &Option<SerdeRef<T>>, op: &str) -> Option<ErasedSerde>
    where
        T: Data,
    {
        let e = erased(s);
        if e.is_none() {
            self.b.error(format!(
                "{op} needs the {what} serde of stream {}: give it with Consumed::with or Repartitioned::with",
                self.node
            ));
        }
        e
    }

    fn stream_join_impl<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        outer_left: bool,
        outer_right: bool,
        joiner: crate::dsl_ops::ErasedJoiner,
    ) -> KStream<K, VR> {
        let b = self.b.clone();
        if self.repartition || other.repartition {
            b.error(format!(
                "join of {} and {}: a key-changing operation precedes the join; call repartition() first so both sides are partitioned by the new key",
                self.node, other.node
            ));
        }
        let (this_prefix, other_prefix) = if outer_left && outer_right {
            ("KSTREAM-OUTERTHIS-", "KSTREAM-OUTEROTHER-")
        } else if outer_left {
            ("KSTREAM-JOINTHIS-", "KSTREAM-OUTEROTHER-")
        } else {
            ("KSTREAM-JOINTHIS-", "KSTREAM-JOINOTHER-")
        };
        let this_name = b.new_name(this_prefix);
        let other_name = b.new_name(other_prefix);
        let merge = b.new_name("KSTREAM-MERGE-");
        let ks = self.ks.clone().or_else(|| other.ks.clone());
        let eks = self.need_serdes("key", &ks, "join");
        let evs = self.need_serdes("value", &self.vs, "join");
        let eos = other.need_serdes("value", &other.vs, "join");
        let (Some(eks), Some(evs), Some(eos)) = (eks, evs, eos) else {
            return self.child(merge, None, None, false);
        };
        let this_store = format!("{this_name}-store");
        let other_store = format!("{other_name}-store");
        let outer_store = (outer_left || outer_right).then(|| {
            let n = b.new_name("KSTREAM-OUTERSHARED-");
            format!("{n}-store")
        });
        let retention = windows.before_ms + windows.after_ms + windows.grace_ms + 1;
        let mk = |this_store: String,
                  other_store: String,
                  left_side: bool,
                  emit: bool,
                  tv: ErasedSerde,
                  ov: ErasedSerde| {
            let (ks, joiner, outer) = (eks.clone(), joiner.clone(), outer_store.clone());
            let (lower, upper) = if left_side {
                (windows.before_ms, windows.after_ms)
            } else {
                (windows.after_ms, windows.before_ms)
            };
            let grace = windows.grace_ms;
            Arc::new(move || {
                Box::new(StreamJoinProcessor {
                    this_store: this_store.clone(),
                    other_store: other_store.clone(),
                    outer_store: outer.clone(),
                    left_side,
                    lower,
                    upper,
                    grace,
                    emit_unmatched: emit,
                    joiner: joiner.clone(),
                    ks: ks.clone(),
                    this_vs: tv.clone(),
                    other_vs: ov.clone(),
                    seq: 0,
                }) as Box<dyn Processor>
            }) as ProcessorSupplier
        };
        b.add_processor(
            &this_name,
            mk(
                this_store.clone(),
                other_store.clone(),
                true,
                outer_left,
                evs.clone(),
                eos.clone(),
            ),
            &[&self.node],
        );
        b.add_processor(
            &other_name,
            mk(
                other_store.clone(),
                this_store.clone(),
                false,
                outer_right,
                eos.clone(),
                evs.clone(),
            ),
            &[&other.node],
        );
        for (name, vs) in [(&this_store, &evs), (&other_store, &eos)] {
            b.add_store(
                StoreDef {
                    name: name.clone(),
                    kind: StoreKind::Window {
                        retention_ms: retention,
                        retain_duplicates: true,
                    },
                    logging: true,
                    caching: false,
                    key_serde: Some(eks.clone()),
                    value_serde: Some(vs.clone()),
                },
                &[&this_name, &other_name],
            );
        }
        if let Some(o) = &outer_store {
            b.add_store(
                StoreDef {
                    name: o.clone(),
                    kind: StoreKind::KeyValue,
                    logging: true,
                    caching: false,
                    key_serde: None,
                    value_serde: None,
                },
                &[&this_name, &other_name],
            );
        }
        b.add_processor(
            &merge,
            supplier(|ctx, r| ctx.forward(r)),
            &[&this_name, &other_name],
        );
        self.co_partition(&other.sources);
        let mut out = self.child(merge, ks, None, false);
        out.sources.extend(other.sources.iter().cloned());
        out
    }

    /// Kafka's KStream-KStream inner `join` within `windows`.
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_join_impl(
            other,
            windows,
            false,
            false,
            Arc::new(move |a, b| {
                let (a, b) = (a?.downcast_ref::<V>()?, b?.downcast_ref::<VO>()?);
                Some(Arc::new(joiner(a, b)) as Dyn)
            }),
        )
    }

    /// Kafka's KStream-KStream `leftJoin`: left records without a partner are emitted with None
    /// once their window closed.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_join_impl(
            other,
            windows,
            true,
            false,
            Arc::new(move |a, b| {
                let a = a?.downcast_ref::<V>()?;
                Some(Arc::new(joiner(a, b.and_then(|b| b.downcast_ref::<VO>()))) as Dyn)
            }),
        )
    }

    /// Kafka's KStream-KStream `outerJoin`.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_join_impl(
            other,
            windows,
            true,
            true,
            Arc::new(move |a, b| {
                Some(Arc::new(joiner(
                    a.and_then(|a| a.downcast_ref::<V>()),
                    b.and_then(|b| b.downcast_ref::<VO>()),
                )) as Dyn)
            }),
        )
    }
}

struct Branch<K, V> {
    child: String,
    pred: Option<Arc<dyn Fn(Option<&K>, &V) -> bool + Send + Sync>>,
}

/// Kafka's BranchedKStream.
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    branches: Arc<parking_lot::RwLock<Vec<Branch<K, V>>>>,
    index: usize,
    out: HashMap<String, KStream<K, V>>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    fn add(
        &mut self,
        name: Option<&str>,
        pred: Option<Arc<dyn Fn(Option<&K>, &V) -> bool + Send + Sync>>,
    ) {
        let suffix = match name {
            Some(n) => n.to_string(),
            None if pred.is_none() => "0".to_string(),
            None => self.index.to_string(),
        };
        self.index += 1;
        let child = format!("{}{}", self.prefix, suffix);
        self.stream
            .b
            .add_processor(&child, supplier(|ctx, r| ctx.forward(r)), &[&self.prefix]);
        self.branches.write().push(Branch {
            child: child.clone(),
            pred,
        });
        let s = self.stream.child(
            child.clone(),
            self.stream.ks.clone(),
            self.stream.vs.clone(),
            self.stream.repartition,
        );
        self.out.insert(child, s);
    }

    /// Kafka's `branch(predicate)` (named `<prefix><n>`).
    pub fn branch(mut self, pred: impl Fn(Option<&K>, &V) -> bool + Send + Sync + 'static) -> Self {
        self.add(None, Some(Arc::new(pred)));
        self
    }

    /// Kafka's `branch(predicate, Branched.as(name))` (named `<prefix><name>`).
    pub fn branch_as(
        mut self,
        name: &str,
        pred: impl Fn(Option<&K>, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.add(Some(name), Some(Arc::new(pred)));
        self
    }

    /// Kafka's `defaultBranch()`: every record no branch took. Returns the branches by name.
    pub fn default_branch(mut self, name: Option<&str>) -> HashMap<String, KStream<K, V>> {
        self.add(name, None);
        self.out
    }

    /// Kafka's `noDefaultBranch()`.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.out
    }
}

/// Kafka's KGroupedStream.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    name: Option<String>,
    ks: Option<SerdeRef<K>>,
    vs: Option<SerdeRef<V>>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Repartitions if the key changed upstream; returns the stream to aggregate.
    fn prepared(&self, store: &str) -> KStream<K, V> {
        if self.stream.repartition {
            let prefix = self.name.clone().unwrap_or_else(|| store.to_string());
            self.stream
                .repartition_as(&prefix, self.ks.clone(), self.vs.clone(), None)
        } else {
            self.stream.clone()
        }
    }

    fn aggregate_impl<VA: Data>(
        &self,
        prefix: &str,
        store_prefix: &str,
        m: Materialized<K, VA>,
        agg: Arc<dyn Fn(&K, &V, Option<&VA>) -> VA + Send + Sync>,
    ) -> KTable<K, VA> {
        let b = self.stream.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name(store_prefix));
        let name = b.new_name(prefix);
        let src = self.prepared(&store);
        let ks = m.key_serde.clone().or_else(|| self.ks.clone());
        let (Some(eks), Some(evs)) = (erased(&ks), erased(&m.value_serde)) else {
            b.error(format!(
                "aggregation store {store} needs a key serde (Grouped::with) and a value serde (Materialized::with_value_serde)"
            ));
            return KTable::dangling(b, name);
        };
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        let erased_agg: ErasedAgg = Arc::new(move |k: &Dyn, v: &Dyn, old: Option<&Dyn>| {
            let (Some(k), Some(v)) = (k.downcast_ref::<K>(), v.downcast_ref::<V>()) else {
                return None;
            };
            let old = old.and_then(|o| o.downcast_ref::<VA>());
            Some(Arc::new(agg(k, v, old)) as Dyn)
        });
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(AggregateProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                    agg: erased_agg.clone(),
                }) as Box<dyn Processor>
            }),
            &[&src.node],
        );
        b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::KeyValue,
                logging: m.logging,
                caching: m.caching,
                key_serde: Some(eks),
                value_serde: Some(evs),
            },
            &[&name],
        );
        KTable {
            b,
            node: name,
            store: Some(store),
            ks,
            vs: m.value_serde,
            sources: src.sources.clone(),
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's `count(Materialized)`: records per key, as i64.
    pub fn count(&self, m: Materialized<K, i64>) -> KTable<K, i64> {
        let m = if m.value_serde.is_none() {
            m.with_value_serde(Serdes::i64())
        } else {
            m
        };
        self.aggregate_impl(
            "KSTREAM-AGGREGATE-",
            "KSTREAM-AGGREGATE-STATE-STORE-",
            m,
            Arc::new(|_, _, old| old.copied().unwrap_or(0) + 1),
        )
    }

    /// Kafka's `reduce(Reducer, Materialized)`: the first value starts the aggregate.
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        m: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        V: Clone,
    {
        let m = if m.value_serde.is_none() {
            match self.vs.clone() {
                Some(s) => m.with_value_serde(s),
                None => m,
            }
        } else {
            m
        };
        let reducer = Arc::new(reducer);
        self.aggregate_impl_reduce(m, reducer)
    }

    fn aggregate_impl_reduce(
        &self,
        m: Materialized<K, V>,
        reducer: Arc<dyn Fn(&V, &V) -> V + Send + Sync>,
    ) -> KTable<K, V>
    where
        V: Clone,
    {
        let b = self.stream.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-REDUCE-STATE-STORE-"));
        let m = Materialized {
            store_name: Some(store),
            ..m
        };
        // Reduce is aggregate without an initializer: the first value is the aggregate.
        self.aggregate_named(
            "KSTREAM-REDUCE-",
            m,
            Arc::new(move |_: &K, v: &V, old: Option<&V>| match old {
                Some(o) => reducer(o, v),
                None => v.clone(),
            }),
        )
    }

    fn aggregate_named<VA: Data>(
        &self,
        prefix: &str,
        m: Materialized<K, VA>,
        agg: Arc<dyn Fn(&K, &V, Option<&VA>) -> VA + Send + Sync>,
    ) -> KTable<K, VA> {
        self.aggregate_impl(prefix, "KSTREAM-AGGREGATE-STATE-STORE-", m, agg)
    }

    /// Kafka's `aggregate(Initializer, Aggregator, Materialized)`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_impl(
            "KSTREAM-AGGREGATE-",
            "KSTREAM-AGGREGATE-STATE-STORE-",
            m,
            Arc::new(move |k, v, old| match old {
                Some(o) => aggregator(k, v, o),
                None => aggregator(k, v, &init()),
            }),
        )
    }

    /// Kafka's `windowedBy(SlidingWindows)`.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V>
    where
        K: Clone,
    {
        SlidingWindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.clone(),
                name: self.name.clone(),
                ks: self.ks.clone(),
                vs: self.vs.clone(),
            },
            windows,
        }
    }

    /// Kafka's `windowedBy(SessionWindows)`.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V>
    where
        K: Clone,
    {
        SessionWindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.clone(),
                name: self.name.clone(),
                ks: self.ks.clone(),
                vs: self.vs.clone(),
            },
            windows,
        }
    }

    /// Kafka's `windowedBy(TimeWindows)`.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V>
    where
        K: Clone,
    {
        TimeWindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.clone(),
                name: self.name.clone(),
                ks: self.ks.clone(),
                vs: self.vs.clone(),
            },
            windows,
        }
    }
}

/// Kafka's SessionWindowedKStream.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K: Data + Clone, V: Data> SessionWindowedKStream<K, V> {
    /// Kafka's session `count`.
    pub fn count(&self, m: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = if m.value_serde.is_none() {
            m.with_value_serde(Serdes::i64())
        } else {
            m
        };
        self.aggregate(|| 0i64, |_, _, c| c + 1, |_, a, b| a + b, m)
    }

    /// Kafka's session `aggregate(Initializer, Aggregator, Merger, Materialized)`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, &VA, &VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.stream.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-AGGREGATE-STATE-STORE-"));
        let name = b.new_name("KSTREAM-AGGREGATE-");
        let src = self.grouped.prepared(&store);
        let ks = m.key_serde.clone().or_else(|| self.grouped.ks.clone());
        let (Some(ks), Some(eks), Some(evs)) = (ks.clone(), erased(&ks), erased(&m.value_serde))
        else {
            b.error(format!("session store {store} needs key and value serdes"));
            return KTable::dangling(b, name);
        };
        let w = self.windows;
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        let init: Arc<dyn Fn() -> Dyn + Send + Sync> = Arc::new(move || Arc::new(init()) as Dyn);
        let aggregator = Arc::new(aggregator);
        let erased_agg: ErasedAgg = Arc::new(move |k: &Dyn, v: &Dyn, old: Option<&Dyn>| {
            let (k, v, o) = (
                k.downcast_ref::<K>()?,
                v.downcast_ref::<V>()?,
                old?.downcast_ref::<VA>()?,
            );
            Some(Arc::new(aggregator(k, v, o)) as Dyn)
        });
        let merger: crate::dsl_ops::ErasedMerger = Arc::new(move |k: &Dyn, a: &Dyn, c: &Dyn| {
            let (k, a, c) = (
                k.downcast_ref::<K>()?,
                a.downcast_ref::<VA>()?,
                c.downcast_ref::<VA>()?,
            );
            Some(Arc::new(merger(k, a, c)) as Dyn)
        });
        let wrap: WrapWindowed = Arc::new(|k: &Dyn, w| {
            let k = k.downcast_ref::<K>()?;
            Some(Arc::new(Windowed {
                key: k.clone(),
                window: w,
            }) as Dyn)
        });
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(SessionAggregateProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                    init: init.clone(),
                    agg: erased_agg.clone(),
                    merger: merger.clone(),
                    wrap: wrap.clone(),
                    gap: w.gap_ms,
                    grace: w.grace_ms,
                    observed: i64::MIN,
                }) as Box<dyn Processor>
            }),
            &[&src.node],
        );
        b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::Session {
                    retention_ms: w.gap_ms + w.grace_ms,
                },
                logging: m.logging,
                caching: false,
                key_serde: Some(eks),
                value_serde: Some(evs),
            },
            &[&name],
        );
        KTable {
            b,
            node: name,
            store: Some(store),
            ks: Some(Serdes::session_windowed(ks)),
            vs: m.value_serde,
            sources: src.sources.clone(),
            window_grace: Some(w.grace_ms),
            _p: PhantomData,
        }
    }
}

/// Kafka's TimeWindowedKStream over SlidingWindows.
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K: Data + Clone, V: Data> SlidingWindowedKStream<K, V> {
    /// Kafka's sliding-window `count`.
    pub fn count(&self, m: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = if m.value_serde.is_none() {
            m.with_value_serde(Serdes::i64())
        } else {
            m
        };
        self.aggregate(|| 0i64, |_, _, c| c + 1, m)
    }

    /// Kafka's sliding-window `aggregate`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.stream.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-AGGREGATE-STATE-STORE-"));
        let name = b.new_name("KSTREAM-AGGREGATE-");
        let src = self.grouped.prepared(&store);
        let ks = m.key_serde.clone().or_else(|| self.grouped.ks.clone());
        let (Some(ks), Some(eks), Some(evs)) = (ks.clone(), erased(&ks), erased(&m.value_serde))
        else {
            b.error(format!(
                "sliding-window store {store} needs key and aggregate serdes"
            ));
            return KTable::dangling(b, name);
        };
        let w = self.windows;
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        let init: Arc<dyn Fn() -> Dyn + Send + Sync> = Arc::new(move || Arc::new(init()) as Dyn);
        let aggregator = Arc::new(aggregator);
        let erased_agg: ErasedAgg = Arc::new(move |k: &Dyn, v: &Dyn, old: Option<&Dyn>| {
            let (k, v, o) = (
                k.downcast_ref::<K>()?,
                v.downcast_ref::<V>()?,
                old?.downcast_ref::<VA>()?,
            );
            Some(Arc::new(aggregator(k, v, o)) as Dyn)
        });
        let wrap: WrapWindowed = Arc::new(|k: &Dyn, w| {
            Some(Arc::new(Windowed {
                key: k.downcast_ref::<K>()?.clone(),
                window: w,
            }) as Dyn)
        });
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(SlidingAggregateProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                    init: init.clone(),
                    agg: erased_agg.clone(),
                    wrap: wrap.clone(),
                    d: w.time_difference_ms,
                    grace: w.grace_ms,
                    observed: i64::MIN,
                }) as Box<dyn Processor>
            }),
            &[&src.node],
        );
        let retention = 2 * w.time_difference_ms + w.grace_ms + 1;
        b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::Window {
                    retention_ms: retention,
                    retain_duplicates: false,
                },
                logging: m.logging,
                caching: false,
                key_serde: Some(eks.clone()),
                value_serde: Some(evs),
            },
            &[&name],
        );
        KTable {
            b,
            node: name,
            store: Some(store),
            // Sliding windows span d + 1 ms (both ends inclusive).
            ks: Some(Serdes::time_windowed(ks, w.time_difference_ms)),
            vs: m.value_serde,
            sources: src.sources.clone(),
            window_grace: Some(w.grace_ms),
            _p: PhantomData,
        }
    }
}

/// Kafka's TimeWindowedKStream: tumbling or hopping windowed aggregations.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K: Data + Clone, V: Data> TimeWindowedKStream<K, V> {
    /// Kafka's windowed `count`.
    pub fn count(&self, m: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = if m.value_serde.is_none() {
            m.with_value_serde(Serdes::i64())
        } else {
            m
        };
        self.aggregate(|| 0i64, |_, _, c| c + 1, m)
    }

    /// Kafka's windowed `aggregate`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.stream.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-AGGREGATE-STATE-STORE-"));
        let name = b.new_name("KSTREAM-AGGREGATE-");
        let src = self.grouped.prepared(&store);
        let ks = m.key_serde.clone().or_else(|| self.grouped.ks.clone());
        let (Some(ks), Some(eks), Some(evs)) = (ks.clone(), erased(&ks), erased(&m.value_serde))
        else {
            b.error(format!("windowed store {store} needs key and value serdes"));
            return KTable::dangling(b, name);
        };
        let windows = self.windows;
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        let init = Arc::new(init);
        let aggregator = Arc::new(aggregator);
        let erased_agg: ErasedAgg = Arc::new(move |k: &Dyn, v: &Dyn, old: Option<&Dyn>| {
            let (Some(k), Some(v)) = (k.downcast_ref::<K>(), v.downcast_ref::<V>()) else {
                return None;
            };
            let out = match old.and_then(|o| o.downcast_ref::<VA>()) {
                Some(o) => aggregator(k, v, o),
                None => aggregator(k, v, &init()),
            };
            Some(Arc::new(out) as Dyn)
        });
        let wrap: WrapWindowed = Arc::new(|k: &Dyn, w| {
            let k = k.downcast_ref::<K>()?;
            Some(Arc::new(Windowed {
                key: k.clone(),
                window: w,
            }) as Dyn)
        });
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(WindowAggregateProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                    agg: erased_agg.clone(),
                    wrap: wrap.clone(),
                    windows,
                    observed: i64::MIN,
                }) as Box<dyn Processor>
            }),
            &[&src.node],
        );
        b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::Window {
                    retention_ms: windows.size_ms + windows.grace_ms,
                    retain_duplicates: false,
                },
                logging: m.logging,
                caching: false,
                key_serde: Some(eks),
                value_serde: Some(evs),
            },
            &[&name],
        );
        KTable {
            b,
            node: name,
            store: Some(store),
            ks: Some(Serdes::time_windowed(ks, windows.size_ms)),
            vs: m.value_serde,
            sources: src.sources.clone(),
            window_grace: Some(windows.grace_ms),
            _p: PhantomData,
        }
    }
}

/// Kafka's KTable: a changelog stream whose records are `Change`s of the latest value per key.
pub struct KTable<K, V> {
    pub(crate) b: StreamsBuilder,
    pub(crate) node: String,
    /// The store holding this table, when materialized (queryable, joinable).
    pub(crate) store: Option<String>,
    pub(crate) ks: Option<SerdeRef<K>>,
    pub(crate) vs: Option<SerdeRef<V>>,
    pub(crate) sources: BTreeSet<String>,
    /// For windowed aggregations: the windows' grace, which `suppress` waits for.
    pub(crate) window_grace: Option<i64>,
    pub(crate) _p: PhantomData<fn() -> (K, V)>,
}

impl<K: Data, V: Data> KTable<K, V> {
    fn dangling(b: StreamsBuilder, node: String) -> Self {
        KTable {
            b,
            node,
            store: None,
            ks: None,
            vs: None,
            sources: BTreeSet::new(),
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's `suppress(Suppressed.untilTimeLimit(limit, bufferConfig))`: each key's latest value
    /// is held until stream time passes the time the key was first buffered + `limit` (later
    /// updates replace the value but keep that time), then emitted once. A full buffer emits its
    /// oldest entries early, or fails the task with `shut_down_when_full()`. The buffer is a
    /// logged store, so it survives restarts.
    pub fn suppress_until_time_limit(
        &self,
        limit: std::time::Duration,
        buffer: crate::options::BufferConfig,
    ) -> KTable<K, V> {
        let b = self.b.clone();
        let name = b.new_name("KTABLE-SUPPRESS-");
        let store = b.new_name("KTABLE-SUPPRESS-STATE-STORE-");
        let (Some(eks), Some(evs)) = (erased(&self.ks), erased(&self.vs)) else {
            b.error(format!(
                "suppress after {} needs key and value serdes",
                self.node
            ));
            return KTable::dangling(b, name);
        };
        let limit = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        let st = store.clone();
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(crate::dsl_ops::SuppressTimeLimitProcessor {
                    store: st.clone(),
                    ks: eks.clone(),
                    vs: evs.clone(),
                    limit,
                    buffer,
                    size: None,
                }) as Box<dyn Processor>
            }),
            &[&self.node],
        );
        b.add_store(
            StoreDef {
                name: store,
                kind: StoreKind::KeyValue,
                logging: true,
                caching: false,
                key_serde: None,
                value_serde: None,
            },
            &[&name],
        );
        KTable {
            b: b.clone(),
            node: name,
            store: None,
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            sources: self.sources.clone(),
            window_grace: self.window_grace,
            _p: PhantomData,
        }
    }

    /// The name of the store a query can read (Kafka's `queryableStoreName()`).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn derived<V2: Data>(
        &self,
        prefix: &str,
        f: ChangeFn,
        vs: Option<SerdeRef<V2>>,
    ) -> KTable<K, V2> {
        let name = self.b.new_name(prefix);
        self.b.add_processor(
            &name,
            supplier(move |ctx, r| {
                let Some(c) = r.value_as::<Change>() else {
                    return Ok(());
                };
                let out = Change {
                    new: c.new.as_ref().and_then(|v| f(r.key.as_ref(), v)),
                    old: c.old.as_ref().and_then(|v| f(r.key.as_ref(), v)),
                };
                // Kafka forwards a delete for every row the filter drops (old values are not
                // sent downstream unless asked), so no skipping here.
                ctx.forward(r.clone().with_value(Some(Arc::new(out))))
            }),
            &[&self.node],
        );
        KTable {
            b: self.b.clone(),
            node: name,
            store: None,
            ks: self.ks.clone(),
            vs,
            sources: self.sources.clone(),
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's KTable `filter`: rows failing the predicate become deletes downstream.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.derived(
            "KTABLE-FILTER-",
            Arc::new(move |k, v| {
                let (k, vv) = (k?.downcast_ref::<K>()?, v.downcast_ref::<V>()?);
                pred(k, vv).then(|| v.clone())
            }),
            self.vs.clone(),
        )
    }

    /// Kafka's KTable `filterNot`.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !pred(k, v))
    }

    /// Kafka's KTable `mapValues`.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.derived(
            "KTABLE-MAPVALUES-",
            Arc::new(move |_, v| Some(Arc::new(f(v.downcast_ref::<V>()?)) as Dyn)),
            None,
        )
    }

    fn table_join_impl<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        this_alone: bool,
        other_alone: bool,
        joiner: crate::dsl_ops::ErasedJoiner,
    ) -> KTable<K, VR> {
        let b = self.b.clone();
        let this_name = b.new_name("KTABLE-JOINTHIS-");
        let other_name = b.new_name("KTABLE-JOINOTHER-");
        let merge = b.new_name("KTABLE-MERGE-");
        let (Some(ts), Some(os)) = (self.store.clone(), other.store.clone()) else {
            b.error(format!(
                "table-table join of {} and {}: both tables must be materialized",
                self.node, other.node
            ));
            return KTable::dangling(b, merge);
        };
        let ks = self.ks.clone().or_else(|| other.ks.clone());
        let (Some(eks), Some(etv), Some(eov)) = (erased(&ks), erased(&self.vs), erased(&other.vs))
        else {
            b.error(format!(
                "table-table join of {} and {} needs serdes",
                self.node, other.node
            ));
            return KTable::dangling(b, merge);
        };
        let mk = |other_store: String, left_side: bool, ta: bool, oa: bool, ov: ErasedSerde| {
            let (ks, joiner) = (eks.clone(), joiner.clone());
            Arc::new(move || {
                Box::new(TableJoinProcessor {
                    other_store: other_store.clone(),
                    left_side,
                    this_alone: ta,
                    other_alone: oa,
                    joiner: joiner.clone(),
                    ks: ks.clone(),
                    other_vs: ov.clone(),
                }) as Box<dyn Processor>
            }) as ProcessorSupplier
        };
        b.add_processor(
            &this_name,
            mk(os.clone(), true, this_alone, other_alone, eov),
            &[&self.node],
        );
        b.add_processor(
            &other_name,
            mk(ts.clone(), false, other_alone, this_alone, etv),
            &[&other.node],
        );
        b.connect_store(&this_name, &os);
        b.connect_store(&other_name, &ts);
        b.add_processor(
            &merge,
            supplier(|ctx, r| ctx.forward(r)),
            &[&this_name, &other_name],
        );
        let mut g = self.sources.clone();
        g.extend(other.sources.iter().cloned());
        b.with_topo(|t| {
            t.copartition_groups.push(g.clone());
            Ok(())
        });
        KTable {
            b: b.clone(),
            node: merge,
            store: None,
            ks,
            vs: None,
            sources: g,
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's KTable-KTable inner `join` (primary key). Both tables must be materialized.
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join_impl(
            other,
            false,
            false,
            Arc::new(move |a, b| {
                let (a, b) = (a?.downcast_ref::<V>()?, b?.downcast_ref::<VO>()?);
                Some(Arc::new(joiner(a, b)) as Dyn)
            }),
        )
    }

    /// Kafka's KTable-KTable `leftJoin`.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join_impl(
            other,
            true,
            false,
            Arc::new(move |a, b| {
                let a = a?.downcast_ref::<V>()?;
                Some(Arc::new(joiner(a, b.and_then(|b| b.downcast_ref::<VO>()))) as Dyn)
            }),
        )
    }

    /// Kafka's KTable-KTable `outerJoin`.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join_impl(
            other,
            true,
            true,
            Arc::new(move |a, b| {
                Some(Arc::new(joiner(
                    a.and_then(|a| a.downcast_ref::<V>()),
                    b.and_then(|b| b.downcast_ref::<VO>()),
                )) as Dyn)
            }),
        )
    }

    /// Kafka's KTable `groupBy(KeyValueMapper, Grouped)`: re-key every row; aggregations of the
    /// result subtract a row's old value and add its new one. Always repartitions.
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let name = self.b.new_name("KTABLE-SELECT-");
        self.b.add_processor(
            &name,
            supplier(move |ctx, r| {
                let Some(c) = r.value_as::<Change>() else {
                    return Ok(());
                };
                let Some(k) = r.key_as::<K>() else {
                    return Ok(());
                };
                // Subtract first, then add, as Kafka's KTableRepartitionMap sends them.
                if let Some(old) = c.old.as_ref().and_then(|o| o.downcast_ref::<V>()) {
                    let (k2, v2) = f(k, old);
                    let ch = Change {
                        new: None,
                        old: Some(Arc::new(v2)),
                    };
                    ctx.forward(Record::new(
                        Some(Arc::new(k2)),
                        Some(Arc::new(ch)),
                        r.timestamp,
                    ))?;
                }
                if let Some(new) = c.new.as_ref().and_then(|n| n.downcast_ref::<V>()) {
                    let (k2, v2) = f(k, new);
                    let ch = Change {
                        new: Some(Arc::new(v2)),
                        old: None,
                    };
                    ctx.forward(Record::new(
                        Some(Arc::new(k2)),
                        Some(Arc::new(ch)),
                        r.timestamp,
                    ))?;
                }
                Ok(())
            }),
            &[&self.node],
        );
        KGroupedTable {
            b: self.b.clone(),
            node: name,
            name: grouped.name,
            ks: grouped.key_serde,
            vs: grouped.value_serde,
        }
    }

    /// Kafka's `toStream()`: each update as a record (deletes as null values).
    pub fn to_stream(&self) -> KStream<K, V> {
        let name = self.b.new_name("KTABLE-TOSTREAM-");
        self.b.add_processor(
            &name,
            supplier(|ctx, r| {
                let Some(c) = r.value_as::<Change>() else {
                    return Ok(());
                };
                let v = c.new.clone();
                ctx.forward(r.clone().with_value(v))
            }),
            &[&self.node],
        );
        KStream {
            b: self.b.clone(),
            node: name,
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            repartition: false,
            sources: self.sources.clone(),
            _p: PhantomData,
        }
    }
}

/// Kafka's GlobalKTable: a table every instance holds in full, joined by a key mapper.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) ks: Option<SerdeRef<K>>,
    pub(crate) vs: Option<SerdeRef<V>>,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the global store (queryable with `store()`).
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn join_global_impl<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: impl Fn(Option<&K>, &V) -> KG + Send + Sync + 'static,
        left: bool,
        joiner: Arc<dyn Fn(&V, Option<&VG>) -> Option<VR> + Send + Sync>,
    ) -> KStream<K, VR> {
        let name = self.b.new_name("KSTREAM-JOIN-");
        let (Some(ks), Some(vs)) = (table.ks.clone(), table.vs.clone()) else {
            self.b
                .error(format!("global table {} has no serdes", table.store));
            return self.child(name, None, None, false);
        };
        let store = table.store.clone();
        self.b.add_processor(
            &name,
            supplier(move |ctx, r| {
                let Some(v) = r.value_as::<V>() else {
                    return Ok(());
                };
                let kg = key_mapper(r.key_as::<K>(), v);
                let kb = ks.serialize(&store, &kg)?;
                let found = match ctx.global_get(&store, &kb)? {
                    Some(b) => Some(vs.deserialize(&store, &b)?),
                    None => None,
                };
                if found.is_none() && !left {
                    return Ok(());
                }
                match joiner(v, found.as_ref()) {
                    Some(out) => ctx.forward(r.clone().with_value(Some(Arc::new(out)))),
                    None => Ok(()),
                }
            }),
            &[&self.node],
        );
        self.child(name, self.ks.clone(), None, self.repartition)
    }

    /// Kafka's KStream-GlobalKTable inner `join`; `key_mapper` picks the table key per record.
    pub fn join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: impl Fn(Option<&K>, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_global_impl(
            table,
            key_mapper,
            false,
            Arc::new(move |v, g| g.map(|g| joiner(v, g))),
        )
    }

    /// Kafka's KStream-GlobalKTable `leftJoin`.
    pub fn left_join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: impl Fn(Option<&K>, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_global_impl(
            table,
            key_mapper,
            true,
            Arc::new(move |v, g| Some(joiner(v, g))),
        )
    }
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Kafka's `suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))`: only the final
    /// result of each window is emitted, once stream time passes window end + grace. The buffer is
    /// a logged store, so it survives restarts.
    pub fn suppress_until_window_closes(&self) -> KTable<Windowed<K>, V> {
        let b = self.b.clone();
        let name = b.new_name("KTABLE-SUPPRESS-");
        let store = b.new_name("KTABLE-SUPPRESS-STATE-STORE-");
        let Some(grace) = self.window_grace else {
            b.error(format!(
                "suppress until window closes needs a windowed aggregation upstream of {}",
                self.node
            ));
            return KTable::dangling(b, name);
        };
        let (Some(eks), Some(evs)) = (erased(&self.ks), erased(&self.vs)) else {
            b.error(format!(
                "suppress after {} needs key and value serdes",
                self.node
            ));
            return KTable::dangling(b, name);
        };
        let st = store.clone();
        let (k2, v2) = (eks.clone(), evs.clone());
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(crate::dsl_ops::SuppressProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: v2.clone(),
                    grace,
                    window_end: Arc::new(|k: &Dyn| {
                        k.downcast_ref::<Windowed<K>>().map(|w| w.window.end)
                    }),
                }) as Box<dyn Processor>
            }),
            &[&self.node],
        );
        b.add_store(
            StoreDef {
                name: store,
                kind: StoreKind::KeyValue,
                logging: true,
                caching: false,
                key_serde: None,
                value_serde: None,
            },
            &[&name],
        );
        KTable {
            b: b.clone(),
            node: name,
            store: None,
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            sources: self.sources.clone(),
            window_grace: self.window_grace,
            _p: PhantomData,
        }
    }
}

/// Kafka's KGroupedTable.
pub struct KGroupedTable<K, V> {
    b: StreamsBuilder,
    node: String,
    name: Option<String>,
    ks: Option<SerdeRef<K>>,
    vs: Option<SerdeRef<V>>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Kafka's `aggregate(Initializer, adder, subtractor, Materialized)`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let wrap = |f: Arc<dyn Fn(&K, &V, &VA) -> VA + Send + Sync>| -> ErasedAgg {
            Arc::new(move |k: &Dyn, v: &Dyn, a: Option<&Dyn>| {
                let (k, v, a) = (
                    k.downcast_ref::<K>()?,
                    v.downcast_ref::<V>()?,
                    a?.downcast_ref::<VA>()?,
                );
                Some(Arc::new(f(k, v, a)) as Dyn)
            })
        };
        let init: Arc<dyn Fn() -> Dyn + Send + Sync> = Arc::new(move || Arc::new(init()) as Dyn);
        self.aggregate_erased(
            Some(init),
            wrap(Arc::new(adder)),
            wrap(Arc::new(subtractor)),
            m,
        )
    }

    fn aggregate_erased<VA: Data>(
        &self,
        init: Option<Arc<dyn Fn() -> Dyn + Send + Sync>>,
        adder: ErasedAgg,
        subtractor: ErasedAgg,
        m: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let b = self.b.clone();
        let store = m
            .store_name
            .clone()
            .unwrap_or_else(|| b.new_name("KTABLE-AGGREGATE-STATE-STORE-"));
        let name = b.new_name("KTABLE-AGGREGATE-");
        let prefix = self.name.clone().unwrap_or_else(|| store.clone());
        let ks = m.key_serde.clone().or_else(|| self.ks.clone());
        let (Some(eks), Some(evs), Some(eas)) =
            (erased(&ks), erased(&self.vs), erased(&m.value_serde))
        else {
            b.error(format!(
                "table aggregation {store} needs key and value serdes (Grouped::with) and an aggregate serde (Materialized::with_value_serde)"
            ));
            return KTable::dangling(b, name);
        };
        let topic = format!("{prefix}-repartition");
        let (sink, source) = (
            format!("{prefix}-repartition-sink"),
            format!("{prefix}-repartition-source"),
        );
        let cs = change_serde(evs);
        let (t2, sink2, source2, node) = (
            topic.clone(),
            sink.clone(),
            source.clone(),
            self.node.clone(),
        );
        let (k3, c3) = (eks.clone(), cs.clone());
        b.with_topo(move |t| {
            t.internal_topics.insert(t2.clone());
            t.add_sink(
                &sink2,
                SinkTopic::Fixed(t2.clone()),
                Some(k3.clone()),
                Some(c3.clone()),
                &[&node],
            )?;
            t.add_source(&source2, &[&t2], Some(k3), Some(c3))?;
            Ok(())
        });
        let st = store.clone();
        let (k2, a2) = (eks.clone(), eas.clone());
        b.add_processor(
            &name,
            Arc::new(move || {
                Box::new(TableAggregateProcessor {
                    store: st.clone(),
                    ks: k2.clone(),
                    vs: a2.clone(),
                    init: init.clone(),
                    adder: adder.clone(),
                    subtractor: subtractor.clone(),
                }) as Box<dyn Processor>
            }),
            &[&source],
        );
        b.add_store(
            StoreDef {
                name: store.clone(),
                kind: StoreKind::KeyValue,
                logging: m.logging,
                caching: m.caching,
                key_serde: Some(eks),
                value_serde: Some(eas),
            },
            &[&name],
        );
        KTable {
            b,
            node: name,
            store: Some(store),
            ks,
            vs: m.value_serde,
            sources: [topic].into_iter().collect(),
            window_grace: None,
            _p: PhantomData,
        }
    }

    /// Kafka's KGroupedTable `count`.
    pub fn count(&self, m: Materialized<K, i64>) -> KTable<K, i64> {
        let m = if m.value_serde.is_none() {
            m.with_value_serde(Serdes::i64())
        } else {
            m
        };
        self.aggregate(|| 0i64, |_, _, c| c + 1, |_, _, c| c - 1, m)
    }

    /// Kafka's KGroupedTable `reduce(adder, subtractor, Materialized)`: the first value is the
    /// aggregate; later rows are added and replaced rows subtracted.
    pub fn reduce(
        &self,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        m: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        V: Clone,
    {
        let m = if m.value_serde.is_none() {
            match self.vs.clone() {
                Some(s) => m.with_value_serde(s),
                None => m,
            }
        } else {
            m
        };
        let add: ErasedAgg = Arc::new(move |_: &Dyn, v: &Dyn, a: Option<&Dyn>| {
            let v = v.downcast_ref::<V>()?;
            Some(Arc::new(match a.and_then(|a| a.downcast_ref::<V>()) {
                Some(a) => adder(a, v),
                None => v.clone(),
            }) as Dyn)
        });
        let sub: ErasedAgg = Arc::new(move |_: &Dyn, v: &Dyn, a: Option<&Dyn>| {
            let (v, a) = (v.downcast_ref::<V>()?, a?.downcast_ref::<V>()?);
            Some(Arc::new(subtractor(a, v)) as Dyn)
        });
        self.aggregate_erased(None, add, sub, m)
    }
}
