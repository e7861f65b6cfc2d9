//! The DSL's option objects with Kafka's names: Consumed, Produced, Grouped, Materialized,
//! Repartitioned, Named. They carry serdes and names; nothing else.

use crate::serde::SerdeRef;

/// Kafka's Consumed: serdes (and a name) for a source.
pub struct Consumed<K, V> {
    pub key_serde: Option<SerdeRef<K>>,
    pub value_serde: Option<SerdeRef<V>>,
    pub name: Option<String>,
}

impl<K, V> Consumed<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Consumed {
            key_serde: Some(key),
            value_serde: Some(value),
            name: None,
        }
    }
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// Kafka's Produced: serdes (and a name) for a sink.
pub struct Produced<K, V> {
    pub key_serde: Option<SerdeRef<K>>,
    pub value_serde: Option<SerdeRef<V>>,
    pub name: Option<String>,
}

impl<K, V> Produced<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Produced {
            key_serde: Some(key),
            value_serde: Some(value),
            name: None,
        }
    }
    /// Use the serdes the stream already carries.
    pub fn default_serdes() -> Self {
        Produced {
            key_serde: None,
            value_serde: None,
            name: None,
        }
    }
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// Kafka's Grouped: serdes and the name of the repartition topic.
pub struct Grouped<K, V> {
    pub key_serde: Option<SerdeRef<K>>,
    pub value_serde: Option<SerdeRef<V>>,
    pub name: Option<String>,
}

impl<K, V> Grouped<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Grouped {
            key_serde: Some(key),
            value_serde: Some(value),
            name: None,
        }
    }
    pub fn as_(name: &str) -> Self {
        Grouped {
            key_serde: None,
            value_serde: None,
            name: Some(name.to_string()),
        }
    }
    pub fn default_serdes() -> Self {
        Grouped {
            key_serde: None,
            value_serde: None,
            name: None,
        }
    }
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// Kafka's Repartitioned: serdes, name and partition count of a repartition topic.
pub struct Repartitioned<K, V> {
    pub key_serde: Option<SerdeRef<K>>,
    pub value_serde: Option<SerdeRef<V>>,
    pub name: Option<String>,
    pub partitions: Option<i32>,
}

impl<K, V> Repartitioned<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Repartitioned {
            key_serde: Some(key),
            value_serde: Some(value),
            name: None,
            partitions: None,
        }
    }
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    pub fn with_number_of_partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}

/// Kafka's Materialized: the store name, serdes, caching and logging of a table's store.
pub struct Materialized<K, V> {
    pub store_name: Option<String>,
    pub key_serde: Option<SerdeRef<K>>,
    pub value_serde: Option<SerdeRef<V>>,
    pub caching: bool,
    pub logging: bool,
}

impl<K, V> Materialized<K, V> {
    /// Kafka's `Materialized.as(storeName)`.
    pub fn as_(store: &str) -> Self {
        Materialized {
            store_name: Some(store.to_string()),
            key_serde: None,
            value_serde: None,
            caching: true,
            logging: true,
        }
    }
    /// Kafka's `Materialized.with(keySerde, valueSerde)` (generated store name).
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Materialized {
            store_name: None,
            key_serde: Some(key),
            value_serde: Some(value),
            caching: true,
            logging: true,
        }
    }
    pub fn unnamed() -> Self {
        Materialized {
            store_name: None,
            key_serde: None,
            value_serde: None,
            caching: true,
            logging: true,
        }
    }
    pub fn with_key_serde(mut self, s: SerdeRef<K>) -> Self {
        self.key_serde = Some(s);
        self
    }
    pub fn with_value_serde(mut self, s: SerdeRef<V>) -> Self {
        self.value_serde = Some(s);
        self
    }
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
}

/// Kafka's `Suppressed.BufferConfig` for `untilTimeLimit`: how many records / bytes the suppression
/// buffer may hold, and what happens when it is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferConfig {
    pub max_records: Option<usize>,
    pub max_bytes: Option<usize>,
    /// Kafka's `shutDownWhenFull()`; the default (false) is `emitEarlyWhenFull()`.
    pub shut_down_when_full: bool,
}

impl BufferConfig {
    /// Kafka's `BufferConfig.unbounded()`.
    pub fn unbounded() -> Self {
        Self::default()
    }
    /// Kafka's `BufferConfig.maxRecords(n)` (emits the oldest early when full).
    pub fn max_records(n: usize) -> Self {
        Self {
            max_records: Some(n),
            ..Self::default()
        }
    }
    /// Kafka's `BufferConfig.maxBytes(n)` (emits the oldest early when full).
    pub fn max_bytes(n: usize) -> Self {
        Self {
            max_bytes: Some(n),
            ..Self::default()
        }
    }
    /// Kafka's `shutDownWhenFull()`: a full buffer fails the task instead of emitting early.
    pub fn shut_down_when_full(mut self) -> Self {
        self.shut_down_when_full = true;
        self
    }
    /// Kafka's `emitEarlyWhenFull()`.
    pub fn emit_early_when_full(mut self) -> Self {
        self.shut_down_when_full = false;
        self
    }
}
