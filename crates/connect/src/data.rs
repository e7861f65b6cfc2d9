//! Connect's data model: [`Schema`], [`Field`], [`Struct`] and [`Value`], as in
//! `org.apache.kafka.connect.data`.
//!
//! A schema is optional or required and may carry a default, a name, a version, a doc string and
//! parameters; logical types (Decimal, Date, Time, Timestamp) are named schemas over a primitive type.
//! Values of logical types are kept in their underlying representation (Date as `Int32` days since
//! the epoch, Time as `Int32` milliseconds since midnight, Timestamp as `Int64` milliseconds since
//! the epoch, Decimal as `Bytes` of the unscaled two's-complement big-endian integer), which is what
//! converters put on the wire anyway; Rust has no `java.util.Date` to map them to.

use std::fmt;
use std::sync::Arc;

use crate::error::ConnectError;

/// The logical type name of a decimal (bytes, parameter `scale`).
pub const DECIMAL_LOGICAL_NAME: &str = "org.apache.kafka.connect.data.Decimal";
/// The logical type name of a date (int32 days since the epoch).
pub const DATE_LOGICAL_NAME: &str = "org.apache.kafka.connect.data.Date";
/// The logical type name of a time of day (int32 milliseconds since midnight).
pub const TIME_LOGICAL_NAME: &str = "org.apache.kafka.connect.data.Time";
/// The logical type name of a timestamp (int64 milliseconds since the epoch).
pub const TIMESTAMP_LOGICAL_NAME: &str = "org.apache.kafka.connect.data.Timestamp";

/// Schema types, as `Schema.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// Kafka's upper-case name (`INT32`, `STRUCT`, ...), used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "INT8",
            SchemaType::Int16 => "INT16",
            SchemaType::Int32 => "INT32",
            SchemaType::Int64 => "INT64",
            SchemaType::Float32 => "FLOAT32",
            SchemaType::Float64 => "FLOAT64",
            SchemaType::Boolean => "BOOLEAN",
            SchemaType::String => "STRING",
            SchemaType::Bytes => "BYTES",
            SchemaType::Array => "ARRAY",
            SchemaType::Map => "MAP",
            SchemaType::Struct => "STRUCT",
        }
    }

    /// True for the types that hold no other schema.
    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

/// A Connect schema. Built with the constructors and chained setters (`Schema::int32().optional()`),
/// which play the role of Kafka's `SchemaBuilder`.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub default_value: Option<Box<Value>>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// Kept in insertion order, as Kafka's LinkedHashMap does, so JSON output keeps it too.
    pub parameters: Option<Vec<(String, String)>>,
    pub fields: Vec<Field>,
    pub key_schema: Option<Arc<Schema>>,
    pub value_schema: Option<Arc<Schema>>,
}

/// One field of a struct schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Arc<Schema>,
}

