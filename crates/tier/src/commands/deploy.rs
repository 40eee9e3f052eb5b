//! Plan-applying commands: plan, apply, history, rollback, promote, unlock. The engine
//! (tier-deploy) does the work and reports it as events; these functions turn the arguments
//! into its calls, draw its events, print its results and errors, and choose the exit code.

use std::path::{Path, PathBuf};

use console::style;
use serde_json::json;
use tier_deploy::{Applied, Confirm, DeployError, Interrupt, Session, Target, Unlocked, Workspace};
use tier_model::Environment;
use tier_state::{Origin, Outcome};

use super::progress::Drawer;
use super::{CommandResult, Exit, fail, fail_hinted, failed, parse_sets, usage, workspace};
use crate::args::{Global, Output};
use crate::output;

pub fn plan(global: &Global, env: &str, out: Option<&Path>, sets: &[String]) -> CommandResult {
    let sets = parse_sets(sets)?;
    let mut workspace = workspace(global)?;
    let plan = tier_deploy::plan(&mut workspace, env, &sets)
        .map_err(|error| failed(global, workspace.project(), &error))?;
    if let Some(path) = out {
        std::fs::write(path, plan.to_json())
            .map_err(|error| fail(format!("cannot write {}: {error}", path.display())))?;
        eprintln!("saved the plan to {}", path.display());
        output::hint(&format!(
            "`tier apply {}` applies exactly this plan",
            path.display()
        ));
    }
    match global.output {
        Output::Json => output::stdout(&plan.to_json()),
        Output::Text => output::stdout(&plan.render_text(output::colors())),
    }
    Ok(())
}

/// Asks at a terminal for the name of a protected environment before changing it.
fn ask(env: &str, action: &str) -> bool {
    if !(std::io::IsTerminal::is_terminal(&std::io::stdin()) && console::Term::stderr().is_term()) {
        return false;
    }
    eprint!("{env} is protected. Type its name to {action} it: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == env
}

/// Refuses to change a protected environment unless the user named it with `--confirm`, or
/// typed its name at a terminal.
pub(super) fn confirmed(
    environment: &Environment,
    confirm: Option<&str>,
    action: &str,
) -> CommandResult {
    let checked = Confirm::named(confirm)
        .or_ask(&ask)
        .check(environment, action);
    checked.map_err(|error| fail_hinted(&error))
}

/// Runs one changing engine call with its events drawn, and prints how it ended.
fn changing(
    global: &Global,
    workspace: &mut Workspace,
    confirm: Option<&str>,
    call: impl FnOnce(&mut Workspace, &Session) -> Result<Applied, DeployError>,
) -> CommandResult {
    let interrupt = Interrupt::default();
    let drawer = Drawer::new(interrupt.clone());
    let show = |event| drawer.show(event);
    let mut session = Session::new(&show);
    session.confirm = Confirm::named(confirm).or_ask(&ask);
    session.interrupt = interrupt;
    if let Some(lease) = lease_duration() {
        session.kube.lease = lease;
    }
    let result = call(workspace, &session);
    drawer.finish();
    match result {
        Ok(Applied::Deployed { env, revision }) => {
            output::stdout_line(&format!(
                "{} {env}: revision {revision} deployed",
                style("ok").green().bold()
            ));
            Ok(())
        }
        Ok(Applied::Unchanged { .. }) => Ok(()),
        Err(error) => Err(failed(global, workspace.project(), &error)),
    }
}

/// `TIER_LEASE_DURATION` (whole seconds): how long a kubernetes environment's lock outlives
/// an apply that stopped renewing it (30 s when unset).
fn lease_duration() -> Option<std::time::Duration> {
    let seconds: u64 = std::env::var("TIER_LEASE_DURATION")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(seconds.max(1)))
}

pub fn apply(
    global: &Global,
    target: &str,
    confirm: Option<&str>,
    sets: &[String],
) -> CommandResult {
    let saved = Path::new(target).is_file().then(|| PathBuf::from(target));
    let target = match saved {
        Some(path) => Target::SavedPlan(path),
        None => Target::Environment {
            name: target.to_owned(),
            sets: parse_sets(sets)?,
        },
    };
    let mut workspace = workspace(global)?;
    changing(global, &mut workspace, confirm, |workspace, session| {
        tier_deploy::apply(workspace, &target, session)
    })
}

