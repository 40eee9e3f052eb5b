//! `tier schema` and `tier completions`: generated surfaces, checked for drift by the tests.

use std::path::Path;

use clap::CommandFactory;
use tier_model::schema::{OVERRIDE_FILE, PROJECT_FILE, json_schema};

use super::{CommandResult, Exit};
use crate::args::{Cli, SchemaFile};
use crate::output;

/// The file names under `schema/` that editors point at.
pub const PROJECT_SCHEMA_FILE: &str = "tier.schema.json";
pub const OVERRIDE_SCHEMA_FILE: &str = "tier-env.schema.json";

pub fn schema_text(file: SchemaFile) -> String {
    let schema = match file {
        SchemaFile::Project => json_schema(
            PROJECT_FILE,
            "tier.toml",
            "A tier project: its services and the environments they run in.",
        ),
        SchemaFile::Override => json_schema(
            OVERRIDE_FILE,
            "envs/<env>.toml",
            "Overrides of tier.toml for one environment.",
        ),
    };
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

pub fn schema(file: SchemaFile, out: Option<&Path>) -> CommandResult {
    let Some(dir) = out else {
        output::stdout(&schema_text(file));
        return Ok(());
    };
    let files = [
        (PROJECT_SCHEMA_FILE, SchemaFile::Project),
        (OVERRIDE_SCHEMA_FILE, SchemaFile::Override),
    ];
    for (name, file) in files {
        let path = dir.join(name);
        let written =
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, schema_text(file)));
        if let Err(error) = written {
            output::error(&format!("cannot write {}: {error}", path.display()));
            return Err(Exit::Failure);
        }
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

pub fn completions(shell: clap_complete::Shell) -> CommandResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tier", &mut script);
    output::stdout(&String::from_utf8_lossy(&script));
    Ok(())
}
