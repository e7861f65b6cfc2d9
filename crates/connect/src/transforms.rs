//! Single message transforms and predicates under Kafka's class names
//! (`org.apache.kafka.connect.transforms.*`), configured with `transforms=` chains:
//!
//! ```properties
//! transforms=addSource,route
//! transforms.addSource.type=org.apache.kafka.connect.transforms.InsertField$Value
//! transforms.addSource.static.field=source
//! transforms.addSource.static.value=file
//! transforms.route.type=RegexRouter
//! transforms.route.regex=(.*)
//! transforms.route.replacement=$1-copy
//! transforms.route.predicate=isOrders
//! predicates=isOrders
//! predicates.isOrders.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches
//! predicates.isOrders.pattern=orders.*
//! ```
//!
//! Built in: InsertField, ReplaceField, MaskField, ExtractField, HoistField (each `$Key`/`$Value`),
//! ValueToKey, RegexRouter, TimestampRouter, Filter, Flatten, Cast, TimestampConverter,
//! SetSchemaMetadata (`$Key`/`$Value`), DropHeaders, InsertHeader, HeaderFrom (`$Key`/`$Value`);
//! predicates TopicNameMatches, HasHeaderKey, RecordIsTombstone.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::config_def::{ConfigMap, parse_list};
use crate::connector::ConnectRecord;
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::dead_letter::Stage;
use crate::error::{ConnectError, Result};
use crate::error_handling::{ErrorHandling, StageError};

/// A transformation of one record (`Transformation`); `None` drops the record.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>>;
}

/// A condition on a record (`Predicate`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &ConnectRecord) -> bool;
}

mod cast;
mod drop_headers;
mod flatten;
mod header_from;
mod insert_header;
mod set_schema_metadata;
mod timestamp_converter;

const PKG: &str = "org.apache.kafka.connect.transforms.";

/// The transform class names strom knows (full names), for plugin listings.
pub const TRANSFORM_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.HoistField$Key",
    "org.apache.kafka.connect.transforms.HoistField$Value",
    "org.apache.kafka.connect.transforms.ValueToKey",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.Flatten$Key",
    "org.apache.kafka.connect.transforms.Flatten$Value",
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
    "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
    "org.apache.kafka.connect.transforms.DropHeaders",
    "org.apache.kafka.connect.transforms.InsertHeader",
    "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
];

/// The predicate class names strom knows.
pub const PREDICATE_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
];

/// Which half of the record a `$Key` / `$Value` transform works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Key,
    Value,
}

struct Step {
    alias: String,
    /// The `type` class, which the error log names.
    class: String,
    transform: Box<dyn Transformation>,
    predicate: Option<Box<dyn Predicate>>,
    negate: bool,
}

/// The configured `transforms=` chain of a connector.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl TransformChain {
    /// Builds the chain from a connector config; errors name the alias and key.
    pub fn from_config(cc: &ConfigMap) -> Result<TransformChain> {
        let mut steps = Vec::new();
        for alias in parse_list(cc.get("transforms").map(String::as_str).unwrap_or("")) {
            let prefix = format!("transforms.{alias}.");
            let props: ConfigMap = cc
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone())))
                .collect();
            let class = props.get("type").ok_or_else(|| {
                ConnectError::config(format!(
                    "Missing required configuration \"{prefix}type\" which has no default value."
                ))
            })?;
            let transform = new_transform(class, &props)
                .map_err(|e| ConnectError::config(format!("transform {alias}: {e}")))?;
            let predicate = match props.get("predicate").filter(|p| !p.is_empty()) {
                Some(p) => Some(new_predicate_from(cc, p)?),
                None => None,
            };
            let negate = props
                .get("negate")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            steps.push(Step {
                class: class.trim().to_string(),
                alias,
                transform,
                predicate,
                negate,
            });
        }
        Ok(TransformChain { steps })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the chain; stops early when a step drops the record.
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        for s in &self.steps {
            if let Some(p) = &s.predicate
                && p.test(&record) == s.negate
            {
                continue;
            }
            match s.transform.apply(record) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.with_context(&format!("transform {} failed", s.alias))),
            }
        }
        Ok(Some(record))
    }

    /// Runs the chain as the worker does: each step that fails with a retriable error is tried
    /// again under `errors.retry.*`; an error names the failing step's class.
    pub fn apply_retrying(
        &self,
        mut record: ConnectRecord,
        eh: &ErrorHandling,
        stop: &AtomicBool,
    ) -> std::result::Result<Option<ConnectRecord>, StageError> {
        for s in &self.steps {
            if let Some(p) = &s.predicate
                && p.test(&record) == s.negate
            {
                continue;
            }
            match eh.retrying(record, stop, |r| s.transform.apply(r)) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(StageError {
                        stage: Stage::Transformation,
                        class: s.class.clone(),
                        error: e.with_context(&format!("transform {} failed", s.alias)),
                    });
                }
            }
        }
        Ok(Some(record))
    }
}

