//! A value tree in which every node remembers the file, line and column that set it and the
//! values it overrode. Project files and JSON config files are both read into it, layered with
//! [`Node::merge`], and only then checked and converted into typed values.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::source::{FileId, Location, Origin};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    /// Only from JSON: in a config layer it removes the key below it.
    Null,
    Array(Vec<Node>),
    /// Shared until written: each environment starts from the same `tier.toml` tree and
    /// copies only the tables its layers change.
    Table(Arc<BTreeMap<String, Node>>),
}

impl Value {
    /// The word used in error messages: "expected a string, found an integer".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Null => "null",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A value that was overridden by a later layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Overridden {
    pub value: serde_json::Value,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Where the value was written.
    pub origin: Origin,
    /// Where its key was written, when it is a table entry.
    pub key: Option<Location>,
    /// Earlier values of the same path, oldest first.
    pub overridden: Vec<Overridden>,
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Node {
        Node {
            value,
            origin,
            key: None,
            overridden: Vec::new(),
        }
    }

    pub fn table(origin: Origin) -> Node {
        Node::new(Value::Table(Arc::default()), origin)
    }

    pub fn as_table(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.value {
            Value::Table(table) => Some(&**table),
            _ => None,
        }
    }

    pub fn as_table_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.value {
            Value::Table(table) => Some(Arc::make_mut(table)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// A string read as one of a closed set of words ([`crate::choice`]); `None` for anything
    /// else, which the schema check reports.
    pub fn as_choice<T: std::str::FromStr>(&self) -> Option<T> {
        self.as_str()?.parse().ok()
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(flag) => Some(flag),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self.value {
            Value::Integer(number) => Some(number),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_table().and_then(|table| table.get(key))
    }

    /// The node at a dotted path of table keys.
    pub fn lookup<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> Option<&Node> {
        path.into_iter().try_fold(self, |node, key| node.get(key))
    }

    /// Layers `over` on top of `self`: tables merge key by key, everything else is replaced,
    /// and a JSON `null` replaces the key's value (removed once all layers are merged). A replaced
    /// value is kept in `overridden`.
    pub fn merge(&mut self, over: Node) {
        match (&mut self.value, over.value) {
            (Value::Table(base), Value::Table(entries)) => {
                let base = Arc::make_mut(base);
                for (key, node) in Arc::unwrap_or_clone(entries) {
                    // A `null` replaces the value like any other, so the tree remembers
                    // what removed a key; `unset::prune_nulls` takes the nulls out once
                    // every layer is merged.
                    match base.get_mut(&key) {
                        Some(existing) => existing.merge(node),
                        None => {
                            base.insert(key, node);
                        }
                    }
                }
            }
            (_, value) => self.replace(Node {
                value,
                origin: over.origin,
                key: over.key,
                overridden: over.overridden,
            }),
        }
    }

    /// Puts `over` in this node's place, a table too, remembering what it overrode.
    pub fn replace(&mut self, over: Node) {
        let mut overridden = std::mem::take(&mut self.overridden);
        overridden.push(Overridden {
            value: self.to_json(),
            origin: self.origin.clone(),
        });
        overridden.extend(over.overridden);
        *self = Node {
            value: over.value,
            origin: over.origin,
            key: over.key.or(self.key.take()),
            overridden,
        };
    }

    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::String(text) | Value::Datetime(text) => serde_json::Value::from(text.as_str()),
            Value::Integer(number) => serde_json::Value::from(*number),
            Value::Float(number) => serde_json::Number::from_f64(*number)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Null => serde_json::Value::Null,
            Value::Array(items) => items.iter().map(Node::to_json).collect(),
            Value::Table(table) => table
                .iter()
                .map(|(key, node)| (key.clone(), node.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// Every leaf below this node, by dotted path. Arrays are leaves.
    pub fn leaves<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Node)>) {
        match &self.value {
            Value::Table(table) if !table.is_empty() => {
                for (key, node) in table.iter() {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    node.leaves(&path, out);
                }
            }
            _ => out.push((prefix.to_owned(), self)),
        }
    }
}

/// A TOML syntax error, as the parser reported it.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub location: Location,
}

/// Reads a TOML document into a tree, with all its syntax errors.
pub fn parse_toml(file: FileId, text: &str) -> (Node, Vec<SyntaxError>) {
    let (document, errors) = toml::de::DeTable::parse_recoverable(text);
    let span = document.span();
    let mut root = Node::table(Origin::File(Location {
        file,
        span: 0..text.len().min(span.end.max(1)),
    }));
    root.value = Value::Table(Arc::new(toml_table(file, document.get_ref())));
    let mut errors: Vec<SyntaxError> = errors
        .into_iter()
        .map(|error| {
            let span = error.span().unwrap_or(0..0);
            let mut message = parser_message(error.message());
            if message == "duplicate key"
                && let Some(key) = text.get(span.clone())
            {
                message = format!("duplicate key `{key}`: a key is set once per table");
            }
            SyntaxError {
                message,
                location: Location { file, span },
            }
        })
        .collect();
    blame_unclosed(&root, text, &mut errors);
    (root, errors)
}

/// An unclosed array or inline table makes the parser read on to the end of the file and
/// report each line after the bracket as a mistake of its own. Only the bracket is the
/// mistake: the errors inside the unclosed value are dropped, and its error points at the
/// opening bracket.
fn blame_unclosed(root: &Node, text: &str, errors: &mut Vec<SyntaxError>) {
    let unclosed: Vec<(usize, char)> = errors
        .iter()
        .filter_map(|error| {
            let bracket = if error.message.starts_with("unclosed array") {
                '['
            } else if error.message.starts_with("unclosed inline table") {
                '{'
            } else {
                return None;
            };
            Some((error.location.span.start, bracket))
        })
        .collect();
    for (at, bracket) in unclosed {
        let mut open = None;
        outermost_opening(root, text, at, bracket, &mut open);
        let Some(open) = open else { continue };
        errors
            .retain(|error| !(open <= error.location.span.start && error.location.span.start < at));
        if let Some(error) = errors
            .iter_mut()
            .find(|error| error.location.span.start == at && error.message.starts_with("unclosed"))
        {
            let (what, close) = if bracket == '[' {
                ("array", ']')
            } else {
                ("inline table", '}')
            };
            error.message = format!("unclosed {what}: this `{bracket}` has no matching `{close}`");
            error.location.span = open..open + 1;
        }
    }
}

/// The start of the outermost array (or inline table) that opens before `at` and runs on to
/// it. Arrays written later in the file were read into the unclosed one as items, and may end
/// at `at` too; the unclosed one holds them all.
fn outermost_opening(node: &Node, text: &str, at: usize, bracket: char, open: &mut Option<usize>) {
    let kind_matches = match node.value {
        Value::Array(_) => bracket == '[',
        Value::Table(_) => bracket == '{',
        _ => false,
    };
    if kind_matches
        && let Some(location) = node.origin.location()
        && location.span.start < at
        && location.span.end >= at
        && text
            .get(location.span.start..)
            .is_some_and(|rest| rest.starts_with(bracket))
        && open.is_none_or(|open| location.span.start < open)
    {
        *open = Some(location.span.start);
    }
    match &node.value {
        Value::Array(items) => items
            .iter()
            .for_each(|item| outermost_opening(item, text, at, bracket, open)),
        Value::Table(table) => table
            .values()
            .for_each(|item| outermost_opening(item, text, at, bracket, open)),
        _ => {}
    }
}

/// A parser's message as the clause after `invalid TOML: ` or `invalid JSON: `: no capital, no
/// full stop.
fn parser_message(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid TOML".to_owned(),
    }
}

fn toml_table(file: FileId, table: &toml::de::DeTable<'_>) -> BTreeMap<String, Node> {
    table
        .iter()
        .map(|(key, value)| {
            let mut node = toml_node(file, value);
            node.key = Some(Location {
                file,
                span: key.span(),
            });
            (key.get_ref().to_string(), node)
        })
        .collect()
}

fn toml_node(file: FileId, value: &toml::Spanned<toml::de::DeValue<'_>>) -> Node {
    use toml::de::DeValue;
    let origin = Origin::File(Location {
        file,
        span: value.span(),
    });
    let value = match value.get_ref() {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Integer(integer) => match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) => Value::Integer(number),
            Err(_) => Value::Float(f64::INFINITY),
        },
        DeValue::Float(float) => Value::Float(float.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(flag) => Value::Bool(*flag),
        DeValue::Datetime(datetime) => Value::Datetime(datetime.to_string()),
        DeValue::Array(items) => {
            Value::Array(items.iter().map(|item| toml_node(file, item)).collect())
        }
        DeValue::Table(table) => Value::Table(Arc::new(toml_table(file, table))),
    };
    Node::new(value, origin)
}

