//! YAML (and JSON, which YAML 1.2 contains) into a small located tree.
//!
//! saphyr is the maintained YAML 1.2 parser (the successor of yaml-rust and yaml-rust2,
//! by the same maintainers) and keeps a span for every node, so an error about a value
//! names its line and column. The tree here keeps mapping order (it matters for the
//! order of jobs) and refuses what a config never needs and a mistake often is:
//! duplicate keys, aliases, several documents.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::{Pos, error_at};
use crate::config::ConfigError;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(Y, Y)>),
}

/// A YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Y {
    pub node: Node,
    pub at: Pos,
}

/// Nesting deeper than this is refused (a config is a few levels deep; this keeps the
/// conversion's recursion bounded).
const MAX_DEPTH: usize = 64;

impl Y {
    /// The entries of a mapping (`None` for anything else).
    pub fn entries(&self) -> Option<&[(Y, Y)]> {
        match &self.node {
            Node::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Y> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.node {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text, the way a YAML-reading tool turns `PORT: 3000` into "3000".
    pub fn scalar_text(&self) -> Option<String> {
        match &self.node {
            Node::Str(s) => Some(s.clone()),
            Node::Int(n) => Some(n.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// What the value is, for errors: "a string", "a mapping"...
    pub fn kind(&self) -> &'static str {
        match &self.node {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Parses YAML text; `None` for an empty document.
pub fn parse(text: &str, origin: &str) -> Result<Option<Y>, ConfigError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|err| {
        let m = err.marker();
        error_at(
            origin,
            Pos::new(m.line(), m.col() + 1),
            None,
            format!("YAML syntax error: {}", err.info()),
        )
    })?;
    if docs.len() > 1 {
        let at = pos(&docs[1]);
        return Err(error_at(
            origin,
            at,
            None,
            "a second YAML document (`---`): the config must be one document",
        ));
    }
    match docs.first() {
        None => Ok(None),
        Some(doc) => convert(doc, origin, 0).map(Some),
    }
}

fn pos(node: &MarkedYaml<'_>) -> Pos {
    let m = node.span.start;
    Pos::new(m.line(), m.col() + 1)
}

fn convert(node: &MarkedYaml<'_>, origin: &str, depth: usize) -> Result<Y, ConfigError> {
    let at = pos(node);
    if depth > MAX_DEPTH {
        return Err(error_at(origin, at, None, "nested too deeply"));
    }
    let node = match &node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Node::Null,
            Scalar::Boolean(b) => Node::Bool(*b),
            Scalar::Integer(n) => Node::Int(*n),
            Scalar::FloatingPoint(f) => Node::Float(f.into_inner()),
            Scalar::String(s) => Node::Str(s.to_string()),
        },
        YamlData::Representation(text, _, _) => Node::Str(text.to_string()),
        YamlData::Sequence(items) => Node::Seq(
            items
                .iter()
                .map(|item| convert(item, origin, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries: Vec<(Y, Y)> = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = convert(k, origin, depth + 1)?;
                entries.push((key, convert(v, origin, depth + 1)?));
            }
            Node::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(inner, origin, depth + 1),
        YamlData::Alias(_) => {
            return Err(error_at(
                origin,
                at,
                None,
                "YAML aliases (`*name`) are not supported here: write the value out",
            ));
        }
        YamlData::BadValue => {
            return Err(error_at(
                origin,
                at,
                None,
                "YAML: a value that cannot be read",
            ));
        }
    };
    Ok(Y { node, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let y = parse("a: 1\nb:\n  c: \"x\"\n", "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("empty"));
        let b = y.get("b").unwrap_or_else(|| panic!("b"));
        let c = b.get("c").unwrap_or_else(|| panic!("c"));
        assert_eq!(c.at, Pos::new(3, 6));
        assert_eq!(c.as_str(), Some("x"));
        let keys: Vec<_> = y
            .entries()
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.at)
            .collect();
        assert_eq!(keys, [Pos::new(1, 1), Pos::new(2, 1)]);
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = parse("a: 1\nb: [1, 2\n", "t.yaml").expect_err("unclosed");
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
        assert!(e.to_string().contains("YAML syntax error"), "{e}");
        assert!(e.line().is_some_and(|l| l >= 2), "{e}");
    }

    #[test]
    fn json_is_yaml() {
        let y = parse(
            "{\"scripts\": {\"b\": \"x\", \"a\": \"y\"}}",
            "package.json",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("empty"));
        let scripts = y.get("scripts").unwrap_or_else(|| panic!("scripts"));
        let names: Vec<_> = scripts
            .entries()
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["b", "a"], "file order is kept");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse("a: 1\na: 2\n", "t.yaml").expect_err("duplicate");
        assert_eq!((e.line(), e.column()), (Some(2), Some(1)), "{e}");
        assert!(e.to_string().contains("duplicated key"), "{e}");
    }
}
