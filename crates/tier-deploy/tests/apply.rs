//! `tier_deploy::apply` on the sample app from a plain Rust test, without the `tier` binary:
//! the engine fixes the artifacts, takes the lock, records revisions and drives real agents
//! and the sample app's processes, and the test asserts the events it reports (the ones the
//! CLI draws its progress from).
//!
//! The local runtime starts each environment's agent as a program of its own. Here that
//! program is this test binary: started with the agent's arguments (`--project ROOT agent ENV
//! --spec FILE --secrets-on-stdin`), `main` runs the agent instead of the tests. Hence
//! `harness = false` and the small runner below.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tier_deploy::{
    AgentProgram, Applied, DeployError, DeployEvent, Phase, Session, Target, Workspace,
};
use tier_local::control::RolloutNote;
use tier_model::Set;
use tier_state::Outcome;
use tier_test::{TestProject, free_port, http_get};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|first| first == "--project") {
        return agent(&args);
    }
    let filter: Option<String> = args
        .iter()
        .filter_map(|arg| arg.to_str())
        .find(|arg| !arg.starts_with('-'))
        .map(str::to_owned);
    let tests: [(&str, fn()); 1] = [(
        "apply_drives_the_sample_app_and_reports_each_step",
        apply_drives_the_sample_app_and_reports_each_step,
    )];
    let started = Instant::now();
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    for (name, test) in tests {
        if filter
            .as_deref()
            .is_some_and(|filter| !name.contains(filter))
        {
            filtered += 1;
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The agent, as `tier agent ENV --spec FILE --secrets-on-stdin` runs it.
fn agent(args: &[OsString]) -> ExitCode {
    let value = |flag: &str| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|at| args.get(at + 1))
            .map(PathBuf::from)
    };
    let env = args
        .iter()
        .position(|arg| arg == "agent")
        .and_then(|at| args.get(at + 1))
        .and_then(|env| env.to_str())
        .unwrap_or_default()
        .to_owned();
    let (Some(root), Some(spec)) = (value("--project"), value("--spec")) else {
        eprintln!("error: {env}: the agent needs --project and --spec");
        return ExitCode::FAILURE;
    };
    let secrets_on_stdin = args.iter().any(|arg| arg == "--secrets-on-stdin");
    let ran = tier_deploy::local::read_agent_spec(&env, &spec, secrets_on_stdin).and_then(
        |(environment, programs, secrets)| {
            tier_deploy::local::run_agent(&root, environment, programs, secrets)
        },
    );
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The sample app's binaries, built for the tests of the package that has them (`cargo test
/// --workspace`), or built now for a run of this package alone.
fn sample_app() -> TestProject {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let missing = ["sample-backend", "sample-frontend"]
        .iter()
        .any(|name| !profile.join(name).exists());
    if missing {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut args = vec!["build", "-p", "sample-app", "--bins"];
        if profile.file_name().is_some_and(|name| name == "release") {
            args.push("--release");
        }
        let built = tier_local::spawn::run_to_end(&cargo, &args, &tier_test::repo_root())
            .expect("run cargo build");
        assert!(
            built.status.success(),
            "cargo build -p sample-app failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    TestProject::sample_app()
}

/// Every event of one call, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<DeployEvent>>);

impl Recorder {
    fn record(&self, event: DeployEvent) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(event);
    }

    fn take(&self) -> Vec<DeployEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poison| poison.into_inner()))
    }
}

/// Stops the environment's agent when the test ends, passed or not.
struct Stop<'a>(&'a Path, &'a str);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let dir = tier_state::paths::EnvDir::new(self.0, self.1);
        let _ = tier_deploy::local::stop_agent(&dir, self.1);
    }
}

/// One apply of dev on the project as its files are now (a workspace caches the config it
/// read, as one command does).
fn apply(
    project: &TestProject,
    recorder: &Recorder,
    sets: &[&str],
) -> Result<Applied, DeployError> {
    let mut workspace = Workspace::load(project.path()).expect("load the sample app");
    let record = |event| recorder.record(event);
    let mut session = Session::new(&record);
    let agent = std::env::current_exe().expect("the test binary's path");
    session.agent = AgentProgram::Path(agent);
    let sets = sets
        .iter()
        .map(|set| Set::parse(set).expect("a --set value"))
        .collect();
    let target = Target::Environment {
        name: "dev".to_owned(),
        sets,
    };
    tier_deploy::apply(&mut workspace, &target, &session)
}

