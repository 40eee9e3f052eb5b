//! What `tier plan <env>` shows: the resolved project (desired) against what the last
//! successful apply recorded (deployed), service by service and value by value, down to single
//! app-config keys and each service's artifact.
//!
//! Pure: data in, data out. No files, no clock, no processes; the caller reads the state and
//! hashes the artifacts, then hands both here. A [`Plan`] is also the file `tier plan --out`
//! saves and `tier apply FILE` carries out, so it serialises with a format version and the
//! state serial it was made against.

mod compare;
mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tier_model::Environment;
use tier_model::environment::Artifact;

/// The format of a saved plan. Raise it whenever a saved plan's meaning changes, so that a plan
/// saved by another version of tier is refused instead of misread.
pub const FORMAT_VERSION: u32 = 1;

/// The name of the field that stands for a service's artifact among its value paths.
pub const ARTIFACT_FIELD: &str = "artifact";

/// Where a service's secret fingerprints sit among its value paths: one leaf per secret.
pub const SECRET_FINGERPRINTS: &str = "secret_fingerprints.";

/// What the last successful apply recorded for an environment.
#[derive(Clone, Copy, Debug)]
pub struct Deployed<'a> {
    pub revision: u64,
    /// The resolved environment as it was applied, in `tier render --format json` form.
    pub spec: &'a serde_json::Value,
    /// The artifact each deployed service runs, by service name.
    pub artifacts: &'a BTreeMap<String, Artifact>,
}

/// Desired against deployed for one environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`FORMAT_VERSION`] when the plan was made.
    pub format_version: u32,
    pub environment: String,
    /// The state's serial when the plan was made; applying a saved plan is refused once the
    /// state has moved on.
    pub state_serial: u64,
    /// The deployed revision the plan was made against; `None` when nothing is deployed.
    pub base_revision: Option<u64>,
    /// The resolved environment to apply, in `tier render --format json` form.
    pub desired: serde_json::Value,
    /// The artifact each desired service will run, by service name.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Environment-level changes (`runtime`, `kube.context`, `project.ordering`,
    /// `flags.<name>.default`, ...), in path order.
    pub settings: Vec<FieldChange>,
    /// Every desired service in wave order (then name order), then the deleted ones by name.
    pub services: Vec<ServiceChange>,
    /// The order of the desired services' rollout: every service comes after the services it
    /// depends on. A single wave when `project.ordering` is false.
    pub waves: Vec<Vec<String>>,
    /// What runs differently from the deployed revision because something other than tier
    /// changed it (a kubernetes environment's live objects, read when the plan was made), one
    /// line each. `tier apply` puts these back; they are not part of `is_empty`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChange {
    pub service: String,
    pub action: Action,
    /// Why: each value that differs, by path relative to the service (`replicas`,
    /// `config.text`, `health.http`, `artifact`), in path order with `artifact` first. Empty
    /// when the service is unchanged.
    pub fields: Vec<FieldChange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One value that differs. `None` on a side means the path has no value there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub old: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub new: Option<serde_json::Value>,
}

/// How many services each action touches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the plan is not valid JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("the file is not a tier plan: it has no format_version")]
    NotAPlan,
    #[error(
        "the plan was saved in format {found}, and this tier reads format {expected}; make the plan again with `tier plan <env> --out FILE`"
    )]
    UnsupportedFormat { found: String, expected: u32 },
    #[error("the plan is damaged")]
    Damaged(#[source] serde_json::Error),
    #[error(
        "the state of {environment} moved since the plan was made (serial {planned}, now {current}); make the plan again"
    )]
    StateMoved {
        environment: String,
        planned: u64,
        current: u64,
    },
}