fn matches_class(class: &str, simple: &str) -> bool {
    let class = class.trim();
    class == simple || class.strip_prefix(PKG) == Some(simple)
}

fn side_of(class: &str, base: &str) -> Option<Side> {
    if matches_class(class, &format!("{base}$Key")) {
        Some(Side::Key)
    } else if matches_class(class, &format!("{base}$Value")) {
        Some(Side::Value)
    } else {
        None
    }
}

fn required<'a>(props: &'a ConfigMap, key: &str) -> Result<&'a str> {
    props
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            ConnectError::config(format!(
                "Missing required configuration \"{key}\" which has no default value."
            ))
        })
}

/// A LIST config that must name at least one item (Kafka's `NonEmptyListValidator`).
fn required_list(props: &ConfigMap, key: &str) -> Result<Vec<String>> {
    let raw = props.get(key).ok_or_else(|| {
        ConnectError::config(format!(
            "Missing required configuration \"{key}\" which has no default value."
        ))
    })?;
    let items = parse_list(raw);
    if items.is_empty() {
        return Err(ConnectError::config(format!(
            "Invalid value {raw} for configuration {key}: Empty list"
        )));
    }
    Ok(items)
}

/// Instantiates and configures a transform by class name.
pub fn new_transform(class: &str, props: &ConfigMap) -> Result<Box<dyn Transformation>> {
    if let Some(side) = side_of(class, "InsertField") {
        return Ok(Box::new(InsertField::new(side, props)?));
    }
    if let Some(side) = side_of(class, "ReplaceField") {
        return Ok(Box::new(ReplaceField::new(side, props)?));
    }
    if let Some(side) = side_of(class, "MaskField") {
        return Ok(Box::new(MaskField {
            side,
            fields: parse_list(required(props, "fields")?),
            replacement: props.get("replacement").cloned(),
        }));
    }
    if let Some(side) = side_of(class, "ExtractField") {
        return Ok(Box::new(ExtractField {
            side,
            field: required(props, "field")?.to_string(),
        }));
    }
    if let Some(side) = side_of(class, "HoistField") {
        return Ok(Box::new(HoistField {
            side,
            field: required(props, "field")?.to_string(),
        }));
    }
    if matches_class(class, "ValueToKey") {
        return Ok(Box::new(ValueToKey {
            fields: parse_list(required(props, "fields")?),
        }));
    }
    if matches_class(class, "RegexRouter") {
        return Ok(Box::new(RegexRouter::new(props)?));
    }
    if matches_class(class, "TimestampRouter") {
        return Ok(Box::new(TimestampRouter {
            topic_format: props
                .get("topic.format")
                .cloned()
                .unwrap_or_else(|| "${topic}-${timestamp}".to_string()),
            timestamp_format: props
                .get("timestamp.format")
                .cloned()
                .unwrap_or_else(|| "yyyyMMdd".to_string()),
        }));
    }
    if matches_class(class, "Filter") {
        return Ok(Box::new(Filter));
    }
    if let Some(side) = side_of(class, "Flatten") {
        return Ok(Box::new(flatten::Flatten::new(side, props)));
    }
    if let Some(side) = side_of(class, "Cast") {
        return Ok(Box::new(cast::Cast::new(side, props)?));
    }
    if let Some(side) = side_of(class, "TimestampConverter") {
        return Ok(Box::new(timestamp_converter::TimestampConverter::new(
            side, props,
        )?));
    }
    if let Some(side) = side_of(class, "SetSchemaMetadata") {
        return Ok(Box::new(set_schema_metadata::SetSchemaMetadata::new(
            side, props,
        )?));
    }
    if matches_class(class, "DropHeaders") {
        return Ok(Box::new(drop_headers::DropHeaders::new(props)?));
    }
    if matches_class(class, "InsertHeader") {
        return Ok(Box::new(insert_header::InsertHeader::new(props)?));
    }
    if let Some(side) = side_of(class, "HeaderFrom") {
        return Ok(Box::new(header_from::HeaderFrom::new(side, props)?));
    }
    Err(ConnectError::config(format!(
        "Invalid value {class} for configuration type: Class {class} could not be found. \
         Available transforms: {}",
        TRANSFORM_CLASSES.join(", ")
    )))
}

