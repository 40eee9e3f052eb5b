//! Walks over one service's dependency graph.

use std::collections::VecDeque;

use crate::inventory::ServiceInventory;

/// Dependency chains from the service's roots to `target`, shortest first, at most `cap`.
/// Each chain ends in a different direct dependent of `target` (the way `cargo tree -i` fans
/// out), and reaches that dependent by a shortest path. Also returns how many chains were
/// left out by the cap.
pub(crate) fn chains_to(
    service: &ServiceInventory,
    target: usize,
    cap: usize,
) -> (Vec<Vec<usize>>, usize) {
    let packages = &service.packages;
    if packages[target].root {
        return (vec![vec![target]], 0);
    }
    // Breadth-first from every root at once: `parent` leads back along a shortest path.
    let mut parent: Vec<Option<usize>> = vec![None; packages.len()];
    let mut seen = vec![false; packages.len()];
    let mut queue = VecDeque::new();
    for root in service.roots() {
        seen[root] = true;
        queue.push_back(root);
    }
    while let Some(current) = queue.pop_front() {
        for &next in &packages[current].dependencies {
            if !seen[next] {
                seen[next] = true;
                parent[next] = Some(current);
                queue.push_back(next);
            }
        }
    }
    let mut chains: Vec<Vec<usize>> = packages
        .iter()
        .enumerate()
        .filter(|(index, package)| seen[*index] && package.dependencies.contains(&target))
        .map(|(dependent, _)| {
            let mut chain = vec![target, dependent];
            let mut current = dependent;
            while let Some(previous) = parent[current] {
                // A shortest path to a dependent never needs to pass through the target; if
                // it would, the chain through the target is not a useful answer.
                if previous == target || chain.len() > packages.len() {
                    break;
                }
                chain.push(previous);
                current = previous;
            }
            chain.reverse();
            chain
        })
        .collect();
    chains.sort_by(|left, right| {
        left.len().cmp(&right.len()).then_with(|| {
            let labels = |chain: &Vec<usize>| -> Vec<String> {
                chain.iter().map(|&index| packages[index].label()).collect()
            };
            labels(left).cmp(&labels(right))
        })
    });
    let left_out = chains.len().saturating_sub(cap);
    chains.truncate(cap);
    (chains, left_out)
}

/// Writes a chain of indices as `name@version` labels.
pub(crate) fn labels(service: &ServiceInventory, chain: &[usize]) -> Vec<String> {
    chain
        .iter()
        .map(|&index| service.packages[index].label())
        .collect()
}
