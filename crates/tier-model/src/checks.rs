//! Checks of the workload fields that need a whole environment: ports and probes, volumes,
//! hosts, names tier owns, addresses in values, security against the project's profile,
//! and promotion between runtimes. Each problem is located at the value that causes it.

use std::collections::BTreeMap;

use crate::address::{self, Reference};
use crate::environment::*;
use crate::names::{self, ServiceName};
use crate::problem::Problem;
use crate::schema;
use crate::source::Location;
use crate::tree::Node;

/// The variables tier gives every replica; a service's `env` cannot set them.
pub const RESERVED_VARIABLES: &[&str] = &["PORT", "ENV_NAME"];

pub(crate) fn check_workloads(
    environment: &mut Environment,
    tree: &Node,
    source_runtime: Option<Runtime>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let empty = BTreeMap::new();
    let nodes = tree
        .get("services")
        .and_then(Node::as_table)
        .unwrap_or(&empty);
    let mut hosts: BTreeMap<&str, (&str, Option<&Location>)> = BTreeMap::new();
    let mut implied: Vec<(ServiceName, ServiceName)> = Vec::new();
    for (name, service) in &environment.services {
        let Some(node) = nodes.get(name.as_str()) else {
            continue;
        };
        let at = |key: &str| node.get(key).and_then(|node| node.origin.location());
        let key_at = |key: &str| {
            node.get(key)
                .and_then(|node| node.key.as_ref().or(node.origin.location()))
        };
        check_ports(name, service, node, problems);
        check_probes(name, service, node, problems);
        check_volumes(name, node, problems);
        check_security(
            name,
            service,
            node,
            environment.project.security,
            problems,
            warnings,
        );
        check_labels(name, node, problems);
        check_env(name, service, node, problems);
        if let Some(host) = &service.host {
            if let Err(why) = check_host(host) {
                problems.push(
                    Problem::new(format!(
                        "service `{name}`: host \"{host}\" is not a DNS name: {why}"
                    ))
                    .at(at("host"))
                    .label("not a host name")
                    .help("write a lowercase DNS name such as host = \"shop.example.com\""),
                );
            }
            match hosts.get(host.as_str()) {
                Some((first, first_at)) => problems.push(
                    Problem::new(format!(
                        "services `{first}` and `{name}` both claim host {host}"
                    ))
                    .at(at("host"))
                    .label("claimed twice")
                    .related(*first_at, format!("{first} claims it here"))
                    .help("give each service its own host, or route one host to one service"),
                ),
                None => {
                    hosts.insert(host, (name.as_str(), at("host")));
                }
            }
        }
        if !service.service {
            for key in ["expose", "host", "service_port"] {
                if node.get(key).is_some() {
                    problems.push(
                        Problem::new(format!(
                            "service `{name}` has service = false and `{key}`: nothing can reach it"
                        ))
                        .at(key_at(key))
                        .label("needs a Service")
                        .help(format!("remove `{key}`, or remove service = false")),
                    );
                }
            }
        }
        for reference in address::references(node) {
            match check_reference(&reference, &environment.services, name) {
                Ok(target) => {
                    if target != *name {
                        implied.push((name.clone(), target));
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        for dependency in &service.depends_on {
            if environment
                .services
                .get(dependency)
                .is_some_and(|target| !target.service)
            {
                let at = node
                    .get("depends_on")
                    .and_then(Node::as_array)
                    .and_then(|items| {
                        items
                            .iter()
                            .find(|item| item.as_str() == Some(dependency.as_str()))
                    })
                    .and_then(|item| item.origin.location());
                problems.push(
                    Problem::new(format!(
                        "service `{name}` depends on `{dependency}`, which has service = false and cannot be called"
                    ))
                    .at(at)
                    .label("no Service to call")
                    .help(format!("remove it from depends_on, or give `{dependency}` a Service")),
                );
            }
        }
    }
    // A reference to another service orders the services as `depends_on` does.
    for (from, to) in implied {
        if let Some(service) = environment.services.get_mut(&from)
            && !service.depends_on.contains(&to)
        {
            service.depends_on.push(to);
        }
    }
    check_promotion(environment, nodes, tree, source_runtime, problems);
}

fn check_ports(name: &ServiceName, service: &Service, node: &Node, problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    let main = service.port_name();
    for (port_name, port) in service.all_ports() {
        if let Some(first) = seen.get(&port) {
            let at = node
                .lookup(["ports", port_name])
                .and_then(|node| node.origin.location());
            problems.push(
                Problem::new(format!(
                    "service `{name}`: port {port} is named both `{first}` and `{port_name}`"
                ))
                .at(at)
                .label("the same port again")
                .help("give each port its own number"),
            );
        } else {
            seen.insert(port, port_name);
        }
    }
    if service.ports.contains_key(main) {
        let at = node
            .lookup(["ports", main])
            .and_then(|node| node.key.as_ref().or(node.origin.location()));
        problems.push(
            Problem::new(format!(
                "service `{name}`: `ports.{main}` has the name of the main port"
            ))
            .at(at)
            .label("name taken by `port`")
            .help("rename it, or set port_name to another name"),
        );
    }
}

fn check_probes(name: &ServiceName, service: &Service, node: &Node, problems: &mut Vec<Problem>) {
    let probes = [
        ("health", service.health.as_ref()),
        ("liveness", service.liveness.as_ref()),
        ("startup", service.startup.as_ref()),
    ];
    for (key, health) in probes {
        let Some(health) = health else { continue };
        let Some(port) = health.probe_port(service.port) else {
            continue;
        };
        if service.all_ports().any(|(_, own)| own == port) {
            continue;
        }
        let field = ["tcp", "grpc", "port"]
            .into_iter()
            .find(|field| node.lookup([key, *field]).is_some())
            .unwrap_or("http");
        let at = node
            .lookup([key, field])
            .and_then(|node| node.origin.location());
        let own: Vec<String> = service
            .all_ports()
            .map(|(port_name, port)| format!("{port} ({port_name})"))
            .collect();
        problems.push(
            Problem::new(format!(
                "service `{name}`: the {key} probe checks port {port}, which is none of its ports"
            ))
            .at(at)
            .label("not a port of the service")
            .help(format!(
                "probe one of its ports: {}; or add the port to `ports`",
                own.join(", ")
            )),
        );
    }
}

fn check_volumes(name: &ServiceName, node: &Node, problems: &mut Vec<Problem>) {
    let Some(volumes) = node.get("volumes").and_then(Node::as_table) else {
        return;
    };
    let mut mounts: BTreeMap<&str, &str> = BTreeMap::new();
    for (volume, table) in volumes {
        let at = table.key.as_ref().or(table.origin.location());
        if volume == "config" {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: volume name `config` is the one tier gives the service's own config"
                ))
                .at(at)
                .label("taken by tier")
                .help("choose another name, e.g. settings"),
            );
        }
        let sources: Vec<&str> = ["empty_dir", "config", "secret", "claim"]
            .into_iter()
            .filter(|kind| table.get(kind).is_some())
            .collect();
        if sources.len() != 1 {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: volume `{volume}` needs exactly one of empty_dir, config, secret or claim{}",
                    if sources.is_empty() {
                        String::new()
                    } else {
                        format!(", found {}", sources.join(" and "))
                    }
                ))
                .at(at)
                .label("one source")
                .help(format!(
                    "e.g. {volume} = {{ mount = \"/data\", empty_dir = {{}} }}"
                )),
            );
        }
        let Some(mount) = table.get("mount") else {
            continue;
        };
        let Some(path) = mount.as_str() else { continue };
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: volume `{volume}` mounts at `{path}`, which is not an absolute path"
                ))
                .at(mount.origin.location())
                .label("not absolute")
                .help("write the path in the container, e.g. mount = \"/data\""),
            );
        }
        if path == crate::environment::CONFIG_MOUNT {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: volume `{volume}` mounts at {path}, where tier mounts the service's config"
                ))
                .at(mount.origin.location())
                .label("taken by tier")
                .help("mount it somewhere else"),
            );
        }
        if let Some(first) = mounts.insert(path, volume) {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: volumes `{first}` and `{volume}` both mount at {path}"
                ))
                .at(mount.origin.location())
                .label("mounted twice")
                .help("give each volume its own mount path"),
            );
        }
    }
}

