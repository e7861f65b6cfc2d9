//! The record that flows between processors: a type-erased key and value (the typed DSL downcasts
//! them back), a timestamp and headers. Stores and topics only ever see bytes made by serdes.

use std::any::Any;
use std::sync::Arc;

/// A type-erased, shareable key or value. Forwarding to several children clones the `Arc`, not the data.
pub type Dyn = Arc<dyn Any + Send + Sync>;

/// Record headers as Kafka has them: ordered, duplicate keys allowed, values may be null.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// Kafka's `processor.api.Record`.
#[derive(Clone)]
pub struct Record {
    pub key: Option<Dyn>,
    pub value: Option<Dyn>,
    pub timestamp: i64,
    pub headers: Headers,
}

impl Record {
    pub fn new(key: Option<Dyn>, value: Option<Dyn>, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
    pub fn with_key(mut self, key: Option<Dyn>) -> Self {
        self.key = key;
        self
    }
    pub fn with_value(mut self, value: Option<Dyn>) -> Self {
        self.value = value;
        self
    }
    pub fn with_timestamp(mut self, ts: i64) -> Self {
        self.timestamp = ts;
        self
    }
    /// The key as `K`, if present and of that type.
    pub fn key_as<K: 'static>(&self) -> Option<&K> {
        self.key.as_ref().and_then(|k| k.downcast_ref::<K>())
    }
    /// The value as `V`, if present and of that type.
    pub fn value_as<V: 'static>(&self) -> Option<&V> {
        self.value.as_ref().and_then(|v| v.downcast_ref::<V>())
    }
}

/// Wraps a typed value into a [`Dyn`].
pub fn dyn_of<T: Send + Sync + 'static>(v: T) -> Dyn {
    Arc::new(v)
}

/// A KTable update as Kafka's `Change<V>`: the new value and the value it replaced (None = absent/tombstone).
#[derive(Clone, Default)]
pub struct Change {
    pub new: Option<Dyn>,
    pub old: Option<Dyn>,
}

/// Where the record being processed came from (Kafka's RecordMetadata).
#[derive(Clone, Debug, Default)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}
