//! Checking a whole project: every environment, every problem, each reported once.

use std::collections::BTreeMap;

use crate::environment::Environment;
use crate::problem::{self, Problem};
use crate::project::Project;
use crate::resolve::Set;
use crate::source::Location;

/// The outcome of checking every environment of a project.
pub struct Validation {
    pub problems: Vec<Problem>,
    /// What is allowed but worth saying (services below the security profile), each once.
    pub warnings: Vec<Problem>,
    /// Each environment that resolved, in declaration order. Provenance trees are not kept:
    /// a large project would hold one per environment for nothing.
    pub environments: Vec<Checked>,
}

/// An environment that resolved without problems.
pub struct Checked {
    pub environment: Environment,
    pub is_abstract: bool,
}

/// Resolves every environment and gathers every problem: the project's own, each
/// environment's, and those between environments (two sharing one kubernetes namespace).
/// A problem that shows in several environments is reported once, naming them.
pub fn validate(project: &mut Project, sets: &[Set]) -> Validation {
    let mut problems = project.problems.clone();
    let mut warnings = Vec::new();
    let mut environments = Vec::new();
    let names: Vec<String> = project
        .environments
        .iter()
        .map(|decl| decl.name.clone())
        .collect();
    let mut namespaces: BTreeMap<(String, String), (String, Option<Location>)> = BTreeMap::new();
    for name in &names {
        let resolved = match project.resolve(name, sets) {
            Ok(resolved) => resolved,
            Err(found) => {
                problems.extend(found);
                continue;
            }
        };
        warnings.extend(resolved.warnings.iter().cloned());
        if !resolved.is_abstract
            && let Some(kube) = &resolved.environment.kube
        {
            let at = resolved
                .tree
                .lookup(["kube", "namespace"])
                .and_then(|node| node.origin.location().cloned());
            let key = (kube.context.clone(), kube.namespace.clone());
            match namespaces.get(&key) {
                Some((first, first_at)) => problems.push(
                    Problem::new(format!(
                        "environments `{first}` and `{name}` both deploy to namespace `{}` in context `{}`",
                        kube.namespace, kube.context
                    ))
                    .at(at.as_ref())
                    .label("shared namespace")
                    .related(first_at.as_ref(), format!("{first} uses it too"))
                    .help(format!(
                        "give `{name}` its own namespace, e.g. kube.namespace = \"{}-{name}\": environments must not share state",
                        resolved.environment.project.name
                    )),
                ),
                None => {
                    namespaces.insert(key, (name.clone(), at));
                }
            }
        }
        environments.push(Checked {
            environment: resolved.environment,
            is_abstract: resolved.is_abstract,
        });
    }
    Validation {
        problems: problem::merge_duplicates(problems, names.len()),
        warnings: problem::merge_duplicates(warnings, names.len()),
        environments,
    }
}
