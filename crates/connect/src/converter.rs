//! Converters between Connect data and record bytes: [`JsonConverter`] (with and without the
//! schema/payload envelope), [`StringConverter`] and [`ByteArrayConverter`], under Kafka's class
//! names.
//!
//! The JSON converter writes exactly the bytes Kafka's `org.apache.kafka.connect.json.JsonConverter`
//! writes for the same schema and value: the envelope `{"schema":...,"payload":...}` when
//! `schemas.enable=true` (the default), the bare value otherwise; schema objects list `type`, then
//! `items` / `keys`+`values` / `fields`, then `optional`, `name`, `version`, `doc`, `parameters`,
//! `default`, and each struct field's schema ends with `field`.

use std::sync::Arc;

use base64::Engine;

use crate::config_def::ConfigMap;
use crate::data::{DECIMAL_LOGICAL_NAME, Schema, SchemaAndValue, SchemaType, Struct, Value};
use crate::error::{ConnectError, Result};
use crate::json::JsonNode;

/// Converts Connect data to and from the bytes of a record key or value (`Converter`).
// Kafka's method names (`fromConnectData`) are kept, though they take `&self`.
#[allow(clippy::wrong_self_convention)]
pub trait Converter: Send {
    /// Configures the converter with its own keys (the worker strips `key.converter.` /
    /// `value.converter.` first); `is_key` tells which side it serves.
    fn configure(&mut self, configs: &ConfigMap, is_key: bool) -> Result<()>;
    /// Serializes; `None` means a null (tombstone) key or value.
    fn from_connect_data(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>>;
    /// Deserializes; `None` bytes give a null value.
    fn to_connect_data(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue>;
}

/// The full class names of the built-in converters, for plugin listings.
pub const CONVERTER_CLASSES: &[&str] = &[
    JSON_CONVERTER_CLASS,
    STRING_CONVERTER_CLASS,
    BYTE_ARRAY_CONVERTER_CLASS,
    crate::number_converter::SHORT_CONVERTER_CLASS,
    crate::number_converter::INTEGER_CONVERTER_CLASS,
    crate::number_converter::LONG_CONVERTER_CLASS,
    crate::number_converter::FLOAT_CONVERTER_CLASS,
    crate::number_converter::DOUBLE_CONVERTER_CLASS,
];
pub const JSON_CONVERTER_CLASS: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER_CLASS: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER_CLASS: &str =
    "org.apache.kafka.connect.converters.ByteArrayConverter";

/// Instantiates a converter by full class name or simple name.
pub fn new_converter(class: &str) -> Option<Box<dyn Converter>> {
    let class = class.trim();
    let matches = |full: &str| class == full || full.rsplit('.').next() == Some(class);
    if matches(JSON_CONVERTER_CLASS) {
        Some(Box::new(JsonConverter::default()))
    } else if matches(STRING_CONVERTER_CLASS) {
        Some(Box::new(StringConverter))
    } else if matches(BYTE_ARRAY_CONVERTER_CLASS) {
        Some(Box::new(ByteArrayConverter))
    } else {
        crate::number_converter::NumberConverter::for_class(class)
            .map(|c| Box::new(c) as Box<dyn Converter>)
    }
}

/// Instantiates and configures a converter, naming the config key on failure.
pub fn configured_converter(
    key: &str,
    class: &str,
    configs: &ConfigMap,
    is_key: bool,
) -> Result<Box<dyn Converter>> {
    let mut c = new_converter(class).ok_or_else(|| {
        ConnectError::config(format!(
            "Invalid value {class} for configuration {key}: Class {class} could not be found. \
             Available converters: {}",
            CONVERTER_CLASSES.join(", ")
        ))
    })?;
    c.configure(configs, is_key)?;
    Ok(c)
}

/// How the JSON converter writes decimals (`decimal.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalFormat {
    Base64,
    Numeric,
}

/// Kafka's JsonConverter.
#[derive(Debug)]
pub struct JsonConverter {
    schemas_enable: bool,
    decimal_format: DecimalFormat,
    /// The last schema written in an envelope, with its JSON text. A task's records nearly always
    /// share one schema, so this spares building and writing that object for each record (Kafka
    /// keeps a cache of such conversions too, `schemas.cache.size`).
    last_schema: parking_lot::Mutex<Option<(Schema, Arc<str>)>>,
}

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter {
            schemas_enable: true,
            decimal_format: DecimalFormat::Base64,
            last_schema: parking_lot::Mutex::new(None),
        }
    }
}

