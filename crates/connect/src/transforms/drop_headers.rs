//! `DropHeaders` (`org.apache.kafka.connect.transforms.DropHeaders`): removes every header whose
//! key is in `headers` (all of them when a key repeats); key and value are left alone.

use std::collections::HashSet;

use super::{Transformation, required_list};
use crate::config_def::ConfigMap;
use crate::connector::ConnectRecord;
use crate::error::Result;

pub(super) struct DropHeaders {
    headers: HashSet<String>,
}

impl DropHeaders {
    pub(super) fn new(props: &ConfigMap) -> Result<DropHeaders> {
        Ok(DropHeaders {
            headers: required_list(props, "headers")?.into_iter().collect(),
        })
    }
}

impl Transformation for DropHeaders {
    fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        r.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Header;
    use crate::data::Value;

    fn header(k: &str, v: &str) -> Header {
        Header {
            key: k.into(),
            value: Some(v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn drops_every_listed_header() {
        let mut p = ConfigMap::new();
        p.insert("headers".into(), "trace, secret".into());
        let t = DropHeaders::new(&p).expect("config");
        let mut r = ConnectRecord::new("t", None, Value::from("v"));
        r.headers = vec![
            header("trace", "1"),
            header("keep", "2"),
            header("secret", "3"),
            header("trace", "4"),
        ];
        let out = t.apply(r).expect("apply").expect("kept");
        assert_eq!(out.headers, vec![header("keep", "2")]);
        assert_eq!(out.value, Value::from("v"));
    }

    #[test]
    fn missing_or_empty_headers_config_is_an_error_naming_it() {
        for bad in [None, Some(""), Some(" , ")] {
            let mut p = ConfigMap::new();
            if let Some(v) = bad {
                p.insert("headers".into(), v.into());
            }
            let err = DropHeaders::new(&p).err().expect("error");
            assert!(
                err.to_string().contains("\"headers\"")
                    || err.to_string().contains("configuration headers"),
                "{err}"
            );
        }
    }
}
