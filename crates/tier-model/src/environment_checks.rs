//! The checks of one resolved environment that look at it as a whole: what starts each
//! service on its runtime, kubernetes' context and namespace, dependencies and their cycles,
//! host ports, probe and secret reference shapes. Each problem is located where it is caused.

use std::collections::BTreeMap;

use petgraph::graphmap::DiGraphMap;

use crate::environment::*;
use crate::problem::Problem;
use crate::schema;
use crate::tree::Node;

/// Checks that depend on the runtime: what starts a service, and where kubernetes puts it.
pub(crate) fn check_runtime(
    environment: &Environment,
    tree: &Node,
    decl_location: Option<&crate::source::Location>,
    problems: &mut Vec<Problem>,
) {
    let name = environment.name.as_str();
    if environment.runtime == Runtime::Kubernetes {
        let kube = tree.get("kube");
        let namespace = format!("{}-{name}", environment.project.name);
        let missing: Vec<(&str, String)> = [
            ("context", "\"<kube context>\"".to_owned()),
            ("namespace", format!("\"{namespace}\"")),
        ]
        .into_iter()
        .filter(|(key, _)| kube.and_then(|kube| kube.get(key)).is_none())
        .collect();
        if !missing.is_empty() {
            let keys: Vec<String> = missing
                .iter()
                .map(|(key, _)| format!("kube.{key}"))
                .collect();
            let entries: Vec<String> = missing
                .iter()
                .map(|(key, value)| format!("{key} = {value}"))
                .collect();
            let at = kube
                .and_then(|kube| kube.key.as_ref().or(kube.origin.location()))
                .or(decl_location);
            // A partial `kube` table needs only the missing keys; no table needs the whole one.
            let help = if kube.is_some() {
                format!(
                    "add {} to the kube table of [environments.{name}]",
                    entries.join(", ")
                )
            } else {
                format!(
                    "add kube = {{ {} }} to [environments.{name}]",
                    entries.join(", ")
                )
            };
            problems.push(
                Problem::new(format!(
                    "kubernetes environment `{name}` has no `{}`",
                    keys.join("` or `")
                ))
                .at(at)
                .label(format!("needs {}", keys.join(" and ")))
                .help(help),
            );
        }
    }
    let services = tree.get("services").and_then(Node::as_table);
    for (service_name, service) in &environment.services {
        let node = services.and_then(|services| services.get(service_name.as_str()));
        let at = node.and_then(|node| node.key.as_ref().or(node.origin.location()));
        // A `command` or `image` of the wrong type is reported by the schema check already.
        let written = |key: &str| node.and_then(|node| node.get(key)).is_some();
        match environment.runtime {
            Runtime::Local if service.command.is_none() && !written("command") => problems.push(
                Problem::new(format!("service `{service_name}` has no `command`, which the local runtime of `{name}` needs"))
                    .at(at)
                    .label("no command")
                    .help(format!("add command = [\"path/to/program\", \"arg\"] to [services.{service_name}]")),
            ),
            Runtime::Kubernetes if service.image.is_none() && !written("image") => problems.push(
                Problem::new(format!("service `{service_name}` has no `image`, which the kubernetes runtime of `{name}` needs"))
                    .at(at)
                    .label("no image")
                    .help(format!("add image = \"registry/{service_name}:1.0.0\" to [services.{service_name}]")),
            ),
            _ => {}
        }
    }
}