impl JsonConverter {
    /// A converter with `schemas.enable` set as given.
    pub fn new(schemas_enable: bool) -> JsonConverter {
        JsonConverter {
            schemas_enable,
            ..Default::default()
        }
    }

    /// The JSON text of `as_json_schema(schema)`, from the one-entry cache when it is the last
    /// schema seen.
    fn schema_json(&self, schema: &Schema) -> Result<Arc<str>> {
        let mut last = self.last_schema.lock();
        if let Some((s, json)) = last.as_ref()
            && s == schema
        {
            return Ok(json.clone());
        }
        let json: Arc<str> = self.as_json_schema(schema)?.to_json_string().into();
        *last = Some((schema.clone(), json.clone()));
        Ok(json)
    }

    /// The JSON schema object for a Connect schema (`asJsonSchema`).
    pub fn as_json_schema(&self, schema: &Schema) -> Result<JsonNode> {
        let mut node = JsonNode::object();
        let type_name = json_type_name(schema.schema_type);
        node.put("type", JsonNode::String(type_name.to_string()));
        match schema.schema_type {
            SchemaType::Array => {
                let items = match &schema.value_schema {
                    Some(s) => self.as_json_schema(s)?,
                    None => JsonNode::Null,
                };
                node.put("items", items);
            }
            SchemaType::Map => {
                let keys = match &schema.key_schema {
                    Some(s) => self.as_json_schema(s)?,
                    None => JsonNode::Null,
                };
                let values = match &schema.value_schema {
                    Some(s) => self.as_json_schema(s)?,
                    None => JsonNode::Null,
                };
                node.put("keys", keys);
                node.put("values", values);
            }
            SchemaType::Struct => {
                let mut fields = Vec::with_capacity(schema.fields.len());
                for f in &schema.fields {
                    let mut fnode = self.as_json_schema(&f.schema)?;
                    fnode.put("field", JsonNode::String(f.name.clone()));
                    fields.push(fnode);
                }
                node.put("fields", JsonNode::Array(fields));
            }
            _ => {}
        }
        node.put("optional", JsonNode::Bool(schema.optional));
        if let Some(n) = &schema.name {
            node.put("name", JsonNode::String(n.clone()));
        }
        if let Some(v) = schema.version {
            node.put("version", JsonNode::Int(v as i64));
        }
        if let Some(d) = &schema.doc {
            node.put("doc", JsonNode::String(d.clone()));
        }
        if let Some(params) = &schema.parameters {
            let mut p = JsonNode::object();
            for (k, v) in params {
                p.put(k, JsonNode::String(v.clone()));
            }
            node.put("parameters", p);
        }
        if let Some(d) = &schema.default_value {
            node.put("default", self.convert_to_json(Some(schema), d)?);
        }
        Ok(node)
    }

