//! Checking a whole project: every environment, every problem, each reported once.

use std::collections::BTreeMap;

use crate::problem::{self, Problem};
use crate::project::Project;
use crate::resolve::{Resolved, Set};

/// The outcome of checking every environment of a project.
pub struct Validation {
    pub problems: Vec<Problem>,
    /// Each environment that resolved, in declaration order.
    pub resolved: Vec<Resolved>,
}

/// Resolves every environment and gathers every problem: the project's own, each
/// environment's, and those between environments (two sharing one kubernetes namespace).
/// A problem that shows in several environments is reported once, naming them.
pub fn validate(project: &mut Project, sets: &[Set]) -> Validation {
    let mut problems = project.problems.clone();
    let mut resolved = Vec::new();
    let names: Vec<String> = project.environments.iter().map(|decl| decl.name.clone()).collect();
    for name in &names {
        match project.resolve(name, sets) {
            Ok(environment) => resolved.push(environment),
            Err(found) => problems.extend(found),
        }
    }
    let mut namespaces: BTreeMap<(String, String), &str> = BTreeMap::new();
    for environment in resolved.iter().filter(|resolved| !resolved.is_abstract) {
        let Some(kube) = &environment.environment.kube else { continue };
        let key = (kube.context.clone(), kube.namespace.clone());
        let name = environment.environment.name.as_str();
        match namespaces.get(&key) {
            Some(first) => {
                let at = |resolved: &Resolved| {
                    resolved
                        .tree
                        .lookup(["kube", "namespace"])
                        .and_then(|node| node.origin.location().cloned())
                };
                let first_at = resolved
                    .iter()
                    .find(|candidate| candidate.environment.name.as_str() == *first)
                    .and_then(at);
                problems.push(
                    Problem::new(format!(
                        "environments `{first}` and `{name}` both deploy to namespace `{}` in context `{}`",
                        kube.namespace, kube.context
                    ))
                    .at(at(environment).as_ref())
                    .label("shared namespace")
                    .related(first_at.as_ref(), format!("{first} uses it too"))
                    .help(format!(
                        "give `{name}` its own namespace, e.g. kube.namespace = \"{}-{name}\": environments must not share state",
                        environment.environment.project.name
                    )),
                );
            }
            None => {
                namespaces.insert(key, name);
            }
        }
    }
    Validation {
        problems: problem::merge_duplicates(problems, names.len()),
        resolved,
    }
}
