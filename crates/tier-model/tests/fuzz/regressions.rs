//! Regressions: cases the properties found, kept as plain tests named after the bug.

use tier_model::Project;

use crate::{Files, support, write};

/// Loads and validates a project of text files, returning each problem as
/// `file:line:column message`; fails the test when a problem has no location.
fn located_problems(files: &[(&str, &[u8])]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let files = Files(
        files
            .iter()
            .map(|(path, bytes)| ((*path).to_owned(), bytes.to_vec()))
            .collect(),
    );
    write(dir.path(), &files).expect("write the project");
    let mut project = Project::load(dir.path()).expect("the project loads");
    let validation = tier_model::validate(&mut project, &[]);
    support::located(&validation.problems, &project.sources)
}

#[test]
fn environment_name_with_a_nul_byte_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[(
        "tier.toml",
        b"[project]\nname = \"shop\"\n\n[environments.\"a\\u0000b\"]\nruntime = \"local\"\n",
    )]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("tier.toml:4:15 `environments.a\0b`"),
        "{problems:#?}"
    );
}

#[test]
fn environment_named_with_dot_dot_reads_no_file_outside_envs() {
    // `envs/../tier.toml` is tier.toml itself, and `config/api/../secret.json` is outside the
    // config directory: neither may be read as a layer of the environment.
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.\"../tier\"]\n\n[services.api]\ncommand = [\"api\"]\nconfig = \"config/api\"\n",
        ),
        ("config/api/base.json", b"{}"),
        ("config/tier.json", b"not json"),
    ]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("is not a valid name"), "{problems:#?}");
}

#[test]
fn project_file_that_is_not_utf8_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[("tier.toml", b"[project]\nname = \"shop\" # caf\xe9\n")]);
    assert_eq!(problems, ["tier.toml:2:20 tier.toml is not UTF-8 text"]);
}

#[test]
fn override_file_that_is_not_utf8_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.dev]\n",
        ),
        ("envs/dev.toml", b"[project]\nordering = \"yes\" # \xff\n"),
    ]);
    // The rest of the file is still checked.
    assert_eq!(
        problems,
        [
            "envs/dev.toml:2:12 `project.ordering` must be true or false, found a string",
            "envs/dev.toml:2:20 envs/dev.toml is not UTF-8 text",
        ]
    );
}

#[test]
fn config_file_that_is_not_utf8_is_a_located_problem() {
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.dev]\n\n[services.api]\ncommand = [\"api\"]\nconfig = \"config/api\"\n",
        ),
        ("config/api/base.json", b"{\"text\": \"\xc3\"}"),
    ]);
    assert_eq!(
        problems,
        ["config/api/base.json:1:11 config/api/base.json is not UTF-8 text"]
    );
}