    /// A Connect value as JSON (`convertToJson`): nulls become the schema default when there is one.
    pub fn convert_to_json(&self, schema: Option<&Schema>, value: &Value) -> Result<JsonNode> {
        if value.is_null() {
            let Some(schema) = schema else {
                return Ok(JsonNode::Null);
            };
            if let Some(d) = &schema.default_value {
                return self.convert_to_json(Some(schema), d);
            }
            if schema.optional {
                return Ok(JsonNode::Null);
            }
            return Err(ConnectError::Data(
                "Conversion error: null value for field that is required and has no default value"
                    .to_string(),
            ));
        }
        let ty = match schema {
            Some(s) => s.schema_type,
            None => value.inferred_type().unwrap_or(SchemaType::String),
        };
        let mismatch = || {
            ConnectError::Data(format!(
                "Invalid type for {}: {}",
                ty.name(),
                value
                    .inferred_type()
                    .map(SchemaType::name)
                    .unwrap_or("null")
            ))
        };
        Ok(match (ty, value) {
            (SchemaType::Int8, Value::Int8(v)) => JsonNode::Int(*v as i64),
            (SchemaType::Int16, Value::Int16(v)) => JsonNode::Int(*v as i64),
            (SchemaType::Int32, Value::Int32(v)) => JsonNode::Int(*v as i64),
            (SchemaType::Int64, Value::Int64(v)) => JsonNode::Int(*v),
            (SchemaType::Float32, Value::Float32(v)) => JsonNode::Float(*v),
            (SchemaType::Float64, Value::Float64(v)) => JsonNode::Double(*v),
            (SchemaType::Boolean, Value::Boolean(v)) => JsonNode::Bool(*v),
            (SchemaType::String, Value::String(v)) => JsonNode::String(v.clone()),
            (SchemaType::Bytes, Value::Bytes(b)) => {
                let decimal_scale = schema
                    .filter(|s| s.name.as_deref() == Some(DECIMAL_LOGICAL_NAME))
                    .map(decimal_scale)
                    .transpose()?;
                match (decimal_scale, self.decimal_format) {
                    (Some(scale), DecimalFormat::Numeric) => {
                        JsonNode::Raw(decimal_to_plain(b, scale)?)
                    }
                    _ => JsonNode::Binary(b.clone()),
                }
            }
            (SchemaType::Array, Value::Array(items)) => {
                let item_schema = schema.and_then(|s| s.value_schema.as_deref());
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.convert_to_json(item_schema, item)?);
                }
                JsonNode::Array(out)
            }
            (SchemaType::Map, Value::Map(entries)) => {
                let key_schema = schema.and_then(|s| s.key_schema.as_deref());
                let value_schema = schema.and_then(|s| s.value_schema.as_deref());
                // Object form only when keys are strings; otherwise an array of [key, value] pairs.
                let object_mode = match key_schema {
                    Some(ks) => ks.schema_type == SchemaType::String,
                    None => schema.is_none() && entries.iter().all(|(k, _)| k.as_str().is_some()),
                };
                if object_mode {
                    let mut obj = JsonNode::object();
                    for (k, v) in entries {
                        let key = match k {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        obj.put(&key, self.convert_to_json(value_schema, v)?);
                    }
                    obj
                } else {
                    let mut list = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        list.push(JsonNode::Array(vec![
                            self.convert_to_json(key_schema, k)?,
                            self.convert_to_json(value_schema, v)?,
                        ]));
                    }
                    JsonNode::Array(list)
                }
            }
            (SchemaType::Struct, Value::Struct(s)) => {
                if let Some(schema) = schema
                    && s.schema().as_ref() != schema
                {
                    return Err(ConnectError::Data("Mismatching schema.".to_string()));
                }
                let mut obj = JsonNode::object();
                for f in &s.schema().fields {
                    let v = s.get_without_default(&f.name).unwrap_or(&Value::Null);
                    obj.put(&f.name, self.convert_to_json(Some(&f.schema), v)?);
                }
                obj
            }
            _ => return Err(mismatch()),
        })
    }

    /// A JSON schema object as a Connect schema (`asConnectSchema`); JSON null gives no schema.
    pub fn as_connect_schema(&self, node: &serde_json::Value) -> Result<Option<Schema>> {
        use serde_json::Value as J;
        if node.is_null() {
            return Ok(None);
        }
        let type_name = node
            .get("type")
            .and_then(J::as_str)
            .ok_or_else(|| ConnectError::Data("Schema must contain 'type' field".to_string()))?;
        let mut schema = match type_name {
            "boolean" => Schema::boolean(),
            "int8" => Schema::int8(),
            "int16" => Schema::int16(),
            "int32" => Schema::int32(),
            "int64" => Schema::int64(),
            "float" => Schema::float32(),
            "double" => Schema::float64(),
            "bytes" => Schema::bytes(),
            "string" => Schema::string(),
            "array" => {
                let items = node.get("items").filter(|n| !n.is_null()).ok_or_else(|| {
                    ConnectError::Data("Array schema did not specify the element type".into())
                })?;
                let items = self.as_connect_schema(items)?.ok_or_else(|| {
                    ConnectError::Data("Array schema did not specify the element type".into())
                })?;
                Schema::array(items)
            }
            "map" => {
                let keys = node.get("keys").ok_or_else(|| {
                    ConnectError::Data("Map schema did not specify the key type".into())
                })?;
                let values = node.get("values").ok_or_else(|| {
                    ConnectError::Data("Map schema did not specify the value type".into())
                })?;
                let keys = self.as_connect_schema(keys)?.ok_or_else(|| {
                    ConnectError::Data("Map schema did not specify the key type".into())
                })?;
                let values = self.as_connect_schema(values)?.ok_or_else(|| {
                    ConnectError::Data("Map schema did not specify the value type".into())
                })?;
                Schema::map(keys, values)
            }
            "struct" => {
                let fields = node.get("fields").and_then(J::as_array).ok_or_else(|| {
                    ConnectError::Data(
                        "Struct schema's \"fields\" argument is not an array.".into(),
                    )
                })?;
                let mut s = Schema::struct_();
                for f in fields {
                    let name = f.get("field").and_then(J::as_str).ok_or_else(|| {
                        ConnectError::Data(
                            "Struct schema's field name not specified properly".into(),
                        )
                    })?;
                    let fs = self.as_connect_schema(f)?.ok_or_else(|| {
                        ConnectError::Data("Struct field schema must not be null".into())
                    })?;
                    s = s.field(name, fs)?;
                }
                s
            }
            other => return Err(ConnectError::Data(format!("Unknown schema type: {other}"))),
        };
        schema.optional = node.get("optional").and_then(J::as_bool).unwrap_or(false);
        if let Some(n) = node.get("name").and_then(J::as_str) {
            schema.name = Some(n.to_string());
        }
        if let Some(v) = node.get("version").and_then(J::as_i64) {
            schema.version = Some(v as i32);
        }
        if let Some(d) = node.get("doc").and_then(J::as_str) {
            schema.doc = Some(d.to_string());
        }
        if let Some(params) = node.get("parameters").and_then(J::as_object) {
            let mut out = Vec::new();
            for (k, v) in params {
                let v = v.as_str().ok_or_else(|| {
                    ConnectError::Data("Schema parameters must have string values.".into())
                })?;
                out.push((k.clone(), v.to_string()));
            }
            schema.parameters = Some(out);
        }
        if let Some(d) = node.get("default") {
            let value = self.convert_to_connect(Some(&schema), d)?;
            schema = schema.default_value(value)?;
        }
        Ok(Some(schema))
    }

    /// A JSON value as Connect data for a schema, or inferred when there is none (`convertToConnect`).
    pub fn convert_to_connect(
        &self,
        schema: Option<&Schema>,
        node: &serde_json::Value,
    ) -> Result<Value> {
        use serde_json::Value as J;
        let Some(schema) = schema else {
            return Ok(match node {
                J::Null => Value::Null,
                J::Bool(b) => Value::Boolean(*b),
                J::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int64(i),
                    None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
                },
                J::String(s) => Value::String(s.clone()),
                J::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| self.convert_to_connect(None, i))
                        .collect::<Result<_>>()?,
                ),
                J::Object(fields) => Value::Map(
                    fields
                        .iter()
                        .map(|(k, v)| {
                            Ok((Value::String(k.clone()), self.convert_to_connect(None, v)?))
                        })
                        .collect::<Result<_>>()?,
                ),
            });
        };
        if node.is_null() {
            if let Some(d) = &schema.default_value {
                return Ok((**d).clone());
            }
            if schema.optional {
                return Ok(Value::Null);
            }
            return Err(ConnectError::Data(format!(
                "Invalid null value for required {} field",
                schema.schema_type.name()
            )));
        }
        let wrong = |expected: &str| {
            ConnectError::Data(format!(
                "Invalid value for {} field: expected {expected}, found {node}",
                schema.schema_type.name()
            ))
        };
        Ok(match schema.schema_type {
            // Java narrows with intValue().byteValue(): out-of-range numbers wrap, as here.
            SchemaType::Int8 => {
                Value::Int8(node.as_i64().ok_or_else(|| wrong("an integer"))? as i8)
            }
            SchemaType::Int16 => {
                Value::Int16(node.as_i64().ok_or_else(|| wrong("an integer"))? as i16)
            }
            SchemaType::Int32 => {
                Value::Int32(node.as_i64().ok_or_else(|| wrong("an integer"))? as i32)
            }
            SchemaType::Int64 => Value::Int64(node.as_i64().ok_or_else(|| wrong("an integer"))?),
            SchemaType::Float32 => {
                Value::Float32(node.as_f64().ok_or_else(|| wrong("a number"))? as f32)
            }
            SchemaType::Float64 => Value::Float64(node.as_f64().ok_or_else(|| wrong("a number"))?),
            SchemaType::Boolean => {
                Value::Boolean(node.as_bool().ok_or_else(|| wrong("a boolean"))?)
            }
            SchemaType::String => {
                Value::String(node.as_str().ok_or_else(|| wrong("a string"))?.to_string())
            }
            SchemaType::Bytes => {
                let s = node.as_str().ok_or_else(|| wrong("a base64 string"))?;
                Value::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| ConnectError::Data(format!("Invalid bytes field: {e}")))?,
                )
            }
            SchemaType::Array => {
                let items = node.as_array().ok_or_else(|| wrong("an array"))?;
                let es = schema.value_schema.as_deref();
                Value::Array(
                    items
                        .iter()
                        .map(|i| self.convert_to_connect(es, i))
                        .collect::<Result<_>>()?,
                )
            }
            SchemaType::Map => {
                let ks = schema.key_schema.as_deref();
                let vs = schema.value_schema.as_deref();
                if ks.map(|k| k.schema_type) == Some(SchemaType::String) {
                    let obj = node.as_object().ok_or_else(|| wrong("an object"))?;
                    obj.iter()
                        .map(|(k, v)| {
                            Ok((Value::String(k.clone()), self.convert_to_connect(vs, v)?))
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(Value::Map)?
                } else {
                    let arr = node.as_array().ok_or_else(|| {
                        ConnectError::Data(
                            "Maps with non-string fields should be encoded as JSON array of tuples, \
                             but found "
                                .to_string()
                                + &node.to_string(),
                        )
                    })?;
                    let mut out = Vec::with_capacity(arr.len());
                    for entry in arr {
                        let pair = entry.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                            ConnectError::Data(
                                "Found invalid map entry instead of array tuple: ".to_string()
                                    + &entry.to_string(),
                            )
                        })?;
                        out.push((
                            self.convert_to_connect(ks, &pair[0])?,
                            self.convert_to_connect(vs, &pair[1])?,
                        ));
                    }
                    Value::Map(out)
                }
            }
            SchemaType::Struct => {
                let obj = node.as_object().ok_or_else(|| {
                    ConnectError::Data(format!(
                        "Structs should be encoded as JSON objects, but found {node}"
                    ))
                })?;
                let mut s = Struct::new(Arc::new(schema.clone()))?;
                for f in &schema.fields {
                    let v = self.convert_to_connect(
                        Some(&f.schema),
                        obj.get(&f.name).unwrap_or(&J::Null),
                    )?;
                    s.set(&f.name, v)?;
                }
                Value::Struct(s)
            }
        })
    }
}

