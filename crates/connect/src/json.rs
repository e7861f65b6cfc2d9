//! A small ordered JSON tree and a writer that produces the exact bytes Jackson writes for Kafka's
//! JsonConverter: compact, fields in insertion order, numbers formatted as Java does
//! (`1.0`, `1.0E10`, `1.0E-4`), non-finite floats quoted (`"NaN"`), bytes as padded base64.
//!
//! serde_json's own `Value` sorts object keys (without the workspace-wide `preserve_order` feature,
//! which would change other crates' output) and prints `10000000000.0`, so the converters build
//! this tree instead. Parsing still goes through serde_json.

use base64::Engine;

/// An ordered JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonNode {
    Null,
    Bool(bool),
    Int(i64),
    Float(f32),
    Double(f64),
    String(String),
    Binary(Vec<u8>),
    /// A number literal written as it stands (decimals in `decimal.format=NUMERIC`).
    Raw(String),
    Array(Vec<JsonNode>),
    Object(Vec<(String, JsonNode)>),
}

impl JsonNode {
    /// An empty object.
    pub fn object() -> JsonNode {
        JsonNode::Object(Vec::new())
    }

    /// Sets a field of an object, replacing an existing one in place (as ObjectNode.put does).
    pub fn put(&mut self, key: &str, value: JsonNode) {
        if let JsonNode::Object(fields) = self {
            if let Some(slot) = fields.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                fields.push((key.to_string(), value));
            }
        }
    }

    /// Serializes compactly, as Jackson's ObjectMapper.writeValueAsBytes does.
    pub fn to_json_string(&self) -> String {
        let mut out = String::with_capacity(self.size_hint());
        self.write_to(&mut out);
        out
    }

    /// About how many bytes the JSON text takes (exact but for escapes and numbers), so the
    /// output can be allocated once.
    pub fn size_hint(&self) -> usize {
        match self {
            JsonNode::Null | JsonNode::Bool(_) => 5,
            JsonNode::Int(_) | JsonNode::Float(_) | JsonNode::Double(_) => 24,
            JsonNode::String(s) | JsonNode::Raw(s) => s.len() + 2,
            JsonNode::Binary(b) => b.len().div_ceil(3) * 4 + 2,
            JsonNode::Array(items) => items.iter().map(|i| i.size_hint() + 1).sum::<usize>() + 2,
            JsonNode::Object(fields) => {
                fields
                    .iter()
                    .map(|(k, v)| k.len() + 4 + v.size_hint())
                    .sum::<usize>()
                    + 2
            }
        }
    }

    /// Appends the compact JSON text to `out`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            JsonNode::Null => out.push_str("null"),
            JsonNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonNode::Int(i) => out.push_str(&i.to_string()),
            JsonNode::Float(f) => {
                if f.is_finite() {
                    out.push_str(&java_float(*f))
                } else {
                    write_string(out, &java_float(*f))
                }
            }
            JsonNode::Double(d) => {
                if d.is_finite() {
                    out.push_str(&java_double(*d))
                } else {
                    write_string(out, &java_double(*d))
                }
            }
            JsonNode::String(s) => write_string(out, s),
            JsonNode::Raw(r) => out.push_str(r),
            JsonNode::Binary(b) => {
                write_string(out, &base64::engine::general_purpose::STANDARD.encode(b))
            }
            JsonNode::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            JsonNode::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write_to(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes a JSON string with Jackson's escapes: `\"`, `\\`, the short forms for control characters
/// that have one, `\u00XX` for the others; everything else (non-ASCII included) as is.
fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Copy the runs between escapes whole. Every escaped character is ASCII and no byte of a
    // multi-byte UTF-8 sequence is, so splitting at escape bytes keeps `run` valid UTF-8.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{:04X}", b));
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Java's `Double.toString` (JDK 19+, shortest digits): plain notation for 1e-3 <= |d| < 1e7,
/// computerized scientific notation (`1.0E10`) otherwise.
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let abs = d.abs();
    java_format(&format!("{d:e}"), d == 0.0, (1e-3..1e7).contains(&abs))
}

/// Java's `Float.toString`, with the same rules over the float's own shortest digits.
pub fn java_float(f: f32) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let abs = f.abs();
    java_format(&format!("{f:e}"), f == 0.0, (1e-3..1e7).contains(&abs))
}

/// Rewrites Rust's shortest `{:e}` form (`-1.5e-4`) into Java's layout.
fn java_format(sci: &str, zero: bool, plain: bool) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    if zero {
        return format!("{sign}0.0");
    }
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if plain {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let (int_part, frac_part) = if digits.len() > int_len {
                (digits[..int_len].to_string(), digits[int_len..].to_string())
            } else {
                (
                    format!("{digits}{}", "0".repeat(int_len - digits.len())),
                    "0".to_string(),
                )
            };
            format!("{sign}{int_part}.{frac_part}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let rest = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{rest}E{exp}", &digits[..1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java() {
        for (d, s) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (123456.789, "123456.789"),
            (1e7, "1.0E7"),
            (1.0e10, "1.0E10"),
            (12345678.9, "1.23456789E7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-2.5e-5, "-2.5E-5"),
            (100.0, "100.0"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(java_double(d), s, "{d}");
        }
        assert_eq!(java_float(1.1f32), "1.1");
        assert_eq!(java_float(3.0e9f32), "3.0E9");
    }

    #[test]
    fn writer_is_compact_and_ordered() {
        let mut o = JsonNode::object();
        o.put("z", JsonNode::Int(1));
        o.put("a", JsonNode::String("q\"\n\u{1}é".into()));
        o.put("b", JsonNode::Binary(vec![1, 2, 3]));
        o.put("z", JsonNode::Int(2));
        assert_eq!(
            o.to_json_string(),
            r#"{"z":2,"a":"q\"\n\u0001é","b":"AQID"}"#
        );
    }

    #[test]
    fn strings_escape_between_multibyte_characters() {
        let s = "é\\x\ty\u{8}\u{c}\r\u{1f}€/\"";
        let json = JsonNode::String(s.into()).to_json_string();
        assert_eq!(json, r#""é\\x\ty\b\f\r\u001F€/\"""#);
        assert_eq!(JsonNode::String(String::new()).to_json_string(), r#""""#);
        // Whatever it escapes, the output parses back to the same text.
        let back: String = serde_json::from_str(&json).expect("json");
        assert_eq!(back, s);
    }
}
