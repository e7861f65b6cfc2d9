//! Text formats of the console tools, kept free of I/O and of librdkafka so they are unit-tested:
//! the console producer's line reader (Kafka's `parse.key`, `parse.headers`, ...) and the console
//! consumer's record formatter (Kafka's `print.key`, `print.timestamp`, ...).

use crate::common::parse_bool;
use anyhow::bail;
use std::io::{self, Write};

/// Finds `needle` in `hay` (both bytes, since stdin lines need not be UTF-8).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Console producer: one stdin line -> one record
// ---------------------------------------------------------------------------------------------

/// How the console producer splits a line into headers, key and value (Kafka's reader properties).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineReaderConfig {
    pub parse_key: bool,
    pub key_separator: Vec<u8>,
    pub parse_headers: bool,
    pub headers_delimiter: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub headers_key_separator: Vec<u8>,
    /// A line lacking a separator becomes a value-only record instead of an error.
    pub ignore_error: bool,
    /// A key, value or header value equal to this is sent as null.
    pub null_marker: Option<Vec<u8>>,
}

impl Default for LineReaderConfig {
    fn default() -> Self {
        // Kafka's defaults: tab between headers, key and value; `,` between headers; `:` in a header.
        LineReaderConfig {
            parse_key: false,
            key_separator: b"\t".to_vec(),
            parse_headers: false,
            headers_delimiter: b"\t".to_vec(),
            headers_separator: b",".to_vec(),
            headers_key_separator: b":".to_vec(),
            ignore_error: false,
            null_marker: None,
        }
    }
}

impl LineReaderConfig {
    /// Applies one `--property key=value` (Kafka's console-producer reader properties).
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        match key {
            "parse.key" => self.parse_key = parse_bool(key, value)?,
            "key.separator" => self.key_separator = non_empty(key, value)?,
            "parse.headers" => self.parse_headers = parse_bool(key, value)?,
            "headers.delimiter" => self.headers_delimiter = non_empty(key, value)?,
            "headers.separator" => self.headers_separator = non_empty(key, value)?,
            "headers.key.separator" => self.headers_key_separator = non_empty(key, value)?,
            "ignore.error" => self.ignore_error = parse_bool(key, value)?,
            "null.marker" => self.null_marker = Some(non_empty(key, value)?),
            _ => bail!(
                "--property: unknown reader property '{key}' (known: parse.key, key.separator, \
                 parse.headers, headers.delimiter, headers.separator, headers.key.separator, \
                 ignore.error, null.marker; producer configs go in --producer-property)"
            ),
        }
        Ok(())
    }
}

fn non_empty(key: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    if value.is_empty() {
        bail!("{key}: must not be empty");
    }
    Ok(value.as_bytes().to_vec())
}

/// A header as read or printed: the key, and the value (None for a null value).
pub type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

