//! `tier init`: a project skeleton that validates as written.

use std::path::Path;

use super::{CommandResult, Exit};
use crate::args::Template;
use crate::output;

const MINIMAL: &[(&str, &str)] = &[
    (
        "tier.toml",
        r#"# A tier project: the services, and the environments they run in.
# Per-environment changes go in envs/<env>.toml; app config in config/<service>/<env>.json.

[project]
name = "PROJECT"

[environments.dev]
runtime = "local"

[environments.stage]
runtime = "local"
promote_from = "dev"

[environments.prod]
runtime = "local"
promote_from = "stage"
protected = true                  # changing prod needs --confirm prod

[services.web]
# Started on the local runtime with $PORT set; any program that listens on it will do.
command = ["sh", "-c", "exec python3 -m http.server --bind 127.0.0.1 \"$PORT\""]
port = 8080
replicas = 1
memory = "64Mi"
health = { http = "/" }
config = "config/web"
expose = 8080
"#,
    ),
    (
        "envs/stage.toml",
        "# stage only: a second copy, and another host port so dev and stage can run side by side.\n\n[services.web]\nreplicas = 2\nexpose = 8090\n",
    ),
    (
        "envs/prod.toml",
        "# prod only: more replicas and memory.\n\n[services.web]\nreplicas = 3\nmemory = \"128Mi\"\nexpose = 8100\n",
    ),
    (
        "config/web/base.json",
        "{\n  \"greeting\": \"hello\",\n  \"log_level\": \"info\"\n}\n",
    ),
    ("config/web/dev.json", "{\n  \"log_level\": \"debug\"\n}\n"),
    (".gitignore", ".tier/\n"),
];

const SAMPLE_APP: &[(&str, &str)] = &[
    (
        "tier.toml",
        include_str!("../../../../examples/sample-app/tier.toml"),
    ),
    (
        "envs/stage.toml",
        include_str!("../../../../examples/sample-app/envs/stage.toml"),
    ),
    (
        "envs/prod.toml",
        include_str!("../../../../examples/sample-app/envs/prod.toml"),
    ),
    (
        "config/backend/base.json",
        include_str!("../../../../examples/sample-app/config/backend/base.json"),
    ),
    (
        "config/backend/dev.json",
        include_str!("../../../../examples/sample-app/config/backend/dev.json"),
    ),
    (
        "config/backend/stage.json",
        include_str!("../../../../examples/sample-app/config/backend/stage.json"),
    ),
    (
        "config/backend/prod.json",
        include_str!("../../../../examples/sample-app/config/backend/prod.json"),
    ),
    (
        "config/frontend/base.json",
        include_str!("../../../../examples/sample-app/config/frontend/base.json"),
    ),
    (
        "README.md",
        include_str!("../../../../examples/sample-app/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../../examples/sample-app/.gitignore"),
    ),
];

pub fn init(dir: &Path, template: Template) -> CommandResult {
    let files = match template {
        Template::Minimal => MINIMAL,
        Template::SampleApp => SAMPLE_APP,
    };
    if dir.join("tier.toml").exists() {
        output::error(&format!(
            "{} already holds a tier.toml; nothing was written",
            dir.display()
        ));
        output::hint("run `tier validate` there, or choose an empty directory");
        return Err(Exit::Failure);
    }
    if let Some(existing) = files
        .iter()
        .map(|(path, _)| dir.join(path))
        .find(|path| path.exists())
    {
        output::error(&format!(
            "{} already exists; nothing was written",
            existing.display()
        ));
        return Err(Exit::Failure);
    }
    let name = project_name(dir);
    for (path, text) in files {
        let path = dir.join(path);
        let text = text.replace("\"PROJECT\"", &format!("\"{name}\""));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(error) = written {
            output::error(&format!("cannot write {}: {error}", path.display()));
            return Err(Exit::Failure);
        }
    }
    eprintln!(
        "created a tier project in {} ({} files)",
        dir.display(),
        files.len()
    );
    output::hint(&format!(
        "`tier -C {} validate` checks it; `tier -C {} envs` lists its environments",
        dir.display(),
        dir.display()
    ));
    Ok(())
}

/// A DNS-1035 label made from the directory's name, so the new project validates.
fn project_name(dir: &Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .or_else(|| std::env::current_dir().ok().map(|cwd| cwd.join(dir)))
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut name: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').to_owned();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    name.truncate(63);
    let name = name.trim_end_matches('-').to_owned();
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        format!("app-{name}").trim_end_matches('-').to_owned()
    }
}
