//! `strom bench produce|consume`: load generators like kafka-producer-perf-test.sh and
//! kafka-consumer-perf-test.sh, on librdkafka.
//!
//! The per-record path is kept small so the tool is not what gets measured: one preallocated payload
//! for every record, the send time carried in the delivery opaque (no allocation), delivery reports
//! handled on librdkafka's polling thread, and latencies sampled into a preallocated buffer.

use crate::common::{ConnectArgs, interrupt_flag, parse_acks, parse_compression, parse_kvs};
use crate::consume::{StartAt, assign_partitions, no_group_config};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Produce fixed-size records as fast as allowed and report throughput and latency.
    Produce(Box<BenchProduceArgs>),
    /// Consume records as fast as possible and report throughput.
    Consume(Box<BenchConsumeArgs>),
}

#[derive(Args)]
pub struct BenchProduceArgs {
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// How many records to send.
    #[arg(long = "num-records", value_name = "N")]
    num_records: u64,
    /// The size of each record's value in bytes.
    #[arg(long = "record-size", value_name = "BYTES")]
    record_size: usize,
    /// Cap on records per second; -1 means no cap.
    #[arg(long, default_value_t = -1.0, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true)]
    throughput: f64,
    /// Acknowledgements the leader waits for: 0, 1 or all (-1).
    #[arg(
        long,
        default_value = "all",
        value_name = "0|1|all",
        allow_negative_numbers = true
    )]
    acks: String,
    /// Compression codec for record batches.
    #[arg(long, default_value = "none", value_name = "none|gzip|snappy|lz4|zstd")]
    compression: String,
    /// librdkafka producer configs, KEY=VALUE ... (e.g. --producer-props linger.ms=5 batch.size=65536).
    #[arg(long = "producer-props", value_name = "KEY=VALUE", num_args = 1..)]
    producer_props: Vec<String>,
    /// How often to print a progress line, in milliseconds.
    #[arg(long = "reporting-interval", default_value_t = 5000, value_name = "MS")]
    reporting_interval: u64,
    /// Print the final result as one JSON object on stdout (progress and summary go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args)]
pub struct BenchConsumeArgs {
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// How many records to consume.
    #[arg(long, value_name = "N")]
    messages: u64,
    /// Give up when no record has arrived for this long, in milliseconds.
    #[arg(
        long = "timeout",
        alias = "timeout-ms",
        default_value_t = 10_000,
        value_name = "MS"
    )]
    timeout: u64,
    /// Consume as a member of this group (subscribe); without it partitions are assigned directly.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Start at the end of the topic instead of the beginning.
    #[arg(long = "from-latest")]
    from_latest: bool,
    /// librdkafka consumer configs, KEY=VALUE ... (e.g. --consumer-props fetch.max.bytes=52428800).
    #[arg(long = "consumer-props", value_name = "KEY=VALUE", num_args = 1..)]
    consumer_props: Vec<String>,
    /// Leave out the CSV header line.
    #[arg(long = "hide-header")]
    hide_header: bool,
    /// Print the result as one JSON object on stdout (the CSV lines go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(a) => produce(*a),
        BenchCommand::Consume(a) => consume(*a),
    }
}

// ---------------------------------------------------------------------------------------------
// Latency statistics
// ---------------------------------------------------------------------------------------------

/// Most latency samples kept; with more records every k-th one is kept (as Kafka's perf test does),
/// so memory stays bounded for long runs.
const MAX_SAMPLES: u64 = 500_000;

/// Delivery statistics; latencies in microseconds.
struct Stats {
    sampling: u64,
    samples: Vec<u32>,
    count: u64,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    total_latency_us: u64,
    max_latency_us: u64,
    window: Window,
    report_every: Duration,
    progress_to_stderr: bool,
}

struct Window {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_us: u64,
    max_latency_us: u64,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            count: 0,
            bytes: 0,
            total_latency_us: 0,
            max_latency_us: 0,
        }
    }
}

impl Stats {
    fn new(num_records: u64, report_every: Duration, progress_to_stderr: bool) -> Stats {
        let sampling = num_records.div_ceil(MAX_SAMPLES).max(1);
        let capacity = usize::try_from(num_records / sampling + 1).unwrap_or(0);
        Stats {
            sampling,
            samples: Vec::with_capacity(capacity),
            count: 0,
            errors: 0,
            first_error: None,
            bytes: 0,
            total_latency_us: 0,
            max_latency_us: 0,
            window: Window::new(Instant::now()),
            report_every,
            progress_to_stderr,
        }
    }

