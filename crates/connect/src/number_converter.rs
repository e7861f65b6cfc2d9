//! Kafka's number converters (`org.apache.kafka.connect.converters.IntegerConverter`,
//! `LongConverter`, `FloatConverter`, `DoubleConverter`, `ShortConverter`): a number as the
//! big-endian bytes Kafka's `IntegerSerializer` & co. write, a null as a null. Reading gives an
//! optional schema of the type, as Kafka's do.

use std::sync::Arc;

use crate::config_def::ConfigMap;
use crate::converter::Converter;
use crate::data::{Schema, SchemaAndValue, Value};
use crate::error::{ConnectError, Result};

/// Which number a [`NumberConverter`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberKind {
    Short,
    Integer,
    Long,
    Float,
    Double,
}

pub const SHORT_CONVERTER_CLASS: &str = "org.apache.kafka.connect.converters.ShortConverter";
pub const INTEGER_CONVERTER_CLASS: &str = "org.apache.kafka.connect.converters.IntegerConverter";
pub const LONG_CONVERTER_CLASS: &str = "org.apache.kafka.connect.converters.LongConverter";
pub const FLOAT_CONVERTER_CLASS: &str = "org.apache.kafka.connect.converters.FloatConverter";
pub const DOUBLE_CONVERTER_CLASS: &str = "org.apache.kafka.connect.converters.DoubleConverter";

pub const NUMBER_CONVERTER_CLASSES: &[(&str, NumberKind)] = &[
    (SHORT_CONVERTER_CLASS, NumberKind::Short),
    (INTEGER_CONVERTER_CLASS, NumberKind::Integer),
    (LONG_CONVERTER_CLASS, NumberKind::Long),
    (FLOAT_CONVERTER_CLASS, NumberKind::Float),
    (DOUBLE_CONVERTER_CLASS, NumberKind::Double),
];

/// One of Kafka's `NumberConverter`s.
#[derive(Debug)]
pub struct NumberConverter {
    kind: NumberKind,
}

impl NumberConverter {
    pub fn new(kind: NumberKind) -> NumberConverter {
        NumberConverter { kind }
    }

    /// By full or simple class name.
    pub fn for_class(class: &str) -> Option<NumberConverter> {
        let class = class.trim();
        NUMBER_CONVERTER_CLASSES
            .iter()
            .find(|(full, _)| class == *full || full.rsplit('.').next() == Some(class))
            .map(|(_, k)| NumberConverter::new(*k))
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            NumberKind::Short => "INT16",
            NumberKind::Integer => "INT32",
            NumberKind::Long => "INT64",
            NumberKind::Float => "FLOAT32",
            NumberKind::Double => "FLOAT64",
        }
    }

    fn size(&self) -> usize {
        match self.kind {
            NumberKind::Short => 2,
            NumberKind::Integer | NumberKind::Float => 4,
            NumberKind::Long | NumberKind::Double => 8,
        }
    }

    fn schema(&self) -> Schema {
        match self.kind {
            NumberKind::Short => Schema::int16(),
            NumberKind::Integer => Schema::int32(),
            NumberKind::Long => Schema::int64(),
            NumberKind::Float => Schema::float32(),
            NumberKind::Double => Schema::float64(),
        }
        .optional()
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "BOOLEAN",
        Value::Int8(_) => "INT8",
        Value::Int16(_) => "INT16",
        Value::Int32(_) => "INT32",
        Value::Int64(_) => "INT64",
        Value::Float32(_) => "FLOAT32",
        Value::Float64(_) => "FLOAT64",
        Value::String(_) => "STRING",
        Value::Bytes(_) => "BYTES",
        Value::Array(_) => "ARRAY",
        Value::Map(_) => "MAP",
        Value::Struct(_) => "STRUCT",
    }
}

impl Converter for NumberConverter {
    fn configure(&mut self, _configs: &ConfigMap, _is_key: bool) -> Result<()> {
        Ok(())
    }

    fn from_connect_data(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(s) = schema
            && s.schema_type != self.schema().schema_type
        {
            return Err(ConnectError::Data(format!(
                "Failed to serialize to {} (was {:?} schema) for topic {topic}",
                self.type_name(),
                s.schema_type
            )));
        }
        let bytes = match (self.kind, value) {
            (_, Value::Null) => return Ok(None),
            (NumberKind::Short, Value::Int16(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Integer, Value::Int32(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Long, Value::Int64(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Float, Value::Float32(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Double, Value::Float64(v)) => v.to_be_bytes().to_vec(),
            (_, other) => {
                return Err(ConnectError::Data(format!(
                    "Failed to serialize to {} (was {}) for topic {topic}",
                    self.type_name(),
                    kind_of(other)
                )));
            }
        };
        Ok(Some(bytes))
    }

    fn to_connect_data(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let schema = Some(Arc::new(self.schema()));
        let Some(b) = bytes else {
            return Ok(SchemaAndValue::new(schema, Value::Null));
        };
        if b.len() != self.size() {
            return Err(ConnectError::Data(format!(
                "Failed to deserialize {} from topic {topic}: size of data received is {}, not {}",
                self.type_name(),
                b.len(),
                self.size()
            )));
        }
        let mut a = [0u8; 8];
        a[..b.len()].copy_from_slice(b);
        let v = match self.kind {
            NumberKind::Short => Value::Int16(i16::from_be_bytes([a[0], a[1]])),
            NumberKind::Integer => Value::Int32(i32::from_be_bytes([a[0], a[1], a[2], a[3]])),
            NumberKind::Long => Value::Int64(i64::from_be_bytes(a)),
            NumberKind::Float => Value::Float32(f32::from_be_bytes([a[0], a[1], a[2], a[3]])),
            NumberKind::Double => Value::Float64(f64::from_be_bytes(a)),
        };
        Ok(SchemaAndValue::new(schema, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_bytes() {
        let c = NumberConverter::for_class("IntegerConverter").expect("class");
        assert_eq!(
            c.from_connect_data("t", None, &Value::Int32(-2))
                .expect("ser"),
            Some(vec![0xff, 0xff, 0xff, 0xfe])
        );
        assert_eq!(
            c.from_connect_data("t", None, &Value::Null).expect("null"),
            None
        );
        let back = c.to_connect_data("t", Some(&[0, 0, 1, 0])).expect("de");
        assert_eq!(back.value, Value::Int32(256));
        assert!(back.schema.as_ref().is_some_and(|s| s.optional));
        let err = c
            .to_connect_data("t", Some(&[1, 2]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("size of data received is 2, not 4"), "{err}");
        let err = c
            .from_connect_data("t", None, &Value::String("x".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("INT32 (was STRING)"), "{err}");
        let d = NumberConverter::for_class("org.apache.kafka.connect.converters.DoubleConverter")
            .expect("class");
        assert_eq!(
            d.from_connect_data("t", None, &Value::Float64(1.5))
                .expect("ser"),
            Some(1.5f64.to_be_bytes().to_vec())
        );
        assert!(NumberConverter::for_class("Nope").is_none());
    }
}
