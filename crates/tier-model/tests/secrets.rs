//! Reading an environment's secrets: values from the shell or from owner-only files, and a
//! located problem for each reference that cannot be read. No value appears in a problem.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tier_model::Project;
use tier_model::secrets::{Lookup, Secrets};

const PROJECT: &str = r#"[project]
name = "shop"

[environments.dev]
[environments.prod]
protected = true

[services.api]
command = ["api"]
port = 8080
secrets = { TOKEN = { env = "API_TOKEN" } }
"#;

const PROD: &str = r#"[services.api]
secrets = { DB_PASSWORD = { env = "PROD_DB_PASSWORD" }, TLS_KEY = { file = "~/.secrets/tls.key" } }
"#;

struct Fixture {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a project directory");
    std::fs::write(dir.path().join("tier.toml"), PROJECT).expect("write tier.toml");
    std::fs::create_dir(dir.path().join("envs")).expect("envs/");
    std::fs::write(dir.path().join("envs/prod.toml"), PROD).expect("write envs/prod.toml");
    let home = tempfile::tempdir().expect("a home directory");
    std::fs::create_dir(home.path().join(".secrets")).expect("~/.secrets");
    Fixture { dir, home }
}

fn write_key(home: &Path, mode: u32) {
    let path = home.join(".secrets/tls.key");
    std::fs::write(&path, "canary-tls-key").expect("write the key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Reads `env`'s secrets with the given shell variables; problems come back as
/// `file:line:column message`.
fn read(fixture: &Fixture, env: &str, variables: &[(&str, &str)]) -> Result<Secrets, Vec<String>> {
    let variables: BTreeMap<String, OsString> = variables
        .iter()
        .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
        .collect();
    let variable = |name: &str| variables.get(name).cloned();
    let lookup = Lookup {
        variable: &variable,
        home: Some(fixture.home.path().to_path_buf()),
        project_root: fixture.dir.path(),
    };
    let mut project = Project::load(fixture.dir.path()).expect("the project loads");
    let resolved = project.resolve(env, &[]).expect("the environment resolves");
    resolved
        .read_secrets(&lookup)
        .map_err(|problems| support::located(&problems, &project.sources))
}

#[test]
fn values_come_from_the_shell_and_from_owner_only_files() {
    let fixture = fixture();
    write_key(fixture.home.path(), 0o600);
    let secrets = read(
        &fixture,
        "prod",
        &[
            ("API_TOKEN", "canary-token"),
            ("PROD_DB_PASSWORD", "canary-db"),
        ],
    )
    .expect("every secret is readable");
    let value = |name| {
        secrets
            .get("api", name)
            .map(|value| String::from_utf8_lossy(value.expose()).into_owned())
    };
    assert_eq!(value("TOKEN").as_deref(), Some("canary-token"));
    assert_eq!(value("DB_PASSWORD").as_deref(), Some("canary-db"));
    assert_eq!(value("TLS_KEY").as_deref(), Some("canary-tls-key"));
}

#[test]
fn dev_never_reads_what_only_prod_declares() {
    let fixture = fixture();
    // Neither PROD_DB_PASSWORD nor the key file exists: dev must not care.
    let secrets = read(&fixture, "dev", &[("API_TOKEN", "canary-token")])
        .expect("dev's own secret is readable");
    assert!(secrets.get("api", "DB_PASSWORD").is_none());
    assert!(secrets.get("api", "TLS_KEY").is_none());
}

#[test]
fn a_missing_variable_and_a_missing_file_are_located_at_their_references() {
    let fixture = fixture();
    let problems = read(&fixture, "prod", &[("API_TOKEN", "canary-token")])
        .expect_err("two secrets cannot be read");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("envs/prod.toml:2:")
            && problems[0].contains("`DB_PASSWORD` (<secret:env:PROD_DB_PASSWORD>)")
            && problems[0].contains("`PROD_DB_PASSWORD` is not set"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("envs/prod.toml:2:")
            && problems[1].contains("`TLS_KEY`")
            && problems[1].contains("no such file"),
        "{problems:#?}"
    );
}

#[test]
fn a_file_that_others_can_read_is_refused_with_chmod_advice() {
    let fixture = fixture();
    write_key(fixture.home.path(), 0o644);
    let mut project = Project::load(fixture.dir.path()).expect("the project loads");
    let resolved = project.resolve("prod", &[]).expect("prod resolves");
    let variable = |name: &str| {
        (name == "API_TOKEN" || name == "PROD_DB_PASSWORD").then(|| OsString::from("canary"))
    };
    let lookup = Lookup {
        variable: &variable,
        home: Some(fixture.home.path().to_path_buf()),
        project_root: fixture.dir.path(),
    };
    let problems = resolved
        .read_secrets(&lookup)
        .expect_err("a world-readable key is refused");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .message
            .contains("can be read by others (mode 0644)"),
        "{}",
        problems[0].message
    );
    assert!(
        problems[0]
            .help
            .as_deref()
            .is_some_and(|help| help.contains("chmod 600")),
        "{:?}",
        problems[0].help
    );
    assert!(!format!("{problems:?}").contains("canary"));
}
