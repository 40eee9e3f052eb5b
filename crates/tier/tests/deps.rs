//! `tier deps` end to end on the tier-deps fixture project (lockfiles made by cargo and npm):
//! three Cargo services and an npm one, internal libraries, one service on an old major.

use tier_test::{Run, TestContext};

const TIER_TOML: &str = r#"[project]
name = "shop"

[environments.dev]
runtime = "local"

[services.backend]
command = ["true"]
source = "services/backend"
test = "grep -q util-security Cargo.toml"

[services.frontend]
command = ["true"]
source = "services/frontend"

[services.billing]
command = ["true"]
source = "services/billing"
test = "grep -q util-security Cargo.toml"

[services.web]
command = ["true"]
source = "services/web"

[libraries.util-security]
path = "libs/util-security"

[libraries.util-http]
path = "libs/util-http"

[libraries.ui-kit]
path = "libs/ui-kit"
"#;

fn context() -> TestContext {
    let context = TestContext::copy_of("crates/tier-deps/tests/fixtures/project");
    context.write("tier.toml", TIER_TOML);
    context
}

#[test]
fn why_finds_direct_and_transitive_users_and_gates_on_a_range() {
    let context = context();
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "why", "util-security"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("why", stdout);

    let Run { code, stdout, .. } =
        context.tier(&["deps", "why", "util-security", "--affected", "<1.4.2"]);
    assert_eq!(
        code, 1,
        "billing locks 0.9.3, inside the range: the gate fails\n{stdout}"
    );
    assert!(
        stdout.contains("billing util-security@0.9.3 (direct) affected"),
        "{stdout}"
    );
    let Run { code, .. } = context.tier(&["deps", "why", "util-security", "--affected", "<0.9.0"]);
    assert_eq!(code, 0, "nothing is that old");

    let Run { stdout: json, .. } =
        context.tier(&["deps", "why", "util-security", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(
        report["services"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
}

#[test]
fn outdated_conflicts_and_order() {
    let context = context();
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "outdated"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("outdated", stdout);
    let Run { code, stdout, .. } = context.tier(&["deps", "conflicts"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("conflicts", stdout);
    let Run { code, stdout, .. } = context.tier(&["deps", "order"]);
    assert_eq!(code, 0);
    let position = |name: &str| stdout.find(name).unwrap_or(usize::MAX);
    assert!(
        position("util-security") < position("util-http"),
        "dependencies first:\n{stdout}"
    );
    let Run { code, stdout, .. } = context.tier(&["deps", "scan", "--output", "json"]);
    assert_eq!(code, 0);
    let inventory: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(inventory["services"].as_array().map(Vec::len), Some(4));
}

#[test]
fn conflicts_exit_code_is_1_when_there_is_a_conflict() {
    let context = context();
    let Run { code, stdout, .. } = context.tier(&["deps", "conflicts", "--exit-code"]);
    assert_eq!(code, 1, "billing is on util-security 0.9:\n{stdout}");
    insta::assert_snapshot!("conflicts", stdout);
    let Run { code, .. } = context.tier(&["deps", "conflicts", "--exit-code", "-o", "json"]);
    assert_eq!(code, 1);

    let without_billing = TIER_TOML.replace(
        "[services.billing]\ncommand = [\"true\"]\nsource = \"services/billing\"\ntest = \"grep -q util-security Cargo.toml\"\n",
        "",
    );
    assert_ne!(without_billing, TIER_TOML);
    context.write("tier.toml", &without_billing);
    let Run { code, stdout, .. } = context.tier(&["deps", "conflicts", "--exit-code"]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn bump_across_services_dry_run_then_for_real() {
    let context = context();
    let before: Vec<String> = ["services/backend/Cargo.toml", "services/billing/Cargo.toml"]
        .iter()
        .map(|file| context.read(file))
        .collect();

    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "bump", "util-security", "1.4.3", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "+util-security = { path = \"../../libs/util-security\", version = \"1.4.3\" }"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("billing: crosses a major version"),
        "{stdout}"
    );
    let unchanged: Vec<String> = ["services/backend/Cargo.toml", "services/billing/Cargo.toml"]
        .iter()
        .map(|file| context.read(file))
        .collect();
    assert_eq!(before, unchanged, "--dry-run changes nothing");

    // Release the fix in the library, then carry it to every service that requires it.
    let library = context
        .read("libs/util-security/Cargo.toml")
        .replace("version = \"1.4.2\"", "version = \"1.4.3\"");
    context.write("libs/util-security/Cargo.toml", &library);
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "bump", "util-security", "1.4.3"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("backend"), "{stdout}");
    assert!(stdout.contains("billing"), "{stdout}");
    assert!(stdout.contains("passed"), "{stdout}");
    assert!(
        context
            .read("services/backend/Cargo.toml")
            .contains("version = \"1.4.3\"")
    );
    assert!(
        context
            .read("services/backend/Cargo.toml")
            .contains("# The security helpers, used directly."),
        "comments kept"
    );
    let lock = context.read("services/backend/Cargo.lock");
    assert!(
        lock.contains("name = \"util-security\"\nversion = \"1.4.3\""),
        "the lockfile was refreshed:\n{lock}"
    );
    let Run { stdout, .. } =
        context.tier(&["deps", "why", "util-security", "--affected", "<1.4.3"]);
    assert!(
        stdout.contains("backend util-security@1.4.3 (direct) not affected"),
        "{stdout}"
    );
}

#[test]
fn a_broken_lockfile_is_reported_with_its_file_and_line() {
    let context = context();
    let lock = context.read("services/backend/Cargo.lock");
    context.write(
        "services/backend/Cargo.lock",
        &lock.replacen("[[package]]", "[[package]\n", 1),
    );
    let Run { code, stderr, .. } = context.tier(&["deps", "why", "itoa"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("services/backend/Cargo.lock:"), "{stderr}");
}

#[test]
fn each_apply_records_what_runs_so_why_answers_per_environment() {
    let context = context();
    // No replica runs (the services' commands are placeholders); the revision still records
    // the bill of materials of what it deploys.
    let toml = TIER_TOML.replace("command = [\"true\"]", "command = [\"true\"]\nreplicas = 0");
    context.write("tier.toml", &toml);
    let Run { code, stderr, .. } = context.tier(&["apply", "dev"]);
    let _down = context.down_on_drop("dev");
    assert_eq!(code, 0, "{stderr}");

    // A newer library is locked afterwards; dev still runs what it ran.
    let lock = context
        .read("services/billing/Cargo.lock")
        .replace("version = \"0.9.3\"", "version = \"0.9.4\"");
    context.write("services/billing/Cargo.lock", &lock);
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "why", "util-security", "--env", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("billing util-security@0.9.4 (direct)"),
        "what is locked now:\n{stdout}"
    );
    assert!(
        stdout
            .contains("deployed in dev (revision 1): backend 1.4.2; billing 0.9.3; frontend 1.4.2"),
        "what runs in dev:\n{stdout}"
    );
    let Run { code, stdout, .. } = context.tier(&[
        "deps",
        "why",
        "util-security",
        "--env",
        "dev",
        "--affected",
        "=0.9.3",
    ]);
    assert_eq!(
        code, 1,
        "dev runs 0.9.3 even though no lockfile has it any more:\n{stdout}"
    );
    let Run { stdout: json, .. } =
        context.tier(&["deps", "why", "util-security", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(
        report["deployed"]["dev"]["services"]["billing"][0]["version"], "0.9.3",
        "{report}"
    );
}

#[test]
fn bump_an_external_crate_across_three_services() {
    let context = context();
    let manifests = [
        "services/backend/Cargo.toml",
        "services/billing/Cargo.toml",
        "services/frontend/Cargo.toml",
    ];
    let before: Vec<String> = manifests.iter().map(|file| context.read(file)).collect();
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "bump", "itoa", "1.0.19", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    for file in manifests {
        assert!(
            stdout.contains(&format!("+++ b/{file}")),
            "{file} in the diff:\n{stdout}"
        );
    }
    let after: Vec<String> = manifests.iter().map(|file| context.read(file)).collect();
    assert_eq!(before, after, "--dry-run changes nothing");

    // billing asks for util-security 0.9 while the library is at 1.4.2: its lockfile cannot
    // be refreshed, so billing is not bumped at all (manifest and lockfile as they were),
    // cargo's own error lines say why, and the run fails.
    let billing_lock = context.read("services/billing/Cargo.lock");
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "bump", "itoa", "1.0.19"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let billing = line_starting(&stdout, "billing");
    assert!(billing.contains("cargo failed"), "{stdout}");
    assert!(
        stdout.contains("billing: not bumped, services/billing/Cargo.toml is as it was (cargo failed):\n  error: failed to select a version for the requirement `util-security = \"^0.9\"`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  candidate versions found which didn't match: 1.4.2"),
        "cargo's lines after its first one:\n{stdout}"
    );
    assert_eq!(
        context.read("services/billing/Cargo.toml"),
        before[1],
        "billing's manifest is put back"
    );
    assert_eq!(context.read("services/billing/Cargo.lock"), billing_lock);
    for file in [manifests[0], manifests[2]] {
        assert!(context.read(file).contains("itoa = \"1.0.19\""), "{file}");
    }
    assert!(
        context
            .read("services/backend/Cargo.toml")
            .contains("itoa = \"1.0.19\" # numbers in responses"),
        "comments kept"
    );
    assert!(
        context
            .read("services/frontend/Cargo.lock")
            .contains("name = \"itoa\"\nversion = \"1.0.19\""),
        "frontend's lockfile moved from 1.0.10:\n{stdout}"
    );
    assert_eq!(stdout.matches("refreshed").count(), 2, "{stdout}");
    let Run { code, stdout, .. } = context.tier(&["deps", "outdated"]);
    assert_eq!(code, 0);
    assert!(
        !stdout.contains("itoa"),
        "nothing is behind on itoa any more:\n{stdout}"
    );
}

#[test]
fn the_sample_app_is_scanned_from_its_workspace_lockfile() {
    // The sample's services name `source = "."`: a member of the repository's workspace,
    // locked by the workspace's Cargo.lock, of which it locks only what it reaches.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sample-app");
    let project = std::fs::read_to_string(format!("{sample}/tier.toml"))
        .expect("the sample has a tier.toml")
        .replace("source = \".\"", &format!("source = {sample:?}"));
    let context = TestContext::with_files(&[("tier.toml", &project)]);
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "scan"]);
    assert_eq!(code, 0, "{stderr}");
    let backend = line_starting(&stdout, "backend");
    // Its dependencies of every kind, as for a crate with its own lockfile: the six it
    // runs with and the three its tests use.
    assert!(backend.contains(" locked, 9 direct"), "{stdout}");
    assert!(stdout.contains("  axum@"), "{stdout}");
    assert!(stdout.contains("  tier-test@"), "{stdout}");
    let locked: usize = backend
        .split_whitespace()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or_default();
    let workspace =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
            .expect("the repository has a Cargo.lock")
            .matches("[[package]]")
            .count();
    assert!(
        0 < locked && locked < workspace,
        "the sample locks {locked} of the workspace's {workspace} packages:\n{stdout}"
    );
    let Run { code, stdout, .. } = context.tier(&["deps", "why", "tokio"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("frontend tokio@"), "{stdout}");
}

#[test]
fn a_source_without_a_lockfile_is_a_warning() {
    let context = context();
    std::fs::remove_file(context.path().join("services/web/package-lock.json"))
        .expect("the fixture's web service has a package-lock.json");
    let Run {
        code,
        stdout,
        stderr,
        ..
    } = context.tier(&["deps", "scan"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("web  no lockfile"), "{stdout}");
    assert!(
        stderr.contains(
            "warning: service web: its source services/web has no Cargo.lock or package-lock.json"
        ),
        "{stderr}"
    );
}

/// The first line of `text` that starts with `prefix`, or "".
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_default()
}
