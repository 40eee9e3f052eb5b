//! Secrets end to end: a canary value declared by reference flows through validate, plan,
//! apply, a failed apply, rollback, status, logs, render and forced errors, and is found only
//! in the environment of the replica that declared it: not in any output, not in any file
//! under `.tier/` (state and store databases included), not in the agent's environment.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use tier_test::{TestProject, free_port};

const CANARY: &str = "canary-5b1e0c7d-first";
const CANARY_CHANGED: &str = "canary-5b1e0c7d-second";
const FILE_CANARY: &str = "canary-5b1e0c7d-tls";

/// The sample app with secrets for dev (one from the shell, one from a file) and for prod
/// (never read by dev's commands), the frontend on a free host port.
fn project() -> (TestProject, tempfile::TempDir, u16) {
    let project = TestProject::sample_app();
    let secrets = tempfile::tempdir().expect("a directory for the key file");
    let key = secrets.path().join("tls.key");
    std::fs::write(&key, FILE_CANARY).expect("write the key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let port = free_port();
    project.write(
        "envs/dev.toml",
        &format!(
            "[services.backend]\nsecrets = {{ DB_PASSWORD = {{ env = \"SAMPLE_DB_PASSWORD\" }}, TLS_KEY = {{ file = \"{}\" }} }}\n\n[services.frontend]\nexpose = {port}\n",
            key.display()
        ),
    );
    let prod = project.read("envs/prod.toml");
    project.write(
        "envs/prod.toml",
        &prod.replace(
            "[services.backend]\n",
            "[services.backend]\nsecrets = { DB_PASSWORD = { env = \"PROD_DB_PASSWORD\" } }\n",
        ),
    );
    (project, secrets, port)
}

/// Everything a command printed, with its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(project: &TestProject, password: Option<&str>, args: &[&str]) -> Run {
    let mut command = project.tier();
    command
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("PROD_DB_PASSWORD");
    match password {
        Some(value) => command.env("SAMPLE_DB_PASSWORD", value),
        None => command.env_remove("SAMPLE_DB_PASSWORD"),
    };
    let output = command.output().expect("run tier");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn environ(pid: u64) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    String::from_utf8_lossy(&bytes).replace('\0', "\n")
}

fn replica_pid(status: &Value, service: &str) -> u64 {
    status["services"]
        .as_array()
        .and_then(|services| services.iter().find(|entry| entry["name"] == service))
        .and_then(|entry| entry["replicas"][0]["pid"].as_u64())
        .unwrap_or_else(|| panic!("a running {service} replica in {status}"))
}

