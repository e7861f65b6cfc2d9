//! `strom configs describe|alter`, like kafka-configs.sh for topics and brokers.
//!
//! librdkafka (through rdkafka 0.39) offers the whole-set AlterConfigs only, so `alter` reads the
//! resource's dynamic configs, applies `--add-config` and `--delete-config` to them, and writes the
//! resulting set back (what kafka-configs.sh did before IncrementalAlterConfigs).

use crate::common::{ConnectArgs, REQUEST_TIMEOUT, block_on};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigEntry, ConfigSource, ResourceSpecifier,
};
use rdkafka::client::DefaultClientContext;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Subcommand)]
pub enum ConfigsCommand {
    /// Show a topic's or a broker's configs (the dynamic ones, or all with --all).
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Show every config with its source, not only the dynamic ones.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Add, change or remove a topic's or a broker's dynamic configs.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Configs to set: k1=v1,k2=[a,b],... (brackets hold list values with commas).
        #[arg(long = "add-config", value_name = "K=V,...")]
        add: Vec<String>,
        /// Configs to remove: k1,k2,...
        #[arg(long = "delete-config", value_name = "K,...")]
        delete: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// The resource: `--topic T` or `--broker ID` (or kafka-configs.sh's `--entity-type` and
/// `--entity-name`).
#[derive(Args, Clone, Debug)]
pub struct Entity {
    /// The topic.
    #[arg(long, value_name = "TOPIC", conflicts_with_all = ["broker", "entity_type"])]
    topic: Option<String>,
    /// The broker's node id.
    #[arg(long, value_name = "ID", conflicts_with = "entity_type")]
    broker: Option<i32>,
    /// kafka-configs.sh spelling: topics or brokers (with --entity-name).
    #[arg(long = "entity-type", value_name = "TYPE", requires = "entity_name")]
    entity_type: Option<String>,
    /// kafka-configs.sh spelling: the topic name or broker id.
    #[arg(long = "entity-name", value_name = "NAME", requires = "entity_type")]
    entity_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Topic(String),
    Broker(i32),
}

impl Entity {
    fn resolve(&self) -> anyhow::Result<Resource> {
        if let Some(t) = &self.topic {
            return Ok(Resource::Topic(t.clone()));
        }
        if let Some(b) = self.broker {
            return Ok(Resource::Broker(b));
        }
        match (self.entity_type.as_deref(), &self.entity_name) {
            (Some("topics"), Some(n)) => Ok(Resource::Topic(n.clone())),
            (Some("brokers"), Some(n)) => {
                Ok(Resource::Broker(n.parse().with_context(|| {
                    format!("--entity-name: broker id '{n}' is not a number")
                })?))
            }
            (Some(other), _) => {
                bail!("--entity-type: '{other}' is not supported (use topics or brokers)")
            }
            _ => bail!("one of --topic, --broker or --entity-type/--entity-name is required"),
        }
    }
}

impl Resource {
    fn specifier(&self) -> ResourceSpecifier<'_> {
        match self {
            Resource::Topic(t) => ResourceSpecifier::Topic(t),
            Resource::Broker(b) => ResourceSpecifier::Broker(*b),
        }
    }

    fn describe(&self) -> String {
        match self {
            Resource::Topic(t) => format!("topic {t}"),
            Resource::Broker(b) => format!("broker {b}"),
        }
    }

    /// The sources `alter` owns: the ones it reads back and writes.
    fn is_dynamic(&self, source: &ConfigSource) -> bool {
        match self {
            Resource::Topic(_) => matches!(source, ConfigSource::DynamicTopic),
            Resource::Broker(_) => matches!(source, ConfigSource::DynamicBroker),
        }
    }
}

/// Splits `k1=v1,k2=[a,b]` at the commas outside brackets; brackets are dropped from values.
pub fn parse_add_config(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in items {
        let mut depth = 0i32;
        let mut current = String::new();
        let mut parts = Vec::new();
        for ch in item.chars() {
            match ch {
                '[' => depth += 1,
                ']' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(ch);
        }
        if depth != 0 {
            bail!("--add-config: unbalanced brackets in '{item}'");
        }
        parts.push(current);
        for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                bail!("--add-config: expected KEY=VALUE, got '{part}'");
            };
            let v = v.trim();
            let v = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v);
            if k.trim().is_empty() {
                bail!("--add-config: empty key in '{part}'");
            }
            out.push((k.trim().to_string(), v.to_string()));
        }
    }
    Ok(out)
}