impl Schema {
    /// A required schema of the given type with nothing else set.
    pub fn of(schema_type: SchemaType) -> Schema {
        Schema {
            schema_type,
            optional: false,
            default_value: None,
            name: None,
            version: None,
            doc: None,
            parameters: None,
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }
    pub fn int8() -> Schema {
        Schema::of(SchemaType::Int8)
    }
    pub fn int16() -> Schema {
        Schema::of(SchemaType::Int16)
    }
    pub fn int32() -> Schema {
        Schema::of(SchemaType::Int32)
    }
    pub fn int64() -> Schema {
        Schema::of(SchemaType::Int64)
    }
    pub fn float32() -> Schema {
        Schema::of(SchemaType::Float32)
    }
    pub fn float64() -> Schema {
        Schema::of(SchemaType::Float64)
    }
    pub fn boolean() -> Schema {
        Schema::of(SchemaType::Boolean)
    }
    pub fn string() -> Schema {
        Schema::of(SchemaType::String)
    }
    pub fn bytes() -> Schema {
        Schema::of(SchemaType::Bytes)
    }
    pub fn struct_() -> Schema {
        Schema::of(SchemaType::Struct)
    }
    pub fn array(items: Schema) -> Schema {
        let mut s = Schema::of(SchemaType::Array);
        s.value_schema = Some(Arc::new(items));
        s
    }
    pub fn map(keys: Schema, values: Schema) -> Schema {
        let mut s = Schema::of(SchemaType::Map);
        s.key_schema = Some(Arc::new(keys));
        s.value_schema = Some(Arc::new(values));
        s
    }
    /// Decimal logical type with the given scale.
    pub fn decimal(scale: i32) -> Schema {
        Schema::bytes()
            .name(DECIMAL_LOGICAL_NAME)
            .version(1)
            .parameter("scale", &scale.to_string())
    }
    /// Date logical type.
    pub fn date() -> Schema {
        Schema::int32().name(DATE_LOGICAL_NAME).version(1)
    }
    /// Time logical type.
    pub fn time() -> Schema {
        Schema::int32().name(TIME_LOGICAL_NAME).version(1)
    }
    /// Timestamp logical type.
    pub fn timestamp() -> Schema {
        Schema::int64().name(TIMESTAMP_LOGICAL_NAME).version(1)
    }

    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }
    pub fn required(mut self) -> Schema {
        self.optional = false;
        self
    }
    pub fn name(mut self, name: &str) -> Schema {
        self.name = Some(name.to_string());
        self
    }
    pub fn version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }
    pub fn doc(mut self, doc: &str) -> Schema {
        self.doc = Some(doc.to_string());
        self
    }
    pub fn parameter(mut self, key: &str, value: &str) -> Schema {
        let params = self.parameters.get_or_insert_with(Vec::new);
        params.retain(|(k, _)| k != key);
        params.push((key.to_string(), value.to_string()));
        self
    }
    /// Sets the default value; it must be valid for the schema, as `SchemaBuilder.defaultValue` checks.
    pub fn default_value(mut self, value: Value) -> Result<Schema, ConnectError> {
        validate_value(&self, &value)?;
        self.default_value = Some(Box::new(value));
        Ok(self)
    }
    /// Adds a field to a struct schema. Field names must be unique.
    pub fn field(mut self, name: &str, schema: Schema) -> Result<Schema, ConnectError> {
        if self.schema_type != SchemaType::Struct {
            return Err(ConnectError::Schema(format!(
                "Cannot create fields on type {}",
                self.schema_type.name()
            )));
        }
        if self.fields.iter().any(|f| f.name == name) {
            return Err(ConnectError::Schema(format!(
                "Cannot create field because of field name duplication {name}"
            )));
        }
        let index = self.fields.len();
        self.fields.push(Field {
            name: name.to_string(),
            index,
            schema: Arc::new(schema),
        });
        Ok(self)
    }

    /// Looks a struct field up by name.
    pub fn field_by_name(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The optional string schema, used for schemaless strings (Kafka's `OPTIONAL_STRING_SCHEMA`).
    pub fn optional_string() -> Arc<Schema> {
        Arc::new(Schema::string().optional())
    }
    /// The optional bytes schema (Kafka's `OPTIONAL_BYTES_SCHEMA`).
    pub fn optional_bytes() -> Arc<Schema> {
        Arc::new(Schema::bytes().optional())
    }
}

/// A Connect value. Map entries keep their order; keys may be any value, as in Connect.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The schema type this value would have without a schema (`ConnectSchema.schemaType(class)`).
    pub fn inferred_type(&self) -> Option<SchemaType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => SchemaType::Boolean,
            Value::Int8(_) => SchemaType::Int8,
            Value::Int16(_) => SchemaType::Int16,
            Value::Int32(_) => SchemaType::Int32,
            Value::Int64(_) => SchemaType::Int64,
            Value::Float32(_) => SchemaType::Float32,
            Value::Float64(_) => SchemaType::Float64,
            Value::String(_) => SchemaType::String,
            Value::Bytes(_) => SchemaType::Bytes,
            Value::Array(_) => SchemaType::Array,
            Value::Map(_) => SchemaType::Map,
            Value::Struct(_) => SchemaType::Struct,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}

/// Formats like Java's `toString()` of the value Connect would hold (`Struct{a=1,b=x}`, `{k=v}`,
/// `[a, b]`), which is what FileStreamSink and StringConverter write for non-string values.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) => write!(f, "{v}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Float32(v) => f.write_str(&crate::json::java_float(*v)),
            Value::Float64(v) => f.write_str(&crate::json::java_double(*v)),
            Value::String(s) => f.write_str(s),
            // Java prints an array identity here; the hex bytes are more useful and as opaque.
            Value::Bytes(b) => {
                f.write_str("[B@")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(s) => write!(f, "{s}"),
        }
    }
}

/// A struct value: a struct schema and one value per field (Null when unset).
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    schema: Arc<Schema>,
    values: Vec<Value>,
}

