//! `tier logs`: replica output of a local environment from its log files, or of a kubernetes
//! environment from its pods, merged by time and prefixed `service-N |`, in a window (the
//! latest run by default, `--since`, `--tail`) and optionally followed.

use serde_json::json;
use tier_local::logs::{Line, Window};
use tier_state::paths::EnvDir;

use super::{CommandResult, Exit, fail, fail_hinted, fail_with, load, usage};
use crate::args::{Global, Output};
use crate::output;

/// How `tier logs` was asked to print.
pub struct LogOptions<'a> {
    pub service: Option<&'a str>,
    pub follow: bool,
    /// `--since` as given: a duration back from now (`10m`) or an RFC 3339 time.
    pub since: Option<&'a str>,
    pub tail: Option<usize>,
    pub timestamps: bool,
}

pub fn logs(global: &Global, env: &str, options: &LogOptions<'_>) -> CommandResult {
    let project = load(global)?;
    if project.environment(env).is_none() {
        return Err(usage(project.unknown_environment(env)));
    }
    if let Some(service) = options.service {
        let known: Vec<&str> = project
            .file
            .get("services")
            .and_then(tier_model::tree::Node::as_table)
            .map(|services| services.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !known.contains(&service) {
            output::error(&format!("no service `{service}` in {env}"));
            if let Some(near) = tier_model::schema::did_you_mean(service, known.iter().copied()) {
                output::hint(&format!("did you mean `{near}`?"));
            }
            return Err(Exit::Usage);
        }
    }
    let since = match options.since {
        Some(since) => Some(parse_since(since).map_err(usage)?),
        None => None,
    };
    let printer = Printer {
        json: global.output == Output::Json,
        timestamps: options.timestamps,
    };
    if let Some(environment) = kubernetes_environment(global, env) {
        let window = Window {
            since,
            tail: options.tail,
        };
        return kube_logs(&environment, options, window, printer);
    }
    let dir = EnvDir::new(&super::local::project_root(global), env).logs();
    if !dir.is_dir() {
        return Err(fail_with(
            format!("{env}: no logs yet; it has not run on this machine"),
            format!("`tier up {env}` starts it"),
        ));
    }
    // By default the latest run's lines: replica names are reused from one run to the next.
    let window = Window {
        since: since.or_else(|| tier_local::logs::run_started(&dir)),
        tail: options.tail,
    };
    let lines = window.select(tier_local::logs::read_all(&dir, options.service));
    let width = lines
        .iter()
        .map(|line| line.source.len())
        .max()
        .unwrap_or(0);
    printer.print(&lines, width);
    if options.follow {
        tier_local::logs::follow(
            &dir,
            options.service,
            |line| output::stdout_line(&printer.line(&line, width.max(line.source.len()))),
            || true,
        );
    }
    Ok(())
}

/// `--since`: `10m`, `2h`, `90s` back from now, or an RFC 3339 time (`2026-12-04T09:00:00Z`);
/// unix milliseconds.
fn parse_since(text: &str) -> Result<u128, String> {
    if let Ok(back) = tier_model::quantity::Duration::parse(text) {
        return Ok(tier_local::logs::now_millis().saturating_sub(u128::from(back.as_millis())));
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(time) => Ok(u128::try_from(time.as_millisecond()).unwrap_or(0)),
        Err(_) => Err(format!(
            "--since {text:?} is neither a duration (10m, 2h, 90s) nor an RFC 3339 time \
             (2026-12-04T09:00:00Z)"
        )),
    }
}

/// How one line is printed.
#[derive(Clone, Copy)]
struct Printer {
    json: bool,
    timestamps: bool,
}

impl Printer {
    /// The lines read so far, in one write.
    fn print(self, lines: &[Line], width: usize) {
        let mut text = String::new();
        for line in lines {
            text.push_str(&self.line(line, width));
            text.push('\n');
        }
        output::stdout(&text);
    }

    /// `source | text` padded to `width`, after the line's UTC time with `--timestamps`; with
    /// `--output json` a JSON object on a line of its own, so a reader can parse a stream it
    /// follows.
    fn line(self, line: &Line, width: usize) -> String {
        let time = i64::try_from(line.millis)
            .ok()
            .and_then(|millis| jiff::Timestamp::from_millisecond(millis).ok());
        if self.json {
            let unix_ms = u64::try_from(line.millis).unwrap_or(u64::MAX);
            let time = time.map(|time| format!("{time:.3}"));
            json!({ "source": line.source, "text": line.text, "unix_ms": unix_ms, "time": time })
                .to_string()
        } else if self.timestamps {
            let time = time.map_or_else(|| "-".to_owned(), |time| format!("{time:.3}"));
            let text = format!("{time} {}", line.text);
            tier_local::logs::format_line(&line.source, &text, width)
        } else {
            tier_local::logs::format_line(&line.source, &line.text, width)
        }
    }
}

/// The environment, when it resolves and runs on kubernetes.
fn kubernetes_environment(global: &Global, env: &str) -> Option<tier_model::Environment> {
    let mut workspace = tier_deploy::Workspace::load(&global.project).ok()?;
    let resolved = workspace.resolve(env, &[]).ok()?;
    (resolved.environment.runtime == tier_model::environment::Runtime::Kubernetes)
        .then_some(resolved.environment)
}

/// A pod's line as a replica's: its time in unix milliseconds (0 when the API gave none).
fn pod_line(line: tier_kube::PodLine) -> Line {
    let millis = line
        .time
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|time| u128::try_from(time.as_millisecond()).ok())
        .unwrap_or(0);
    Line {
        millis,
        source: line.pod,
        text: line.text,
    }
}

/// `tier logs` of a kubernetes environment: its pods' logs through the API.
fn kube_logs(
    environment: &tier_model::Environment,
    options: &LogOptions<'_>,
    window: Window,
    printer: Printer,
) -> CommandResult {
    let env = environment.name.as_str();
    let logs = tier_deploy::kube::KubeLogs::open(environment, options.service)
        .map_err(|error| fail_hinted(&error))?;
    if logs.pods.is_empty() {
        let of = options
            .service
            .map(|service| format!(" of {service}"))
            .unwrap_or_default();
        return Err(fail_with(
            format!("{env}: no pods{of}"),
            format!("`tier status {env}` shows what runs"),
        ));
    }
    let width = logs.pods.iter().map(String::len).max().unwrap_or(0);
    let lines = logs.lines().map_err(|why| fail(format!("{env}: {why}")))?;
    printer.print(
        &window.select(lines.into_iter().map(pod_line).collect()),
        width,
    );
    if options.follow {
        let print = |line: tier_kube::PodLine| {
            output::stdout_line(&printer.line(&pod_line(line), width));
        };
        logs.follow(&print)
            .map_err(|why| fail(format!("{env}: {why}")))?;
    }
    Ok(())
}