fn new_predicate_from(cc: &ConfigMap, alias: &str) -> Result<Box<dyn Predicate>> {
    let declared = parse_list(cc.get("predicates").map(String::as_str).unwrap_or(""));
    if !declared.iter().any(|p| p == alias) {
        return Err(ConnectError::config(format!(
            "Predicate {alias} is used by a transform but not listed in \"predicates\""
        )));
    }
    let prefix = format!("predicates.{alias}.");
    let props: ConfigMap = cc
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone())))
        .collect();
    let class = required(&props, "type").map_err(|_| {
        ConnectError::config(format!("Missing required configuration \"{prefix}type\""))
    })?;
    let simple = class.rsplit('.').next().unwrap_or(class);
    match simple {
        "TopicNameMatches" => {
            let pattern = required(&props, "pattern")?;
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                ConnectError::config(format!(
                    "Invalid value {pattern} for configuration {prefix}pattern: {e}"
                ))
            })?;
            Ok(Box::new(TopicNameMatches(re)))
        }
        "HasHeaderKey" => Ok(Box::new(HasHeaderKey(
            required(&props, "name")?.to_string(),
        ))),
        "RecordIsTombstone" => Ok(Box::new(RecordIsTombstone)),
        _ => Err(ConnectError::config(format!(
            "Invalid value {class} for configuration {prefix}type: unknown predicate. Available: {}",
            PREDICATE_CLASSES.join(", ")
        ))),
    }
}

struct TopicNameMatches(regex::Regex);
impl Predicate for TopicNameMatches {
    fn test(&self, r: &ConnectRecord) -> bool {
        self.0.is_match(&r.topic)
    }
}
struct HasHeaderKey(String);
impl Predicate for HasHeaderKey {
    fn test(&self, r: &ConnectRecord) -> bool {
        r.headers.iter().any(|h| h.key == self.0)
    }
}
struct RecordIsTombstone;
impl Predicate for RecordIsTombstone {
    fn test(&self, r: &ConnectRecord) -> bool {
        r.value.is_null()
    }
}

/// Drops every record it sees (used with a predicate).
struct Filter;
impl Transformation for Filter {
    fn apply(&self, _: ConnectRecord) -> Result<Option<ConnectRecord>> {
        Ok(None)
    }
}

fn get_side(r: &ConnectRecord, side: Side) -> (Option<Arc<Schema>>, Value) {
    match side {
        Side::Key => (r.key_schema.clone(), r.key.clone()),
        Side::Value => (r.value_schema.clone(), r.value.clone()),
    }
}

fn set_side(
    mut r: ConnectRecord,
    side: Side,
    schema: Option<Arc<Schema>>,
    value: Value,
) -> ConnectRecord {
    match side {
        Side::Key => {
            r.key_schema = schema;
            r.key = value;
        }
        Side::Value => {
            r.value_schema = schema;
            r.value = value;
        }
    }
    r
}

fn require_struct<'a>(v: &'a Value, purpose: &str) -> Result<&'a Struct> {
    match v {
        Value::Struct(s) => Ok(s),
        other => Err(ConnectError::Data(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            other
                .inferred_type()
                .map(SchemaType::name)
                .unwrap_or("null")
        ))),
    }
}

fn require_map<'a>(v: &'a Value, purpose: &str) -> Result<&'a Vec<(Value, Value)>> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(ConnectError::Data(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            other
                .inferred_type()
                .map(SchemaType::name)
                .unwrap_or("null")
        ))),
    }
}

/// Copies a struct schema's metadata (name, version, doc, optional) onto a new field list.
fn schema_like(old: &Schema) -> Schema {
    let mut s = Schema::struct_();
    s.name = old.name.clone();
    s.version = old.version;
    s.doc = old.doc.clone();
    s.optional = old.optional;
    s.parameters = old.parameters.clone();
    s
}

/// `field!` is required, `field?` or a bare name is optional (InsertField's field syntax).
fn field_spec(spec: Option<&String>) -> Option<(String, bool)> {
    let s = spec?.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(n) = s.strip_suffix('!') {
        Some((n.to_string(), false))
    } else if let Some(n) = s.strip_suffix('?') {
        Some((n.to_string(), true))
    } else {
        Some((s.to_string(), true))
    }
}

/// InsertField$Key / $Value: adds topic, partition, offset, timestamp and a static field.
struct InsertField {
    side: Side,
    topic: Option<(String, bool)>,
    partition: Option<(String, bool)>,
    offset: Option<(String, bool)>,
    timestamp: Option<(String, bool)>,
    static_field: Option<(String, bool)>,
    static_value: Option<String>,
}

