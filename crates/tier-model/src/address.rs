//! Addresses in values: `${services.NAME.host}`, `.port`, `.address` (host:port) and `.url`
//! in a service's `env` values and in the strings of its config. The model checks each
//! reference and orders the services by them; each runtime fills them in with its own
//! addresses (the local proxy on 127.0.0.1, or the cluster DNS name).

use crate::tree::{Node, Value};

/// The fields a reference may ask for.
pub const FIELDS: &[&str] = &["host", "port", "address", "url"];

const OPEN: &str = "${services.";

/// One `${services.NAME.FIELD}` found in a value.
#[derive(Clone, Debug)]
pub struct Reference<'a> {
    pub service: &'a str,
    pub field: &'a str,
    /// The value that holds it, for its location.
    pub node: &'a Node,
}

/// Every reference in a service's `env` values and config strings.
pub fn references(service: &Node) -> Vec<Reference<'_>> {
    let mut found = Vec::new();
    if let Some(env) = service.get("env").and_then(Node::as_table) {
        for value in env.values() {
            collect(value, &mut found);
        }
    }
    if let Some(config) = service.get("config") {
        collect(config, &mut found);
    }
    found
}

fn collect<'a>(node: &'a Node, found: &mut Vec<Reference<'a>>) {
    match &node.value {
        Value::String(text) => {
            for (service, field) in scan(text) {
                found.push(Reference {
                    service,
                    field,
                    node,
                });
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
        Value::Table(table) => table.values().for_each(|item| collect(item, found)),
        _ => {}
    }
}

/// The `(service, field)` of each reference in a text, in order.
pub fn scan(text: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let (service, field) = inner.rsplit_once('.').unwrap_or((inner, ""));
        found.push((service, field));
        rest = &after[end + 1..];
    }
    found
}

/// Where a runtime says a service can be reached.
pub trait Addresses {
    /// The host and port of a service, or `None` when the runtime has none for it.
    fn host_port(&self, service: &str) -> Option<(String, u16)>;
    /// The URL scheme of a service (`http` or `tcp`).
    fn scheme(&self, service: &str) -> &'static str;
}

/// The text with every reference filled in; a reference the runtime cannot answer is left
/// as written (the model refuses unknown services before any runtime sees one).
pub fn substitute(text: &str, addresses: &dyn Addresses) -> String {
    if !text.contains(OPEN) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (service, field) = inner.rsplit_once('.').unwrap_or((inner, ""));
        match (addresses.host_port(service), field) {
            (Some((host, _)), "host") => out.push_str(&host),
            (Some((_, port)), "port") => out.push_str(&port.to_string()),
            (Some((host, port)), "address") => out.push_str(&format!("{host}:{port}")),
            (Some((host, port)), "url") => {
                out.push_str(&format!("{}://{host}:{port}", addresses.scheme(service)));
            }
            _ => out.push_str(&rest[start..start + OPEN.len() + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A config value with every string's references filled in.
pub fn substitute_json(value: &serde_json::Value, addresses: &dyn Addresses) -> serde_json::Value {
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(substitute(text, addresses)),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| substitute_json(item, addresses))
            .collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, item)| (key.clone(), substitute_json(item, addresses)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Addresses for Fixed {
        fn host_port(&self, service: &str) -> Option<(String, u16)> {
            (service == "cart").then(|| ("cart.shop.svc.cluster.local".to_owned(), 7070))
        }
        fn scheme(&self, _: &str) -> &'static str {
            "http"
        }
    }

    #[test]
    fn references_are_found_and_filled_in() {
        assert_eq!(
            scan("a ${services.cart.address} b ${services.x.url}"),
            vec![("cart", "address"), ("x", "url")]
        );
        assert_eq!(
            substitute("${services.cart.address}", &Fixed),
            "cart.shop.svc.cluster.local:7070"
        );
        assert_eq!(
            substitute("x=${services.cart.url}/v1 ${services.cart.port}", &Fixed),
            "x=http://cart.shop.svc.cluster.local:7070/v1 7070"
        );
        assert_eq!(
            substitute("${services.nope.host}", &Fixed),
            "${services.nope.host}"
        );
        assert_eq!(
            substitute("${services.cart.host", &Fixed),
            "${services.cart.host"
        );
        assert_eq!(substitute("$HOME ${HOME}", &Fixed), "$HOME ${HOME}");
    }
}