impl Struct {
    /// An empty struct of the schema; fails if the schema is not a struct schema.
    pub fn new(schema: Arc<Schema>) -> Result<Struct, ConnectError> {
        if schema.schema_type != SchemaType::Struct {
            return Err(ConnectError::Data(
                "Not a struct schema: ".to_string() + schema.schema_type.name(),
            ));
        }
        let values = vec![Value::Null; schema.fields.len()];
        Ok(Struct { schema, values })
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Sets a field, checking the value against the field's schema.
    pub fn put(mut self, name: &str, value: impl Into<Value>) -> Result<Struct, ConnectError> {
        self.set(name, value.into())?;
        Ok(self)
    }

    /// Sets a field in place.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), ConnectError> {
        let field = self
            .schema
            .field_by_name(name)
            .ok_or_else(|| ConnectError::Data(format!("{name} is not a valid field name")))?;
        validate_value(&field.schema, &value)
            .map_err(|e| ConnectError::Data(format!("Invalid value for field \"{name}\": {e}")))?;
        self.values[field.index] = value;
        Ok(())
    }

    /// The field's value, or its schema default when unset (as `Struct.get`).
    pub fn get(&self, name: &str) -> Option<&Value> {
        let field = self.schema.field_by_name(name)?;
        let v = &self.values[field.index];
        if v.is_null()
            && let Some(d) = &field.schema.default_value
        {
            return Some(d);
        }
        Some(v)
    }

    /// The field's value without applying defaults (`Struct.getWithoutDefault`).
    pub fn get_without_default(&self, name: &str) -> Option<&Value> {
        let field = self.schema.field_by_name(name)?;
        Some(&self.values[field.index])
    }

    /// Checks every field against its schema: required fields without a default must be set.
    pub fn validate(&self) -> Result<(), ConnectError> {
        for field in &self.schema.fields {
            validate_value(&field.schema, &self.values[field.index]).map_err(|e| {
                ConnectError::Data(format!("Invalid value for field \"{}\": {e}", field.name))
            })?;
        }
        Ok(())
    }
}

impl fmt::Display for Struct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kafka's Struct.toString lists only the fields that are set.
        f.write_str("Struct{")?;
        let mut first = true;
        for field in &self.schema.fields {
            let v = &self.values[field.index];
            if v.is_null() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={v}", field.name)?;
        }
        f.write_str("}")
    }
}

/// Checks a value against a schema, as `ConnectSchema.validateValue`.
pub fn validate_value(schema: &Schema, value: &Value) -> Result<(), ConnectError> {
    if value.is_null() {
        if schema.optional || schema.default_value.is_some() {
            return Ok(());
        }
        return Err(ConnectError::Data(
            "Invalid value: null used for required field".to_string(),
        ));
    }
    let actual = value.inferred_type();
    if actual != Some(schema.schema_type) {
        return Err(ConnectError::Data(format!(
            "Invalid Java object for schema with type {}: {}",
            schema.schema_type.name(),
            actual.map(SchemaType::name).unwrap_or("null")
        )));
    }
    match value {
        Value::Array(items) => {
            if let Some(vs) = &schema.value_schema {
                for item in items {
                    validate_value(vs, item)?;
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                if let Some(ks) = &schema.key_schema {
                    validate_value(ks, k)?;
                }
                if let Some(vs) = &schema.value_schema {
                    validate_value(vs, v)?;
                }
            }
        }
        Value::Struct(s) => {
            if s.schema.as_ref() != schema {
                return Err(ConnectError::Data(
                    "Struct schemas do not match.".to_string(),
                ));
            }
            s.validate()?;
        }
        _ => {}
    }
    Ok(())
}

/// A schema (possibly absent, for schemaless data) and a value, as `SchemaAndValue`.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<Arc<Schema>>,
    pub value: Value,
}

impl SchemaAndValue {
    pub const NULL: SchemaAndValue = SchemaAndValue {
        schema: None,
        value: Value::Null,
    };

    pub fn new(schema: Option<Arc<Schema>>, value: Value) -> SchemaAndValue {
        SchemaAndValue { schema, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_and_defaults() {
        let schema = Arc::new(
            Schema::struct_()
                .field("id", Schema::int32())
                .and_then(|s| {
                    s.field(
                        "name",
                        Schema::string().optional().default_value("anon".into())?,
                    )
                })
                .expect("schema"),
        );
        let s = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 7))
            .expect("struct");
        assert_eq!(s.get("name"), Some(&Value::from("anon")));
        assert_eq!(s.get_without_default("name"), Some(&Value::Null));
        assert!(s.validate().is_ok());
        assert_eq!(s.to_string(), "Struct{id=7}");

        let missing = Struct::new(schema.clone()).expect("struct");
        assert!(missing.validate().is_err(), "required id unset");
        assert!(Struct::new(schema).expect("s").put("id", "x").is_err());
    }

    #[test]
    fn duplicate_fields_rejected() {
        let r = Schema::struct_()
            .field("a", Schema::int8())
            .and_then(|s| s.field("a", Schema::int8()));
        assert!(r.is_err());
    }
}