impl InsertField {
    fn new(side: Side, props: &ConfigMap) -> Result<InsertField> {
        let t = InsertField {
            side,
            topic: field_spec(props.get("topic.field")),
            partition: field_spec(props.get("partition.field")),
            offset: field_spec(props.get("offset.field")),
            timestamp: field_spec(props.get("timestamp.field")),
            static_field: field_spec(props.get("static.field")),
            static_value: props.get("static.value").cloned(),
        };
        if t.topic.is_none()
            && t.partition.is_none()
            && t.offset.is_none()
            && t.timestamp.is_none()
            && t.static_field.is_none()
        {
            return Err(ConnectError::config(
                "No field insertion configured: set at least one of topic.field, partition.field, \
                 offset.field, timestamp.field, static.field",
            ));
        }
        Ok(t)
    }

    fn additions(&self, r: &ConnectRecord) -> Vec<(String, bool, Schema, Value)> {
        let mut out = Vec::new();
        let opt = |v: Value| v;
        if let Some((n, o)) = &self.topic {
            out.push((
                n.clone(),
                *o,
                Schema::string(),
                opt(Value::String(r.topic.clone())),
            ));
        }
        if let Some((n, o)) = &self.partition {
            out.push((
                n.clone(),
                *o,
                Schema::int32(),
                r.kafka_partition.map(Value::Int32).unwrap_or(Value::Null),
            ));
        }
        if let Some((n, o)) = &self.offset {
            out.push((
                n.clone(),
                *o,
                Schema::int64(),
                r.kafka_offset.map(Value::Int64).unwrap_or(Value::Null),
            ));
        }
        if let Some((n, o)) = &self.timestamp {
            out.push((
                n.clone(),
                *o,
                Schema::timestamp(),
                r.timestamp.map(Value::Int64).unwrap_or(Value::Null),
            ));
        }
        if let Some((n, o)) = &self.static_field {
            out.push((
                n.clone(),
                *o,
                Schema::string(),
                self.static_value
                    .clone()
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            ));
        }
        out
    }
}

impl Transformation for InsertField {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        // Tombstones pass untouched, as in Kafka.
        if value.is_null() {
            return Ok(Some(r));
        }
        let adds = self.additions(&r);
        match schema {
            None => {
                let mut m = require_map(&value, "field insertion")?.clone();
                for (n, _, _, v) in adds {
                    m.retain(|(k, _)| k.as_str() != Some(n.as_str()));
                    m.push((Value::String(n), v));
                }
                Ok(Some(set_side(r, self.side, None, Value::Map(m))))
            }
            Some(schema) => {
                let old = require_struct(&value, "field insertion")?;
                let mut ns = schema_like(&schema);
                for f in &schema.fields {
                    ns = ns.field(&f.name, (*f.schema).clone())?;
                }
                for (n, optional, s, _) in &adds {
                    let s = if *optional {
                        s.clone().optional()
                    } else {
                        s.clone()
                    };
                    ns = ns.field(n, s)?;
                }
                let ns = Arc::new(ns);
                let mut out = Struct::new(ns.clone())?;
                for f in &schema.fields {
                    if let Some(v) = old.get_without_default(&f.name) {
                        out.set(&f.name, v.clone())?;
                    }
                }
                for (n, _, _, v) in adds {
                    out.set(&n, v)?;
                }
                Ok(Some(set_side(r, self.side, Some(ns), Value::Struct(out))))
            }
        }
    }
}