/// One record read from a line; it borrows the line.
#[derive(Debug, PartialEq, Eq)]
pub struct LineRecord<'a> {
    pub headers: Vec<HeaderRef<'a>>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl LineReaderConfig {
    fn nullable<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        match &self.null_marker {
            Some(m) if m.as_slice() == bytes => None,
            _ => Some(bytes),
        }
    }

    /// Splits one line (without its line terminator). `line_no` is 1-based and only used in errors.
    pub fn parse<'a>(&self, line: &'a [u8], line_no: u64) -> anyhow::Result<LineRecord<'a>> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            match find(rest, &self.headers_delimiter) {
                Some(at) => {
                    let section = &rest[..at];
                    rest = &rest[at + self.headers_delimiter.len()..];
                    headers = self.parse_headers_section(section, line, line_no)?;
                }
                None if self.ignore_error => {}
                None => bail!(
                    "line {line_no}: no headers delimiter {:?} in '{}' (parse.headers=true)",
                    String::from_utf8_lossy(&self.headers_delimiter),
                    String::from_utf8_lossy(line)
                ),
            }
        }
        let (key, value) = if self.parse_key {
            match find(rest, &self.key_separator) {
                Some(at) => (
                    self.nullable(&rest[..at]),
                    self.nullable(&rest[at + self.key_separator.len()..]),
                ),
                None if self.ignore_error => (None, self.nullable(rest)),
                None => bail!(
                    "line {line_no}: no key separator {:?} in '{}' (--key-separator / parse.key=true)",
                    String::from_utf8_lossy(&self.key_separator),
                    String::from_utf8_lossy(line)
                ),
            }
        } else {
            (None, self.nullable(rest))
        };
        Ok(LineRecord {
            headers,
            key,
            value,
        })
    }

    fn parse_headers_section<'a>(
        &self,
        section: &'a [u8],
        line: &[u8],
        line_no: u64,
    ) -> anyhow::Result<Vec<HeaderRef<'a>>> {
        let mut out = Vec::new();
        if section.is_empty() {
            return Ok(out);
        }
        let mut rest = section;
        loop {
            let (pair, more) = match find(rest, &self.headers_separator) {
                Some(at) => (
                    &rest[..at],
                    Some(&rest[at + self.headers_separator.len()..]),
                ),
                None => (rest, None),
            };
            let (k, v) = match find(pair, &self.headers_key_separator) {
                Some(at) => (
                    &pair[..at],
                    self.nullable(&pair[at + self.headers_key_separator.len()..]),
                ),
                None if self.ignore_error => (pair, None),
                None => bail!(
                    "line {line_no}: no header key separator {:?} in header '{}' of '{}'",
                    String::from_utf8_lossy(&self.headers_key_separator),
                    String::from_utf8_lossy(pair),
                    String::from_utf8_lossy(line)
                ),
            };
            let Ok(k) = std::str::from_utf8(k) else {
                bail!(
                    "line {line_no}: header key '{}' is not UTF-8",
                    String::from_utf8_lossy(k)
                );
            };
            if self.null_marker.as_deref() == Some(k.as_bytes()) {
                bail!(
                    "line {line_no}: header key '{k}' equals null.marker; header keys cannot be null"
                );
            }
            out.push((k, v));
            match more {
                Some(m) => rest = m,
                None => break,
            }
        }
        Ok(out)
    }
}

/// Parses a `--header k=v` flag into a header (value may be empty, never null).
pub fn parse_header_flag(s: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let (k, v) = crate::common::parse_kv("--header", s)?;
    Ok((k, v.into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Console consumer: one record -> one line of output
// ---------------------------------------------------------------------------------------------

/// What the console consumer prints per record, in Kafka's DefaultMessageFormatter order:
/// timestamp, partition, offset, headers, key, value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatterConfig {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: Vec<u8>,
    pub line_separator: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub null_literal: Vec<u8>,
}

impl Default for FormatterConfig {
    fn default() -> Self {
        FormatterConfig {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: b"\t".to_vec(),
            line_separator: b"\n".to_vec(),
            headers_separator: b",".to_vec(),
            null_literal: b"null".to_vec(),
        }
    }
}

impl FormatterConfig {
    /// Applies one `--property key=value` (Kafka's console-consumer formatter properties).
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        match key {
            "print.timestamp" => self.print_timestamp = parse_bool(key, value)?,
            "print.partition" => self.print_partition = parse_bool(key, value)?,
            "print.offset" => self.print_offset = parse_bool(key, value)?,
            "print.headers" => self.print_headers = parse_bool(key, value)?,
            "print.key" => self.print_key = parse_bool(key, value)?,
            "print.value" => self.print_value = parse_bool(key, value)?,
            "key.separator" => self.key_separator = value.as_bytes().to_vec(),
            "line.separator" => self.line_separator = value.as_bytes().to_vec(),
            "headers.separator" => self.headers_separator = value.as_bytes().to_vec(),
            "null.literal" => self.null_literal = value.as_bytes().to_vec(),
            _ => bail!(
                "--property: unknown formatter property '{key}' (known: print.timestamp, \
                 print.partition, print.offset, print.headers, print.key, print.value, \
                 key.separator, line.separator, headers.separator, null.literal; consumer \
                 configs go in --consumer-property)"
            ),
        }
        Ok(())
    }
}

/// The timestamp of a record as the formatter prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordTimestamp {
    None,
    CreateTime(i64),
    LogAppendTime(i64),
}

