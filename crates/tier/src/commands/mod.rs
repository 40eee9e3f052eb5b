//! One function per command. Each says what went wrong itself and returns an [`CommandResult`];
//! [`run`] alone turns it into the process exit code.

mod deploy;
mod deps;
mod init;
mod inspect;
mod kube;
mod local;
mod logs;
mod progress;
mod schema;
mod store;
mod ui;

use tier_deploy::local::stop_on_signal;
use tier_model::{Problem, Project, Set};

pub(crate) use inspect::resolve_one;

use crate::args::{Cli, Command, Output};
use crate::output;

/// Exit codes, as documented in the README.
pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;

/// How a command that did not succeed ended, once it said why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The project is invalid, or the command failed.
    Failure,
    /// Unknown command, flag, environment or path.
    Usage,
    /// `--exit-code` was given and the command found what it looks for: differences or
    /// conflicts.
    Found,
}

/// What a command function returns.
pub type CommandResult = Result<(), Exit>;

pub fn run(cli: Cli) -> i32 {
    match command(cli) {
        Ok(()) => SUCCESS,
        Err(Exit::Failure) => FAILURE,
        Err(Exit::Usage) => USAGE,
        Err(Exit::Found) => FAILURE,
    }
}

/// The end of a command that looks for something, such as `diff`: with `--exit-code`, finding it
/// is exit 1, as `git diff --exit-code` does.
fn found_when(exit_code: bool, found: bool) -> CommandResult {
    if exit_code && found {
        Err(Exit::Found)
    } else {
        Ok(())
    }
}

fn command(cli: Cli) -> CommandResult {
    output::init_color(cli.global.color);
    let global = &cli.global;
    match cli.command {
        Command::Init { dir, template } => {
            let dir = if dir == std::path::Path::new(".") {
                global.project.clone()
            } else {
                global.project.join(dir)
            };
            init::init(&dir, template)
        }
        Command::Validate { env, overrides } => {
            inspect::validate(global, &overrides.sets, env.as_deref())
        }
        Command::Envs => inspect::envs(global),
        Command::Render {
            env,
            format,
            out,
            include_secrets,
            overrides,
        } => inspect::render(
            global,
            &env,
            format,
            out.as_deref(),
            include_secrets,
            &overrides.sets,
        ),
        Command::Explain {
            env,
            path,
            overrides,
        } => inspect::explain(global, &env, &path, &overrides.sets),
        Command::Diff {
            left,
            right,
            exit_code,
            overrides,
        } => inspect::diff(global, &left, &right, exit_code, &overrides.sets),
        Command::Graph {
            env,
            format,
            overrides,
        } => inspect::graph(global, &env, format, &overrides.sets),
        Command::Up {
            env,
            detach,
            no_wait,
            overrides,
        } => local::up(global, &env, detach, no_wait, &overrides.sets),
        Command::Down { env, confirm } => local::down(global, &env, confirm.as_deref()),
        Command::Plan {
            env,
            out,
            overrides,
        } => deploy::plan(global, &env, out.as_deref(), &overrides.sets),
        Command::Apply {
            target,
            confirm,
            overrides,
        } => deploy::apply(global, &target, confirm.as_deref(), &overrides.sets),
        Command::Deps { command } => deps::run(global, &command),
        Command::History { env } => deploy::history(global, &env),
        Command::Drift { env, all, history } => deploy::drift(global, &env, all, history),
        Command::Rollback { env, to, confirm } => {
            deploy::rollback(global, &env, to, confirm.as_deref())
        }
        Command::Promote {
            from,
            to,
            confirm,
            overrides,
        } => deploy::promote(global, &from, &to, confirm.as_deref(), &overrides.sets),
        Command::Unlock { env, yes } => deploy::unlock(global, &env, yes),
        Command::Status { env } => match env {
            Some(env) if kube::runs_on_kubernetes(global, &env) => kube::status(global, &env),
            env => local::status(global, env.as_deref()),
        },
        Command::Logs {
            env,
            service,
            follow,
            since,
            tail,
            timestamps,
        } => logs::logs(
            global,
            &env,
            &logs::LogOptions {
                service: service.as_deref(),
                follow,
                since: since.as_deref(),
                tail,
                timestamps,
            },
        ),
        Command::Config { command } => store::config(global, &command),
        Command::Flag { command } => store::flag(global, &command),
        Command::Store { command } => store::store(global, &command),
        Command::Agent {
            env,
            overrides,
            spec,
            secrets_on_stdin,
        } => local::agent(
            global,
            &env,
            &overrides.sets,
            spec.as_deref(),
            secrets_on_stdin,
        ),
        Command::Schema { file, out } => schema::schema(file, out.as_deref()),
        Command::Completions { shell } => schema::completions(shell),
        Command::Ui { listen, open } => ui::ui(global, &listen, open),
    }
}

