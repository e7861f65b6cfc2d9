//! The processor graph (Kafka's Topology): sources, processors, sinks and state stores, its split into
//! sub-topologies, and `describe()` in Kafka's TopologyDescription format. Built by the Processor API
//! directly or by the DSL (`StreamsBuilder`); run by tasks. Holds no runtime state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::processor::Processor;
use crate::record::{Record, RecordMetadata};
use crate::serde::ErasedSerde;
use crate::state::StoreKind;

/// Makes a fresh processor for each task (Kafka's ProcessorSupplier).
pub type ProcessorSupplier = Arc<dyn Fn() -> Box<dyn Processor> + Send + Sync>;

/// Chooses the output topic of a record (Kafka's TopicNameExtractor).
pub type TopicNameExtractor = Arc<dyn Fn(&Record, &RecordMetadata) -> String + Send + Sync>;

#[derive(Clone)]
pub enum SinkTopic {
    Fixed(String),
    Extractor(TopicNameExtractor),
}

#[derive(Clone)]
pub enum NodeKind {
    Source {
        topics: Vec<String>,
        key: Option<ErasedSerde>,
        value: Option<ErasedSerde>,
    },
    Processor {
        supplier: ProcessorSupplier,
    },
    Sink {
        topic: SinkTopic,
        key: Option<ErasedSerde>,
        value: Option<ErasedSerde>,
    },
}

#[derive(Clone)]
pub struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub stores: Vec<String>,
}

/// A state store of the topology (Kafka's StoreBuilder, resolved).
#[derive(Clone)]
pub struct StoreDef {
    pub name: String,
    pub kind: StoreKind,
    pub logging: bool,
    pub caching: bool,
    pub key_serde: Option<ErasedSerde>,
    pub value_serde: Option<ErasedSerde>,
}

/// A GlobalKTable's store: filled from every partition of `topic` on every instance.
#[derive(Clone)]
pub struct GlobalStoreDef {
    pub store: StoreDef,
    pub topic: String,
    pub source: String,
    pub processor: String,
}

/// A connected part of the graph; one task per input partition runs it.
#[derive(Clone, Debug)]
pub struct Subtopology {
    pub id: usize,
    pub nodes: Vec<usize>,
    /// Source topics (short names; internal ones get the application id prefix at run time).
    pub source_topics: BTreeSet<String>,
    pub stores: BTreeSet<String>,
}

