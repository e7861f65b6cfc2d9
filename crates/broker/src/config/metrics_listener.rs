//! `metrics.listener`: where the Prometheus metrics endpoint listens, `http://host:port`.

use super::{ConfigError, invalid};
use std::fmt;

/// The key; strom's own (Kafka serves its metrics over JMX, which has no broker key).
pub const METRICS_LISTENER_KEY: &str = "metrics.listener";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsListener {
    /// Empty means every interface, as for `listeners`.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl MetricsListener {
    /// `http://host:port`, or an empty value for no endpoint.
    pub fn parse(key: &str, v: &str) -> Result<Option<MetricsListener>, ConfigError> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let Some(rest) = v.strip_prefix("http://") else {
            // Refusing https beats serving plain HTTP where TLS was asked for.
            return Err(invalid(
                key,
                v,
                "expected http://host:port (only plain HTTP is served), or empty for none",
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            stripped
                .split_once("]:")
                .ok_or_else(|| invalid(key, v, "expected http://[ipv6]:port"))?
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| invalid(key, v, "expected http://host:port"))?
        };
        if host.contains('/') {
            return Err(invalid(
                key,
                v,
                "no path: the endpoint is always served at /metrics",
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(key, v, "port must be a number from 0 to 65535"))?;
        Ok(Some(MetricsListener {
            host: host.to_string(),
            port,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_addresses_and_refuses_the_rest() {
        let l = MetricsListener::parse(METRICS_LISTENER_KEY, "http://127.0.0.1:9644")
            .expect("valid")
            .expect("some");
        assert_eq!(l.bind_addr(), "127.0.0.1:9644");
        assert_eq!(l.to_string(), "http://127.0.0.1:9644");
        let l = MetricsListener::parse(METRICS_LISTENER_KEY, "http://[::1]:0")
            .expect("valid")
            .expect("some");
        assert_eq!(l.bind_addr(), "[::1]:0");
        assert_eq!(
            MetricsListener::parse(METRICS_LISTENER_KEY, "").expect("empty"),
            None
        );
        for bad in [
            "127.0.0.1:9644",
            "https://127.0.0.1:9644",
            "http://127.0.0.1",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:9644/metrics",
        ] {
            let err = MetricsListener::parse(METRICS_LISTENER_KEY, bad).expect_err(bad);
            assert!(err.to_string().contains(METRICS_LISTENER_KEY), "{err}");
        }
    }
}