/// JSON as RFC 8259 writes it: no comments, trailing commas or other extensions. Every JSON
/// file tier reads with positions (app config, package.json) is parsed with these.
pub const STRICT_JSON: jsonc_parser::ParseOptions = jsonc_parser::ParseOptions {
    allow_comments: false,
    allow_loose_object_property_names: false,
    allow_trailing_commas: false,
    allow_missing_commas: false,
    allow_single_quoted_strings: false,
    allow_hexadecimal_numbers: false,
    allow_unary_plus_numbers: false,
    allow_bare_decimal_point_numbers: false,
    allow_non_finite_numbers: false,
    allow_extended_string_escapes: false,
};

/// Reads a strict JSON document into a tree, or says where it is not JSON.
pub fn parse_json(file: FileId, text: &str) -> Result<Node, SyntaxError> {
    let parsed =
        jsonc_parser::parse_to_ast(text, &Default::default(), &STRICT_JSON).map_err(|error| {
            let range = error.range();
            SyntaxError {
                message: format!(
                    "invalid JSON: {}",
                    parser_message(&error.kind().to_string())
                ),
                location: Location {
                    file,
                    span: range.start..range.end,
                },
            }
        })?;
    match parsed.value {
        Some(value) => json_node(file, value),
        None => Err(SyntaxError {
            message: "invalid JSON: the file is empty".to_owned(),
            location: Location { file, span: 0..0 },
        }),
    }
}

