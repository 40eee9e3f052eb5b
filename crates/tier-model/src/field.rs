//! A key of the project file's schema: its name, type, what it is for, whether it is
//! required, and its default ([`FieldDefault`]); and [`field_at`], the field of a resolved
//! environment's path.

use serde_json::json;

use crate::quantity::Duration;
use crate::schema::Ty;

pub struct Field {
    pub name: &'static str,
    pub ty: &'static Ty,
    /// What the key is for, without its default.
    pub doc: &'static str,
    pub required: bool,
    pub default: Option<FieldDefault>,
}

/// What a key is when the project does not write it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldDefault {
    Bool(bool),
    Integer(i64),
    /// A word: a choice, or a quantity as it is written.
    Word(&'static str),
    Duration(Duration),
    /// Follows from other values (`the service's port`); said in words, with no value for the
    /// JSON Schema.
    Said(&'static str),
}

impl FieldDefault {
    /// The value for the JSON Schema's `default`, when there is one.
    pub fn to_json(self) -> Option<serde_json::Value> {
        match self {
            FieldDefault::Bool(flag) => Some(json!(flag)),
            FieldDefault::Integer(number) => Some(json!(number)),
            FieldDefault::Word(word) => Some(json!(word)),
            FieldDefault::Duration(duration) => Some(json!(duration.to_string())),
            FieldDefault::Said(_) => None,
        }
    }
}

impl std::fmt::Display for FieldDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldDefault::Bool(flag) => write!(f, "{flag}"),
            FieldDefault::Integer(number) => write!(f, "{number}"),
            FieldDefault::Word(word) | FieldDefault::Said(word) => f.write_str(word),
            FieldDefault::Duration(duration) => write!(f, "{duration}"),
        }
    }
}

impl Field {
    /// The same field with a default.
    pub(crate) const fn or(self, default: FieldDefault) -> Field {
        Field {
            default: Some(default),
            ..self
        }
    }

    /// What the key is for and, when it has one, its default: `How many copies run. Default:
    /// 1.` (the JSON Schema's description, and what a hint quotes).
    pub fn description(&self) -> String {
        match self.default {
            Some(default) => format!("{} Default: {default}.", self.doc),
            None => self.doc.to_owned(),
        }
    }
}

pub(crate) const fn field(name: &'static str, ty: &'static Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        doc,
        required: false,
        default: None,
    }
}

pub(crate) const fn required(name: &'static str, ty: &'static Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        doc,
        required: true,
        default: None,
    }
}

/// The field at a dotted path of a resolved environment (`services.backend.replicas`), for
/// `tier explain`: names under a map (a service's name) match any key.
pub fn field_at(fields: &'static [Field], path: &str) -> Option<&'static Field> {
    let mut fields = fields;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let field = fields.iter().find(|field| field.name == key)?;
        if keys.peek().is_none() {
            return Some(field);
        }
        let mut ty = field.ty;
        loop {
            match ty {
                Ty::Map { value, .. } => {
                    keys.next()?;
                    ty = value;
                }
                Ty::Table(inner) | Ty::StringOrTable { table: inner, .. } => {
                    fields = inner;
                    break;
                }
                _ => return None,
            }
            keys.peek()?;
        }
    }
    None
}
