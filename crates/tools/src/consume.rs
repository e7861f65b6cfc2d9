//! `strom consume`: records -> stdout lines, like kafka-console-consumer.sh.
//!
//! Without `--group` it needs no consumer-group support from the broker: partitions are found through
//! metadata and assigned directly with explicit start offsets, and nothing is committed.

use crate::common::{ConnectArgs, REQUEST_TIMEOUT, interrupt_flag, parse_kvs};
use crate::format::{FormatterConfig, HeaderRef, RecordTimestamp, RecordView};
use anyhow::{Context, bail};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ConsumeArgs {
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Start at the earliest offset instead of the latest (when there is no committed offset).
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Consume only this partition.
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Where to start: a non-negative offset (needs --partition), earliest, or latest.
    #[arg(long, value_name = "O|earliest|latest")]
    offset: Option<String>,
    /// Stop after this many records.
    #[arg(long = "max-messages", value_name = "N")]
    max_messages: Option<u64>,
    /// Stop when no record has arrived for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print each record's key.
    #[arg(long = "print-key")]
    print_key: bool,
    /// Print each record's headers as k:v,k2:v2 (NO_HEADERS when none).
    #[arg(long = "print-headers")]
    print_headers: bool,
    /// Print each record's timestamp as CreateTime:MS or LogAppendTime:MS.
    #[arg(long = "print-timestamp")]
    print_timestamp: bool,
    /// Print each record's offset as Offset:N.
    #[arg(long = "print-offset")]
    print_offset: bool,
    /// Print each record's partition as Partition:N.
    #[arg(long = "print-partition")]
    print_partition: bool,
    /// The separator between printed fields (default: tab).
    #[arg(long = "key-separator", value_name = "SEP")]
    key_separator: Option<String>,
    /// Consume as a member of this consumer group (subscribe, commit offsets).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// read_uncommitted (default, as in Kafka) or read_committed.
    #[arg(
        long = "isolation-level",
        value_name = "LEVEL",
        default_value = "read_uncommitted"
    )]
    isolation_level: String,
    /// A formatter property, KEY=VALUE (repeatable): print.key, print.value, print.timestamp,
    /// print.partition, print.offset, print.headers, key.separator, line.separator,
    /// headers.separator, null.literal.
    #[arg(
        long = "property",
        alias = "formatter-property",
        value_name = "KEY=VALUE"
    )]
    properties: Vec<String>,
    /// A librdkafka consumer config, KEY=VALUE (repeatable), e.g. fetch.wait.max.ms=100.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_properties: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Where each assigned partition starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(i64),
}

impl StartAt {
    fn offset(self) -> Offset {
        match self {
            StartAt::Earliest => Offset::Beginning,
            StartAt::Latest => Offset::End,
            StartAt::Offset(o) => Offset::Offset(o),
        }
    }
}

/// Resolves --from-beginning, --offset and --partition into a start position (Kafka's rules: an
/// explicit offset needs a partition and excludes --from-beginning).
pub fn start_at(
    from_beginning: bool,
    offset: Option<&str>,
    partition: Option<i32>,
) -> anyhow::Result<StartAt> {
    match offset {
        None if from_beginning => Ok(StartAt::Earliest),
        None => Ok(StartAt::Latest),
        Some(_) if from_beginning => {
            bail!("--offset and --from-beginning cannot be used together")
        }
        Some("earliest") => Ok(StartAt::Earliest),
        Some("latest") => Ok(StartAt::Latest),
        Some(s) => {
            let o: i64 = s.parse().ok().filter(|o| *o >= 0).with_context(|| {
                format!("--offset: expected a non-negative number, earliest or latest, got '{s}'")
            })?;
            if partition.is_none() {
                bail!("--offset {o} needs --partition (an offset means nothing across partitions)");
            }
            Ok(StartAt::Offset(o))
        }
    }
}

/// Assigns `topic`'s partitions (or just `only`) to `consumer` at `start`, found through metadata.
/// Returns how many partitions were assigned.
pub fn assign_partitions<C: Consumer>(
    consumer: &C,
    topic: &str,
    only: Option<i32>,
    start: StartAt,
) -> anyhow::Result<usize> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("--topic {topic}: cannot fetch metadata"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        bail!("--topic {topic}: the broker returned no metadata for it");
    };
    if let Some(err) = t.error() {
        let code = rdkafka::types::RDKafkaErrorCode::from(err);
        if code == rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
            bail!("--topic {topic}: the topic does not exist");
        }
        bail!("--topic {topic}: {code}");
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    if ids.is_empty() {
        bail!("--topic {topic}: the topic has no partitions (does it exist?)");
    }
    if let Some(p) = only {
        if !ids.contains(&p) {
            bail!(
                "--partition {p}: topic '{topic}' has partitions 0..{}",
                ids.len().saturating_sub(1)
            );
        }
        ids = vec![p];
    }
    let mut tpl = TopicPartitionList::with_capacity(ids.len());
    for p in &ids {
        tpl.add_partition_offset(topic, *p, start.offset())
            .with_context(|| format!("--partition {p}: cannot set the start offset"))?;
    }
    consumer
        .assign(&tpl)
        .with_context(|| format!("--topic {topic}: cannot assign partitions"))?;
    Ok(ids.len())
}