fn json_type_name(t: SchemaType) -> &'static str {
    match t {
        SchemaType::Int8 => "int8",
        SchemaType::Int16 => "int16",
        SchemaType::Int32 => "int32",
        SchemaType::Int64 => "int64",
        SchemaType::Float32 => "float",
        SchemaType::Float64 => "double",
        SchemaType::Boolean => "boolean",
        SchemaType::String => "string",
        SchemaType::Bytes => "bytes",
        SchemaType::Array => "array",
        SchemaType::Map => "map",
        SchemaType::Struct => "struct",
    }
}

pub(crate) fn decimal_scale(schema: &Schema) -> Result<i32> {
    schema
        .parameters
        .as_ref()
        .and_then(|p| p.iter().find(|(k, _)| k == "scale"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| {
            ConnectError::Data("Invalid Decimal schema: scale parameter not found.".into())
        })
}

/// The unscaled two's-complement big-endian bytes of a decimal, printed plainly with its scale.
pub(crate) fn decimal_to_plain(bytes: &[u8], scale: i32) -> Result<String> {
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(ConnectError::Data(format!(
            "Decimal of {} bytes is out of the supported range (1 to 16 bytes)",
            bytes.len()
        )));
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 16] } else { [0u8; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(buf);
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        return Ok(format!("{sign}{digits}{}", "0".repeat((-scale) as usize)));
    }
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int_part, frac) = padded.split_at(padded.len() - scale);
    Ok(format!("{sign}{int_part}.{frac}"))
}

