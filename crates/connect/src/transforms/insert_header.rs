//! `InsertHeader` (`org.apache.kafka.connect.transforms.InsertHeader`): adds the header `header`
//! with the text `value.literal` to every record. It is added even when a header of that key is
//! already there, as in Kafka (headers may repeat).
//!
//! Kafka parses the literal into a typed value and the header converter renders it again, which
//! gives back the same text for strings, booleans and integers; strom writes the literal's UTF-8
//! bytes directly, so only odd spellings of numbers (`1.50`, which Kafka writes as `1.5`) differ.

use super::Transformation;
use crate::config_def::ConfigMap;
use crate::connector::{ConnectRecord, Header};
use crate::error::{ConnectError, Result};

pub(super) struct InsertHeader {
    header: String,
    value: Vec<u8>,
}

/// Kafka's `NonEmptyStringWithoutControlChars`: required, not empty, no ASCII control characters.
fn literal<'a>(props: &'a ConfigMap, key: &str) -> Result<&'a str> {
    let v = props.get(key).ok_or_else(|| {
        ConnectError::config(format!(
            "Missing required configuration \"{key}\" which has no default value."
        ))
    })?;
    if v.is_empty() {
        return Err(ConnectError::config(format!(
            "Invalid value {v} for configuration {key}: String may not be empty"
        )));
    }
    if v.chars().any(|c| c.is_ascii_control()) {
        return Err(ConnectError::config(format!(
            "Invalid value {} for configuration {key}: String may not contain control characters",
            v.escape_debug()
        )));
    }
    Ok(v)
}

impl InsertHeader {
    pub(super) fn new(props: &ConfigMap) -> Result<InsertHeader> {
        Ok(InsertHeader {
            header: literal(props, "header")?.to_string(),
            value: literal(props, "value.literal")?.as_bytes().to_vec(),
        })
    }
}

impl Transformation for InsertHeader {
    fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        r.headers.push(Header {
            key: self.header.clone(),
            value: Some(self.value.clone()),
        });
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Value;

    fn props(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn appends_header_even_if_present() {
        let t = InsertHeader::new(&props(&[("header", "source"), ("value.literal", "db-1")]))
            .expect("config");
        let mut r = ConnectRecord::new("t", None, Value::from("v"));
        r.headers.push(Header {
            key: "source".into(),
            value: Some(b"old".to_vec()),
        });
        let out = t.apply(r).expect("apply").expect("kept");
        let values: Vec<Option<&[u8]>> = out
            .headers
            .iter()
            .filter(|h| h.key == "source")
            .map(|h| h.value.as_deref())
            .collect();
        assert_eq!(values, [Some(&b"old"[..]), Some(&b"db-1"[..])]);
    }

    #[test]
    fn bad_config_names_the_key() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("value.literal", "x")], "header"),
            (&[("header", "h")], "value.literal"),
            (&[("header", ""), ("value.literal", "x")], "header"),
            (
                &[("header", "h"), ("value.literal", "a\nb")],
                "value.literal",
            ),
        ];
        for (pairs, key) in cases {
            let err = InsertHeader::new(&props(pairs)).err().expect("error");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("\"{key}\""))
                    || msg.contains(&format!("configuration {key}:")),
                "{msg}"
            );
        }
    }
}