/// The kinds of events, in order, with consecutive progress reports counted once.
fn kinds(events: &[DeployEvent]) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for event in events {
        let kind = match event {
            DeployEvent::Planned { .. } => "planned",
            DeployEvent::LockTaken { .. } => "lock taken",
            DeployEvent::RevisionRecorded { .. } => "revision recorded",
            DeployEvent::AgentStarted { .. } => "agent started",
            DeployEvent::Progress { .. } => "progress",
            DeployEvent::EnvironmentReady { .. } => "ready",
            DeployEvent::Agent { .. } => "agent note",
            _ => "other",
        };
        if kinds.last() != Some(&kind) || kind != "progress" {
            kinds.push(kind);
        }
    }
    kinds
}

fn notes(events: &[DeployEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            DeployEvent::Agent { note, .. } => Some(note.to_string()),
            _ => None,
        })
        .collect()
}

fn apply_drives_the_sample_app_and_reports_each_step() {
    let project = sample_app();
    let port = free_port();
    project.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {port}\n"),
    );
    let mut workspace = Workspace::load(project.path()).expect("load the sample app");
    let root = workspace.root().to_owned();
    let _stop = Stop(&root, "dev");
    let recorder = Recorder::default();

    // First apply: nothing runs, so an agent is started on the revision's spec.
    let applied = apply(&project, &recorder, &[]).expect("the first apply");
    assert_eq!(
        applied,
        Applied::Deployed {
            env: "dev".to_owned(),
            revision: 1
        }
    );
    let events = recorder.take();
    let mut expected = vec![
        "lock taken",
        "planned",
        "revision recorded",
        "agent started",
    ];
    if kinds(&events).contains(&"progress") {
        expected.push("progress");
    }
    expected.push("ready");
    assert_eq!(kinds(&events), expected, "{events:#?}");
    match &events[1] {
        DeployEvent::Planned { env, plan } => {
            assert_eq!(env, "dev");
            assert_eq!(plan.counts().create, 2, "{plan:?}");
        }
        other => panic!("the plan comes once the lock is held, not {other:?}"),
    }
    assert!(
        events.iter().any(|event| matches!(
            event,
            DeployEvent::RevisionRecorded { env, revision: 1 } if env == "dev"
        )),
        "{events:#?}"
    );
    for event in &events {
        if let DeployEvent::Progress { phase, .. } = event {
            assert_eq!(*phase, Phase::Starting);
        }
    }
    assert_eq!(
        http_get(port, "/").1,
        "Hello from <b>development config</b>!"
    );

    // The same again: the plan is empty and dev runs, so nothing is recorded.
    let unchanged = apply(&project, &recorder, &[]).expect("an empty apply");
    assert_eq!(
        unchanged,
        Applied::Unchanged {
            env: "dev".to_owned()
        }
    );
    assert_eq!(kinds(&recorder.take()), ["lock taken", "planned"]);

    // A config change rolls the backend through the running agent, replica by replica.
    project.write("config/backend/dev.json", r#"{"text": "engine config"}"#);
    let applied = apply(&project, &recorder, &[]).expect("a rollout");
    assert_eq!(
        applied,
        Applied::Deployed {
            env: "dev".to_owned(),
            revision: 2
        }
    );
    let events = recorder.take();
    assert_eq!(
        notes(&events),
        [
            "backend: started replica 2",
            "backend: replica 2 ready",
            "backend: 1 replica of the new spec",
        ],
        "{events:#?}"
    );
    assert_eq!(http_get(port, "/").1, "Hello from <b>engine config</b>!");

    // A version that never gets ready fails its gate; the agent keeps the old replica, and
    // the revision is recorded as rolled back.
    let failed = apply(
        &project,
        &recorder,
        &[
            r#"services.backend.health.http="/not-yet""#,
            r#"services.backend.rollout.deadline="2s""#,
        ],
    );
    match failed {
        Err(DeployError::NotDeployed {
            env,
            revision: 3,
            outcome: Outcome::RolledBack { reason },
        }) => {
            assert_eq!(env, "dev");
            assert!(reason.starts_with("service backend: "), "{reason}");
        }
        other => panic!("the failed gate is a rolled back revision, not {other:?}"),
    }
    let events = recorder.take();
    assert!(
        events.iter().any(|event| matches!(
            event,
            DeployEvent::Agent { note: RolloutNote::Failed { service, .. }, .. } if service == "backend"
        )),
        "{events:#?}"
    );
    assert_eq!(http_get(port, "/").1, "Hello from <b>engine config</b>!");

    let history = tier_deploy::history(&mut workspace, "dev").expect("the history");
    let outcomes: Vec<&str> = history
        .iter()
        .map(|revision| match revision.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack { .. } => "rolled back",
            _ => "other",
        })
        .collect();
    assert_eq!(outcomes, ["succeeded", "succeeded", "rolled back"]);
    let waited = Instant::now();
    drop(_stop);
    assert!(waited.elapsed() < Duration::from_secs(30));
    assert!(!tier_local::is_running(&tier_state::paths::EnvDir::new(
        &root, "dev"
    )));
}