fn status(project: &TestProject) -> (Run, Value) {
    let run = run(project, None, &["status", "dev", "--output", "json"]);
    let value: Value = serde_json::from_str(&run.stdout).expect("status is JSON");
    let entry = value[0]["status"].clone();
    (run, entry)
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_canary_reaches_only_its_replica() {
    let (project, _secrets, port) = project();
    let mut printed = Vec::new();

    let validate = run(&project, Some(CANARY), &["validate", "--env", "dev"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    printed.push(validate);

    let plan = run(&project, Some(CANARY), &["plan", "dev"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains("secret DB_PASSWORD: value set (hmac:"),
        "{}",
        plan.stdout
    );
    printed.push(plan);
    let plan_json = run(&project, Some(CANARY), &["plan", "dev", "--output", "json"]);
    printed.push(plan_json);

    let apply = run(&project, Some(CANARY), &["apply", "dev"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    printed.push(apply);

    let (status_run, running) = status(&project);
    printed.push(status_run);
    let backend = environ(replica_pid(&running, "backend"));
    assert!(
        backend.contains(&format!("DB_PASSWORD={CANARY}")),
        "the backend replica gets the value"
    );
    assert!(backend.contains(&format!("TLS_KEY={FILE_CANARY}")));
    let frontend = environ(replica_pid(&running, "frontend"));
    assert!(!frontend.contains(CANARY) && !frontend.contains(FILE_CANARY));
    let agent = environ(running["agent_pid"].as_u64().expect("the agent's pid"));
    assert!(!agent.is_empty(), "the agent's environment is readable");
    assert!(
        !agent.contains(CANARY) && !agent.contains(FILE_CANARY),
        "the agent's own environment holds no secret"
    );
    assert_eq!(
        tier_test::http_get(port, "/").1,
        "Hello from <b>development config</b>!"
    );

    // A changed value: exactly the backend updates, named by fingerprint only.
    let changed = run(&project, Some(CANARY_CHANGED), &["plan", "dev"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert!(
        changed.stdout.contains("~ backend\n")
            && changed
                .stdout
                .contains("secret DB_PASSWORD: value changed (hmac:")
            && changed.stdout.contains("1 unchanged (frontend)")
            && changed
                .stdout
                .contains("0 to create, 1 to update, 0 to delete"),
        "{}",
        changed.stdout
    );
    printed.push(changed);
    let apply = run(&project, Some(CANARY_CHANGED), &["apply", "dev"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    printed.push(apply);
    let (status_run, running) = status(&project);
    printed.push(status_run);
    assert!(
        environ(replica_pid(&running, "backend"))
            .contains(&format!("DB_PASSWORD={CANARY_CHANGED}"))
    );

    // A failed apply (the backend never becomes ready) is rolled back.
    let failed = run(
        &project,
        Some(CANARY),
        &[
            "apply",
            "dev",
            "--set",
            r#"services.backend.health.http="/missing""#,
            "--set",
            r#"services.backend.rollout.deadline="2s""#,
        ],
    );
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    printed.push(failed);

    let rollback = run(&project, Some(CANARY), &["rollback", "dev", "--to", "1"]);
    assert_eq!(rollback.code, 0, "{}{}", rollback.stdout, rollback.stderr);
    printed.push(rollback);
    let (status_run, running) = status(&project);
    printed.push(status_run);
    assert!(environ(replica_pid(&running, "backend")).contains(&format!("DB_PASSWORD={CANARY}")));

    for args in [
        &["history", "dev"][..],
        &["logs", "dev"],
        &["render", "dev"],
        &["render", "dev", "--format", "yaml"],
        &["render", "dev", "--format", "k8s"],
        &["explain", "dev", "services.backend.secrets"],
        &["diff", "dev", "stage"],
    ] {
        let output = run(&project, Some(CANARY), args);
        assert_eq!(output.code, 0, "tier {args:?}: {}", output.stderr);
        printed.push(output);
    }

    // Forced errors: a missing variable, a key file others can read.
    let unset = run(&project, None, &["validate", "--env", "dev"]);
    assert_eq!(unset.code, 1);
    assert!(
        unset.stderr.contains("envs/dev.toml:2:")
            && unset.stderr.contains("`SAMPLE_DB_PASSWORD` is not set"),
        "{}",
        unset.stderr
    );
    printed.push(unset);
    let missing = run(&project, None, &["plan", "dev"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("envs/dev.toml:2:")
            && missing.stderr.contains("`SAMPLE_DB_PASSWORD` is not set"),
        "{}",
        missing.stderr
    );
    printed.push(missing);

    let down = run(&project, Some(CANARY), &["down", "dev"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    printed.push(down);

    for (index, output) in printed.iter().enumerate() {
        for canary in [CANARY, CANARY_CHANGED, FILE_CANARY] {
            assert!(
                !output.stdout.contains(canary) && !output.stderr.contains(canary),
                "output {index} shows a secret value:\n{}\n{}",
                output.stdout,
                output.stderr
            );
        }
    }
    // The search itself finds what is there: the merged config the backend reads.
    assert!(!files_holding(&project.path().join(".tier"), "development config").is_empty());
    for canary in [CANARY, CANARY_CHANGED, FILE_CANARY] {
        assert_eq!(
            files_holding(&project.path().join(".tier"), canary),
            Vec::<String>::new(),
            "files under .tier/ that hold a secret value"
        );
    }
}

#[test]
fn up_hands_the_value_to_its_replica_and_nowhere_else() {
    let (project, _secrets, _port) = project();
    let up = run(&project, Some(CANARY), &["up", "dev", "-d"]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let (status_run, running) = status(&project);
    let backend = environ(replica_pid(&running, "backend"));
    let agent = environ(running["agent_pid"].as_u64().expect("the agent's pid"));
    let down = run(&project, Some(CANARY), &["down", "dev"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(backend.contains(&format!("DB_PASSWORD={CANARY}")));
    assert!(backend.contains(&format!("TLS_KEY={FILE_CANARY}")));
    assert!(!agent.is_empty() && !agent.contains(CANARY) && !agent.contains(FILE_CANARY));
    for output in [&up, &status_run, &down] {
        assert!(!output.stdout.contains(CANARY) && !output.stderr.contains(CANARY));
    }
    assert!(!files_holding(&project.path().join(".tier"), "development config").is_empty());
    for canary in [CANARY, FILE_CANARY] {
        assert_eq!(
            files_holding(&project.path().join(".tier"), canary),
            Vec::<String>::new()
        );
    }
}

#[test]
fn dev_never_reads_the_secrets_only_prod_declares() {
    let (project, _secrets, _port) = project();
    // PROD_DB_PASSWORD is unset in every run; dev's commands do not care.
    let plan = run(&project, Some(CANARY), &["plan", "dev"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(!plan.stderr.contains("PROD_DB_PASSWORD"));
    let prod = run(&project, Some(CANARY), &["plan", "prod"]);
    assert_eq!(prod.code, 1);
    assert!(
        prod.stderr.contains("envs/prod.toml:")
            && prod.stderr.contains("`PROD_DB_PASSWORD` is not set"),
        "{}",
        prod.stderr
    );
}

#[test]
fn a_key_file_others_can_read_is_refused_before_anything_starts() {
    let (project, secrets, _port) = project();
    let key = secrets.path().join("tls.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");
    let up = run(&project, Some(CANARY), &["up", "dev", "-d"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("envs/dev.toml:2:")
            && up.stderr.contains("can be read by others (mode 0644)")
            && up.stderr.contains(&format!("chmod 600 {}", key.display())),
        "{}",
        up.stderr
    );
    assert!(!project.path().join(".tier/dev/agent.sock").exists());
    assert!(!up.stderr.contains(FILE_CANARY));
}

#[test]
fn an_unknown_kind_of_reference_is_a_located_error() {
    let project = TestProject::sample_app();
    project.write(
        "envs/dev.toml",
        "[services.backend]\nsecrets = { DB_PASSWORD = { vault = \"db/password\" } }\n",
    );
    let validate = run(&project, None, &["validate"]);
    assert_eq!(validate.code, 1);
    assert!(
        validate.stderr.contains("envs/dev.toml:2:") && validate.stderr.contains("vault"),
        "{}",
        validate.stderr
    );
}
