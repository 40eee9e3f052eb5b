//! `tier plan` of a 1,000-service environment against a deployed spec of the same size: the
//! pure planning part (no state read, no hashing). The target for the whole command is
//! under 100 ms.
//!
//! Run: `cargo bench -p tier-plan --bench plan`
//!
//! The environment is built here from the sample app's stage: its backend service copied 1,000
//! times (`svc-0000` … `svc-0999`), each with its own app config and 0-3 `depends_on` edges to
//! lower-numbered services, chosen by a fixed pseudo-random sequence (the shape
//! `bench/gen-project.py` generates). The deployed spec is the same environment with 20
//! differences: 5 scaled, 4 with a changed config key, 5 with a new artifact, 3 services not
//! yet deployed and 3 deployed ones since removed. A second case chains every service to the
//! previous one (1,000 waves), the worst case for wave ordering.
//!
//! A generated project can be planned too:
//! `python3 bench/gen-project.py /tmp/big --services 1000 --envs 10` then
//! `TIER_PLAN_BENCH_PROJECT=/tmp/big TIER_PLAN_BENCH_ENV=prod-ie cargo bench -p tier-plan --bench plan`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tier_model::environment::Artifact;
use tier_model::{Environment, Project};
use tier_plan::{Deployed, plan};

const SERVICES: usize = 1000;

/// One side of a plan: an environment and the artifacts of its services.
struct Side {
    environment: Environment,
    spec: Value,
    artifacts: BTreeMap<String, Artifact>,
}

fn sample_stage() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
    resolve(&root, "stage")
}

fn resolve(root: &Path, environment: &str) -> Value {
    let mut project = Project::load(root).expect("the project loads");
    let resolved = match project.resolve(environment, &[]) {
        Ok(resolved) => resolved,
        Err(problems) => panic!("{environment} does not resolve: {problems:?}"),
    };
    serde_json::to_value(&resolved.environment).expect("serialises")
}

/// A small deterministic sequence (a 64-bit LCG), so every run plans the same graph.
struct Sequence(u64);

impl Sequence {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

fn name(index: usize) -> String {
    format!("svc-{index:04}")
}

/// The sample app's stage with its services replaced by `SERVICES` copies of the backend.
fn generated(chain: bool) -> Value {
    let mut spec = sample_stage();
    let template = spec["services"]["backend"].clone();
    let mut sequence = Sequence(20_261_126);
    let mut services = serde_json::Map::new();
    for index in 0..SERVICES {
        let mut service = template.clone();
        let depends_on: Vec<String> = if chain {
            index.checked_sub(1).map(name).into_iter().collect()
        } else {
            let mut picked: Vec<usize> = (0..sequence.below(4))
                .filter(|_| index > 0)
                .map(|_| sequence.below(index))
                .collect();
            picked.sort_unstable();
            picked.dedup();
            picked.into_iter().map(name).collect()
        };
        service["depends_on"] = json!(depends_on);
        service["port"] = json!(10_000 + index);
        service["config_dir"] = json!(format!("config/{}", name(index)));
        service["config"] = json!({
            "text": format!("{} stage config", name(index)),
            "items_per_page": index % 50,
            "greeting_style": "plain",
            "upstream": {"timeout_ms": 500 + index % 7 * 100, "retries": index % 3},
        });
        services.insert(name(index), service);
    }
    spec["services"] = Value::Object(services);
    spec
}

fn digest(service: &str, build: u32) -> String {
    let mut hex = String::new();
    for byte in format!("{service}#{build}").bytes().cycle().take(32) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("sha256:{hex}")
}

fn artifacts_of(spec: &Value) -> BTreeMap<String, Artifact> {
    spec["services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(service, _)| {
            (
                service.clone(),
                Artifact {
                    digest: digest(service, 1),
                    source: "target/release/sample-backend".to_owned(),
                },
            )
        })
        .collect()
}