fn check_security(
    name: &ServiceName,
    service: &Service,
    node: &Node,
    profile: SecurityProfile,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let security = node.get("security");
    for key in ["capabilities_drop", "capabilities_add"] {
        for item in security
            .and_then(|security| security.get(key))
            .and_then(Node::as_array)
            .unwrap_or_default()
        {
            let Some(capability) = item.as_str() else {
                continue;
            };
            let valid = !capability.is_empty()
                && capability
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                problems.push(
                    Problem::new(format!(
                        "service `{name}`: `{capability}` in {key} is not a Linux capability name"
                    ))
                    .at(item.origin.location())
                    .label("not a capability")
                    .help(
                        "write it in capitals without CAP_, e.g. \"NET_BIND_SERVICE\" or \"ALL\"",
                    ),
                );
            }
        }
    }
    if profile.is_none() {
        return;
    }
    let reasons = service.security.below(profile);
    if reasons.is_empty() {
        return;
    }
    let at = security
        .and_then(|security| security.key.as_ref().or(security.origin.location()))
        .or_else(|| node.key.as_ref().or(node.origin.location()));
    warnings.push(
        Problem::new(format!(
            "service `{name}` is below the project's {} security profile: {}",
            profile.as_str(),
            reasons.join("; ")
        ))
        .at(at)
        .label("loosened here")
        .help(format!(
            "allowed, since the service says so; its namespace then enforces only what every service meets ({})",
            service.security.meets().kubernetes_level()
        ))
        .as_warning(),
    );
}

