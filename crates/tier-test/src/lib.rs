//! Test support for tier: a project in a temporary directory, the `tier` binary run inside it
//! with stable output, and filters that make snapshots independent of the machine.

use std::path::{Path, PathBuf};

pub use assert_cmd;

/// A project directory that disappears when the test ends.
pub struct TestProject {
    dir: tempfile::TempDir,
}

impl TestProject {
    /// An empty directory.
    pub fn empty() -> TestProject {
        TestProject {
            dir: tempfile::Builder::new()
                .prefix("tier-test-")
                .tempdir()
                .expect("create a temporary directory"),
        }
    }

    /// A directory holding the given files (path relative to the root, contents).
    pub fn with_files(files: &[(&str, &str)]) -> TestProject {
        let project = TestProject::empty();
        for (path, text) in files {
            project.write(path, text);
        }
        project
    }

    /// A copy of a directory of the repository, e.g. `examples/sample-app`.
    pub fn copy_of(relative_to_repo: &str) -> TestProject {
        let project = TestProject::empty();
        copy_dir(&repo_root().join(relative_to_repo), project.path());
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, text: &str) {
        let path = self.dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(path, text).expect("write a project file");
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).expect("read a project file")
    }

    /// `tier` with this directory as its project, without color, with a fixed terminal width.
    pub fn tier(&self) -> assert_cmd::Command {
        let mut command = tier();
        command.arg("--project").arg(self.path());
        command
    }
}

/// The `tier` binary that cargo built beside the running test, with a stable environment.
pub fn tier() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(tier_binary());
    command
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("TIER_PROJECT")
        .env_remove("RUST_LOG");
    command
}

/// `target/<profile>/tier`: integration tests run from `target/<profile>/deps/`.
pub fn tier_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    profile.join(format!("tier{}", std::env::consts::EXE_SUFFIX))
}

/// The root of the repository, for fixtures and committed files.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/tier-test sits two levels below the root")
        .to_path_buf()
}

/// Replaces a project's temporary path with `[PROJECT]` in output.
pub fn redact(text: &str, project: &TestProject) -> String {
    let path = project.path().display().to_string();
    let canonical = std::fs::canonicalize(project.path())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| path.clone());
    text.replace(&canonical, "[PROJECT]")
        .replace(&path, "[PROJECT]")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("read a fixture directory") {
        let entry = entry.expect("read a fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() == "target" || entry.file_name() == ".tier" {
                continue;
            }
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a fixture file");
        }
    }
}