fn desired_side(spec: Value) -> Side {
    let environment: Environment =
        serde_json::from_value(spec.clone()).expect("the generated spec is an environment");
    let artifacts = artifacts_of(&spec);
    Side {
        environment,
        spec,
        artifacts,
    }
}

/// The deployed side: the desired spec with 20 differences spread over the services.
fn deployed_side(desired: &Side) -> Side {
    let mut spec = desired.spec.clone();
    let mut artifacts = desired.artifacts.clone();
    let names: Vec<String> = desired.artifacts.keys().cloned().collect();
    let pick = |at: usize| names[at * names.len() / 20].clone();
    {
        let services = spec["services"]
            .as_object_mut()
            .expect("services is an object");
        for at in 0..5 {
            services[&pick(at)]["replicas"] = json!(7);
        }
        for at in 5..9 {
            services[&pick(at)]["config"]["text"] = json!("an older config");
        }
        for at in 14..17 {
            services.remove(&pick(at));
            artifacts.remove(&pick(at));
        }
        for extra in 0..3 {
            let removed = format!("retired-{extra}");
            services.insert(removed.clone(), services[&pick(0)].clone());
            artifacts.insert(
                removed.clone(),
                Artifact {
                    digest: digest(&removed, 1),
                    source: "target/release/sample-backend".to_owned(),
                },
            );
        }
    }
    for at in 9..14 {
        if let Some(artifact) = artifacts.get_mut(&pick(at)) {
            artifact.digest = digest(&pick(at), 0);
        }
    }
    let environment = serde_json::from_value(spec.clone()).expect("still an environment");
    Side {
        environment,
        spec,
        artifacts,
    }
}

fn bench_case(criterion: &mut Criterion, label: &str, desired: &Side) {
    let deployed = deployed_side(desired);
    let state = || {
        Some(Deployed {
            revision: 41,
            spec: &deployed.spec,
            artifacts: &deployed.artifacts,
        })
    };
    let sample = plan(&desired.environment, &desired.artifacts, state(), 9);
    let counts = sample.counts();
    eprintln!(
        "{label}: {} services desired, {} deployed; plan: {counts:?}, {} settings, {} waves",
        desired.environment.services.len(),
        deployed.environment.services.len(),
        sample.settings.len(),
        sample.waves.len(),
    );

    let mut group = criterion.benchmark_group(label);
    group.bench_function("plan", |bencher| {
        bencher.iter(|| {
            plan(
                black_box(&desired.environment),
                black_box(&desired.artifacts),
                black_box(state()),
                9,
            )
        });
    });
    group.bench_function("plan + render_text", |bencher| {
        bencher
            .iter(|| plan(&desired.environment, &desired.artifacts, state(), 9).render_text(false));
    });
    group.bench_function("plan + to_json", |bencher| {
        bencher.iter(|| plan(&desired.environment, &desired.artifacts, state(), 9).to_json());
    });
    group.bench_function("first deploy (nothing deployed)", |bencher| {
        bencher.iter(|| {
            plan(
                black_box(&desired.environment),
                black_box(&desired.artifacts),
                None,
                0,
            )
        });
    });
    group.finish();
}

fn benches(criterion: &mut Criterion) {
    bench_case(
        criterion,
        "1000 services, 0-3 deps each",
        &desired_side(generated(false)),
    );
    bench_case(
        criterion,
        "1000 services, one chain",
        &desired_side(generated(true)),
    );
    if let Some(root) = std::env::var_os("TIER_PLAN_BENCH_PROJECT") {
        let environment =
            std::env::var("TIER_PLAN_BENCH_ENV").unwrap_or_else(|_| "prod-ie".to_owned());
        let spec = resolve(&PathBuf::from(root), &environment);
        bench_case(
            criterion,
            &format!("generated project, {environment}"),
            &desired_side(spec),
        );
    }
}

criterion_group!(plan_benches, benches);
criterion_main!(plan_benches);
