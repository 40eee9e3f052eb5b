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

/// The sample app of the repository, as `examples/sample-app` holds it, with a README of its
/// own (the example's speaks of its source code, which the template does not carry).
const SAMPLE_APP: &[(&str, &str)] = template!("../../../../examples/sample-app":
    "tier.toml", "envs/stage.toml", "envs/prod.toml", "config/backend/base.json",
    "config/backend/dev.json", "config/backend/stage.json", "config/backend/prod.json",
    "config/frontend/base.json", ".gitignore",
);
const SAMPLE_APP_README: (&str, &str) = (
    "README.md",
    include_str!("../../templates/sample-app/README.md"),
);

/// The host ports the templates expose dev, stage and prod on.
const TEMPLATE_PORTS: [u16; 3] = [8080, 8090, 8100];

pub fn init(dir: &Path, template: Template) -> CommandResult {
    let files: Vec<(&str, &str)> = match template {
        Template::Minimal => MINIMAL.to_vec(),
        Template::SampleApp => SAMPLE_APP
            .iter()
            .copied()
            .chain([SAMPLE_APP_README])
            .collect(),
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
    let ports = free_ports(&name);
    let programs = SamplePrograms::find();
    for (path, text) in &files {
        let mut text = text.replace("\"PROJECT\"", &format!("\"{name}\""));
        for (template_port, port) in TEMPLATE_PORTS.iter().zip(ports) {
            text = text.replace(
                &format!("expose = {template_port}"),
                &format!("expose = {port}"),
            );
        }
        if template == Template::SampleApp {
            text = sample_app_text(&text, &name, ports, &programs);
        }
        let path = dir.join(path);
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
    if template == Template::SampleApp && !programs.found {
        output::hint(
            "its services run sample-backend and sample-frontend, which are not installed: \
             `cargo install --path examples/sample-app` in tier's repository installs them",
        );
    }
    output::hint(&format!(
        "`tier -C {} validate` checks it; `tier -C {} envs` lists its environments",
        dir.display(),
        dir.display()
    ));
    Ok(())
}

/// The sample app's files made this project's: its name, its ports, the programs as this
/// machine has them, and no `source` (the template carries no code to scan).
fn sample_app_text(text: &str, name: &str, ports: [u16; 3], programs: &SamplePrograms) -> String {
    text.replace("name = \"sample-app\"", &format!("name = \"{name}\""))
        .replace("\"sample-app-prod\"", &format!("\"{name}-prod\""))
        .replace("\"target/release/sample-backend\"", &programs.backend)
        .replace("\"target/release/sample-frontend\"", &programs.frontend)
        .replace("PROJECT", name)
        .replace("DEV_PORT", &ports[0].to_string())
        .replace("STAGE_PORT", &ports[1].to_string())
        .lines()
        .filter(|line| !line.starts_with("source = "))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// How the sample's programs are named in a new project's commands (TOML strings): by name
/// when they are on PATH (`cargo install`), else by where they lie beside this tier binary (a
/// build of tier's repository), else by name.
struct SamplePrograms {
    backend: String,
    frontend: String,
    found: bool,
}

impl SamplePrograms {
    fn find() -> SamplePrograms {
        let quoted = |text: &str| format!("{text:?}");
        let on_path = ["sample-backend", "sample-frontend"]
            .iter()
            .all(|program| tier_local::spawn::on_path(program));
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .filter(|dir| {
                dir.join("sample-backend").is_file() && dir.join("sample-frontend").is_file()
            });
        match beside {
            Some(dir) if !on_path => SamplePrograms {
                backend: quoted(&dir.join("sample-backend").display().to_string()),
                frontend: quoted(&dir.join("sample-frontend").display().to_string()),
                found: true,
            },
            _ => SamplePrograms {
                backend: quoted("sample-backend"),
                frontend: quoted("sample-frontend"),
                found: on_path,
            },
        }
    }
}

/// Host ports for dev, stage and prod, ten apart, that nothing listens on now, from a block
/// in 18000-18990 picked by the project's name: a new project does not collide with the
/// sample (8080 and 8090) nor, usually, with another new one.
fn free_ports(name: &str) -> [u16; 3] {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let first = (hash % 100) as u16;
    (0..100)
        .map(|step| 18_000 + ((first + step) % 100) * 10)
        .map(|base| [base, base + 10, base + 20])
        .find(|ports| {
            ports
                .iter()
                .all(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        })
        .unwrap_or(TEMPLATE_PORTS)
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
