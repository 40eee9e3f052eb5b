//! Property tests: no project, however broken, makes loading or validating panic, and every
//! problem found points into a file.
//!
//! Two families of projects, 10,000 cases in all:
//! - generated from a grammar of plausible `tier.toml` and `envs/<env>.toml` content: the real
//!   keys with values of the right and the wrong types, bad names, `extends`, `promote_from`
//!   and `depends_on` graphs with loops, unknown keys, duplicated tables, and JSON config files
//!   from valid to broken;
//! - the sample app and a project of regions, with their bytes mutated: cut, duplicated,
//!   truncated, and sprinkled with TOML and JSON punctuation and bytes that are not UTF-8.
//!
//! Each case is written to its own temporary directory and read with [`Project::load`] and
//! [`tier_model::validate`], exactly as `tier validate` does. Every problem must have a
//! location inside a file that the project's source map holds, and must render with miette as
//! the CLI renders it. The only problems allowed without a location are those about `--set`
//! arguments (they come from the command line, not a file) and a config file that exists but
//! cannot be read (permissions); neither can arise here, so no exception is made below.

mod check;
mod grammar;
mod mutations;
mod regressions;
#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use crate::check::check;
use crate::grammar::generated_project;
use crate::mutations::mutated_project;

/// A project as files: a path relative to the root, and the bytes it holds.
#[derive(Clone)]
struct Files(Vec<(String, Vec<u8>)>);

/// Shows each file as text, so a failing case reads like the project it is.
impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (path, bytes) in &self.0 {
            writeln!(
                f,
                "--- {path}\n{}",
                String::from_utf8_lossy(bytes).escape_debug()
            )?;
        }
        Ok(())
    }
}

const GENERATED_CASES: u32 = 6_000;
const MUTATED_CASES: u32 = 4_000;

/// The seed of every run unless `PROPTEST_RNG_SEED` names another, so that CI sees the same
/// cases each time and a failure in it is a change in tier, not a roll of the dice. Explore
/// new cases with `PROPTEST_RNG_SEED=<n> cargo test -p tier-model --test fuzz`.
const SEED: u64 = 0x7469_6572;

fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases,
        rng_seed: match default.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            chosen => chosen,
        },
        // A failure shrinks toward a small project quickly; a bounded search keeps a failing
        // run from taking minutes.
        max_shrink_iters: 2_000,
        // The cases found so far, in the file they were first saved to: by default proptest
        // would look under tests/proptest-regressions/ now that this file is a main.rs.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fuzz.proptest-regressions"
        )))),
        ..default
    }
}

proptest! {
    #![proptest_config(config(GENERATED_CASES))]
    #[test]
    fn generated_projects_load_and_validate(files in generated_project()) {
        check(&files)?;
    }
}

proptest! {
    #![proptest_config(config(MUTATED_CASES))]
    #[test]
    fn mutated_projects_load_and_validate(files in mutated_project()) {
        check(&files)?;
    }
}

/// Writes the project's files under `root`.
fn write(root: &Path, files: &Files) -> Result<(), TestCaseError> {
    for (path, bytes) in &files.0 {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                TestCaseError::fail(format!("create {}: {error}", parent.display()))
            })?;
        }
        std::fs::write(&path, bytes)
            .map_err(|error| TestCaseError::fail(format!("write {}: {error}", path.display())))?;
    }
    Ok(())
}