    fn record(&mut self, latency_us: u64, bytes: u64, now: Instant) {
        if self.count.is_multiple_of(self.sampling) {
            self.samples
                .push(u32::try_from(latency_us).unwrap_or(u32::MAX));
        }
        self.count += 1;
        self.bytes += bytes;
        self.total_latency_us += latency_us;
        self.max_latency_us = self.max_latency_us.max(latency_us);
        let w = &mut self.window;
        w.count += 1;
        w.bytes += bytes;
        w.total_latency_us += latency_us;
        w.max_latency_us = w.max_latency_us.max(latency_us);
        if now.duration_since(w.start) >= self.report_every {
            let line = window_line(w, now);
            if self.progress_to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            self.window = Window::new(now);
        }
    }
}

fn window_line(w: &Window, now: Instant) -> String {
    let secs = now.duration_since(w.start).as_secs_f64().max(1e-9);
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
        w.count,
        w.count as f64 / secs,
        w.bytes as f64 / MB / secs,
        us_to_ms(w.total_latency_us as f64 / w.count.max(1) as f64),
        us_to_ms(w.max_latency_us as f64),
    )
}

const MB: f64 = 1024.0 * 1024.0;

fn us_to_ms(us: f64) -> f64 {
    us / 1000.0
}

/// The p-th quantile (0..1) of sorted samples, Kafka-style: the element at index floor(p * len).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[idx]
}

/// The final produce result, printed as text and optionally as JSON.
#[derive(Debug, PartialEq)]
struct ProduceSummary {
    records: u64,
    errors: u64,
    bytes: u64,
    elapsed: Duration,
    avg_ms: f64,
    max_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

impl ProduceSummary {
    fn from_stats(stats: &mut Stats, elapsed: Duration) -> ProduceSummary {
        stats.samples.sort_unstable();
        let p = |q| us_to_ms(f64::from(percentile(&stats.samples, q)));
        ProduceSummary {
            records: stats.count,
            errors: stats.errors,
            bytes: stats.bytes,
            elapsed,
            avg_ms: us_to_ms(stats.total_latency_us as f64 / stats.count.max(1) as f64),
            max_ms: us_to_ms(stats.max_latency_us as f64),
            p50_ms: p(0.5),
            p95_ms: p(0.95),
            p99_ms: p(0.99),
            p999_ms: p(0.999),
        }
    }

    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    fn text(&self) -> String {
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
             {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.records as f64 / self.secs(),
            self.bytes as f64 / MB / self.secs(),
            self.avg_ms,
            self.max_ms,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms
        )
    }

