//! The order in which internal libraries must be released to carry a fix up a chain.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::DepsError;
use crate::inventory::Library;

/// Every internal library, dependencies before their dependents; among libraries that could
/// go at the same time, by name. A cycle is an error that names it.
pub fn release_order(libraries: &[Library]) -> Result<Vec<String>, DepsError> {
    let all: BTreeSet<&str> = libraries
        .iter()
        .map(|library| library.name.as_str())
        .collect();
    order(libraries, &all)
}

/// The libraries to release, in order, to carry a fix in `library` to everything that depends
/// on it: `library` first, then each internal library that depends on it, directly or not.
pub fn release_order_from(libraries: &[Library], library: &str) -> Result<Vec<String>, DepsError> {
    let dependencies = internal_dependencies(libraries);
    let mut affected = BTreeSet::from([library]);
    loop {
        let before = affected.len();
        for (name, needs) in &dependencies {
            if needs.iter().any(|need| affected.contains(need)) {
                affected.insert(name);
            }
        }
        if affected.len() == before {
            break;
        }
    }
    order(libraries, &affected)
}

/// For each library (by `[libraries]` name), the internal libraries its manifest depends on.
fn internal_dependencies(libraries: &[Library]) -> BTreeMap<&str, BTreeSet<&str>> {
    let by_package: BTreeMap<&str, &str> = libraries
        .iter()
        .map(|library| (library.package.as_str(), library.name.as_str()))
        .collect();
    libraries
        .iter()
        .map(|library| {
            let needs = library
                .depends_on
                .iter()
                .filter_map(|package| by_package.get(package.as_str()).copied())
                .collect();
            (library.name.as_str(), needs)
        })
        .collect()
}

fn order(libraries: &[Library], selected: &BTreeSet<&str>) -> Result<Vec<String>, DepsError> {
    let dependencies = internal_dependencies(libraries);
    let needs = |name: &str| -> BTreeSet<&str> {
        dependencies
            .get(name)
            .map(|needs| {
                needs
                    .iter()
                    .copied()
                    .filter(|need| selected.contains(need))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut released: BTreeSet<&str> = BTreeSet::new();
    let mut ordered = Vec::new();
    let mut remaining: BTreeSet<&str> = selected
        .iter()
        .copied()
        .filter(|name| dependencies.contains_key(name))
        .collect();
    while !remaining.is_empty() {
        let ready: Vec<&str> = remaining
            .iter()
            .copied()
            .filter(|name| needs(name).iter().all(|need| released.contains(need)))
            .collect();
        if ready.is_empty() {
            return Err(DepsError::Cycle {
                cycle: find_cycle(&remaining, &needs),
            });
        }
        for name in ready {
            remaining.remove(name);
            released.insert(name);
            ordered.push(name.to_owned());
        }
    }
    Ok(ordered)
}

/// Every library left has an unreleased dependency among those left, so following the first
/// such dependency from any of them must come back around: that loop is the cycle.
fn find_cycle<'a>(
    remaining: &BTreeSet<&'a str>,
    needs: &dyn Fn(&str) -> BTreeSet<&'a str>,
) -> Vec<String> {
    let Some(&start) = remaining.first() else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(next) = needs(current)
            .into_iter()
            .find(|need| remaining.contains(need))
        else {
            return path.iter().map(|name| (*name).to_owned()).collect();
        };
        if let Some(position) = path.iter().position(|&seen| seen == next) {
            let mut cycle: Vec<String> = path[position..]
                .iter()
                .map(|name| (*name).to_owned())
                .collect();
            cycle.push(next.to_owned());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}
