//! strom-connectors: the Connect plugins built into strom, written against the `strom-connect`
//! connector API like any third-party plugin would be.
//!
//! * [`file`]: `FileStreamSource` / `FileStreamSink`
//!   (`org.apache.kafka.connect.file.FileStreamSourceConnector` / `...FileStreamSinkConnector`).
//! * [`verifiable`]: `VerifiableSource` (`org.apache.kafka.connect.tools.VerifiableSourceConnector`),
//!   numbered records per task for checking that nothing is lost.
//! * [`jdbc`]: `JdbcSourceConnector` / `JdbcSinkConnector`
//!   (`io.confluent.connect.jdbc.JdbcSourceConnector` / `...JdbcSinkConnector`) for PostgreSQL,
//!   MySQL/MariaDB and SQLite.

pub mod file;
pub mod jdbc;
pub mod verifiable;

use strom_connect::Plugins;

/// Every built-in connector plugin, ready to hand to a worker.
pub fn plugins() -> Plugins {
    let mut p = Plugins::new();
    p.register(file::source_plugin());
    p.register(file::sink_plugin());
    p.register(jdbc::source_plugin());
    p.register(jdbc::sink_plugin());
    p.register(verifiable::plugin());
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafka_names_and_aliases_resolve() {
        let p = super::plugins();
        for name in [
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "FileStreamSourceConnector",
            "FileStreamSource",
        ] {
            assert_eq!(
                p.find(name).map(|d| d.class_name),
                Some("org.apache.kafka.connect.file.FileStreamSourceConnector"),
                "{name}"
            );
        }
        assert!(p.find("FileStreamSink").is_some());
        assert!(
            p.find("org.apache.kafka.connect.file.FileStreamSinkConnector")
                .is_some()
        );
        assert!(p.find("FileStream").is_none());
        assert!(
            p.not_found_message("Nope")
                .contains("FileStreamSinkConnector")
        );
    }
}