    fn json(&self, topic: &str, record_size: usize) -> serde_json::Value {
        serde_json::json!({
            "tool": "bench-produce",
            "topic": topic,
            "records": self.records,
            "errors": self.errors,
            "record_size": record_size,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed.as_secs_f64() * 1000.0,
            "records_per_sec": self.records as f64 / self.secs(),
            "mb_per_sec": self.bytes as f64 / MB / self.secs(),
            "latency_ms": {
                "avg": self.avg_ms,
                "max": self.max_ms,
                "p50": self.p50_ms,
                "p95": self.p95_ms,
                "p99": self.p99_ms,
                "p99_9": self.p999_ms,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// bench produce
// ---------------------------------------------------------------------------------------------

struct BenchContext {
    start: Instant,
    record_size: u64,
    stats: Mutex<Stats>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// Nanoseconds from `start` to the send call.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = Instant::now();
        let now_ns = now.duration_since(self.start).as_nanos() as u64;
        let latency_us = now_ns.saturating_sub(sent_ns as u64) / 1000;
        let mut stats = self.stats.lock();
        match result {
            Ok(_) => stats.record(latency_us, self.record_size, now),
            Err((e, _)) => {
                stats.errors += 1;
                if stats.first_error.is_none() {
                    stats.first_error = Some(e.to_string());
                }
            }
        }
    }
}

/// A record-size payload of pseudo-random capital letters (like Kafka's perf test), made once.
fn payload(size: usize) -> Vec<u8> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    (0..size)
        .map(|_| {
            // xorshift64: plenty for filler bytes, and no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

fn produce(args: BenchProduceArgs) -> anyhow::Result<()> {
    if args.num_records == 0 {
        bail!("--num-records: must be at least 1");
    }
    if args.throughput == 0.0 || args.throughput.is_nan() {
        bail!("--throughput: must be positive, or -1 for no limit");
    }
    let mut extra = vec![
        ("acks".to_string(), parse_acks(&args.acks)?.to_string()),
        (
            "compression.type".to_string(),
            parse_compression(&args.compression)?.to_string(),
        ),
    ];
    extra.extend(parse_kvs("--producer-props", &args.producer_props)?);
    let config = args.connect.client_config("strom-bench-producer", &extra)?;
    let start = Instant::now();
    let context = BenchContext {
        start,
        record_size: args.record_size as u64,
        stats: Mutex::new(Stats::new(
            args.num_records,
            Duration::from_millis(args.reporting_interval.max(1)),
            args.json,
        )),
    };
    let producer: ThreadedProducer<BenchContext> = config
        .create_with_context(context)
        .context("cannot create the producer (check --producer-props values)")?;
    let payload = payload(args.record_size);
    let interrupted = interrupt_flag();
    let throttle = (args.throughput > 0.0).then_some(args.throughput);

    let mut send_errors = 0u64;
    let mut first_send_error = None;
    for i in 0..args.num_records {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        let sent_ns = start.elapsed().as_nanos() as usize;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&args.topic, sent_ns).payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: the broker is the bottleneck; wait for acks to drain it.
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    send_errors += 1;
                    first_send_error.get_or_insert_with(|| e.to_string());
                    break;
                }
            }
        }
        if let Some(rate) = throttle {
            // Sleep off any lead over the target rate, like Kafka's ThroughputThrottler.
            let due = Duration::from_secs_f64((i + 1) as f64 / rate);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    }
    // Every record fails on its own after message.timeout.ms, so this wait is bounded.
    producer
        .flush(Timeout::Never)
        .context("flushing the producer")?;
    let elapsed = start.elapsed();

    let mut stats = producer.context().stats.lock();
    stats.errors += send_errors;
    if stats.first_error.is_none() {
        stats.first_error = first_send_error;
    }
    let summary = ProduceSummary::from_stats(&mut stats, elapsed);
    if args.json {
        eprintln!("{}", summary.text());
        println!("{}", summary.json(&args.topic, args.record_size));
    } else {
        println!("{}", summary.text());
    }
    if stats.errors > 0 {
        bail!(
            "{} records failed (first error: {})",
            stats.errors,
            stats.first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// bench consume
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct ConsumeSummary {
    start: SystemTime,
    end: SystemTime,
    messages: u64,
    bytes: u64,
    /// From start to the first assignment being usable (Kafka's rebalance.time.ms).
    rebalance: Duration,
    /// From the assignment to the last record.
    fetch: Duration,
}

const CONSUME_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

impl ConsumeSummary {
    fn total_secs(&self) -> f64 {
        (self.rebalance + self.fetch).as_secs_f64().max(1e-9)
    }
    fn fetch_secs(&self) -> f64 {
        self.fetch.as_secs_f64().max(1e-9)
    }
    fn mb(&self) -> f64 {
        self.bytes as f64 / MB
    }

    fn csv(&self) -> String {
        format!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            format_time(self.start),
            format_time(self.end),
            self.mb(),
            self.mb() / self.total_secs(),
            self.messages,
            self.messages as f64 / self.total_secs(),
            self.rebalance.as_millis(),
            self.fetch.as_millis(),
            self.mb() / self.fetch_secs(),
            self.messages as f64 / self.fetch_secs(),
        )
    }

    fn json(&self, topic: &str) -> serde_json::Value {
        serde_json::json!({
            "tool": "bench-consume",
            "topic": topic,
            "messages": self.messages,
            "bytes": self.bytes,
            "elapsed_ms": (self.rebalance + self.fetch).as_secs_f64() * 1000.0,
            "rebalance_ms": self.rebalance.as_secs_f64() * 1000.0,
            "fetch_ms": self.fetch.as_secs_f64() * 1000.0,
            "mb_per_sec": self.mb() / self.total_secs(),
            "records_per_sec": self.messages as f64 / self.total_secs(),
            "fetch_mb_per_sec": self.mb() / self.fetch_secs(),
            "fetch_records_per_sec": self.messages as f64 / self.fetch_secs(),
        })
    }
}

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC, the layout of Kafka's consumer perf test.
fn format_time(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil_from_days; avoids a date-time dependency for one timestamp).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn consume(args: BenchConsumeArgs) -> anyhow::Result<()> {
    if args.messages == 0 {
        bail!("--messages: must be at least 1");
    }
    let start_at = if args.from_latest {
        StartAt::Latest
    } else {
        StartAt::Earliest
    };
    let reset = if args.from_latest {
        "latest"
    } else {
        "earliest"
    };
    let mut extra: Vec<(String, String)> = vec![
        ("auto.offset.reset".into(), reset.into()),
        ("isolation.level".into(), "read_uncommitted".into()),
    ];
    match &args.group {
        Some(g) => extra.push(("group.id".into(), g.clone())),
        None => {
            extra.extend(no_group_config("bench"));
        }
    }
    extra.extend(parse_kvs("--consumer-props", &args.consumer_props)?);
    let consumer: BaseConsumer = args
        .connect
        .client_config("strom-bench-consumer", &extra)?
        .create()
        .context("cannot create the consumer (check --consumer-props values)")?;

    let wall_start = SystemTime::now();
    let start = Instant::now();
    let mut assigned_at = None;
    match &args.group {
        Some(_) => consumer
            .subscribe(&[&args.topic])
            .with_context(|| format!("--topic {}: cannot subscribe", args.topic))?,
        None => {
            assign_partitions(&consumer, &args.topic, None, start_at)?;
            assigned_at = Some(Instant::now());
        }
    }

    let interrupted = interrupt_flag();
    let timeout = Duration::from_millis(args.timeout);
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut last = Instant::now();
    let mut warned = false;
    while messages < args.messages && !interrupted.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                // With a group, the assignment is only known to be done once records flow; the first
                // record's arrival stands in for the end of the rebalance.
                assigned_at.get_or_insert(now);
                last = now;
                messages += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(e)) => {
                if !warned {
                    eprintln!("warning: {e}");
                    warned = true;
                }
            }
            None => {
                if last.elapsed() >= timeout {
                    eprintln!(
                        "warning: stopped after {messages} of {} messages: nothing arrived for {} ms (--timeout)",
                        args.messages, args.timeout
                    );
                    break;
                }
            }
        }
    }
    let assigned_at = assigned_at.unwrap_or(last);
    let end = if messages > 0 { last } else { Instant::now() };
    let summary = ConsumeSummary {
        start: wall_start,
        end: wall_start + end.duration_since(start),
        messages,
        bytes,
        rebalance: assigned_at.duration_since(start),
        fetch: end.saturating_duration_since(assigned_at),
    };
    let mut text = String::new();
    if !args.hide_header {
        text.push_str(CONSUME_HEADER);
        text.push('\n');
    }
    text.push_str(&summary.csv());
    if args.json {
        eprintln!("{text}");
        println!("{}", summary.json(&args.topic));
    } else {
        println!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 501);
        assert_eq!(percentile(&v, 0.99), 991);
        assert_eq!(percentile(&v, 0.999), 1000);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.999), 7);
    }

