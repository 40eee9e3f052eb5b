//! The README's first screen against what CI runs: the test command a new user copies must be
//! the one CI calls, so the two cannot drift apart again.

use std::path::Path;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// The commands of the README's first code block: its lines that are not comments.
fn first_screen_commands() -> Vec<String> {
    let readme = read("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README opens with a sh code block");
    block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_test_command_is_the_script_ci_runs() {
    let commands = first_screen_commands();
    assert_eq!(
        commands.len(),
        2,
        "two commands on the first screen: {commands:?}"
    );
    assert!(
        commands[0].starts_with("cargo build --release"),
        "the main job comes first: {commands:?}"
    );
    assert_eq!(commands[1], "bash scripts/test.sh");

    let ci = read(".ci/run");
    assert!(
        ci.lines()
            .any(|line| line.starts_with("bash scripts/test.sh 2>&1")),
        ".ci/run runs the README's test command:\n{ci}"
    );
    assert!(
        !ci.contains("cargo test --workspace"),
        ".ci/run runs no test command of its own beside the script:\n{ci}"
    );
}

#[test]
fn the_test_script_installs_every_tool_the_tests_run() {
    let script = read("scripts/test.sh");
    assert!(script.contains("exec cargo test --workspace --all-features \"$@\""));
    // What the tests start or build with: a missing one fails them.
    for tool in [
        "protoc",
        "etcd",
        "chromium",
        "chromedriver",
        "curl",
        "kubernetes-validate",
        "checkov",
    ] {
        assert!(
            script.contains(&format!("command -v {tool} ")) || script.contains(&format!("{tool}=")),
            "scripts/test.sh does not check for {tool}"
        );
    }
}

#[test]
fn the_readme_names_the_kubernetes_version_the_manifests_are_validated_against() {
    let validate = read("crates/tier-kube/tests/validate.rs");
    let version = validate
        .lines()
        .find_map(|line| line.strip_prefix("const KUBERNETES_VERSION: &str = \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .expect("validate.rs names its Kubernetes version");
    let readme = read("README.md").replace('\n', " ");
    assert!(
        readme.contains(&format!("(against Kubernetes {version}, which")),
        "the README says the manifests are checked against Kubernetes {version}"
    );
}