impl Converter for JsonConverter {
    fn configure(&mut self, configs: &ConfigMap, _is_key: bool) -> Result<()> {
        if let Some(v) = configs.get("schemas.enable") {
            self.schemas_enable = parse_bool("schemas.enable", v)?;
        }
        if let Some(v) = configs.get("decimal.format") {
            self.decimal_format = match v.trim().to_ascii_uppercase().as_str() {
                "BASE64" => DecimalFormat::Base64,
                "NUMERIC" => DecimalFormat::Numeric,
                _ => {
                    return Err(ConnectError::config(format!(
                        "Invalid value {v} for configuration decimal.format: String must be one of: BASE64, NUMERIC"
                    )));
                }
            };
        }
        // The format shows in schema defaults: what was cached under the old one is stale.
        *self.last_schema.lock() = None;
        Ok(())
    }

    fn from_connect_data(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let payload = self.convert_to_json(schema, value)?;
        if !self.schemas_enable {
            return Ok(Some(payload.to_json_string().into_bytes()));
        }
        // The envelope `{"schema":...,"payload":...}`, written around the cached schema text.
        let schema_json = match schema {
            Some(s) => self.schema_json(s)?,
            None => Arc::from("null"),
        };
        let mut out = String::with_capacity(schema_json.len() + payload.size_hint() + 24);
        out.push_str(r#"{"schema":"#);
        out.push_str(&schema_json);
        out.push_str(r#","payload":"#);
        payload.write_to(&mut out);
        out.push('}');
        Ok(Some(out.into_bytes()))
    }

    fn to_connect_data(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        // A tombstone stays a null value, whatever the envelope setting.
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::NULL);
        };
        let node: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            ConnectError::Data(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if self.schemas_enable {
            let obj = node
                .as_object()
                .filter(|o| o.len() == 2 && o.contains_key("schema") && o.contains_key("payload"))
                .ok_or_else(|| {
                    ConnectError::Data(
                        "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields \
                         and may not contain additional fields. If you are trying to deserialize plain \
                         JSON data, set schemas.enable=false in your converter configuration."
                            .to_string(),
                    )
                })?;
            let schema = self.as_connect_schema(&obj["schema"])?;
            let value = self.convert_to_connect(schema.as_ref(), &obj["payload"])?;
            Ok(SchemaAndValue::new(schema.map(Arc::new), value))
        } else {
            Ok(SchemaAndValue::new(
                None,
                self.convert_to_connect(None, &node)?,
            ))
        }
    }
}

/// Parses a boolean config as Kafka's ConfigDef does (case-insensitive true/false).
pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConnectError::config(format!(
            "Invalid value {v} for configuration {key}: Expected value to be either true or false"
        ))),
    }
}