/// Compares the resolved environment, with the artifact each service would run, to what is
/// deployed (`None` when nothing is). `state_serial` is the state's serial as read together
/// with `deployed`; it is recorded so that a saved plan can be refused once the state moves.
///
/// A service absent from `desired_artifacts` has no known artifact; that absence is compared
/// like any other value.
pub fn plan(
    desired: &Environment,
    desired_artifacts: &BTreeMap<String, Artifact>,
    deployed: Option<Deployed<'_>>,
    state_serial: u64,
) -> Plan {
    // Serialising a resolved environment cannot fail: every map in it has string keys.
    let desired_json =
        serde_json::to_value(desired).expect("a resolved environment always serialises to JSON");
    let no_artifacts = BTreeMap::new();
    let deployed_artifacts = deployed.map_or(&no_artifacts, |deployed| deployed.artifacts);
    let no_services = serde_json::Map::new();
    let desired_services = desired_json
        .get("services")
        .and_then(serde_json::Value::as_object)
        .unwrap_or(&no_services);
    let deployed_services = deployed
        .and_then(|deployed| deployed.spec.get("services"))
        .and_then(serde_json::Value::as_object)
        .unwrap_or(&no_services);

    let settings = compare::changes(
        &deployed.map_or_else(Vec::new, |deployed| compare::setting_leaves(deployed.spec)),
        &compare::setting_leaves(&desired_json),
    );

    let waves: Vec<Vec<String>> = desired
        .rollout_waves()
        .iter()
        .map(|wave| wave.iter().map(|name| name.to_string()).collect())
        .collect();
    let mut services = Vec::with_capacity(desired_services.len());
    for name in waves.iter().flatten() {
        let old = deployed_services.get(name);
        services.push(compare::service_change(
            name,
            old,
            desired_services.get(name),
            old.and_then(|_| digest(deployed_artifacts, name)),
            digest(desired_artifacts, name),
        ));
    }
    let mut deleted: Vec<&String> = deployed_services
        .keys()
        .filter(|name| !desired_services.contains_key(*name))
        .collect();
    deleted.sort();
    for name in deleted {
        services.push(compare::service_change(
            name,
            deployed_services.get(name),
            None,
            digest(deployed_artifacts, name),
            None,
        ));
    }

    let artifacts = desired_artifacts
        .iter()
        .filter(|(name, _)| desired_services.contains_key(*name))
        .map(|(name, artifact)| (name.clone(), artifact.clone()))
        .collect();

    Plan {
        format_version: FORMAT_VERSION,
        environment: desired.name.as_str().to_owned(),
        state_serial,
        base_revision: deployed.map(|deployed| deployed.revision),
        desired: desired_json,
        artifacts,
        settings,
        services,
        waves,
        outside: Vec::new(),
    }
}

impl Plan {
    /// True when applying the plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
            && self
                .services
                .iter()
                .all(|service| service.action == Action::Unchanged)
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for service in &self.services {
            match service.action {
                Action::Create => counts.create += 1,
                Action::Update => counts.update += 1,
                Action::Delete => counts.delete += 1,
                Action::Unchanged => counts.unchanged += 1,
            }
        }
        counts
    }

    /// The plan as saved by `tier plan --out` and printed by `tier plan --output json`.
    pub fn to_json(&self) -> String {
        // A plan holds strings, numbers and JSON values under string keys: it always
        // serialises.
        let mut text = serde_json::to_string_pretty(self).expect("a plan always serialises");
        text.push('\n');
        text
    }

    /// Reads a saved plan. A plan saved in another format, or whose desired environment no
    /// longer reads as an environment, is refused.
    pub fn from_json(text: &str) -> Result<Plan, PlanError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(PlanError::NotJson)?;
        let Some(version) = value.get("format_version") else {
            return Err(PlanError::NotAPlan);
        };
        if version.as_u64() != Some(u64::from(FORMAT_VERSION)) {
            return Err(PlanError::UnsupportedFormat {
                found: version.to_string(),
                expected: FORMAT_VERSION,
            });
        }
        let plan: Plan = serde_json::from_value(value).map_err(PlanError::Damaged)?;
        plan.desired_environment()?;
        Ok(plan)
    }

    /// The resolved environment the plan applies.
    pub fn desired_environment(&self) -> Result<Environment, PlanError> {
        Environment::deserialize(&self.desired).map_err(PlanError::Damaged)
    }

    /// Refuses a saved plan once the environment's state has moved past the serial the plan
    /// was made against.
    pub fn ensure_current(&self, state_serial: u64) -> Result<(), PlanError> {
        if state_serial == self.state_serial {
            Ok(())
        } else {
            Err(PlanError::StateMoved {
                environment: self.environment.clone(),
                planned: self.state_serial,
                current: state_serial,
            })
        }
    }

    /// The human view, Terraform-like; see the module `render`.
    pub fn render_text(&self, color: bool) -> String {
        render::render_text(self, color)
    }
}

impl ServiceChange {
    /// True for an update that only changes the number of replicas: a scale, which needs no
    /// new replica of the existing ones.
    pub fn is_scale(&self) -> bool {
        self.action == Action::Update
            && !self.fields.is_empty()
            && self.fields.iter().all(|field| field.path == "replicas")
    }
}

fn digest<'a>(artifacts: &'a BTreeMap<String, Artifact>, service: &str) -> Option<&'a str> {
    artifacts
        .get(service)
        .map(|artifact| artifact.digest.as_str())
}

/// Reads a present value, `null` included, as `Some`; an absent field stays `None` through
/// `#[serde(default)]`.
fn present_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}