    #[test]
    fn stats_sample_and_summarise() {
        let mut s = Stats::new(4, Duration::from_secs(3600), true);
        let now = Instant::now();
        for lat in [1000, 2000, 3000, 10_000] {
            s.record(lat, 100, now);
        }
        let sum = ProduceSummary::from_stats(&mut s, Duration::from_secs(2));
        assert_eq!(sum.records, 4);
        assert_eq!(sum.bytes, 400);
        assert!((sum.avg_ms - 4.0).abs() < 1e-9);
        assert!((sum.max_ms - 10.0).abs() < 1e-9);
        assert!((sum.p50_ms - 3.0).abs() < 1e-9);
        let text = sum.text();
        assert!(
            text.starts_with("4 records sent, 2.0 records/sec (0.00 MB/sec), 4.00 ms avg latency, 10.00 ms max latency, 3.00 ms 50th"),
            "{text}"
        );
        let json = sum.json("t", 100);
        assert_eq!(json["records"], 4);
        assert_eq!(json["latency_ms"]["max"], 10.0);
    }

    #[test]
    fn sampling_bounds_memory() {
        let s = Stats::new(10 * MAX_SAMPLES, Duration::from_secs(1), true);
        assert_eq!(s.sampling, 10);
        assert!(s.samples.capacity() <= MAX_SAMPLES as usize + 1);
    }

    #[test]
    fn payload_is_letters() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
    }

    #[test]
    fn time_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(t), "2023-11-14 22:13:20:123");
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00:000");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn consume_csv() {
        let s = ConsumeSummary {
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_secs(2),
            messages: 1000,
            bytes: 1024 * 1024,
            rebalance: Duration::from_secs(1),
            fetch: Duration::from_secs(1),
        };
        assert_eq!(
            s.csv(),
            "1970-01-01 00:00:00:000, 1970-01-01 00:00:02:000, 1.0000, 0.5000, 1000, 500.0000, 1000, 1000, 1.0000, 1000.0000"
        );
        assert_eq!(CONSUME_HEADER.split(", ").count(), 10);
    }
}