/// Checks across services: dependencies, cycles, ports, health checks and secret references.
pub(crate) fn check_services(environment: &Environment, tree: &Node, problems: &mut Vec<Problem>) {
    let empty = BTreeMap::new();
    let nodes = tree
        .get("services")
        .and_then(Node::as_table)
        .unwrap_or(&empty);
    // Sorted, because the services are a BTreeMap: lookups below are binary searches.
    let names: Vec<&str> = nodes.keys().map(String::as_str).collect();
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for name in &names {
        graph.add_node(name);
    }
    for (name, node) in nodes {
        let dependencies = node
            .get("depends_on")
            .and_then(Node::as_array)
            .unwrap_or_default();
        for dependency in dependencies {
            let Some(target) = dependency.as_str() else {
                continue;
            };
            let at = dependency.origin.location();
            if target == name {
                problems.push(
                    Problem::new(format!("service `{name}` depends on itself"))
                        .at(at)
                        .label("itself")
                        .help("remove it from depends_on"),
                );
            } else if let Ok(at) = names.binary_search(&target) {
                let target = names[at];
                graph.add_edge(name.as_str(), target, ());
            } else {
                let mut problem = Problem::new(format!(
                    "service `{name}` depends on `{target}`, which is not a service"
                ))
                .at(at);
                problem = match schema::did_you_mean(target, names.iter().copied()) {
                    Some(near) => problem
                        .label(format!("did you mean `{near}`?"))
                        .help(format!(
                            "change it to \"{near}\", or declare [services.{target}]"
                        )),
                    None => problem.label("unknown service").help(format!(
                        "declare [services.{target}], or remove it from depends_on"
                    )),
                };
                problems.push(problem);
            }
        }
    }
    for component in petgraph::algo::tarjan_scc(&graph) {
        if component.len() < 2 {
            continue;
        }
        let cycle = cycle_through(&graph, &component);
        let edge_at = |from: &str, to: &str| {
            nodes
                .get(from)
                .and_then(|node| node.get("depends_on"))
                .and_then(Node::as_array)
                .and_then(|items| items.iter().find(|item| item.as_str() == Some(to)))
                .and_then(|item| item.origin.location())
        };
        let mut problem = Problem::new(format!("services depend on each other in a cycle: {}", cycle.join(" → ")))
            .at(edge_at(cycle[0], cycle[1]))
            .label(format!("{} depends on {}", cycle[0], cycle[1]))
            .help("a service cannot start before itself: remove one of these dependencies, or guard the new behaviour with a feature flag instead of start order");
        for pair in cycle.windows(2).skip(1) {
            problem = problem.related(
                edge_at(pair[0], pair[1]),
                format!("{} depends on {}", pair[0], pair[1]),
            );
        }
        problems.push(problem);
    }

    let mut exposed: BTreeMap<u16, &str> = BTreeMap::new();
    for (name, service) in &environment.services {
        let Some(port) = service.expose else { continue };
        let at = |service: &str| {
            nodes
                .get(service)
                .and_then(|node| node.get("expose"))
                .and_then(|node| node.origin.location())
        };
        match exposed.get(&port) {
            Some(first) => problems.push(
                Problem::new(format!("services `{first}` and `{name}` are both exposed on host port {port}"))
                .at(at(name.as_str()))
                .label(format!("port {port} again"))
                .related(at(first), format!("{first} is exposed on {port} here"))
                .help(format!(
                    "give one of them another port, e.g. in envs/<env>.toml: [services.{name}] expose = {}",
                    port.saturating_add(1)
                )),
            ),
            None => {
                exposed.insert(port, name.as_str());
            }
        }
    }

    for (name, node) in nodes {
        for probe in ["health", "liveness", "startup"] {
            let Some(health) = node.get(probe) else {
                continue;
            };
            let kinds: Vec<&str> = ["http", "tcp", "grpc", "exec"]
                .into_iter()
                .filter(|kind| health.get(kind).is_some())
                .collect();
            if kinds.len() != 1 {
                let at = health.key.as_ref().or(health.origin.location());
                let quoted: Vec<String> = kinds.iter().map(|kind| format!("`{kind}`")).collect();
                problems.push(
                    Problem::new(if kinds.is_empty() {
                        format!("service `{name}`: {probe} names no check")
                    } else {
                        format!("service `{name}`: {probe} has both {}", quoted.join(" and "))
                    })
                    .at(at)
                    .label("one of http, tcp, grpc or exec")
                    .help(format!("use {probe} = {{ http = \"/healthz\" }}, {{ tcp = 8080 }}, {{ grpc = 9000 }} or {{ exec = [\"bin/check\"] }}")),
                );
            }
        }
        if let Some(secrets) = node.get("secrets").and_then(Node::as_table) {
            for (key, reference) in secrets {
                let env = reference.get("env").is_some();
                let file = reference.get("file").is_some();
                if env == file && reference.as_table().is_some() {
                    problems.push(
                        Problem::new(format!("service `{name}`: secret `{key}` must name exactly one of `env` or `file`"))
                            .at(reference.origin.location())
                            .label(if env { "both" } else { "neither" })
                            .help(format!("{key} = {{ env = \"VARIABLE\" }} or {key} = {{ file = \"path/to/secret\" }}")),
                    );
                }
            }
        }
    }
}

/// A cycle through every service of a strongly connected component, as a path that ends
/// where it starts: `a → b → a`. Starts at the smallest name, so the report is stable.
fn cycle_through<'a>(graph: &DiGraphMap<&'a str, ()>, component: &[&'a str]) -> Vec<&'a str> {
    let start = component.iter().copied().min().unwrap_or_default();
    let mut path = vec![start];
    let mut current = start;
    loop {
        let mut next: Vec<&str> = graph
            .neighbors(current)
            .filter(|neighbor| component.contains(neighbor))
            .collect();
        next.sort_unstable();
        let step = next
            .iter()
            .copied()
            .find(|candidate| *candidate == start && path.len() > 1)
            .or_else(|| {
                next.iter()
                    .copied()
                    .find(|candidate| !path.contains(candidate))
            })
            .or_else(|| next.first().copied());
        match step {
            Some(step) if step == start => {
                path.push(start);
                return path;
            }
            Some(step) if path.contains(&step) => {
                let from = path.iter().position(|name| *name == step).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(step);
                return cycle;
            }
            Some(step) => {
                path.push(step);
                current = step;
            }
            None => {
                path.push(start);
                return path;
            }
        }
    }
}
