//! `tier init`: a project skeleton that validates as written.

use std::path::Path;

use super::{CommandResult, fail, fail_with};
use crate::args::Template;
use crate::output;

/// `(path, contents)` of each file of a template, read from a directory at build time.
macro_rules! template {
    ($dir:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!($dir, "/", $path)))),+]
    };
}

/// A small project of one service, with three environments.
const MINIMAL: &[(&str, &str)] = template!("../../templates/minimal":
    "tier.toml", "envs/stage.toml", "envs/prod.toml", "config/web/base.json",
    "config/web/dev.json", ".gitignore",
);

/// The sample app of the repository, as `examples/sample-app` holds it.
const SAMPLE_APP: &[(&str, &str)] = template!("../../../../examples/sample-app":
    "tier.toml", "envs/stage.toml", "envs/prod.toml", "config/backend/base.json",
    "config/backend/dev.json", "config/backend/stage.json", "config/backend/prod.json",
    "config/frontend/base.json", "README.md", ".gitignore",
);

pub fn init(dir: &Path, template: Template) -> CommandResult {
    let files = match template {
        Template::Minimal => MINIMAL,
        Template::SampleApp => SAMPLE_APP,
    };
    if dir.join("tier.toml").exists() {
        return Err(fail_with(
            format!(
                "{} already holds a tier.toml; nothing was written",
                dir.display()
            ),
            "run `tier validate` there, or choose an empty directory",
        ));
    }
    let paths = files.iter().map(|(path, _)| dir.join(path));
    if let Some(existing) = paths.clone().find(|path| path.exists()) {
        return Err(fail(format!(
            "{} already exists; nothing was written",
            existing.display()
        )));
    }
    let name = project_name(dir);
    for (path, text) in files {
        let path = dir.join(path);
        let text = text.replace("\"PROJECT\"", &format!("\"{name}\""));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        written.map_err(|error| fail(format!("cannot write {}: {error}", path.display())))?;
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
