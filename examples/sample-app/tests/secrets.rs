//! Secrets end to end: a canary value declared by reference flows through validate, plan,
//! apply, a failed apply, rollback, status, logs, render and forced errors, and is found only
//! in the environment of the replica that declared it: not in any output, not in any file
//! under `.tier/` (state and store databases included), not in the agent's environment.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use tier_test::{Run, TestContext, tier_snapshot};

const CANARY: &str = "canary-5b1e0c7d-first";
const CANARY_CHANGED: &str = "canary-5b1e0c7d-second";
const FILE_CANARY: &str = "canary-5b1e0c7d-tls";

/// The sample app with secrets for dev (one from the shell, one from a file) and for prod
/// (never read by dev's commands), the frontend on a free host port. Every command runs with
/// debug logs on, so those are searched for secret values too.
fn context() -> (TestContext, tempfile::TempDir, u16) {
    let mut context = TestContext::sample_app();
    context
        .env("RUST_LOG", "debug")
        .env_remove("PROD_DB_PASSWORD");
    let secrets = tempfile::tempdir().expect("a directory for the key file");
    context.filter_text(&secrets.path().display().to_string(), "[SECRETS]");
    let key = secrets.path().join("tls.key");
    std::fs::write(&key, FILE_CANARY).expect("write the key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let port = context.free_port();
    context.write(
        "envs/dev.toml",
        &format!(
            "[services.backend]\nsecrets = {{ DB_PASSWORD = {{ env = \"SAMPLE_DB_PASSWORD\" }}, TLS_KEY = {{ file = \"{}\" }} }}\n\n[services.frontend]\nexpose = {port}\n",
            key.display()
        ),
    );
    let prod = context.read("envs/prod.toml");
    context.write(
        "envs/prod.toml",
        &prod.replace(
            "[services.backend]\n",
            "[services.backend]\nsecrets = { DB_PASSWORD = { env = \"PROD_DB_PASSWORD\" } }\n",
        ),
    );
    (context, secrets, port)
}

/// Runs `tier <args>` with `SAMPLE_DB_PASSWORD` set to `password`, or unset.
fn run(context: &TestContext, password: Option<&str>, args: &[&str]) -> Run {
    let mut command = context.command(args);
    match password {
        Some(value) => command.env("SAMPLE_DB_PASSWORD", value),
        None => command.env_remove("SAMPLE_DB_PASSWORD"),
    };
    context.run(command)
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

fn status(context: &TestContext) -> (Run, Value) {
    let run = run(context, None, &["status", "dev", "--output", "json"]);
    let entry = run.json()[0]["status"].clone();
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
    let (context, _secrets, port) = context();
    let mut printed = Vec::new();

    let validate = run(&context, Some(CANARY), &["validate", "--env", "dev"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    printed.push(validate);

    let plan = run(&context, Some(CANARY), &["plan", "dev"]).success();
    assert!(
        plan.stdout.contains("secret DB_PASSWORD: value set (hmac:"),
        "{plan}"
    );
    printed.push(plan);
    let plan_json = run(&context, Some(CANARY), &["plan", "dev", "--output", "json"]);
    printed.push(plan_json);

    let apply = run(&context, Some(CANARY), &["apply", "dev"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    printed.push(apply);

    let (status_run, running) = status(&context);
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
    let changed = tier_snapshot!(
        "plan_of_a_changed_secret",
        run(&context, Some(CANARY_CHANGED), &["plan", "dev"])
    );
    printed.push(changed);
    let apply = run(&context, Some(CANARY_CHANGED), &["apply", "dev"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    printed.push(apply);
    let (status_run, running) = status(&context);
    printed.push(status_run);
    assert!(
        environ(replica_pid(&running, "backend"))
            .contains(&format!("DB_PASSWORD={CANARY_CHANGED}"))
    );

    // A failed apply (the backend never becomes ready) is rolled back.
    let failed = run(
        &context,
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

    let rollback = run(&context, Some(CANARY), &["rollback", "dev", "--to", "1"]);
    assert_eq!(rollback.code, 0, "{}{}", rollback.stdout, rollback.stderr);
    printed.push(rollback);
    let (status_run, running) = status(&context);
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
        let output = run(&context, Some(CANARY), args);
        assert_eq!(output.code, 0, "tier {args:?}: {}", output.stderr);
        printed.push(output);
    }

    // Forced errors: a missing variable, a key file others can read.
    let unset = tier_snapshot!(
        "validate_with_the_variable_unset",
        run(&context, None, &["validate", "--env", "dev"])
    );
    printed.push(unset);
    let missing = tier_snapshot!(
        "plan_with_the_variable_unset",
        run(&context, None, &["plan", "dev"])
    );
    printed.push(missing);

    let down = run(&context, Some(CANARY), &["down", "dev"]);
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
    assert!(!files_holding(&context.path().join(".tier"), "development config").is_empty());
    for canary in [CANARY, CANARY_CHANGED, FILE_CANARY] {
        assert_eq!(
            files_holding(&context.path().join(".tier"), canary),
            Vec::<String>::new(),
            "files under .tier/ that hold a secret value"
        );
    }
}

#[test]
fn up_hands_the_value_to_its_replica_and_nowhere_else() {
    let (context, _secrets, _port) = context();
    let up = run(&context, Some(CANARY), &["up", "dev", "-d"]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let (status_run, running) = status(&context);
    let backend = environ(replica_pid(&running, "backend"));
    let agent = environ(running["agent_pid"].as_u64().expect("the agent's pid"));
    let down = run(&context, Some(CANARY), &["down", "dev"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(backend.contains(&format!("DB_PASSWORD={CANARY}")));
    assert!(backend.contains(&format!("TLS_KEY={FILE_CANARY}")));
    assert!(!agent.is_empty() && !agent.contains(CANARY) && !agent.contains(FILE_CANARY));
    for output in [&up, &status_run, &down] {
        assert!(!output.stdout.contains(CANARY) && !output.stderr.contains(CANARY));
    }
    assert!(!files_holding(&context.path().join(".tier"), "development config").is_empty());
    for canary in [CANARY, FILE_CANARY] {
        assert_eq!(
            files_holding(&context.path().join(".tier"), canary),
            Vec::<String>::new()
        );
    }
}

#[test]
fn dev_never_reads_the_secrets_only_prod_declares() {
    let (context, _secrets, _port) = context();
    // PROD_DB_PASSWORD is unset in every run; dev's commands do not care.
    let plan = run(&context, Some(CANARY), &["plan", "dev"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(!plan.stderr.contains("PROD_DB_PASSWORD"));
    tier_snapshot!(
        "plan_of_prod_without_its_variable",
        run(&context, Some(CANARY), &["plan", "prod"])
    );
}

#[test]
fn a_key_file_others_can_read_is_refused_before_anything_starts() {
    let (context, secrets, _port) = context();
    let key = secrets.path().join("tls.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");
    let up = tier_snapshot!(
        "up_with_a_readable_key_file",
        run(&context, Some(CANARY), &["up", "dev", "-d"])
    );
    assert!(!context.path().join(".tier/dev/agent.sock").exists());
    assert!(!up.stderr.contains(FILE_CANARY));
}

#[test]
fn an_unknown_kind_of_reference_is_a_located_error() {
    let context = TestContext::sample_app();
    context.write(
        "envs/dev.toml",
        "[services.backend]\nsecrets = { DB_PASSWORD = { vault = \"db/password\" } }\n",
    );
    tier_snapshot!(run(&context, None, &["validate"]));
}