fn parse_delete_config(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

fn admin(connect: &ConnectArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    connect
        .client_config("strom-configs", &[])?
        .create()
        .with_context(|| {
            format!(
                "--bootstrap-server {}: cannot create admin client",
                connect.bootstrap_server
            )
        })
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

fn fetch_entries(
    admin: &AdminClient<DefaultClientContext>,
    resource: &Resource,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let mut results = block_on(admin.describe_configs([&resource.specifier()], &options()))?
        .with_context(|| format!("describing the configs of {}", resource.describe()))?;
    let Some(result) = results.pop() else {
        bail!(
            "no answer describing the configs of {}",
            resource.describe()
        );
    };
    match result {
        Ok(r) => Ok(r.entries),
        Err(code) => bail!("describing the configs of {}: {code}", resource.describe()),
    }
}

fn format_entry(e: &ConfigEntry) -> String {
    let value = if e.is_sensitive {
        "null"
    } else {
        e.value.as_deref().unwrap_or("null")
    };
    format!(
        "  {}={} sensitive={} synonyms={{{}:{}={}}}",
        e.name,
        value,
        e.is_sensitive,
        source_name(&e.source),
        e.name,
        value
    )
}

pub fn run(cmd: ConfigsCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigsCommand::Describe {
            entity,
            all,
            connect,
        } => {
            let resource = entity.resolve()?;
            let admin = admin(&connect)?;
            let mut entries = fetch_entries(&admin, &resource)?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let mut out = std::io::stdout().lock();
            let title = if all { "All" } else { "Dynamic" };
            writeln!(out, "{title} configs for {} are:", resource.describe())?;
            for e in entries
                .iter()
                .filter(|e| all || resource.is_dynamic(&e.source))
            {
                writeln!(out, "{}", format_entry(e))?;
            }
            Ok(())
        }
        ConfigsCommand::Alter {
            entity,
            add,
            delete,
            connect,
        } => {
            let resource = entity.resolve()?;
            let add = parse_add_config(&add)?;
            let delete = parse_delete_config(&delete);
            if add.is_empty() && delete.is_empty() {
                bail!("--add-config or --delete-config is required to alter configs");
            }
            if let Some((k, _)) = add.iter().find(|(k, _)| delete.contains(k)) {
                bail!("config '{k}' is both added (--add-config) and deleted (--delete-config)");
            }
            let admin = admin(&connect)?;
            let entries = fetch_entries(&admin, &resource)?;
            let mut set: BTreeMap<String, String> = entries
                .iter()
                .filter(|e| resource.is_dynamic(&e.source))
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
            for k in &delete {
                if set.remove(k).is_none() {
                    bail!(
                        "--delete-config: invalid config(s): {k} is not set on {}",
                        resource.describe()
                    );
                }
            }
            for (k, v) in add {
                set.insert(k, v);
            }
            let mut alter = AlterConfig::new(resource.specifier());
            for (k, v) in &set {
                alter = alter.set(k, v);
            }
            let results = block_on(admin.alter_configs([&alter], &options()))?
                .with_context(|| format!("altering the configs of {}", resource.describe()))?;
            for result in results {
                if let Err((_, code)) = result {
                    bail!("altering the configs of {}: {code}", resource.describe());
                }
            }
            // rdkafka 0.39 drops per-resource errors of AlterConfigs, so read the result back:
            // a refused change (an unknown key, a bad value) leaves the old set in place.
            let after: BTreeMap<String, String> = fetch_entries(&admin, &resource)?
                .into_iter()
                .filter(|e| resource.is_dynamic(&e.source))
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
            if after != set {
                let refused: Vec<String> = set
                    .iter()
                    .filter(|(k, v)| after.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(
                        after
                            .keys()
                            .filter(|k| !set.contains_key(*k))
                            .map(|k| format!("{k} (delete)")),
                    )
                    .collect();
                bail!(
                    "the broker refused the change to {}: {} (an unknown config or an invalid \
                     value; nothing was changed)",
                    resource.describe(),
                    refused.join(", ")
                );
            }
            println!("Completed updating config for {}.", resource.describe());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_splits_outside_brackets() {
        let got = parse_add_config(&[
            "retention.ms=1000,cleanup.policy=[compact,delete]".into(),
            "segment.ms=5".into(),
        ])
        .expect("parse");
        assert_eq!(
            got,
            vec![
                ("retention.ms".into(), "1000".into()),
                ("cleanup.policy".into(), "compact,delete".into()),
                ("segment.ms".into(), "5".into()),
            ]
        );
        assert!(parse_add_config(&["novalue".into()]).is_err());
        assert!(parse_add_config(&["a=[b".into()]).is_err());
        assert_eq!(
            parse_delete_config(&["a,b".into(), "c".into()]),
            vec!["a", "b", "c"]
        );
    }
}