/// Settings for a consumer that reads assigned partitions outside any group. librdkafka refuses
/// `assign` without a `group.id` ("Unknown group"), so it gets a throwaway one; with auto-commit and
/// offset storing off it never joins, commits or fetches offsets, so the id is never used on the wire
/// beyond librdkafka's coordinator lookup, whose failure does not affect fetching.
pub fn no_group_config(tool: &str) -> Vec<(String, String)> {
    vec![
        (
            "group.id".into(),
            format!("strom-{tool}-nogroup-{}", std::process::id()),
        ),
        ("enable.auto.commit".into(), "false".into()),
        ("enable.auto.offset.store".into(), "false".into()),
    ]
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut fmt = FormatterConfig::default();
    for (k, v) in parse_kvs("--property", &args.properties)? {
        fmt.set(&k, &v)?;
    }
    // The flags win over --property, being the more specific spelling.
    fmt.print_key |= args.print_key;
    fmt.print_headers |= args.print_headers;
    fmt.print_timestamp |= args.print_timestamp;
    fmt.print_offset |= args.print_offset;
    fmt.print_partition |= args.print_partition;
    if let Some(sep) = &args.key_separator {
        fmt.key_separator = sep.as_bytes().to_vec();
    }
    let start = start_at(args.from_beginning, args.offset.as_deref(), args.partition)?;
    if args.group.is_some() && (args.partition.is_some() || args.offset.is_some()) {
        bail!(
            "--group cannot be combined with --partition or --offset (the group assigns partitions and keeps offsets)"
        );
    }
    let isolation = match args.isolation_level.as_str() {
        l @ ("read_committed" | "read_uncommitted") => l,
        other => {
            bail!("--isolation-level: expected read_committed or read_uncommitted, got '{other}'")
        }
    };

    let mut extra: Vec<(String, String)> = vec![("isolation.level".into(), isolation.into())];
    match &args.group {
        Some(g) => {
            extra.push(("group.id".into(), g.clone()));
            let reset = if start == StartAt::Earliest {
                "earliest"
            } else {
                "latest"
            };
            extra.push(("auto.offset.reset".into(), reset.into()));
        }
        None => {
            // No group: assign directly; nothing is committed or stored.
            extra.extend(no_group_config("console"));
            // An assigned offset that has been deleted by retention falls back like Kafka's default.
            let reset = if start == StartAt::Latest {
                "latest"
            } else {
                "earliest"
            };
            extra.push(("auto.offset.reset".into(), reset.into()));
        }
    }
    extra.extend(parse_kvs("--consumer-property", &args.consumer_properties)?);
    let consumer: BaseConsumer = args
        .connect
        .client_config("strom-console-consumer", &extra)?
        .create()
        .context("cannot create the consumer (check --consumer-property values)")?;
    match &args.group {
        Some(_) => consumer
            .subscribe(&[&args.topic])
            .with_context(|| format!("--topic {}: cannot subscribe", args.topic))?,
        None => {
            assign_partitions(&consumer, &args.topic, args.partition, start)?;
        }
    }

    let interrupted = interrupt_flag();
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut count: u64 = 0;
    let mut last_record = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        loop {
            if interrupted.load(Ordering::Relaxed) {
                return Ok(());
            }
            if args.max_messages.is_some_and(|max| count >= max) {
                return Ok(());
            }
            // Take what is already buffered without blocking; before blocking, flush stdout so a
            // reader downstream sees records as they arrive, not when the buffer fills.
            let polled = match consumer.poll(Duration::ZERO) {
                Some(m) => Some(m),
                None => {
                    out.flush()?;
                    consumer.poll(Duration::from_millis(100))
                }
            };
            match polled {
                None => {
                    if timeout.is_some_and(|t| last_record.elapsed() >= t) {
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    // Mostly transient (a broker restarting, a rebalance); librdkafka retries itself.
                    eprintln!("warning: {e}");
                }
                Some(Ok(msg)) => {
                    last_record = Instant::now();
                    write_record(&fmt, &mut out, &msg)?;
                    count += 1;
                }
            }
        }
    })();
    let flushed = out.flush();
    eprintln!("Processed a total of {count} messages");
    match result.and(flushed.map_err(anyhow::Error::from)) {
        // A closed pipe (`strom consume ... | head`) is how the reader says it has enough.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn write_record(
    fmt: &FormatterConfig,
    out: &mut impl Write,
    msg: &BorrowedMessage<'_>,
) -> io::Result<()> {
    let headers: Vec<HeaderRef<'_>> = match (fmt.print_headers, msg.headers()) {
        (true, Some(h)) => h.iter().map(|h| (h.key, h.value)).collect(),
        _ => Vec::new(),
    };
    let timestamp = match msg.timestamp() {
        Timestamp::NotAvailable => RecordTimestamp::None,
        Timestamp::CreateTime(t) => RecordTimestamp::CreateTime(t),
        Timestamp::LogAppendTime(t) => RecordTimestamp::LogAppendTime(t),
    };
    fmt.write(
        out,
        &RecordView {
            timestamp,
            partition: msg.partition(),
            offset: msg.offset(),
            headers: &headers,
            key: msg.key(),
            value: msg.payload(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions() {
        assert_eq!(start_at(false, None, None).unwrap(), StartAt::Latest);
        assert_eq!(start_at(true, None, None).unwrap(), StartAt::Earliest);
        assert_eq!(
            start_at(false, Some("earliest"), None).unwrap(),
            StartAt::Earliest
        );
        assert_eq!(
            start_at(false, Some("latest"), Some(0)).unwrap(),
            StartAt::Latest
        );
        assert_eq!(
            start_at(false, Some("17"), Some(1)).unwrap(),
            StartAt::Offset(17)
        );
        let e = start_at(false, Some("17"), None).unwrap_err().to_string();
        assert!(e.contains("--partition"), "{e}");
        let e = start_at(false, Some("-3"), Some(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--offset") && e.contains("-3"), "{e}");
        let e = start_at(true, Some("5"), Some(0)).unwrap_err().to_string();
        assert!(e.contains("--from-beginning"), "{e}");
    }
}