fn json_node(file: FileId, value: jsonc_parser::ast::Value<'_>) -> Result<Node, SyntaxError> {
    use jsonc_parser::ast::Value as Json;
    let at = |range: jsonc_parser::common::Range| Location {
        file,
        span: range.start..range.end,
    };
    let node = match value {
        Json::StringLit(text) => Node::new(
            Value::String(text.value.into_owned()),
            Origin::File(at(text.range)),
        ),
        Json::NumberLit(number) => {
            let value = match number.value.parse::<i64>() {
                Ok(integer) => Value::Integer(integer),
                Err(_) => Value::Float(number.value.parse().unwrap_or(f64::NAN)),
            };
            Node::new(value, Origin::File(at(number.range)))
        }
        Json::BooleanLit(flag) => Node::new(Value::Bool(flag.value), Origin::File(at(flag.range))),
        Json::NullKeyword(null) => Node::new(Value::Null, Origin::File(at(null.range))),
        Json::Array(array) => {
            let items = array
                .elements
                .into_iter()
                .map(|item| json_node(file, item))
                .collect::<Result<_, _>>()?;
            Node::new(Value::Array(items), Origin::File(at(array.range)))
        }
        Json::Object(object) => {
            let range = object.range;
            let mut table = BTreeMap::new();
            for property in object.properties {
                let key_range = match &property.name {
                    jsonc_parser::ast::ObjectPropName::String(name) => name.range,
                    jsonc_parser::ast::ObjectPropName::Word(name) => name.range,
                };
                let key = property.name.into_string();
                let mut node = json_node(file, property.value)?;
                node.key = Some(at(key_range));
                if table.insert(key.clone(), node).is_some() {
                    return Err(SyntaxError {
                        message: format!(
                            "invalid JSON: the key `{key}` appears twice in one object"
                        ),
                        location: at(key_range),
                    });
                }
            }
            Node::new(Value::Table(Arc::new(table)), Origin::File(at(range)))
        }
    };
    Ok(node)
}
