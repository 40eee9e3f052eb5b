//! The order services start and roll out in, computed once here for plan, both runtimes and
//! the local supervisor: a service's wave is one past the latest wave of the services it
//! depends on, and the services of one wave are in name order.

use std::collections::HashMap;

use crate::environment::Environment;
use crate::names::ServiceName;

impl Environment {
    /// The dependency waves, in one pass over the dependency edges (a 1,000-service chain has
    /// 1,000 waves). Every service is in exactly one wave: services that a dependency cycle or
    /// a missing dependency would leave out (resolving refuses both) come last, in one wave.
    pub fn waves(&self) -> Vec<Vec<&ServiceName>> {
        let names: Vec<&ServiceName> = self.services.keys().collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(at, name)| (name.as_str(), at))
            .collect();
        // For each service, how many of its dependencies are not yet placed (a missing one
        // never is), and which services wait on it.
        let mut waiting_on = vec![0_usize; names.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (at, service) in self.services.values().enumerate() {
            let mut dependencies: Vec<&str> =
                service.depends_on.iter().map(ServiceName::as_str).collect();
            dependencies.sort_unstable();
            dependencies.dedup();
            waiting_on[at] = dependencies.len();
            for dependency in dependencies {
                if let Some(&dependency) = index.get(dependency) {
                    dependents[dependency].push(at);
                }
            }
        }
        let mut wave_of: Vec<Option<usize>> = vec![None; names.len()];
        let mut ready: Vec<usize> = (0..names.len()).filter(|&at| waiting_on[at] == 0).collect();
        for &at in &ready {
            wave_of[at] = Some(0);
        }
        while let Some(at) = ready.pop() {
            let next = wave_of[at].map_or(0, |wave| wave + 1);
            for &dependent in &dependents[at] {
                wave_of[dependent] = Some(wave_of[dependent].map_or(next, |wave| wave.max(next)));
                waiting_on[dependent] -= 1;
                if waiting_on[dependent] == 0 {
                    ready.push(dependent);
                }
            }
        }
        let mut waves: Vec<Vec<&ServiceName>> = Vec::new();
        let mut left_out = Vec::new();
        for (at, name) in names.iter().enumerate() {
            match wave_of[at] {
                Some(wave) if waiting_on[at] == 0 => {
                    if waves.len() <= wave {
                        waves.resize_with(wave + 1, Vec::new);
                    }
                    waves[wave].push(*name);
                }
                _ => left_out.push(*name),
            }
        }
        if !left_out.is_empty() {
            waves.push(left_out);
        }
        waves
    }

    /// The waves an apply rolls out in: [`Environment::waves`], or every service at once with
    /// `[project] ordering = false`.
    pub fn rollout_waves(&self) -> Vec<Vec<&ServiceName>> {
        if self.project.ordering || self.services.is_empty() {
            self.waves()
        } else {
            vec![self.services.keys().collect()]
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    /// The sample app's stage with its services replaced by `services`, as
    /// `(name, depends_on)`, each a copy of the backend.
    pub(crate) fn environment_with(services: &[(String, Vec<String>)]) -> Environment {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
        let mut project = crate::Project::load(&root).expect("the sample app loads");
        let Ok(resolved) = project.resolve("stage", &[]) else {
            panic!("stage resolves");
        };
        let mut spec = serde_json::to_value(&resolved.environment).expect("serialises");
        let template = spec["services"]["backend"].clone();
        let mut generated = serde_json::Map::new();
        for (name, depends_on) in services {
            let mut service = template.clone();
            service["depends_on"] = json!(depends_on);
            generated.insert(name.clone(), service);
        }
        spec["services"] = serde_json::Value::Object(generated);
        serde_json::from_value(spec).expect("an environment")
    }

    fn names(waves: Vec<Vec<&ServiceName>>) -> Vec<Vec<String>> {
        let named = |wave: Vec<&ServiceName>| wave.iter().map(|name| name.to_string()).collect();
        waves.into_iter().map(named).collect()
    }

    /// The definition, one wave at a time: whatever has all its dependencies placed.
    fn by_definition(environment: &Environment) -> Vec<Vec<String>> {
        let mut placed: BTreeMap<String, usize> = BTreeMap::new();
        let mut waves = Vec::new();
        loop {
            let wave: Vec<String> = environment
                .services
                .iter()
                .filter(|(name, service)| {
                    !placed.contains_key(name.as_str())
                        && service
                            .depends_on
                            .iter()
                            .all(|dependency| placed.contains_key(dependency.as_str()))
                })
                .map(|(name, _)| name.to_string())
                .collect();
            if wave.is_empty() {
                return waves;
            }
            for name in &wave {
                placed.insert(name.clone(), waves.len());
            }
            waves.push(wave);
        }
    }

    #[test]
    fn waves_follow_the_definition_on_a_deep_graph() {
        // A fixed pseudo-random graph: each service depends on up to three earlier ones,
        // named so that name order and dependency order disagree.
        let mut state: u64 = 7;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % bound as u64) as usize
        };
        let name = |at: usize| format!("s{}", (at * 37) % 300);
        let services: Vec<(String, Vec<String>)> = (0..300)
            .map(|at| {
                let depends_on = if at == 0 {
                    Vec::new()
                } else {
                    (0..next(4)).map(|_| name(next(at))).collect()
                };
                (name(at), depends_on)
            })
            .collect();
        let environment = environment_with(&services);
        let expected = by_definition(&environment);
        assert!(expected.len() > 3, "the graph has depth");
        assert_eq!(names(environment.waves()), expected);
    }

    #[test]
    fn services_a_cycle_leaves_out_come_last() {
        let services = [
            ("a".to_owned(), vec!["b".to_owned()]),
            ("b".to_owned(), vec!["a".to_owned()]),
            ("c".to_owned(), vec![]),
            ("d".to_owned(), vec!["missing".to_owned()]),
            ("e".to_owned(), vec!["c".to_owned(), "c".to_owned()]),
        ];
        let environment = environment_with(&services);
        assert_eq!(by_definition(&environment), [vec!["c"], vec!["e"]]);
        assert_eq!(
            names(environment.waves()),
            [vec!["c"], vec!["e"], vec!["a", "b", "d"]]
        );
    }

    #[test]
    fn without_ordering_an_apply_rolls_out_everything_at_once() {
        let services = [
            ("a".to_owned(), vec![]),
            ("b".to_owned(), vec!["a".to_owned()]),
        ];
        let mut environment = environment_with(&services);
        assert_eq!(names(environment.rollout_waves()), [vec!["a"], vec!["b"]]);
        environment.project.ordering = false;
        assert_eq!(names(environment.rollout_waves()), [vec!["a", "b"]]);
    }
}