fn check_labels(name: &ServiceName, node: &Node, problems: &mut Vec<Problem>) {
    let Some(labels) = node.get("labels").and_then(Node::as_table) else {
        return;
    };
    for (key, value) in labels {
        let Some(text) = value.as_str() else { continue };
        if let Err(why) = names::check_label_value(text) {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: label `{key}` = \"{text}\" is not a valid label value: {why}"
                ))
                .at(value.origin.location())
                .label("not a label value")
                .help("use at most 63 letters, digits, '-', '_' or '.'; put longer text in `annotations`"),
            );
        }
        if key.starts_with("app.kubernetes.io/") || key.starts_with("tier.dev/") {
            problems.push(
                Problem::new(format!("service `{name}`: label `{key}` is one tier sets"))
                    .at(value.key.as_ref().or(value.origin.location()))
                    .label("set by tier")
                    .help("choose a key of your own, e.g. \"team\""),
            );
        }
    }
}

fn check_env(name: &ServiceName, service: &Service, node: &Node, problems: &mut Vec<Problem>) {
    let Some(env) = node.get("env").and_then(Node::as_table) else {
        return;
    };
    let dependency_variables: Vec<String> = service
        .depends_on
        .iter()
        .map(ServiceName::url_variable)
        .collect();
    for (key, value) in env {
        let owned = RESERVED_VARIABLES.contains(&key.as_str())
            || key.starts_with("TIER_")
            || dependency_variables.contains(key);
        if owned {
            problems.push(
                Problem::new(format!(
                    "service `{name}`: env sets `{key}`, which tier gives every replica"
                ))
                .at(value.key.as_ref().or(value.origin.location()))
                .label("set by tier")
                .help("choose another name; tier sets PORT, ENV_NAME, TIER_* and <DEP>_URL itself (for an address, write \"${services.NAME.url}\" in a variable of your own)"),
            );
        }
    }
}

#[expect(
    clippy::result_large_err,
    reason = "a problem is returned once per mistake, never in a hot path"
)]
fn check_reference(
    reference: &Reference<'_>,
    services: &BTreeMap<ServiceName, Service>,
    from: &ServiceName,
) -> Result<ServiceName, Problem> {
    let at = reference.node.origin.location();
    let target = ServiceName::new(reference.service).ok();
    let Some((target, service)) =
        target.and_then(|target| services.get(&target).map(|service| (target, service)))
    else {
        let names = services.keys().map(ServiceName::as_str);
        let mut problem = Problem::new(format!(
            "service `{from}`: `${{services.{}.{}}}` names no service",
            reference.service, reference.field
        ))
        .at(at);
        problem = match schema::did_you_mean(reference.service, names) {
            Some(near) => problem.label(format!("did you mean `{near}`?")),
            None => problem.label("unknown service"),
        };
        return Err(problem.help(
            "write ${services.NAME.host}, .port, .address or .url with a service of this project",
        ));
    };
    if !address::FIELDS.contains(&reference.field) {
        let mut problem = Problem::new(format!(
            "service `{from}`: `${{services.{}.{}}}`: `{}` is not an address field",
            reference.service, reference.field, reference.field
        ))
        .at(at);
        problem = match schema::did_you_mean(reference.field, address::FIELDS.iter().copied()) {
            Some(near) => problem.label(format!("did you mean `{near}`?")),
            None => problem.label("unknown field"),
        };
        return Err(problem.help("use host, port, address (host:port) or url"));
    }
    if !service.service {
        return Err(Problem::new(format!(
            "service `{from}`: `${{services.{}.{}}}` names a service with service = false, which has no address",
            reference.service, reference.field
        ))
        .at(at)
        .label("no address")
        .help(format!("give `{target}` a Service, or remove the reference")));
    }
    Ok(target)
}

/// Promoting carries artifacts over: an executable cannot run where an image is expected.
fn check_promotion(
    environment: &Environment,
    nodes: &BTreeMap<String, Node>,
    tree: &Node,
    source_runtime: Option<Runtime>,
    problems: &mut Vec<Problem>,
) {
    let (Some(source), Some(source_runtime)) = (&environment.promote_from, source_runtime) else {
        return;
    };
    if source_runtime == environment.runtime {
        return;
    }
    let missing: Vec<&str> = environment
        .services
        .iter()
        .filter(|(_, service)| service.command.is_none() || service.image.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if missing.is_empty() {
        return;
    }
    let at = tree
        .get("promote_from")
        .and_then(|node| node.origin.location());
    let first = missing
        .first()
        .and_then(|name| nodes.get(*name))
        .and_then(|node| node.key.as_ref().or(node.origin.location()));
    problems.push(
        Problem::new(format!(
            "`{}` promotes from `{source}`, a {} environment, into a {} one, but {} not declare both `command` and `image`",
            environment.name,
            source_runtime.as_str(),
            environment.runtime.as_str(),
            if missing.len() == 1 {
                format!("service `{}` does", missing[0])
            } else {
                format!("services `{}` do", missing.join("`, `"))
            }
        ))
        .at(at)
        .label("across runtimes")
        .related(first, "declared here")
        .help("give every service both `command` (local) and `image` (kubernetes), so each side has an artifact to run"),
    );
}

/// Why a host is not a lowercase DNS name (RFC 1123 subdomain), or `*.` wildcard of one.
fn check_host(host: &str) -> Result<(), &'static str> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err("it must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each part between dots must be 1 to 63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err("it has a character other than a-z, 0-9, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part starts or ends with '-'");
        }
    }
    Ok(())
}
