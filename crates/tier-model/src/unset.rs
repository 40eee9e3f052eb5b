//! Removing keys: `unset = ["expose"]` in a service's table of an override file (TOML has no
//! null), and `null` in a config file. Both become `null` nodes while the layers merge, so
//! the tree remembers what removed a key; [`prune_nulls`] takes them out at the end.

use std::collections::BTreeMap;

use crate::problem::Problem;
use crate::project::PROJECT_FILE;
use crate::schema::{self, Ty};
use crate::tree::{Node, Value};

/// An override file's `services` table with each service's `unset` turned into `null`
/// entries at the keys it names (dotted for a nested key: `health.port`).
pub fn apply_unsets(services: &Node, problems: &mut Vec<Problem>) -> Node {
    let mut services = services.clone();
    let Some(entries) = services.as_table_mut() else {
        return services;
    };
    for (service, table) in entries.iter_mut() {
        let Some(fields) = table.as_table_mut() else {
            continue;
        };
        let Some(list) = fields.remove("unset") else {
            continue;
        };
        for item in list.as_array().unwrap_or_default() {
            let Some(path) = item.as_str() else { continue };
            let keys: Vec<&str> = path.split('.').collect();
            if !known_service_path(&keys) || keys.first() == Some(&"unset") {
                let names = schema::SERVICE.iter().map(|field| field.name);
                let mut problem = Problem::new(format!(
                    "service `{service}`: cannot unset `{path}`: no such key"
                ))
                .at(item.origin.location());
                problem = match schema::did_you_mean(keys[0], names) {
                    Some(near) => problem.label(format!("did you mean `{near}`?")),
                    None => problem.label("unknown key"),
                };
                problems.push(
                    problem.help("name a key of the service's table, e.g. unset = [\"expose\"]"),
                );
                continue;
            }
            let mut null = Node::new(Value::Null, item.origin.clone());
            for key in keys.iter().skip(1).rev() {
                let mut table = Node::table(item.origin.clone());
                if let Some(inner) = table.as_table_mut() {
                    inner.insert((*key).to_owned(), null);
                }
                null = table;
            }
            let first = keys[0].to_owned();
            match fields.get_mut(&first) {
                Some(existing) => existing.merge(null),
                None => {
                    fields.insert(first, null);
                }
            }
        }
    }
    services
}

fn known_service_path(keys: &[&str]) -> bool {
    let mut fields = schema::SERVICE;
    for (depth, key) in keys.iter().enumerate() {
        let Some(field) = fields.iter().find(|field| field.name == *key) else {
            return false;
        };
        if depth + 1 == keys.len() {
            return true;
        }
        match field.ty {
            Ty::Table(inner) | Ty::StringOrTable { table: inner, .. } => fields = inner,
            // Entries of a map (`env.NAME`, `volumes.data`) can be unset one by one.
            Ty::Map { .. } => return depth + 2 == keys.len(),
            _ => return false,
        }
    }
    false
}

/// `unset` is for override files: in `tier.toml` there is nothing below to remove.
pub fn refuse_unset_in_project_file(file: &Node, problems: &mut Vec<Problem>) {
    let Some(services) = file.get("services").and_then(Node::as_table) else {
        return;
    };
    for (service, table) in services {
        if let Some(unset) = table.get("unset") {
            problems.push(
                Problem::new(format!(
                    "service `{service}`: `unset` belongs in an override file, not in {PROJECT_FILE}"
                ))
                .at(unset.key.as_ref().or(unset.origin.location()))
                .label("nothing to unset here")
                .help(format!(
                    "remove the key from [services.{service}] instead, or move `unset` to envs/<env>.toml"
                )),
            );
        }
    }
}

/// Removes every `null` table entry, recording each under its dotted path.
pub fn prune_nulls(node: &mut Node, path: &str, removed: &mut BTreeMap<String, Node>) {
    let Some(table) = node.as_table_mut() else {
        return;
    };
    let nulls: Vec<String> = table
        .iter()
        .filter(|(_, entry)| entry.value == Value::Null)
        .map(|(key, _)| key.clone())
        .collect();
    for key in nulls {
        if let Some(entry) = table.remove(&key) {
            removed.insert(schema::join(path, &key), entry);
        }
    }
    for (key, entry) in table.iter_mut() {
        if matches!(entry.value, Value::Table(_)) && contains_null(entry) {
            prune_nulls(entry, &schema::join(path, key), removed);
        }
    }
}

fn contains_null(node: &Node) -> bool {
    node.as_table().is_some_and(|table| {
        table
            .values()
            .any(|entry| entry.value == Value::Null || contains_null(entry))
    })
}
