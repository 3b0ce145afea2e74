//! YAML with line numbers. Policy authors need errors that point at a line, and serde's YAML
//! front ends drop positions, so the document is read event by event into a JSON value plus a
//! map from each value's path (`levels.0.minApprovals`) to the line it starts on.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// A parsed document and the line of every value in it.
#[derive(Debug, Default)]
pub struct SpannedYaml {
    pub value: serde_json::Value,
    lines: HashMap<String, usize>,
}

impl SpannedYaml {
    /// The line of the value at `path`, or of its nearest ancestor that exists.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path.to_owned();
        loop {
            if let Some(line) = self.lines.get(&p) {
                return *line;
            }
            match p.rfind('.') {
                Some(i) => p.truncate(i),
                None => return self.lines.get("").copied().unwrap_or(1),
            }
        }
    }
}

enum Frame {
    Seq { items: Vec<serde_json::Value>, path: String },
    Map { map: serde_json::Map<String, serde_json::Value>, path: String, pending_key: Option<(String, usize)> },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<serde_json::Value>,
    lines: HashMap<String, usize>,
    error: Option<YamlError>,
    documents: usize,
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

fn plain_scalar(text: &str) -> serde_json::Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => serde_json::Value::Null,
        "true" | "True" | "TRUE" => serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => serde_json::Value::Bool(false),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                serde_json::Value::from(i)
            } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
                serde_json::Value::from(f)
            } else {
                serde_json::Value::String(text.to_owned())
            }
        }
    }
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(YamlError { line, message: message.into() });
        }
    }

    /// Where the next value goes and the line to report for it (a mapping value is reported at
    /// its key's line), or `None` when the next scalar is a mapping key.
    fn next_path(&self, line: usize) -> Option<(String, usize)> {
        match self.stack.last() {
            None => Some((String::new(), line)),
            Some(Frame::Seq { items, path }) => Some((join(path, &items.len().to_string()), line)),
            Some(Frame::Map { path, pending_key: Some((k, key_line)), .. }) => Some((join(path, k), *key_line)),
            Some(Frame::Map { pending_key: None, .. }) => None,
        }
    }

    fn push_value(&mut self, value: serde_json::Value, line: usize) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    self.fail(line, "only one YAML document is allowed per file");
                }
                self.root = Some(value);
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, pending_key, .. }) => match pending_key.take() {
                Some((k, _)) => {
                    map.insert(k, value);
                }
                None => self.fail(line, "mapping keys must be plain strings"),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(line, "only one YAML document is allowed per file");
                }
            }
            Event::Alias(_) => self.fail(line, "YAML aliases are not supported in policy files; write the value out"),
            Event::Scalar(text, style, _, _) => {
                if let Some(Frame::Map { map, pending_key: pending @ None, .. }) = self.stack.last_mut() {
                    let duplicate = map.contains_key(&text);
                    *pending = Some((text.clone(), line));
                    if duplicate {
                        self.fail(line, format!("duplicate key '{text}'"));
                    }
                    return;
                }
                if let Some((path, at)) = self.next_path(line) {
                    self.lines.insert(path, at);
                }
                let value =
                    if style == TScalarStyle::Plain { plain_scalar(&text) } else { serde_json::Value::String(text) };
                self.push_value(value, line);
            }
            Event::SequenceStart(_, _) | Event::MappingStart(_, _) => {
                let Some((path, at)) = self.next_path(line) else {
                    self.fail(line, "mapping keys must be plain strings");
                    self.stack.push(Frame::Seq { items: Vec::new(), path: String::new() });
                    return;
                };
                self.lines.insert(path.clone(), at);
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq { items: Vec::new(), path });
                } else {
                    self.stack.push(Frame::Map { map: serde_json::Map::new(), path, pending_key: None });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Frame::Seq { items, .. }) => serde_json::Value::Array(items),
                    Some(Frame::Map { map, .. }) => serde_json::Value::Object(map),
                    None => return,
                };
                self.push_value(value, line);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

pub fn parse(text: &str) -> Result<SpannedYaml, YamlError> {
    let mut builder = Builder { stack: Vec::new(), root: None, lines: HashMap::new(), error: None, documents: 0 };
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, true)
        .map_err(|e| YamlError { line: e.marker().line(), message: format!("invalid YAML: {}", e.info()) })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(SpannedYaml { value: builder.root.unwrap_or(serde_json::Value::Null), lines: builder.lines })
}

/// Turns a serde path into the same dotted form `SpannedYaml` uses.
pub fn path_key(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        let part = match seg {
            serde_path_to_error::Segment::Seq { index } => index.to_string(),
            serde_path_to_error::Segment::Map { key } => key.clone(),
            serde_path_to_error::Segment::Enum { variant } => variant.clone(),
            serde_path_to_error::Segment::Unknown => continue,
        };
        out = join(&out, &part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_the_line_they_start_on() {
        let doc = parse("name: prod\nlevels:\n  - minApprovals: 2\n    approvers:\n      - iamUser: alice\n").unwrap();
        assert_eq!(doc.value["levels"][0]["minApprovals"], 2);
        assert_eq!(doc.line_of("name"), 1);
        assert_eq!(doc.line_of("levels.0.minApprovals"), 3);
        assert_eq!(doc.line_of("levels.0.approvers.0.iamUser"), 5);
        assert_eq!(doc.line_of("levels.0.approvers.0.unknownKey"), 5, "falls back to the nearest ancestor");
    }

    #[test]
    fn quoted_scalars_stay_strings_and_plain_ones_are_typed() {
        let doc = parse("a: '5'\nb: 5\nc: true\nd: ~\ne: text\n").unwrap();
        assert_eq!(doc.value["a"], "5");
        assert_eq!(doc.value["b"], 5);
        assert_eq!(doc.value["c"], true);
        assert!(doc.value["d"].is_null());
        assert_eq!(doc.value["e"], "text");
    }

    #[test]
    fn broken_yaml_duplicate_keys_and_aliases_are_reported_with_a_line() {
        let cases =
            [("a: [1, 2\n", "invalid YAML"), ("a: 1\nb: 2\na: 3\n", "duplicate key"), ("a: &x 1\nb: *x\n", "aliases")];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains(needle), "{text:?}: {err:?}");
            assert!(err.line >= 1);
        }
        assert_eq!(parse("a: 1\nb: 2\na: 3\n").unwrap_err().line, 3);
    }
}
