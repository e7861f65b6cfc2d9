//! `strom produce`: stdin lines -> records, like kafka-console-producer.sh.

use crate::common::{ConnectArgs, on_interrupt, parse_acks, parse_compression, parse_kvs};
use crate::format::{LineReaderConfig, parse_header_flag};
use anyhow::{Context, bail};
use clap::Args;
use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Args)]
pub struct ProduceArgs {
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Read a key from each line: the text before the first SEP is the key, the rest the value
    /// (same as --property parse.key=true --property key.separator=SEP).
    #[arg(long = "key-separator", value_name = "SEP")]
    key_separator: Option<String>,
    /// A header added to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Acknowledgements the leader waits for: 0, 1 or all (-1).
    #[arg(
        long,
        alias = "request-required-acks",
        default_value = "all",
        value_name = "0|1|all",
        allow_negative_numbers = true
    )]
    acks: String,
    /// Compression codec for record batches.
    #[arg(
        long,
        alias = "compression-codec",
        default_value = "none",
        value_name = "none|gzip|snappy|lz4|zstd"
    )]
    compression: String,
    /// A line-reader property, KEY=VALUE (repeatable): parse.key, key.separator, parse.headers,
    /// headers.delimiter, headers.separator, headers.key.separator, ignore.error, null.marker.
    #[arg(long = "property", alias = "reader-property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// A librdkafka producer config, KEY=VALUE (repeatable), e.g. linger.ms=5.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    producer_properties: Vec<String>,
    /// Wait for each record's acknowledgement before reading the next line.
    #[arg(long)]
    sync: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// How many delivery errors are kept verbatim for the final report; the rest are only counted.
const KEPT_ERRORS: usize = 10;
/// Kafka's default delivery.timeout.ms: how long a record may take before it counts as failed.
const DELIVERY_TIMEOUT_MS: u64 = 120_000;

/// Counts delivery reports; the opaque is the record's 1-based line number, so errors can name it.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Deliveries {
    fn fail(&self, line: usize, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock();
        if errors.len() < KEPT_ERRORS {
            errors.push(format!("line {line}: {what}"));
        }
    }
}

struct ConsoleProducerContext(Arc<Deliveries>);

impl ClientContext for ConsoleProducerContext {}

impl ProducerContext for ConsoleProducerContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => self.0.fail(line, e.to_string()),
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut reader = LineReaderConfig::default();
    for (k, v) in parse_kvs("--property", &args.properties)? {
        reader.set(&k, &v)?;
    }
    if let Some(sep) = &args.key_separator {
        reader
            .set("parse.key", "true")
            .and_then(|_| reader.set("key.separator", sep))
            .context("--key-separator")?;
    }
    let static_headers: Vec<(String, Vec<u8>)> = args
        .headers
        .iter()
        .map(|h| parse_header_flag(h))
        .collect::<anyhow::Result<_>>()?;

    let mut extra = vec![
        ("acks".to_string(), parse_acks(&args.acks)?.to_string()),
        (
            "compression.type".to_string(),
            parse_compression(&args.compression)?.to_string(),
        ),
        (
            "message.timeout.ms".to_string(),
            DELIVERY_TIMEOUT_MS.to_string(),
        ),
    ];
    extra.extend(parse_kvs("--producer-property", &args.producer_properties)?);
    let config = args
        .connect
        .client_config("strom-console-producer", &extra)?;
    let deliveries = Arc::new(Deliveries::default());
    let producer: Arc<ThreadedProducer<ConsoleProducerContext>> = Arc::new(
        config
            .create_with_context(ConsoleProducerContext(deliveries.clone()))
            .context("cannot create the producer (check --producer-property values)")?,
    );

    // On Ctrl-C, deliver what was already read (Kafka's console producer closes its producer from a
    // shutdown hook for the same reason) and exit with the usual report.
    {
        let producer = producer.clone();
        let deliveries = deliveries.clone();
        on_interrupt(move || {
            let _ = producer.flush(Duration::from_secs(10));
            let code = match report(&deliveries) {
                Ok(()) => 130,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            };
            std::process::exit(code);
        });
    }

    let read_result = send_lines(&args, &reader, &static_headers, &producer, &deliveries);
    // Deliver what was sent even when reading stopped on a bad line, as Kafka does. Waiting without
    // a limit is safe: every record fails by itself after message.timeout.ms.
    let flushed = producer.flush(Timeout::Never);
    read_result?;
    flushed.context("flushing the producer")?;
    report(&deliveries)
}

fn report(deliveries: &Deliveries) -> anyhow::Result<()> {
    let failed = deliveries.failed.load(Ordering::Relaxed);
    if failed == 0 {
        return Ok(());
    }
    let acked = deliveries.acked.load(Ordering::Relaxed);
    let errors = deliveries.errors.lock();
    for e in errors.iter() {
        eprintln!("{e}");
    }
    bail!(
        "{failed} of {} records failed (errors above{})",
        failed + acked,
        if failed as usize > errors.len() {
            ", first ones only"
        } else {
            ""
        }
    )
}

fn send_lines(
    args: &ProduceArgs,
    reader: &LineReaderConfig,
    static_headers: &[(String, Vec<u8>)],
    producer: &ThreadedProducer<ConsoleProducerContext>,
    deliveries: &Deliveries,
) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::with_capacity(4096);
    let mut line_no: u64 = 0;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).context("reading stdin")?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        // Strip the line terminator (\n or \r\n), like Java's readLine.
        let mut line = buf.as_slice();
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let record = reader.parse(line, line_no)?;
        let n_headers = static_headers.len() + record.headers.len();
        let headers = (n_headers > 0).then(|| {
            let mut h = OwnedHeaders::new_with_capacity(n_headers);
            for (k, v) in static_headers {
                h = h.insert(Header {
                    key: k.as_str(),
                    value: Some(v.as_slice()),
                });
            }
            for (k, v) in &record.headers {
                h = h.insert(Header { key: k, value: *v });
            }
            h
        });
        let opaque = usize::try_from(line_no).unwrap_or(usize::MAX);
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&args.topic, opaque);
        if let Some(k) = record.key {
            rec = rec.key(k);
        }
        if let Some(v) = record.value {
            rec = rec.payload(v);
        }
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        // The local queue is bounded (queue.buffering.max.*); when it is full, wait for the
        // polling thread to drain delivery reports, then retry the same record.
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    deliveries.fail(opaque, e.to_string());
                    break;
                }
            }
        }
        if args.sync {
            producer
                .flush(Timeout::Never)
                .with_context(|| format!("line {line_no}: waiting for the acknowledgement"))?;
        }
    }
}
