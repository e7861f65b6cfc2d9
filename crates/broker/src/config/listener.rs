//! `listeners` / `advertised.listeners` entries: `NAME://host:port`.

use super::{ConfigError, invalid};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface, as in Kafka.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

impl Listener {
    pub fn parse_list(key: &str, v: &str) -> Result<Vec<Listener>, ConfigError> {
        let mut out: Vec<Listener> = Vec::new();
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let l = Self::parse(key, item)?;
            if out.iter().any(|o| o.name == l.name) {
                return Err(invalid(
                    key,
                    v,
                    &format!("listener name {} is used twice", l.name),
                ));
            }
            out.push(l);
        }
        if out.is_empty() {
            return Err(invalid(key, v, "at least one listener is needed"));
        }
        Ok(out)
    }

    fn parse(key: &str, item: &str) -> Result<Listener, ConfigError> {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| invalid(key, item, "expected NAME://host:port"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                key,
                item,
                "listener names are letters, digits and '_'",
            ));
        }
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, p) = stripped
                .split_once("]:")
                .ok_or_else(|| invalid(key, item, "expected [ipv6]:port"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| invalid(key, item, "expected host:port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(key, item, "port must be a number from 0 to 65535"))?;
        let name = name.to_ascii_uppercase();
        // Only plaintext is served today; refusing beats silently serving plaintext on an SSL name.
        if matches!(name.as_str(), "SSL" | "SASL_SSL" | "SASL_PLAINTEXT") {
            return Err(invalid(
                key,
                item,
                &format!("security protocol {name} is not supported yet; use PLAINTEXT"),
            ));
        }
        Ok(Listener { name, host, port })
    }

    /// The socket address to bind: an empty host binds every interface.
    pub fn bind_addr(&self) -> String {
        if self.host.is_empty() {
            format!("0.0.0.0:{}", self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
