//! The Prometheus text exposition format (version 0.0.4): `# HELP`/`# TYPE` lines, samples,
//! label escaping.

use std::fmt::{Display, Write};

/// The Content-Type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Label values may hold any UTF-8; backslash, quote and newline must be escaped.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escapes_label_values() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "An x.");
        e.sample("x_total", &[("topic", "a\"b\\c\nd")], 3);
        e.single("y", "gauge", "A y.", 1.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP y A y.\n# TYPE y gauge\ny 1.5\n"
        );
    }
}
