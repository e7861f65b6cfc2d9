//! strom-properties: Java `.properties` parsing for every Kafka-style file strom reads
//! (`server.properties`, Connect worker and connector files, client `--command-config` files):
//! `key=value`, `key: value`, `key value`, `#`/`!` comments, `\` line continuations and the usual
//! escapes, as `java.util.Properties` reads them.
//!
//! Must not touch: what the keys mean (each reader validates its own keys).

/// One `key = value` pair with the line it started on, so errors can name where a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parse the text of a `.properties` file. Never fails: a line without a separator is a key with an
/// empty value, exactly as `java.util.Properties` reads it.
pub fn parse(text: &str) -> Vec<Property> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((idx, raw)) = lines.next() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the logical line.
        let mut logical = trimmed.to_string();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        out.push(Property {
            key: unescape(&key),
            value: unescape(&value),
            line: idx + 1,
        });
    }
    out
}

fn ends_with_continuation(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            key.push(c);
            key.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '=' || c == ':' || c.is_whitespace() {
            break;
        }
        key.push(c);
        i += 1;
    }
    // Skip whitespace, at most one separator, whitespace again.
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if i < chars.len() && (chars[i] == '=' || chars[i] == ':') {
        i += 1;
    }
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    let value: String = chars[i..].iter().collect();
    (key, value)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_file() {
        let text = "# comment\n! also\nnode.id=1\nlisteners = PLAINTEXT://:9092\nlog.dirs: /tmp/a\\\n  ,/tmp/b\nkey value with spaces\nempty\nesc\\=key=v\\u0041\n";
        let props = parse(text);
        let pairs: Vec<(&str, &str)> = props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("node.id", "1"),
                ("listeners", "PLAINTEXT://:9092"),
                ("log.dirs", "/tmp/a,/tmp/b"),
                ("key", "value with spaces"),
                ("empty", ""),
                ("esc=key", "vA"),
            ]
        );
        assert_eq!(props[0].line, 3);
    }
}