/// Kafka's Topology.
#[derive(Clone, Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: Vec<StoreDef>,
    /// Repartition topics, by short name (`<name>-repartition`).
    pub(crate) internal_topics: BTreeSet<String>,
    /// Partition count asked for repartition topics (Repartitioned::with_number_of_partitions).
    pub(crate) internal_partitions: BTreeMap<String, i32>,
    /// Groups of source topics that must be co-partitioned (joins).
    pub(crate) copartition_groups: Vec<BTreeSet<String>>,
    /// Global stores (GlobalKTables).
    pub(crate) globals: Vec<GlobalStoreDef>,
    /// Problems found while building with the DSL; `build()` reports them as a TopologyException.
    pub(crate) errors: Vec<String>,
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn add_node(&mut self, name: &str, kind: NodeKind, parents: &[&str]) -> Result<usize> {
        if self.index_of(name).is_some() {
            return Err(StreamsError::Topology(format!(
                "Processor {name} is already added."
            )));
        }
        let mut pidx = Vec::new();
        for p in parents {
            if *p == name {
                return Err(StreamsError::Topology(format!(
                    "Processor {name} cannot be a predecessor of itself."
                )));
            }
            let i = self.index_of(p).ok_or_else(|| {
                StreamsError::Topology(format!("Parent processor {p} is not added yet for {name}."))
            })?;
            if matches!(self.nodes[i].kind, NodeKind::Sink { .. }) {
                return Err(StreamsError::Topology(format!(
                    "Sink {p} cannot be used a parent."
                )));
            }
            pidx.push(i);
        }
        let idx = self.nodes.len();
        for &p in &pidx {
            self.nodes[p].children.push(idx);
        }
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind,
            parents: pidx,
            children: Vec::new(),
            stores: Vec::new(),
        });
        Ok(idx)
    }

    /// Kafka's `addSource(name, topics...)` with serdes (None = the record stays bytes: `Vec<u8>`).
    pub fn add_source(
        &mut self,
        name: &str,
        topics: &[&str],
        key: Option<ErasedSerde>,
        value: Option<ErasedSerde>,
    ) -> Result<&mut Self> {
        for t in topics {
            for n in &self.nodes {
                if let NodeKind::Source { topics: ts, .. } = &n.kind
                    && ts.iter().any(|x| x == t)
                {
                    return Err(StreamsError::Topology(format!(
                        "Topic {t} has already been registered by another source."
                    )));
                }
            }
        }
        if topics.is_empty() {
            return Err(StreamsError::Topology(format!(
                "Source {name} must have at least one topic."
            )));
        }
        self.add_node(
            name,
            NodeKind::Source {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                key,
                value,
            },
            &[],
        )?;
        Ok(self)
    }

    /// Kafka's `addProcessor(name, supplier, parentNames...)`.
    pub fn add_processor(
        &mut self,
        name: &str,
        supplier: ProcessorSupplier,
        parents: &[&str],
    ) -> Result<&mut Self> {
        if parents.is_empty() {
            return Err(StreamsError::Topology(format!(
                "Processor {name} must have at least one parent"
            )));
        }
        self.add_node(name, NodeKind::Processor { supplier }, parents)?;
        Ok(self)
    }

    /// Kafka's `addSink(name, topic, parentNames...)` with serdes.
    pub fn add_sink(
        &mut self,
        name: &str,
        topic: SinkTopic,
        key: Option<ErasedSerde>,
        value: Option<ErasedSerde>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        if parents.is_empty() {
            return Err(StreamsError::Topology(format!(
                "Sink {name} must have at least one parent"
            )));
        }
        self.add_node(name, NodeKind::Sink { topic, key, value }, parents)?;
        Ok(self)
    }

    /// Kafka's `addStateStore(storeBuilder, processorNames...)`.
    pub fn add_state_store(&mut self, store: StoreDef, processors: &[&str]) -> Result<&mut Self> {
        if self.stores.iter().any(|s| s.name == store.name) {
            return Err(StreamsError::Topology(format!(
                "StateStore {} is already added.",
                store.name
            )));
        }
        let name = store.name.clone();
        self.stores.push(store);
        self.connect_processor_and_state_stores(processors, &[&name])?;
        Ok(self)
    }

    /// Kafka's `connectProcessorAndStateStores`.
    pub fn connect_processor_and_state_stores(
        &mut self,
        processors: &[&str],
        stores: &[&str],
    ) -> Result<&mut Self> {
        for p in processors {
            let i = self.index_of(p).ok_or_else(|| {
                StreamsError::Topology(format!("Processor {p} is not added yet."))
            })?;
            for s in stores {
                if !self.stores.iter().any(|d| d.name == *s) {
                    return Err(StreamsError::Topology(format!(
                        "StateStore {s} is not added yet."
                    )));
                }
                if !self.nodes[i].stores.iter().any(|x| x == s) {
                    self.nodes[i].stores.push(s.to_string());
                }
            }
        }
        Ok(self)
    }

    pub(crate) fn store_def(&self, name: &str) -> Option<&StoreDef> {
        self.stores.iter().find(|s| s.name == name).or_else(|| {
            self.globals
                .iter()
                .map(|g| &g.store)
                .find(|s| s.name == name)
        })
    }

    /// Sub-topologies: nodes joined by edges or by a shared store, ordered by their first node.
    pub fn subtopologies(&self) -> Vec<Subtopology> {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut y = x;
            while p[y] != r {
                let nx = p[y];
                p[y] = r;
                y = nx;
            }
            r
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                let (lo, hi) = (ra.min(rb), ra.max(rb));
                p[hi] = lo;
            }
        };
        for (i, node) in self.nodes.iter().enumerate() {
            for &c in &node.children {
                union(&mut parent, i, c);
            }
        }
        let mut by_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for s in &node.stores {
                if let Some(&j) = by_store.get(s.as_str()) {
                    union(&mut parent, i, j);
                } else {
                    by_store.insert(s, i);
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        let mut out: Vec<Subtopology> = groups
            .into_values()
            .map(|nodes| {
                let mut source_topics = BTreeSet::new();
                let mut stores = BTreeSet::new();
                for &i in &nodes {
                    if let NodeKind::Source { topics, .. } = &self.nodes[i].kind {
                        source_topics.extend(topics.iter().cloned());
                    }
                    stores.extend(self.nodes[i].stores.iter().cloned());
                }
                Subtopology {
                    id: 0,
                    nodes,
                    source_topics,
                    stores,
                }
            })
            .collect();
        out.sort_by_key(|s| s.nodes[0]);
        for (i, s) in out.iter_mut().enumerate() {
            s.id = i;
        }
        out
    }

    /// Checks the graph is runnable: every processor reachable from a source.
    pub fn validate(&self) -> Result<()> {
        if let Some(e) = self.errors.first() {
            return Err(StreamsError::Topology(e.clone()));
        }
        for s in self.subtopologies() {
            if s.source_topics.is_empty() {
                let names: Vec<&str> = s
                    .nodes
                    .iter()
                    .map(|&i| self.nodes[i].name.as_str())
                    .collect();
                return Err(StreamsError::Topology(format!(
                    "sub-topology of {names:?} has no source"
                )));
            }
        }
        Ok(())
    }

    /// Kafka's `TopologyDescription`, formatted as its `toString()`.
    pub fn describe(&self) -> String {
        fn names(t: &Topology, idx: &[usize]) -> String {
            if idx.is_empty() {
                "none".to_string()
            } else {
                idx.iter()
                    .map(|&i| t.nodes[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
        let mut sb = String::from("Topologies:\n ");
        for s in self.subtopologies() {
            let _ = writeln!(sb, "  Sub-topology: {}", s.id);
            for &i in &s.nodes {
                let n = &self.nodes[i];
                match &n.kind {
                    NodeKind::Source { topics, .. } => {
                        let _ = writeln!(
                            sb,
                            "    Source: {} (topics: [{}])\n      --> {}",
                            n.name,
                            topics.join(", "),
                            names(self, &n.children)
                        );
                    }
                    NodeKind::Processor { .. } => {
                        let _ = writeln!(
                            sb,
                            "    Processor: {} (stores: [{}])\n      --> {}\n      <-- {}",
                            n.name,
                            n.stores.join(", "),
                            names(self, &n.children),
                            names(self, &n.parents)
                        );
                    }
                    NodeKind::Sink { topic, .. } => {
                        let t = match topic {
                            SinkTopic::Fixed(t) => format!("topic: {t}"),
                            SinkTopic::Extractor(_) => "extractor class: TopicNameExtractor".into(),
                        };
                        let _ = writeln!(
                            sb,
                            "    Sink: {} ({t})\n      <-- {}",
                            n.name,
                            names(self, &n.parents)
                        );
                    }
                }
            }
            sb.push('\n');
        }
        let n = self.subtopologies().len();
        for (i, g) in self.globals.iter().enumerate() {
            let _ = writeln!(
                sb,
                "  Sub-topology: {} for global store (will not generate tasks)\n    Source: {} (topics: [{}])\n      --> {}\n    Processor: {} (stores: [{}])\n      --> none\n      <-- {}\n",
                n + i,
                g.source,
                g.topic,
                g.processor,
                g.processor,
                g.store.name,
                g.source
            );
        }
        sb
    }

    /// The full name of a topic: internal topics get the `<application.id>-` prefix.
    pub fn resolve_topic(&self, application_id: &str, topic: &str) -> String {
        if self.internal_topics.contains(topic) {
            format!("{application_id}-{topic}")
        } else {
            topic.to_string()
        }
    }

    /// The changelog topic of a logged store: `<application.id>-<store>-changelog`.
    pub fn changelog_topic(application_id: &str, store: &str) -> String {
        format!("{application_id}-{store}-changelog")
    }

    /// Source topics of all sub-topologies that are user (not internal) topics.
    pub fn user_source_topics(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.globals.iter().map(|g| g.topic.clone()).collect();
        for n in &self.nodes {
            if let NodeKind::Source { topics, .. } = &n.kind {
                for t in topics {
                    if !self.internal_topics.contains(t) {
                        out.insert(t.clone());
                    }
                }
            }
        }
        out
    }
}

/// Kafka's `Stores` factory, for Processor API stores (`Topology::add_state_store`,
/// `StreamsBuilder::add_state_store`).
pub struct Stores;

impl Stores {
    /// A persistent key-value store, logged to `<application.id>-<name>-changelog`, not cached.
    pub fn key_value_store_builder<K: Send + Sync + 'static, V: Send + Sync + 'static>(
        name: &str,
        key: crate::serde::SerdeRef<K>,
        value: crate::serde::SerdeRef<V>,
    ) -> StoreDef {
        StoreDef {
            name: name.to_string(),
            kind: StoreKind::KeyValue,
            logging: true,
            caching: false,
            key_serde: Some(ErasedSerde::of(key)),
            value_serde: Some(ErasedSerde::of(value)),
        }
    }
}

impl StoreDef {
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
}