/// How a command's tokio runtime runs: on the calling thread (a client that waits on one
/// thing at a time), or on every core (an agent or a server).
#[derive(Clone, Copy)]
enum Threads {
    One,
    AllCores,
}

/// A tokio runtime for one command, or the failure after saying why.
fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, Exit> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::AllCores => tokio::runtime::Builder::new_multi_thread(),
    };
    let built = builder.enable_all().build();
    built.map_err(|error| fail(format!("cannot start the runtime: {error}")))
}

/// Says what went wrong; the failure exit.
fn fail(message: impl std::fmt::Display) -> Exit {
    output::error(&message.to_string());
    Exit::Failure
}

/// Says what went wrong and what to do next; the failure exit.
fn fail_with(message: impl std::fmt::Display, hint: impl std::fmt::Display) -> Exit {
    output::error(&message.to_string());
    output::hint(&hint.to_string());
    Exit::Failure
}

/// Says what an engine call refused and its hint; the failure exit.
fn fail_hinted(error: &tier_deploy::DeployError) -> Exit {
    output::error(&error.to_string());
    if let Some(hint) = error.hint() {
        output::hint(&hint);
    }
    Exit::Failure
}

/// Says which argument is wrong; the usage exit.
fn usage(message: impl std::fmt::Display) -> Exit {
    fail(message);
    Exit::Usage
}

/// Says which argument is wrong and how to write it; the usage exit.
fn usage_with(message: impl std::fmt::Display, hint: impl std::fmt::Display) -> Exit {
    fail_with(message, hint);
    Exit::Usage
}

/// Reads the project, or says why not.
fn load(global: &crate::args::Global) -> Result<Project, Exit> {
    Project::load(&global.project).map_err(not_loaded)
}

/// The project and its root for the engine, or says why not.
fn workspace(global: &crate::args::Global) -> Result<tier_deploy::Workspace, Exit> {
    tier_deploy::Workspace::load(&global.project).map_err(not_loaded)
}

fn not_loaded(error: tier_model::LoadError) -> Exit {
    match error {
        tier_model::LoadError::NoProject(dir) => {
            output::error(&format!("no tier.toml in {}", dir.display()));
            output::hint("run `tier init` to create a project, or pass --project DIR");
        }
        error => output::error(&error.to_string()),
    }
    Exit::Failure
}

/// Prints an engine error (located problems with their sources, anything else with its hint)
/// and answers how the command ends.
fn failed(
    global: &crate::args::Global,
    project: &Project,
    error: &tier_deploy::DeployError,
) -> Exit {
    use tier_deploy::DeployError;
    match error {
        DeployError::Invalid { problems } => return report(global, project, problems),
        DeployError::Secrets { problems } => {
            output::problems(problems, &project.sources);
            return Exit::Failure;
        }
        DeployError::Unrenderable { problems } => {
            for problem in problems {
                output::error(problem);
            }
            return Exit::Failure;
        }
        DeployError::StoredSecrets { env, problems } => {
            for (message, help) in problems {
                output::error(&format!("{env}: {message}"));
                if let Some(help) = help {
                    output::hint(help);
                }
            }
            return Exit::Failure;
        }
        other => {
            output::error(&other.to_string());
            if let Some(hint) = other.hint() {
                output::hint(&hint);
            }
        }
    }
    if error.is_usage() {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

fn parse_sets(sets: &[String]) -> Result<Vec<Set>, Exit> {
    sets.iter()
        .map(|argument| Set::parse(argument))
        .collect::<Result<_, _>>()
        .map_err(usage)
}

/// Reports problems in the chosen format. Always the invalid-project failure.
fn report(global: &crate::args::Global, project: &Project, problems: &[Problem]) -> Exit {
    match global.output {
        Output::Json => output::json(&serde_json::json!({
            "valid": false,
            "problems": output::problems_json(problems, &project.sources),
        })),
        Output::Text => output::problems(problems, &project.sources),
    }
    Exit::Failure
}