/// A consumed record, detached from librdkafka so formatting is testable.
pub struct RecordView<'a> {
    pub timestamp: RecordTimestamp,
    pub partition: i32,
    pub offset: i64,
    pub headers: &'a [HeaderRef<'a>],
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl FormatterConfig {
    /// Writes one record followed by the line separator (when the value is printed, as in Kafka,
    /// the line separator ends the record; otherwise the last printed field does).
    pub fn write(&self, out: &mut impl Write, r: &RecordView<'_>) -> io::Result<()> {
        // Each field is followed by the key separator only if some later field is printed.
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        let later = |i: usize| fields[i + 1..].iter().any(|&f| f);
        let sep = |out: &mut dyn Write, i: usize| -> io::Result<()> {
            if later(i) {
                out.write_all(&self.key_separator)
            } else {
                Ok(())
            }
        };
        if self.print_timestamp {
            match r.timestamp {
                RecordTimestamp::None => out.write_all(b"NO_TIMESTAMP")?,
                RecordTimestamp::CreateTime(t) => write!(out, "CreateTime:{t}")?,
                RecordTimestamp::LogAppendTime(t) => write!(out, "LogAppendTime:{t}")?,
            }
            sep(out, 0)?;
        }
        if self.print_partition {
            write!(out, "Partition:{}", r.partition)?;
            sep(out, 1)?;
        }
        if self.print_offset {
            write!(out, "Offset:{}", r.offset)?;
            sep(out, 2)?;
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.write_all(b"NO_HEADERS")?;
            } else {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(&self.headers_separator)?;
                    }
                    out.write_all(k.as_bytes())?;
                    out.write_all(b":")?;
                    out.write_all(v.unwrap_or(&self.null_literal))?;
                }
            }
            sep(out, 3)?;
        }
        if self.print_key {
            out.write_all(r.key.unwrap_or(&self.null_literal))?;
            sep(out, 4)?;
        }
        if self.print_value {
            out.write_all(r.value.unwrap_or(&self.null_literal))?;
        }
        out.write_all(&self.line_separator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(sep: &str) -> LineReaderConfig {
        let mut c = LineReaderConfig::default();
        c.set("parse.key", "true").unwrap();
        c.set("key.separator", sep).unwrap();
        c
    }

    #[test]
    fn plain_line_is_the_value() {
        let c = LineReaderConfig::default();
        let r = c.parse(b"hello\tworld", 1).unwrap();
        assert_eq!(r.key, None);
        assert_eq!(r.value, Some(&b"hello\tworld"[..]));
        assert!(r.headers.is_empty());
    }

    #[test]
    fn key_splits_at_first_separator() {
        let c = keyed(":");
        let r = c.parse(b"k1:v:with:colons", 1).unwrap();
        assert_eq!(r.key, Some(&b"k1"[..]));
        assert_eq!(r.value, Some(&b"v:with:colons"[..]));
        // Multi-byte separators and empty keys/values.
        let c = keyed("::");
        let r = c.parse(b"::v", 1).unwrap();
        assert_eq!(r.key, Some(&b""[..]));
        assert_eq!(r.value, Some(&b"v"[..]));
    }

    #[test]
    fn missing_key_separator_names_the_line() {
        let c = keyed(":");
        let err = c.parse(b"no separator here", 7).unwrap_err().to_string();
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("no separator here"), "{err}");
        let mut c = keyed(":");
        c.set("ignore.error", "true").unwrap();
        let r = c.parse(b"just value", 1).unwrap();
        assert_eq!((r.key, r.value), (None, Some(&b"just value"[..])));
    }

    #[test]
    fn null_marker() {
        let mut c = keyed("\t");
        c.set("null.marker", "<null>").unwrap();
        let r = c.parse(b"<null>\tv", 1).unwrap();
        assert_eq!((r.key, r.value), (None, Some(&b"v"[..])));
        let r = c.parse(b"k\t<null>", 1).unwrap();
        assert_eq!((r.key, r.value), (Some(&b"k"[..]), None));
    }

    #[test]
    fn headers_section() {
        let mut c = keyed("\t");
        c.set("parse.headers", "true").unwrap();
        let r = c.parse(b"h1:v1,h2:v:2\tkey\tvalue", 1).unwrap();
        assert_eq!(
            r.headers,
            vec![("h1", Some(&b"v1"[..])), ("h2", Some(&b"v:2"[..]))]
        );
        assert_eq!((r.key, r.value), (Some(&b"key"[..]), Some(&b"value"[..])));
        // An empty headers section means no headers.
        let r = c.parse(b"\tkey\tvalue", 1).unwrap();
        assert!(r.headers.is_empty());
        // A header without its key separator is an error naming the header and the line.
        let err = c.parse(b"oops\tk\tv", 3).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("oops"), "{err}");
        // No headers delimiter at all.
        let err = c.parse(b"nodelim", 4).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn unknown_reader_property_is_named() {
        let err = LineReaderConfig::default()
            .set("acks", "all")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'acks'"), "{err}");
        let err = LineReaderConfig::default()
            .set("parse.key", "yes")
            .unwrap_err()
            .to_string();
        assert!(err.contains("parse.key"), "{err}");
    }

    #[test]
    fn header_flag() {
        assert_eq!(
            parse_header_flag("trace=abc=1").unwrap(),
            ("trace".to_string(), b"abc=1".to_vec())
        );
        assert!(
            parse_header_flag("bad")
                .unwrap_err()
                .to_string()
                .contains("--header")
        );
    }

    fn render(c: &FormatterConfig, r: &RecordView<'_>) -> String {
        let mut out = Vec::new();
        c.write(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn sample<'a>(headers: &'a [HeaderRef<'a>]) -> RecordView<'a> {
        RecordView {
            timestamp: RecordTimestamp::CreateTime(1_700_000_000_000),
            partition: 2,
            offset: 42,
            headers,
            key: Some(b"key"),
            value: Some(b"value"),
        }
    }

    #[test]
    fn value_only_by_default_and_null() {
        let c = FormatterConfig::default();
        assert_eq!(render(&c, &sample(&[])), "value\n");
        let mut r = sample(&[]);
        r.value = None;
        assert_eq!(render(&c, &r), "null\n");
    }

    #[test]
    fn all_fields_in_kafka_order() {
        let mut c = FormatterConfig::default();
        for p in [
            "print.timestamp",
            "print.partition",
            "print.offset",
            "print.headers",
            "print.key",
        ] {
            c.set(p, "true").unwrap();
        }
        let headers = [("a", Some(&b"1"[..])), ("b", None)];
        assert_eq!(
            render(&c, &sample(&headers)),
            "CreateTime:1700000000000\tPartition:2\tOffset:42\ta:1,b:null\tkey\tvalue\n"
        );
        assert_eq!(
            render(&c, &sample(&[])),
            "CreateTime:1700000000000\tPartition:2\tOffset:42\tNO_HEADERS\tkey\tvalue\n"
        );
    }

    #[test]
    fn timestamp_key_and_custom_separators() {
        let mut c = FormatterConfig::default();
        c.set("print.timestamp", "true").unwrap();
        c.set("print.key", "true").unwrap();
        c.set("key.separator", " | ").unwrap();
        let mut r = sample(&[]);
        r.key = None;
        r.timestamp = RecordTimestamp::LogAppendTime(5);
        assert_eq!(render(&c, &r), "LogAppendTime:5 | null | value\n");
        r.timestamp = RecordTimestamp::None;
        assert_eq!(render(&c, &r), "NO_TIMESTAMP | null | value\n");
    }

    #[test]
    fn no_trailing_separator_without_value() {
        let mut c = FormatterConfig::default();
        c.set("print.key", "true").unwrap();
        c.set("print.value", "false").unwrap();
        assert_eq!(render(&c, &sample(&[])), "key\n");
    }

    #[test]
    fn unknown_formatter_property_is_named() {
        let err = FormatterConfig::default()
            .set("print.everything", "true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'print.everything'"), "{err}");
    }
}