/// ReplaceField$Key / $Value: keeps (`include`), drops (`exclude`) and renames (`renames=a:b`) fields.
struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    fn new(side: Side, props: &ConfigMap) -> Result<ReplaceField> {
        let mut renames = Vec::new();
        for r in parse_list(props.get("renames").map(String::as_str).unwrap_or("")) {
            let (a, b) = r.split_once(':').ok_or_else(|| {
                ConnectError::config(format!(
                    "Invalid value [{r}] for configuration renames: Invalid rename mapping: {r}"
                ))
            })?;
            renames.push((a.to_string(), b.to_string()));
        }
        Ok(ReplaceField {
            side,
            include: parse_list(props.get("include").map(String::as_str).unwrap_or("")),
            exclude: parse_list(props.get("exclude").map(String::as_str).unwrap_or("")),
            renames,
        })
    }

    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(a, _)| a == name)
            .map(|(_, b)| b.as_str())
            .unwrap_or(name)
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        if value.is_null() {
            return Ok(Some(r));
        }
        match schema {
            None => {
                let m = require_map(&value, "field replacement")?;
                let out = m
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?;
                        self.keep(name)
                            .then(|| (Value::String(self.renamed(name).to_string()), v.clone()))
                    })
                    .collect();
                Ok(Some(set_side(r, self.side, None, Value::Map(out))))
            }
            Some(schema) => {
                let old = require_struct(&value, "field replacement")?;
                let mut ns = schema_like(&schema);
                for f in schema.fields.iter().filter(|f| self.keep(&f.name)) {
                    ns = ns.field(self.renamed(&f.name), (*f.schema).clone())?;
                }
                let ns = Arc::new(ns);
                let mut out = Struct::new(ns.clone())?;
                for f in schema.fields.iter().filter(|f| self.keep(&f.name)) {
                    if let Some(v) = old.get_without_default(&f.name) {
                        out.set(self.renamed(&f.name), v.clone())?;
                    }
                }
                Ok(Some(set_side(r, self.side, Some(ns), Value::Struct(out))))
            }
        }
    }
}

/// MaskField$Key / $Value: replaces field values with the type's empty value or `replacement`.
struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    fn masked(&self, like: &Value, schema_type: Option<SchemaType>) -> Result<Value> {
        let ty = schema_type.or_else(|| like.inferred_type());
        let bad = |t: &str| {
            ConnectError::Data(format!(
                "Cannot mask value of type {t} with replacement {:?}",
                self.replacement
            ))
        };
        if let Some(rep) = &self.replacement {
            return Ok(match ty {
                Some(SchemaType::String) | None => Value::String(rep.clone()),
                Some(SchemaType::Int8) => Value::Int8(rep.parse().map_err(|_| bad("int8"))?),
                Some(SchemaType::Int16) => Value::Int16(rep.parse().map_err(|_| bad("int16"))?),
                Some(SchemaType::Int32) => Value::Int32(rep.parse().map_err(|_| bad("int32"))?),
                Some(SchemaType::Int64) => Value::Int64(rep.parse().map_err(|_| bad("int64"))?),
                Some(SchemaType::Float32) => {
                    Value::Float32(rep.parse().map_err(|_| bad("float32"))?)
                }
                Some(SchemaType::Float64) => {
                    Value::Float64(rep.parse().map_err(|_| bad("float64"))?)
                }
                Some(SchemaType::Boolean) => {
                    Value::Boolean(rep.parse().map_err(|_| bad("boolean"))?)
                }
                Some(t) => return Err(bad(t.name())),
            });
        }
        Ok(match ty {
            Some(SchemaType::String) | None => Value::String(String::new()),
            Some(SchemaType::Int8) => Value::Int8(0),
            Some(SchemaType::Int16) => Value::Int16(0),
            Some(SchemaType::Int32) => Value::Int32(0),
            Some(SchemaType::Int64) => Value::Int64(0),
            Some(SchemaType::Float32) => Value::Float32(0.0),
            Some(SchemaType::Float64) => Value::Float64(0.0),
            Some(SchemaType::Boolean) => Value::Boolean(false),
            Some(SchemaType::Bytes) => Value::Bytes(Vec::new()),
            Some(SchemaType::Array) => Value::Array(Vec::new()),
            Some(SchemaType::Map) => Value::Map(Vec::new()),
            Some(SchemaType::Struct) => return Err(bad("struct")),
        })
    }
}

impl Transformation for MaskField {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        if value.is_null() {
            return Ok(Some(r));
        }
        match schema {
            None => {
                let mut m = require_map(&value, "masking fields")?.clone();
                for (k, v) in m.iter_mut() {
                    if k.as_str()
                        .is_some_and(|n| self.fields.iter().any(|f| f == n))
                    {
                        *v = self.masked(v, None)?;
                    }
                }
                Ok(Some(set_side(r, self.side, None, Value::Map(m))))
            }
            Some(schema) => {
                let mut s = require_struct(&value, "masking fields")?.clone();
                for f in &schema.fields {
                    if self.fields.iter().any(|n| n == &f.name) {
                        let cur = s
                            .get_without_default(&f.name)
                            .cloned()
                            .unwrap_or(Value::Null);
                        s.set(&f.name, self.masked(&cur, Some(f.schema.schema_type))?)?;
                    }
                }
                Ok(Some(set_side(r, self.side, Some(schema), Value::Struct(s))))
            }
        }
    }
}

/// ExtractField$Key / $Value: replaces the struct or map with one of its fields.
struct ExtractField {
    side: Side,
    field: String,
}