pub fn history(global: &Global, env: &str) -> CommandResult {
    let mut workspace = known_environment(global, env)?;
    let revisions = tier_deploy::history(&mut workspace, env)
        .map_err(|error| failed(global, workspace.project(), &error))?;
    if global.output == Output::Json {
        output::json(&json!(revisions));
        return Ok(());
    }
    if revisions.is_empty() {
        output::stdout_line(&format!("{env}: nothing applied yet"));
        return Ok(());
    }
    let mut rows = vec![
        ["REVISION", "STARTED", "WHO", "ORIGIN", "OUTCOME"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for revision in &revisions {
        let origin = match &revision.origin {
            Origin::Apply => "apply".to_owned(),
            Origin::Rollback { to } => format!("rollback to {to}"),
            Origin::Promote {
                from_environment,
                from_revision,
            } => format!("promoted from {from_environment} rev {from_revision}"),
        };
        let outcome = match &revision.outcome {
            Outcome::InProgress if revision.finished_unix_ms.is_none() => {
                "in progress or interrupted".to_owned()
            }
            other => other.describe(),
        };
        rows.push(vec![
            revision.number.to_string(),
            format_time(revision.started_unix_ms),
            revision.who.clone(),
            origin,
            outcome,
        ]);
    }
    output::stdout(&super::inspect::columns(&rows));
    Ok(())
}

pub fn drift(global: &Global, env: &str, all: bool, history: bool) -> CommandResult {
    let mut workspace = known_environment(global, env)?;
    let report = tier_deploy::drift(&mut workspace, env)
        .map_err(|error| failed(global, workspace.project(), &error))?;
    let shown: Vec<&tier_deploy::Found> = report
        .found
        .iter()
        .filter(|found| all || found.expected().is_none())
        .collect();
    if global.output == Output::Json {
        let mut value = json!({
            "environment": env,
            "revision": report.revision,
            "drift": shown,
        });
        if let Some(stopped) = &report.stopped {
            value["stopped"] = json!(stopped);
        }
        if history {
            value["history"] = json!(report.history);
        }
        output::json(&value);
        return Ok(());
    }
    if history {
        if report.history.is_empty() {
            output::stdout_line(&format!("{env}: no drift seen"));
            return Ok(());
        }
        let mut rows = vec![
            ["FIRST SEEN", "LAST SEEN", "GONE", "DRIFT"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for record in &report.history {
            rows.push(vec![
                format_time(record.first_seen_unix_ms),
                format_time(record.last_seen_unix_ms),
                record
                    .gone_unix_ms
                    .map(format_time)
                    .unwrap_or_else(|| "-".to_owned()),
                record.description.clone(),
            ]);
        }
        output::stdout(&super::inspect::columns(&rows));
        return Ok(());
    }
    match report.revision {
        None => output::stdout_line(&format!("{env}: nothing deployed, nothing to compare")),
        Some(revision) if shown.is_empty() => {
            output::stdout_line(&format!("{env}: no drift from revision {revision}"));
        }
        Some(revision) => {
            output::stdout_line(&format!(
                "{env}: {} difference{} from revision {revision}:",
                shown.len(),
                if shown.len() == 1 { "" } else { "s" }
            ));
            for found in shown {
                output::stdout_line(&format!("  {}", found.describe()));
            }
            output::hint(&format!(
                "`tier apply {env}` puts back what differs from revision {revision}"
            ));
        }
    }
    if let Some(stopped) = &report.stopped {
        output::hint(&format!(
            "{stopped}: nothing runs to compare; `tier up {env}` starts it"
        ));
    }
    Ok(())
}

/// `2026-11-26 21:30:01 UTC`.
pub(super) fn format_time(unix_ms: u64) -> String {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Loads the project and refuses an environment it does not declare.
fn known_environment(global: &Global, env: &str) -> Result<Workspace, Exit> {
    let workspace = workspace(global)?;
    if workspace.project().environment(env).is_none() {
        return Err(usage(workspace.project().unknown_environment(env)));
    }
    Ok(workspace)
}

pub fn rollback(global: &Global, env: &str, to: u64, confirm: Option<&str>) -> CommandResult {
    let mut workspace = known_environment(global, env)?;
    changing(global, &mut workspace, confirm, |workspace, session| {
        tier_deploy::rollback(workspace, env, to, session)
    })
}

pub fn promote(
    global: &Global,
    from: &str,
    to: &str,
    confirm: Option<&str>,
    sets: &[String],
) -> CommandResult {
    let sets = parse_sets(sets)?;
    let mut workspace = workspace(global)?;
    changing(global, &mut workspace, confirm, |workspace, session| {
        tier_deploy::promote(workspace, from, to, &sets, session)
    })
}

pub fn unlock(global: &Global, env: &str, yes: bool) -> CommandResult {
    let mut workspace = known_environment(global, env)?;
    let confirm = |holder: &tier_state::Holder, alive: bool| {
        yes || (std::io::IsTerminal::is_terminal(&std::io::stdin())
            && console::Term::stderr().is_term()
            && {
                let state = if alive {
                    "still renewing its lease"
                } else {
                    "no longer running"
                };
                eprint!(
                    "break the lock of `{}` (pid {} on {}, {state})? [y/N] ",
                    holder.command,
                    holder.pid,
                    holder.place()
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).is_ok()
                    && matches!(answer.trim(), "y" | "yes")
            })
    };
    match tier_deploy::unlock(&mut workspace, env, &confirm) {
        Ok(Unlocked::NotLocked) => {
            eprintln!("{env} is not locked");
            Ok(())
        }
        Ok(Unlocked::Broke { holder, .. }) => {
            eprintln!(
                "{env}: broke the lock of `{}` (pid {})",
                holder.command, holder.pid
            );
            Ok(())
        }
        Err(error) => Err(failed(global, workspace.project(), &error)),
    }
}
