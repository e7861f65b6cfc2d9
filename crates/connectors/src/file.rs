//! The file connectors, under Kafka's names (`connect/file`): FileStreamSource reads lines of a
//! file (or stdin) into one topic, FileStreamSink writes record values to a file (or stdout), one
//! per line.
//!
//! Source offsets are `{"filename": <file>}` → `{"position": <byte offset after the line>}`, as
//! Kafka's. Kafka counts characters rather than bytes for that position (wrong for multi-byte
//! UTF-8); strom counts bytes, so its offsets are exact file positions.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use strom_connect::config_def::parse_list;
use strom_connect::{
    ConfigDef, ConfigMap, ConfigType, ConnectError, Connector, ConnectorFactory, ConnectorPlugin,
    Importance, Result, Schema, SinkConnector, SinkRecord, SinkTask, SourceConnector, SourceOffset,
    SourcePartition, SourceRecord, SourceTask, SourceTaskContext, Validator, Value,
};

pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";
const SOURCE_TASK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceTask";
const SINK_TASK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkTask";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long an idle poll waits for new data before returning empty (Kafka waits 1 s).
const IDLE_WAIT: Duration = Duration::from_millis(250);
/// How much one read of the file asks for.
const READ_CHUNK: usize = 64 * 1024;

pub fn source_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class_name: SOURCE_CLASS,
        version: VERSION,
        factory: ConnectorFactory::Source(|| Box::new(FileStreamSourceConnector::default())),
    }
}

pub fn sink_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class_name: SINK_CLASS,
        version: VERSION,
        factory: ConnectorFactory::Sink(|| Box::new(FileStreamSinkConnector::default())),
    }
}

fn single_topic(v: &str) -> std::result::Result<(), String> {
    match parse_list(v).len() {
        1 => Ok(()),
        _ => Err("'topic' in FileStreamSourceConnector configuration requires definition of a single topic".into()),
    }
}

/// FileStreamSourceConnector: `file`, `topic`, `batch.size`.
#[derive(Default)]
pub struct FileStreamSourceConnector {
    props: ConfigMap,
}

impl Connector for FileStreamSourceConnector {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let errors: Vec<String> = self
            .config()
            .validate(props)
            .into_iter()
            .flat_map(|v| v.errors)
            .collect();
        if !errors.is_empty() {
            return Err(ConnectError::config(errors.join("; ")));
        }
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>> {
        // One file, one reader: there is nothing to split.
        let mut c = ConfigMap::new();
        for k in ["file", "topic", "batch.size"] {
            if let Some(v) = self.props.get(k) {
                c.insert(k.to_string(), v.clone());
            }
        }
        Ok(vec![c])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn config(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                ConfigType::String,
                None,
                Importance::High,
                "Source filename. If not specified, the standard input will be used",
            )
            .optional()
            .define(
                "topic",
                ConfigType::List,
                None,
                Importance::High,
                "The topic to publish data to",
            )
            .with_validator(Validator::Custom(single_topic))
            .define(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "The maximum number of records the source task can read from the file each time it is polled",
            )
            .with_validator(Validator::Range {
                min: Some(1.0),
                max: None,
            })
    }
}

impl SourceConnector for FileStreamSourceConnector {
    fn task_class(&self) -> &'static str {
        SOURCE_TASK_CLASS
    }
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }
}

enum Input {
    /// Not opened yet (the file may not exist yet).
    Closed,
    File(File),
    /// Lines read by a helper thread, since reading stdin blocks.
    Stdin(mpsc::Receiver<Vec<u8>>),
}

/// FileStreamSourceTask.
pub struct FileStreamSourceTask {
    filename: Option<String>,
    topic: String,
    batch_size: usize,
    context: Option<SourceTaskContext>,
    input: Input,
    /// Bytes read; those before `start` were already emitted as lines.
    buffer: Vec<u8>,
    /// Where the unemitted bytes of `buffer` begin. Lines are taken off by moving this cursor, and
    /// the buffer is compacted only before a read: dropping each line from the front would move the
    /// rest of the buffer once per line.
    start: usize,
    /// Byte position in the file of `buffer[start]`.
    position: u64,
    schema: Arc<Schema>,
    /// The source partition, the same for every record: built once, cloned per record.
    source_partition: SourcePartition,
}

impl Default for FileStreamSourceTask {
    fn default() -> Self {
        FileStreamSourceTask {
            filename: None,
            topic: String::new(),
            batch_size: 2000,
            context: None,
            input: Input::Closed,
            buffer: Vec::new(),
            start: 0,
            position: 0,
            schema: Arc::new(Schema::string()),
            source_partition: SourcePartition::new(),
        }
    }
}

impl FileStreamSourceTask {
    fn partition(&self) -> SourcePartition {
        let mut p = SourcePartition::new();
        if let Some(f) = &self.filename {
            p.insert("filename".into(), f.clone().into());
        }
        p
    }