impl Transformation for ExtractField {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        if value.is_null() {
            return Ok(Some(r));
        }
        match schema {
            None => {
                let m = require_map(&value, "field extraction")?;
                let v = m
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(self.field.as_str()))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null);
                Ok(Some(set_side(r, self.side, None, v)))
            }
            Some(schema) => {
                let s = require_struct(&value, "field extraction")?;
                let f = schema
                    .field_by_name(&self.field)
                    .ok_or_else(|| ConnectError::Data(format!("Unknown field: {}", self.field)))?;
                let v = s.get(&self.field).cloned().unwrap_or(Value::Null);
                Ok(Some(set_side(r, self.side, Some(f.schema.clone()), v)))
            }
        }
    }
}

/// HoistField$Key / $Value: wraps the value in a struct (or map) with one field.
struct HoistField {
    side: Side,
    field: String,
}

impl Transformation for HoistField {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        match schema {
            None => Ok(Some(set_side(
                r,
                self.side,
                None,
                Value::Map(vec![(Value::String(self.field.clone()), value)]),
            ))),
            Some(schema) => {
                let ns = Arc::new(Schema::struct_().field(&self.field, (*schema).clone())?);
                let mut s = Struct::new(ns.clone())?;
                s.set(&self.field, value)?;
                Ok(Some(set_side(r, self.side, Some(ns), Value::Struct(s))))
            }
        }
    }
}

/// ValueToKey: the key becomes a struct (or map) of some value fields.
struct ValueToKey {
    fields: Vec<String>,
}

impl Transformation for ValueToKey {
    fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        match r.value_schema.clone() {
            None => {
                let m = require_map(&r.value, "copying fields from value to key")?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = m
                            .iter()
                            .find(|(k, _)| k.as_str() == Some(f.as_str()))
                            .map(|(_, v)| v.clone())
                            .unwrap_or(Value::Null);
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                r.key_schema = None;
                r.key = Value::Map(key);
                Ok(Some(r))
            }
            Some(schema) => {
                let s = require_struct(&r.value, "copying fields from value to key")?;
                let mut ks = Schema::struct_();
                for f in &self.fields {
                    let fs = schema
                        .field_by_name(f)
                        .ok_or_else(|| ConnectError::Data(format!("Field does not exist: {f}")))?;
                    ks = ks.field(f, (*fs.schema).clone())?;
                }
                let ks = Arc::new(ks);
                let mut key = Struct::new(ks.clone())?;
                for f in &self.fields {
                    key.set(f, s.get(f).cloned().unwrap_or(Value::Null))?;
                }
                r.key_schema = Some(ks);
                r.key = Value::Struct(key);
                Ok(Some(r))
            }
        }
    }
}

/// RegexRouter: renames the topic when the whole name matches `regex`.
struct RegexRouter {
    regex: regex::Regex,
    replacement: String,
}

impl RegexRouter {
    fn new(props: &ConfigMap) -> Result<RegexRouter> {
        let pattern = required(props, "regex")?;
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            ConnectError::config(format!(
                "Invalid value {pattern} for configuration regex: {e}"
            ))
        })?;
        let replacement = props.get("replacement").ok_or_else(|| {
            ConnectError::config(
                "Missing required configuration \"replacement\" which has no default value.",
            )
        })?;
        Ok(RegexRouter {
            regex,
            replacement: java_replacement(replacement),
        })
    }
}

/// Java's `$1` group references as the regex crate's `${1}` (so `$1abc` keeps its meaning).
fn java_replacement(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl Transformation for RegexRouter {
    fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.regex.is_match(&r.topic) {
            r.topic = self
                .regex
                .replace(&r.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(r))
    }
}

/// TimestampRouter: `topic.format` with `${topic}` and `${timestamp}` (formatted in UTC).
struct TimestampRouter {
    topic_format: String,
    timestamp_format: String,
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let ts = r.timestamp.ok_or_else(|| {
            ConnectError::Data(format!("Timestamp missing on record: topic {}", r.topic))
        })?;
        let formatted = format_timestamp(ts, &self.timestamp_format);
        r.topic = self
            .topic_format
            .replace("${topic}", &r.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(r))
    }
}