/// Kafka's StringConverter: UTF-8 strings; other values are written with their string form.
#[derive(Debug, Default)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn configure(&mut self, configs: &ConfigMap, _is_key: bool) -> Result<()> {
        if let Some(enc) = configs.get("converter.encoding") {
            let e = enc.trim().to_ascii_uppercase().replace('-', "");
            if e != "UTF8" {
                return Err(ConnectError::config(format!(
                    "Invalid value {enc} for configuration converter.encoding: only UTF-8 is supported"
                )));
            }
        }
        Ok(())
    }

    fn from_connect_data(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        })
    }

    fn to_connect_data(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        Ok(SchemaAndValue::new(
            Some(Schema::optional_string()),
            match bytes {
                None => Value::Null,
                Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            },
        ))
    }
}

/// Kafka's ByteArrayConverter: passes bytes through; the schema must be BYTES (or absent).
#[derive(Debug, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn configure(&mut self, _configs: &ConfigMap, _is_key: bool) -> Result<()> {
        Ok(())
    }

    fn from_connect_data(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(s) = schema
            && s.schema_type != SchemaType::Bytes
        {
            return Err(ConnectError::Data(format!(
                "Invalid schema type for ByteArrayConverter: {}",
                s.schema_type.name()
            )));
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::Data(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other
                    .inferred_type()
                    .map(SchemaType::name)
                    .unwrap_or("null")
            ))),
        }
    }

    fn to_connect_data(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        Ok(SchemaAndValue::new(
            Some(Schema::optional_bytes()),
            bytes
                .map(|b| Value::Bytes(b.to_vec()))
                .unwrap_or(Value::Null),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(schemas: bool, schema: Option<&Schema>, value: &Value) -> String {
        let c = JsonConverter::new(schemas);
        let bytes = c
            .from_connect_data("t", schema, value)
            .expect("convert")
            .expect("not null");
        String::from_utf8(bytes).expect("utf8")
    }

    // The expected strings below are the bytes Kafka 4.1's JsonConverter writes for the same
    // schema and value (its asJsonSchema field order and Jackson's compact output).
    #[test]
    fn primitives_with_envelope() {
        assert_eq!(
            json(true, Some(&Schema::string()), &"hello".into()),
            r#"{"schema":{"type":"string","optional":false},"payload":"hello"}"#
        );
        assert_eq!(
            json(true, Some(&Schema::int32().optional()), &Value::Int32(42)),
            r#"{"schema":{"type":"int32","optional":true},"payload":42}"#
        );
        assert_eq!(
            json(true, Some(&Schema::float64()), &Value::Float64(1e10)),
            r#"{"schema":{"type":"double","optional":false},"payload":1.0E10}"#
        );
        assert_eq!(
            json(true, Some(&Schema::bytes()), &Value::Bytes(b"hi!".to_vec())),
            r#"{"schema":{"type":"bytes","optional":false},"payload":"aGkh"}"#
        );
        assert_eq!(
            json(true, None, &"x".into()),
            r#"{"schema":null,"payload":"x"}"#
        );
        assert_eq!(
            json(true, Some(&Schema::string().optional()), &Value::Null),
            r#"{"schema":{"type":"string","optional":true},"payload":null}"#
        );
    }

    #[test]
    fn struct_with_envelope_matches_kafka() {
        let schema = Arc::new(
            Schema::struct_()
                .name("com.example.User")
                .version(2)
                .doc("a user")
                .field("id", Schema::int64())
                .and_then(|s| s.field("name", Schema::string().optional()))
                .and_then(|s| s.field("tags", Schema::array(Schema::string()).optional()))
                .and_then(|s| {
                    s.field(
                        "score",
                        Schema::float32().default_value(Value::Float32(1.5))?,
                    )
                })
                .and_then(|s| s.field("day", Schema::date()))
                .expect("schema"),
        );
        let value = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 7i64))
            .and_then(|s| s.put("name", "ann"))
            .and_then(|s| s.put("tags", Value::Array(vec!["a".into(), "b".into()])))
            .and_then(|s| s.put("day", 19000))
            .expect("struct");
        let out = json(true, Some(&schema), &Value::Struct(value.clone()));
        assert_eq!(
            out,
            concat!(
                r#"{"schema":{"type":"struct","fields":["#,
                r#"{"type":"int64","optional":false,"field":"id"},"#,
                r#"{"type":"string","optional":true,"field":"name"},"#,
                r#"{"type":"array","items":{"type":"string","optional":false},"optional":true,"field":"tags"},"#,
                r#"{"type":"float","optional":false,"default":1.5,"field":"score"},"#,
                r#"{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"day"}"#,
                r#"],"optional":false,"name":"com.example.User","version":2,"doc":"a user"},"#,
                r#""payload":{"id":7,"name":"ann","tags":["a","b"],"score":1.5,"day":19000}}"#
            )
        );
        // And back: the same schema and value.
        let c = JsonConverter::new(true);
        let back = c.to_connect_data("t", Some(out.as_bytes())).expect("parse");
        assert_eq!(back.schema.as_deref(), Some(schema.as_ref()));
        let Value::Struct(s) = back.value else {
            panic!("struct expected")
        };
        assert_eq!(s.get("name"), Some(&Value::from("ann")));
        assert_eq!(s.get("score"), Some(&Value::Float32(1.5)));

        let plain = json(false, Some(&schema), &Value::Struct(value));
        assert_eq!(
            plain,
            r#"{"id":7,"name":"ann","tags":["a","b"],"score":1.5,"day":19000}"#
        );
    }

    #[test]
    fn maps_and_decimals() {
        let m = Schema::map(Schema::string(), Schema::int32());
        assert_eq!(
            json(
                false,
                Some(&m),
                &Value::Map(vec![("a".into(), 1.into()), ("b".into(), 2.into())])
            ),
            r#"{"a":1,"b":2}"#
        );
        let m2 = Schema::map(Schema::int32(), Schema::string());
        assert_eq!(
            json(true, Some(&m2), &Value::Map(vec![(1.into(), "x".into())])),
            r#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":false},"optional":false},"payload":[[1,"x"]]}"#
        );
        // 12.34 with scale 2: unscaled 1234 = 0x04d2.
        let d = Schema::decimal(2);
        assert_eq!(
            json(true, Some(&d), &Value::Bytes(vec![0x04, 0xd2])),
            r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},"payload":"BNI="}"#
        );
        let mut numeric = JsonConverter::new(false);
        numeric.decimal_format = DecimalFormat::Numeric;
        let out = numeric
            .from_connect_data("t", Some(&d), &Value::Bytes(vec![0xfb, 0x2e]))
            .expect("ok")
            .expect("some");
        assert_eq!(String::from_utf8_lossy(&out), "-12.34");
    }

    #[test]
    fn schemaless_and_errors() {
        let c = JsonConverter::new(false);
        let v = c
            .to_connect_data("t", Some(br#"{"a":[1,2.5,"x",null,true]}"#))
            .expect("parse");
        assert_eq!(v.schema, None);
        assert_eq!(
            v.value,
            Value::Map(vec![(
                "a".into(),
                Value::Array(vec![
                    Value::Int64(1),
                    Value::Float64(2.5),
                    "x".into(),
                    Value::Null,
                    Value::Boolean(true)
                ])
            )])
        );
        assert_eq!(
            c.from_connect_data("t", None, &Value::Null).expect("ok"),
            None
        );
        let strict = JsonConverter::new(true);
        let err = strict.to_connect_data("t", Some(b"{\"a\":1}")).unwrap_err();
        assert!(err.to_string().contains("schemas.enable=false"), "{err}");
        assert!(strict.to_connect_data("t", Some(b"{nope")).is_err());
        assert_eq!(
            strict.to_connect_data("t", None).expect("ok"),
            SchemaAndValue::NULL
        );
        let required_null = strict.from_connect_data("t", Some(&Schema::int32()), &Value::Null);
        assert!(required_null.is_err());
    }

    #[test]
    fn converter_lookup_by_full_and_simple_name() {
        assert!(new_converter("org.apache.kafka.connect.json.JsonConverter").is_some());
        assert!(new_converter("JsonConverter").is_some());
        assert!(new_converter("org.apache.kafka.connect.storage.StringConverter").is_some());
        assert!(new_converter("ByteArrayConverter").is_some());
        assert!(new_converter("AvroConverter").is_none());
        let mut cfg = ConfigMap::new();
        cfg.insert("schemas.enable".into(), "nope".into());
        let err = configured_converter("value.converter", "JsonConverter", &cfg, false)
            .err()
            .expect("error");
        assert!(err.to_string().contains("schemas.enable"));
    }

    #[test]
    fn string_and_bytes() {
        let s = StringConverter;
        assert_eq!(
            s.from_connect_data("t", None, &Value::Int32(5))
                .expect("ok"),
            Some(b"5".to_vec())
        );
        let back = s.to_connect_data("t", Some(b"abc")).expect("ok");
        assert_eq!(back.value, Value::from("abc"));
        let b = ByteArrayConverter;
        assert!(
            b.from_connect_data("t", Some(&Schema::string()), &"x".into())
                .is_err()
        );
        assert_eq!(
            b.from_connect_data("t", None, &Value::Bytes(vec![1]))
                .expect("ok"),
            Some(vec![1])
        );
    }
}