    fn open(&mut self) -> Result<bool> {
        let Some(name) = self.filename.clone() else {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 8192];
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            self.input = Input::Stdin(rx);
            return Ok(true);
        };
        let mut file = match File::open(&name) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %name, "file not found; waiting for it to be created");
                std::thread::sleep(IDLE_WAIT);
                return Ok(false);
            }
            Err(e) => return Err(ConnectError::io(format!("cannot open {name}"), e)),
        };
        let stored = self
            .context
            .as_ref()
            .and_then(|c| c.offset_storage_reader.offset(&self.source_partition));
        let position = match stored.as_ref().and_then(|o| o.get("position")) {
            None => 0,
            Some(p) => p
                .as_u64()
                .ok_or_else(|| ConnectError::connect("Offset position is the incorrect type"))?,
        };
        if position > 0 {
            file.seek(SeekFrom::Start(position))
                .map_err(|e| ConnectError::io(format!("cannot seek {name} to {position}"), e))?;
            tracing::info!(file = %name, position, "resuming from the committed offset");
        }
        self.position = position;
        self.input = Input::File(file);
        Ok(true)
    }

    /// Reads what is available now; false when nothing new arrived.
    fn fill(&mut self) -> Result<bool> {
        // Drop the emitted lines before reading more: the buffer keeps only what is not emitted yet.
        self.buffer.drain(..self.start);
        self.start = 0;
        match &mut self.input {
            Input::Closed => Ok(false),
            Input::File(f) => {
                // Read straight into the buffer's tail.
                let len = self.buffer.len();
                self.buffer.resize(len + READ_CHUNK, 0);
                let read = f.read(&mut self.buffer[len..]);
                let n = read.as_ref().map_or(0, |n| *n);
                self.buffer.truncate(len + n);
                read.map_err(|e| {
                    ConnectError::io(
                        format!(
                            "cannot read {}",
                            self.filename.as_deref().unwrap_or("stdin")
                        ),
                        e,
                    )
                })?;
                Ok(n > 0)
            }
            Input::Stdin(rx) => match rx.recv_timeout(IDLE_WAIT) {
                Ok(bytes) => {
                    self.buffer.extend_from_slice(&bytes);
                    Ok(true)
                }
                Err(_) => Ok(false),
            },
        }
    }

    /// Takes one complete line off the buffer: `\n`, `\r\n` or a lone `\r` ends it (a trailing
    /// `\r` waits for the next byte, which may be `\n`).
    fn extract_line(&mut self) -> Option<String> {
        let pending = &self.buffer[self.start..];
        let i = pending.iter().position(|b| *b == b'\n' || *b == b'\r')?;
        let next = if pending[i] == b'\n' {
            i + 1
        } else {
            match pending.get(i + 1) {
                None => return None,
                Some(b'\n') => i + 2,
                Some(_) => i + 1,
            }
        };
        let line = String::from_utf8_lossy(&pending[..i]).into_owned();
        self.start += next;
        self.position += next as u64;
        Some(line)
    }
}

impl SourceTask for FileStreamSourceTask {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn initialize(&mut self, context: SourceTaskContext) {
        self.context = Some(context);
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        self.filename = props.get("file").filter(|f| !f.is_empty()).cloned();
        self.source_partition = self.partition();
        self.topic = props
            .get("topic")
            .and_then(|t| parse_list(t).into_iter().next())
            .ok_or_else(|| {
                ConnectError::connect("FileStreamSourceTask config missing topic setting")
            })?;
        if let Some(b) = props.get("batch.size") {
            self.batch_size = b.trim().parse().map_err(|_| {
                ConnectError::connect("Invalid FileStreamSourceTask configuration: batch.size")
            })?;
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if matches!(self.input, Input::Closed) && !self.open()? {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        loop {
            while records.len() < self.batch_size {
                let Some(line) = self.extract_line() else {
                    break;
                };
                let mut offset = SourceOffset::new();
                if self.filename.is_some() {
                    offset.insert("position".into(), self.position.into());
                }
                let mut r = SourceRecord::new(
                    self.source_partition.clone(),
                    offset,
                    &self.topic,
                    Some(self.schema.clone()),
                    Value::String(line),
                );
                r.record.timestamp = Some(now_ms());
                records.push(r);
            }
            if records.len() >= self.batch_size || !self.fill()? {
                break;
            }
        }
        if records.is_empty() && matches!(self.input, Input::File(_)) {
            std::thread::sleep(IDLE_WAIT);
        }
        Ok(records)
    }

    fn stop(&mut self) {
        self.input = Input::Closed;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// FileStreamSinkConnector: `file` (plus the common `topics` / `topics.regex`).
#[derive(Default)]
pub struct FileStreamSinkConnector {
    props: ConfigMap,
}

impl Connector for FileStreamSinkConnector {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        // Kafka hands every task the same config; more than one task would interleave one file.
        Ok(vec![self.props.clone(); max_tasks.clamp(1, 1)])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn config(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                ConfigType::String,
                None,
                Importance::High,
                "Destination filename. If not specified, the standard output will be used",
            )
            .optional()
    }
}

impl SinkConnector for FileStreamSinkConnector {
    fn task_class(&self) -> &'static str {
        SINK_TASK_CLASS
    }
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }
}

/// FileStreamSinkTask: appends `value` + newline per record.
#[derive(Default)]
pub struct FileStreamSinkTask {
    filename: Option<String>,
    out: Option<BufWriter<File>>,
}

impl SinkTask for FileStreamSinkTask {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        self.filename = props.get("file").filter(|f| !f.is_empty()).cloned();
        if let Some(name) = &self.filename {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(name)
                .map_err(|e| {
                    ConnectError::io(
                        format!("Couldn't find or create file '{name}' for FileStreamSinkTask"),
                        e,
                    )
                })?;
            self.out = Some(BufWriter::new(f));
        }
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let name = self.filename.clone().unwrap_or_else(|| "stdout".into());
        let write = |w: &mut dyn Write| -> std::io::Result<()> {
            for r in &records {
                // Java's println(Object): a null value prints "null".
                writeln!(w, "{}", r.record.value)?;
            }
            Ok(())
        };
        match &mut self.out {
            Some(f) => write(f),
            None => write(&mut std::io::stdout().lock()),
        }
        .map_err(|e| ConnectError::io(format!("cannot write to {name}"), e))
    }