/// A subset of Java's SimpleDateFormat in UTC: yyyy, yy, MM, dd, HH, mm, ss, SSS and quoted text.
pub fn format_timestamp(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (hh, mi, ss, sss) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            'y' if n == 2 => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            'y' => out.push_str(&format!("{y:0n$}")),
            'M' => out.push_str(&format!("{m:0n$}")),
            'd' => out.push_str(&format!("{d:0n$}")),
            'H' => out.push_str(&format!("{hh:0n$}")),
            'm' => out.push_str(&format!("{mi:0n$}")),
            's' => out.push_str(&format!("{ss:0n$}")),
            'S' => out.push_str(&format!("{sss:0n$}")),
            other => {
                for _ in 0..n {
                    out.push(other);
                }
            }
        }
        i += n;
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {

    /// Fails its first `fail` records with a retriable error, then uppercases the topic.
    struct Flaky {
        fail: usize,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Transformation for Flaky {
        fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n <= self.fail {
                return Err(ConnectError::retriable("lookup service away"));
            }
            record.topic = record.topic.to_uppercase();
            Ok(Some(record))
        }
    }

    fn flaky_chain(fail: usize) -> TransformChain {
        TransformChain {
            steps: vec![Step {
                alias: "lookup".into(),
                class: "com.example.Lookup".into(),
                transform: Box::new(Flaky {
                    fail,
                    calls: Default::default(),
                }),
                predicate: None,
                negate: false,
            }],
        }
    }

    fn plain_record() -> ConnectRecord {
        ConnectRecord {
            topic: "orders".into(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: Value::from("v"),
            timestamp: None,
            headers: Vec::new(),
            kafka_offset: None,
        }
    }

    #[test]
    fn retriable_transform_errors_are_retried_and_name_the_class_when_they_persist() {
        let stop = AtomicBool::new(false);
        let retry = |timeout: &str| {
            let cc: ConfigMap = [
                ("errors.retry.timeout", timeout),
                ("errors.retry.delay.max.ms", "5"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            ErrorHandling::from_config(&cc).expect("config")
        };
        let out = flaky_chain(2)
            .apply_retrying(plain_record(), &retry("5000"), &stop)
            .expect("passes on the third try")
            .expect("kept");
        assert_eq!(out.topic, "ORDERS");

        let err = flaky_chain(2)
            .apply_retrying(plain_record(), &retry("0"), &stop)
            .expect_err("no retries by default");
        assert_eq!(err.stage, Stage::Transformation);
        assert_eq!(err.class, "com.example.Lookup");
        assert!(err.error.is_retriable(), "kind kept through the context");
        assert!(err.error.to_string().contains("transform lookup failed"));
    }
    use super::*;

    use crate::config_def::config_map as cfg;

    fn user() -> (Arc<Schema>, Struct) {
        let schema = Arc::new(
            Schema::struct_()
                .field("id", Schema::int32())
                .and_then(|s| s.field("email", Schema::string()))
                .and_then(|s| s.field("age", Schema::int32().optional()))
                .expect("schema"),
        );
        let s = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 1))
            .and_then(|s| s.put("email", "a@b"))
            .and_then(|s| s.put("age", 30))
            .expect("struct");
        (schema, s)
    }

    fn record(schema: Arc<Schema>, s: Struct) -> ConnectRecord {
        let mut r = ConnectRecord::new("orders", Some(schema), Value::Struct(s));
        r.timestamp = Some(1_700_000_000_000);
        r.kafka_partition = Some(2);
        r
    }

    #[test]
    fn chain_insert_replace_mask_valuetokey_route() {
        let (schema, s) = user();
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "ins,rep,mask,key,route"),
            (
                "transforms.ins.type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("transforms.ins.topic.field", "src_topic!"),
            ("transforms.ins.static.field", "origin"),
            ("transforms.ins.static.value", "test"),
            ("transforms.rep.type", "ReplaceField$Value"),
            ("transforms.rep.exclude", "age"),
            ("transforms.rep.renames", "email:mail"),
            (
                "transforms.mask.type",
                "org.apache.kafka.connect.transforms.MaskField$Value",
            ),
            ("transforms.mask.fields", "mail"),
            (
                "transforms.key.type",
                "org.apache.kafka.connect.transforms.ValueToKey",
            ),
            ("transforms.key.fields", "id"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "(ord)ers"),
            ("transforms.route.replacement", "$1-copy"),
        ]))
        .expect("chain");
        let out = chain
            .apply(record(schema, s))
            .expect("apply")
            .expect("kept");
        assert_eq!(out.topic, "ord-copy");
        let Value::Struct(v) = &out.value else {
            panic!("struct")
        };
        let names: Vec<&str> = v.schema().fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "mail", "src_topic", "origin"]);
        assert_eq!(v.get("mail"), Some(&Value::from("")));
        assert_eq!(v.get("src_topic"), Some(&Value::from("orders")));
        assert!(
            !v.schema()
                .field_by_name("src_topic")
                .expect("f")
                .schema
                .optional
        );
        assert_eq!(v.get("origin"), Some(&Value::from("test")));
        let Value::Struct(k) = &out.key else {
            panic!("key struct")
        };
        assert_eq!(k.get("id"), Some(&Value::Int32(1)));
    }

    #[test]
    fn extract_hoist_schemaless_and_predicates() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "drop,extract,hoist"),
            ("transforms.drop.type", "Filter"),
            ("transforms.drop.predicate", "isTomb"),
            ("transforms.extract.type", "ExtractField$Value"),
            ("transforms.extract.field", "a"),
            ("transforms.hoist.type", "HoistField$Value"),
            ("transforms.hoist.field", "wrapped"),
            ("predicates", "isTomb"),
            (
                "predicates.isTomb.type",
                "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            ),
        ]))
        .expect("chain");
        let tomb = ConnectRecord::new("t", None, Value::Null);
        assert_eq!(chain.apply(tomb).expect("ok"), None);
        let m = Value::Map(vec![("a".into(), 5.into()), ("b".into(), 6.into())]);
        let out = chain
            .apply(ConnectRecord::new("t", None, m))
            .expect("ok")
            .expect("kept");
        assert_eq!(out.value, Value::Map(vec![("wrapped".into(), 5.into())]));
        let err = chain
            .apply(ConnectRecord::new("t", None, "str".into()))
            .unwrap_err();
        assert!(
            err.to_string().contains("Only Map objects supported"),
            "{err}"
        );
    }

    #[test]
    fn header_and_schema_metadata_transforms_by_class_name() {
        let (schema, s) = user();
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "meta,tag,toHeader,drop"),
            (
                "transforms.meta.type",
                "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
            ),
            ("transforms.meta.schema.name", "com.example.User"),
            (
                "transforms.tag.type",
                "org.apache.kafka.connect.transforms.InsertHeader",
            ),
            ("transforms.tag.header", "origin"),
            ("transforms.tag.value.literal", "crm"),
            ("transforms.toHeader.type", "HeaderFrom$Value"),
            ("transforms.toHeader.fields", "email"),
            ("transforms.toHeader.headers", "x-email"),
            ("transforms.toHeader.operation", "move"),
            ("transforms.drop.type", "DropHeaders"),
            ("transforms.drop.headers", "origin"),
        ]))
        .expect("chain");
        let out = chain
            .apply(record(schema, s))
            .expect("apply")
            .expect("kept");
        let keys: Vec<&str> = out.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys, ["x-email"]);
        assert_eq!(out.headers[0].value.as_deref(), Some(&b"a@b"[..]));
        let vs = out.value_schema.expect("schema");
        assert_eq!(vs.name.as_deref(), Some("com.example.User"));
        assert!(
            vs.field_by_name("email").is_none(),
            "moved out of the value"
        );
        for class in [
            "SetSchemaMetadata$Key",
            "DropHeaders",
            "InsertHeader",
            "HeaderFrom$Key",
        ] {
            assert!(
                TRANSFORM_CLASSES.contains(&format!("{PKG}{class}").as_str()),
                "{class} listed"
            );
        }
        let err = TransformChain::from_config(&cfg(&[
            ("transforms", "tag"),
            ("transforms.tag.type", "InsertHeader"),
            ("transforms.tag.header", "origin"),
        ]))
        .err()
        .expect("error");
        assert!(err.to_string().contains("value.literal"), "{err}");
    }

    #[test]
    fn timestamp_router_and_bad_configs() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "ts"),
            ("transforms.ts.type", "TimestampRouter"),
        ]))
        .expect("chain");
        let mut r = ConnectRecord::new("logs", None, Value::Null);
        r.timestamp = Some(1_700_000_000_000); // 2023-11-14T22:13:20Z
        assert_eq!(
            chain.apply(r).expect("ok").expect("kept").topic,
            "logs-20231114"
        );
        assert_eq!(
            format_timestamp(0, "yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "1970-01-01T00:00:00.000"
        );
        assert!(TransformChain::from_config(&cfg(&[("transforms", "x")])).is_err());
        let err = TransformChain::from_config(&cfg(&[
            ("transforms", "x"),
            ("transforms.x.type", "com.example.Nope"),
        ]))
        .err()
        .expect("error");
        assert!(err.to_string().contains("could not be found"), "{err}");
        assert!(
            TransformChain::from_config(&cfg(&[
                ("transforms", "x"),
                ("transforms.x.type", "ExtractField$Key"),
            ]))
            .is_err()
        );
    }
}
