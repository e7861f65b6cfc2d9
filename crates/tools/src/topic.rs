//! `strom topic create|list|describe|alter|delete`, like kafka-topics.sh.

use crate::common::{ConnectArgs, REQUEST_TIMEOUT, block_on, parse_kvs};
use crate::describe_topics;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::MetadataTopic;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::io::Write;

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        #[command(flatten)]
        topic: TopicName,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor", value_name = "R")]
        replication_factor: Option<i32>,
        /// A topic config override, e.g. --config cleanup.policy=compact (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Succeed without doing anything when the topic already exists.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List topic names, one per line.
    List {
        /// Leave out internal topics (names starting with "__").
        #[arg(long = "exclude-internal")]
        exclude_internal: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe one topic, or every topic: ids, partitions, leaders, replicas, ISR, config overrides.
    Describe {
        #[command(flatten)]
        topic: OptTopicName,
        /// Succeed without output when the topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
        /// Leave out internal topics when describing all topics.
        #[arg(long = "exclude-internal")]
        exclude_internal: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Raise a topic's partition count (CreatePartitions).
    Alter {
        #[command(flatten)]
        topic: TopicName,
        /// The new, larger, partition count.
        #[arg(long, value_name = "N")]
        partitions: i32,
        /// Succeed without doing anything when the topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete a topic.
    Delete {
        #[command(flatten)]
        topic: TopicName,
        /// Succeed without doing anything when the topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// A required topic name, given as `TOPIC` or, as with kafka-topics.sh, `--topic TOPIC`.
#[derive(Args, Clone, Debug)]
#[group(required = true, multiple = false)]
pub struct TopicName {
    /// The topic.
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    /// The topic (kafka-topics.sh spelling).
    #[arg(long = "topic", value_name = "TOPIC")]
    flag: Option<String>,
}

impl TopicName {
    fn get(&self) -> anyhow::Result<&str> {
        match (&self.name, &self.flag) {
            (Some(n), _) | (None, Some(n)) => Ok(n),
            (None, None) => bail!("TOPIC: a topic name is required"),
        }
    }
}

/// An optional topic name, `TOPIC` or `--topic TOPIC`.
#[derive(Args, Clone, Debug)]
#[group(required = false, multiple = false)]
pub struct OptTopicName {
    /// The topic (all topics when left out).
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    /// The topic (kafka-topics.sh spelling).
    #[arg(long = "topic", value_name = "TOPIC")]
    flag: Option<String>,
}

/// Kafka's rule for topic names: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("TOPIC: topic name is empty");
    }
    if name == "." || name == ".." {
        bail!("TOPIC: topic name cannot be '.' or '..'");
    }
    if name.len() > 249 {
        bail!(
            "TOPIC: topic name is {} characters long, the limit is 249",
            name.len()
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        bail!(
            "TOPIC: '{name}' contains '{c}'; topic names use only ASCII letters, digits, '.', '_' and '-'"
        );
    }
    Ok(())
}

fn admin(connect: &ConnectArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    connect
        .client_config("strom-topic", &[])?
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

/// All topics' metadata. Asking for every topic (rather than one by name) never triggers broker-side
/// auto-creation, which a by-name metadata request from a producer-type handle could.
fn all_topics(
    admin: &AdminClient<DefaultClientContext>,
    connect: &ConnectArgs,
) -> anyhow::Result<rdkafka::metadata::Metadata> {
    admin
        .inner()
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .with_context(|| {
            format!(
                "--bootstrap-server {}: cannot fetch metadata",
                connect.bootstrap_server
            )
        })
}

pub fn run(cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
            connect,
        } => create(
            topic.get()?,
            partitions,
            replication_factor,
            &configs,
            if_not_exists,
            &connect,
        ),
        TopicCommand::List {
            exclude_internal,
            connect,
        } => list(exclude_internal, &connect),
        TopicCommand::Describe {
            topic,
            if_exists,
            exclude_internal,
            connect,
        } => describe(
            topic.name.as_deref().or(topic.flag.as_deref()),
            if_exists,
            exclude_internal,
            &connect,
        ),
        TopicCommand::Alter {
            topic,
            partitions,
            if_exists,
            connect,
        } => alter(topic.get()?, partitions, if_exists, &connect),
        TopicCommand::Delete {
            topic,
            if_exists,
            connect,
        } => delete(topic.get()?, if_exists, &connect),
    }
}

fn create(
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    configs: &[String],
    if_not_exists: bool,
    connect: &ConnectArgs,
) -> anyhow::Result<()> {
    validate_topic_name(name)?;
    if let Some(p) = partitions
        && p < 1
    {
        bail!("--partitions: must be at least 1, got {p}");
    }
    if let Some(r) = replication_factor
        && !(1..=i32::from(i16::MAX)).contains(&r)
    {
        bail!("--replication-factor: must be between 1 and 32767, got {r}");
    }
    let configs = parse_kvs("--config", configs)?;
    // -1 asks the broker for its defaults (CreateTopics v4+), as kafka-topics.sh does.
    let mut new_topic = NewTopic::new(
        name,
        partitions.unwrap_or(-1),
        TopicReplication::Fixed(replication_factor.unwrap_or(-1)),
    );
    for (k, v) in &configs {
        new_topic = new_topic.set(k, v);
    }
    let admin = admin(connect)?;
    let results = block_on(admin.create_topics([&new_topic], &options()))?
        .with_context(|| format!("creating topic '{name}'"))?;
    for result in results {
        match result {
            Ok(_) => println!("Created topic {name}."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if if_not_exists => {}
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                bail!("topic '{t}' already exists (--if-not-exists skips it)")
            }
            Err((t, code)) => bail!("creating topic '{t}': {code}"),
        }
    }
    Ok(())
}

fn list(exclude_internal: bool, connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let md = all_topics(&admin, connect)?;
    let mut names: Vec<&str> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .filter(|n| !(exclude_internal && is_internal(n)))
        .collect();
    names.sort_unstable();
    let mut out = std::io::stdout().lock();
    for n in names {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// Kafka's internal topics (__consumer_offsets, __transaction_state, ...) all start with "__".
fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

fn describe(
    name: Option<&str>,
    if_exists: bool,
    exclude_internal: bool,
    connect: &ConnectArgs,
) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let md = all_topics(&admin, connect)?;
    let mut topics: Vec<&MetadataTopic> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .filter(|t| match name {
            Some(n) => t.name() == n,
            None => !(exclude_internal && is_internal(t.name())),
        })
        .collect();
    topics.sort_unstable_by(|a, b| a.name().cmp(b.name()));
    if let Some(n) = name
        && topics.is_empty()
    {
        if if_exists {
            return Ok(());
        }
        bail!("topic '{n}' does not exist");
    }
    let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
    let ids = describe_topics::topic_ids(admin.inner().native_ptr(), &names, REQUEST_TIMEOUT);
    let configs = topic_configs(&admin, &names)?;
    let mut out = std::io::stdout().lock();
    for t in topics {
        let mut parts: Vec<_> = t.partitions().iter().collect();
        parts.sort_unstable_by_key(|p| p.id());
        let rf = parts.first().map_or(0, |p| p.replicas().len());
        let cfg = configs.get(t.name()).map(String::as_str).unwrap_or("");
        let id = ids.get(t.name()).map(String::as_str).unwrap_or("");
        writeln!(
            out,
            "Topic: {}\tTopicId: {id}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {cfg}",
            t.name(),
            parts.len()
        )?;
        for p in parts {
            let leader = if p.leader() < 0 {
                "none".to_string()
            } else {
                p.leader().to_string()
            };
            writeln!(
                out,
                "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                t.name(),
                p.id(),
                join_ids(p.replicas()),
                join_ids(p.isr())
            )?;
        }
    }
    Ok(())
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Each topic's non-default configs as `k=v,k=v` (sorted), like kafka-topics.sh's `Configs:` column.
fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let specs: Vec<ResourceSpecifier<'_>> =
        names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let results = block_on(admin.describe_configs(&specs, &options()))?
        .context("describing topic configs")?;
    for (name, result) in names.iter().zip(results) {
        // A topic whose configs cannot be read still gets described, with an empty Configs column.
        let Ok(resource) = result else { continue };
        let mut entries: Vec<String> = resource
            .entries
            .iter()
            .filter(|e| !matches!(e.source, ConfigSource::Default) && !e.is_default)
            .map(|e| {
                let v = if e.is_sensitive {
                    "<sensitive>"
                } else {
                    e.value.as_deref().unwrap_or("null")
                };
                format!("{}={v}", e.name)
            })
            .collect();
        entries.sort_unstable();
        out.insert(name.to_string(), entries.join(","));
    }
    Ok(out)
}

fn alter(
    name: &str,
    partitions: i32,
    if_exists: bool,
    connect: &ConnectArgs,
) -> anyhow::Result<()> {
    let count = usize::try_from(partitions)
        .ok()
        .filter(|&n| n >= 1)
        .with_context(|| format!("--partitions: must be at least 1, got {partitions}"))?;
    let admin = admin(connect)?;
    let results =
        block_on(admin.create_partitions([&NewPartitions::new(name, count)], &options()))?
            .with_context(|| format!("altering topic '{name}'"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if if_exists => {}
            Err((t, code)) => bail!("altering topic '{t}' to --partitions {partitions}: {code}"),
        }
    }
    Ok(())
}

fn delete(name: &str, if_exists: bool, connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let results = block_on(admin.delete_topics(&[name], &options()))?
        .with_context(|| format!("deleting topic '{name}'"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if if_exists => {}
            Err((t, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                bail!("topic '{t}' does not exist")
            }
            Err((t, code)) => bail!("deleting topic '{t}': {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
        let err = validate_topic_name("a b").unwrap_err().to_string();
        assert!(err.contains("TOPIC") && err.contains("' '"), "{err}");
    }

    #[test]
    fn ids_join() {
        assert_eq!(join_ids(&[1, 2, 3]), "1,2,3");
        assert_eq!(join_ids(&[]), "");
    }
}