    fn flush(
        &mut self,
        _offsets: &std::collections::BTreeMap<strom_connect::TopicPartition, i64>,
    ) -> Result<()> {
        let name = self.filename.clone().unwrap_or_else(|| "stdout".into());
        match &mut self.out {
            // Synced before the offsets are committed, so a crash cannot lose written records.
            Some(f) => f.flush().and_then(|()| f.get_ref().sync_data()),
            None => std::io::stdout().flush(),
        }
        .map_err(|e| ConnectError::io(format!("cannot flush {name}"), e))
    }

    fn stop(&mut self) {
        if let Some(mut f) = self.out.take() {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_connect::{ConnectRecord, OffsetStorageReader};

    struct Offsets(Option<SourceOffset>);
    impl OffsetStorageReader for Offsets {
        fn offset(&self, _: &SourcePartition) -> Option<SourceOffset> {
            self.0.clone()
        }
    }

    fn task(file: &str, batch: &str, stored: Option<u64>) -> FileStreamSourceTask {
        let mut t = FileStreamSourceTask::default();
        let offset = stored.map(|p| {
            let mut o = SourceOffset::new();
            o.insert("position".into(), p.into());
            o
        });
        t.initialize(SourceTaskContext {
            offset_storage_reader: Arc::new(Offsets(offset)),
        });
        let mut props = ConfigMap::new();
        props.insert("file".into(), file.into());
        props.insert("topic".into(), "t".into());
        props.insert("batch.size".into(), batch.into());
        t.start(&props).expect("start");
        t
    }

    #[test]
    fn source_reads_lines_with_positions_and_resumes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\r\nbé\nc\rpartial").expect("write");
        let p = path.to_str().expect("utf8");
        let mut t = task(p, "2", None);
        let first = t.poll().expect("poll");
        let got: Vec<(String, u64)> = first
            .iter()
            .map(|r| {
                (
                    r.record.value.to_string(),
                    r.source_offset["position"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(got, [("a".into(), 3), ("bé".into(), 7)]);
        assert_eq!(first[0].source_partition["filename"], p);
        let second = t.poll().expect("poll");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].record.value, Value::from("c"));
        assert_eq!(second[0].source_offset["position"], 9);
        // "partial" has no newline yet: nothing until it gets one.
        assert!(t.poll().expect("poll").is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"\n").expect("append");
        assert_eq!(
            t.poll().expect("poll")[0].record.value,
            Value::from("partial")
        );

        // A new task with the stored offset starts after "a\r\n".
        let mut resumed = task(p, "10", Some(3));
        let lines: Vec<String> = resumed
            .poll()
            .expect("poll")
            .iter()
            .map(|r| r.record.value.to_string())
            .collect();
        assert_eq!(lines, ["bé", "c", "partial"]);
    }

    #[test]
    fn source_config_errors_named() {
        let c = FileStreamSourceConnector::default();
        let mut props = ConfigMap::new();
        props.insert("topic".into(), "a,b".into());
        props.insert("batch.size".into(), "0".into());
        let errors: Vec<String> = c
            .validate(&props)
            .into_iter()
            .flat_map(|v| v.errors)
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("single topic"));
        assert!(errors[1].contains("batch.size"));
    }

    #[test]
    fn sink_appends_values() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.txt");
        let mut t = FileStreamSinkTask::default();
        let mut props = ConfigMap::new();
        props.insert("file".into(), path.to_str().expect("utf8").into());
        t.start(&props).expect("start");
        let rec = |v: Value| SinkRecord {
            record: ConnectRecord::new("t", None, v),
        };
        t.put(vec![
            rec("x".into()),
            rec(Value::Int64(5)),
            rec(Value::Null),
        ])
        .expect("put");
        t.flush(&Default::default()).expect("flush");
        t.stop();
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "x\n5\nnull\n"
        );
    }
}
