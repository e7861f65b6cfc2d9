//! Pieces every tool shares: the connection flags, `key=value` parsing, properties files, the
//! librdkafka client configuration, and a Ctrl-C flag.

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long admin requests and metadata lookups may take before the tool gives up. Long enough for
/// a broker that is still starting, short enough that a wrong address fails within a script's patience.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags that say which cluster to talk to, shared by every tool.
#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(
        long = "bootstrap-server",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        env = "STROM_BOOTSTRAP_SERVER"
    )]
    pub bootstrap_server: String,
    /// A client properties file (key=value lines) applied before the per-flag properties,
    /// like Kafka's --command-config.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl ConnectArgs {
    /// A librdkafka configuration for this cluster: bootstrap servers, then the properties file,
    /// then `extra` (later settings win, as with Kafka's tools).
    pub fn client_config(
        &self,
        client_id: &str,
        extra: &[(String, String)],
    ) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_server);
        config.set("client.id", client_id);
        if let Some(path) = &self.command_config {
            for (k, v) in read_properties_file(path)? {
                config.set(k, v);
            }
        }
        for (k, v) in extra {
            config.set(k, v);
        }
        Ok(config)
    }
}

/// Splits `key=value` at the first `=`; `flag` names the option in the error.
pub fn parse_kv(flag: &str, s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => bail!("{flag}: expected KEY=VALUE, got '{s}'"),
    }
}

/// Parses every `key=value` of a repeatable flag.
pub fn parse_kvs(flag: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items.iter().map(|s| parse_kv(flag, s)).collect()
}

/// Reads a Java-style properties file: `key=value` or `key: value` lines, `#`/`!` comments.
pub fn read_properties_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--command-config: cannot read {}", path.display()))?;
    parse_properties(&text).with_context(|| format!("--command-config {}", path.display()))
}

pub fn parse_properties(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for p in strom_properties::parse(text) {
        // java.util.Properties would take a bare word as a key with an empty value; in a client
        // config file that is always a mistake, so it is refused with its line.
        if p.value.is_empty()
            && !text
                .lines()
                .nth(p.line - 1)
                .is_some_and(|l| l.contains(['=', ':']))
        {
            bail!("line {}: expected key=value, got '{}'", p.line, p.key);
        }
        out.push((p.key, p.value));
    }
    Ok(out)
}

/// Parses a boolean property value the way Kafka does (case-insensitive true/false).
pub fn parse_bool(key: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("{key}: expected true or false, got '{value}'"),
    }
}

/// Maps `--acks` to librdkafka's `acks` (Kafka's console producer also accepts -1 for all).
pub fn parse_acks(value: &str) -> anyhow::Result<&'static str> {
    match value {
        "0" => Ok("0"),
        "1" => Ok("1"),
        "all" | "-1" => Ok("all"),
        _ => bail!("--acks: expected 0, 1 or all, got '{value}'"),
    }
}

/// Checks `--compression` against the codecs librdkafka was built with.
pub fn parse_compression(value: &str) -> anyhow::Result<&'static str> {
    match value {
        "none" => Ok("none"),
        "gzip" => Ok("gzip"),
        "snappy" => Ok("snappy"),
        "lz4" => Ok("lz4"),
        "zstd" => Ok("zstd"),
        _ => bail!("--compression: expected none, gzip, snappy, lz4 or zstd, got '{value}'"),
    }
}

/// A flag set on the first SIGINT/SIGTERM, so long-running loops can stop and print their totals
/// (Kafka's tools do the same from a shutdown hook). Loops check it at least every 100 ms.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    on_interrupt(move || set.store(true, Ordering::SeqCst));
    flag
}

/// Runs `f` on a background thread when SIGINT or SIGTERM arrives. Installing the handler replaces
/// the default "die at once" behaviour, so `f` (or the code watching what it sets) must end the work.
pub fn on_interrupt(f: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("strom-signal".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let signalled = rt.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    let Ok(mut term) = signal(SignalKind::terminate()) else {
                        return tokio::signal::ctrl_c().await.is_ok();
                    };
                    tokio::select! {
                        r = tokio::signal::ctrl_c() => r.is_ok(),
                        _ = term.recv() => true,
                    }
                }
                #[cfg(not(unix))]
                {
                    tokio::signal::ctrl_c().await.is_ok()
                }
            });
            if signalled {
                f();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for Ctrl-C ({e}); the tool will stop only on its own limits");
    }
}

/// A single-threaded runtime for the admin client's futures (rdkafka resolves them from its own
/// background thread, so no worker threads are needed).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    Ok(rt.block_on(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_splits_at_first_equals() {
        assert_eq!(
            parse_kv("--config", "a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(
            parse_kv("--config", "k=").unwrap(),
            ("k".to_string(), String::new())
        );
        let err = parse_kv("--config", "novalue").unwrap_err().to_string();
        assert!(err.contains("--config") && err.contains("novalue"), "{err}");
        assert!(parse_kv("--header", "=v").is_err());
    }

    #[test]
    fn properties_file_format() {
        let props = parse_properties(
            "# comment\n! also\n\nsecurity.protocol = PLAINTEXT\nclient.id:me\nsasl.jaas=a=b\n",
        )
        .unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol".into(), "PLAINTEXT".into()),
                ("client.id".into(), "me".into()),
                ("sasl.jaas".into(), "a=b".into()),
            ]
        );
        let err = parse_properties("ok=1\njunk\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn acks_and_compression() {
        assert_eq!(parse_acks("-1").unwrap(), "all");
        assert_eq!(parse_acks("all").unwrap(), "all");
        assert!(parse_acks("2").unwrap_err().to_string().contains("--acks"));
        assert_eq!(parse_compression("zstd").unwrap(), "zstd");
        assert!(
            parse_compression("brotli")
                .unwrap_err()
                .to_string()
                .contains("--compression")
        );
    }
}
