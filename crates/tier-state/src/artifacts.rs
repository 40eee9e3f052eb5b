//! The content-addressed artifact store, `.tier/artifacts/<sha256 hex>`: build once, deploy
//! many. The local runtime runs replicas from these copies, so rebuilding a program after an
//! apply never changes what an environment runs, and `promote` can deploy the exact bytes
//! another environment runs. Shared by all environments of a project, since a digest names the
//! same bytes everywhere.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tier_model::environment::Artifact;

use crate::error::StateError;

const DIGEST_PREFIX: &str = "sha256:";

/// What [`ArtifactStore::check`] found of a stored copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Intact,
    /// The file's bytes have another digest now.
    Changed {
        path: PathBuf,
        digest: String,
    },
    /// No readable file.
    Missing {
        path: PathBuf,
    },
}

/// The artifact store of one project.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
}

impl ArtifactStore {
    /// The store under `<project_root>/.tier/artifacts/`; nothing is created until `put`.
    pub fn new(project_root: &Path) -> ArtifactStore {
        ArtifactStore {
            dir: project_root.join(".tier").join("artifacts"),
        }
    }

    /// The directory that holds the stored copies.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a copy of the executable `program` unless one with the same content is stored
    /// already, and returns its artifact (`sha256:<hex>`, with `program` as given for its
    /// source) and the stored copy's path.
    ///
    /// A copy appears under its final name complete or not at all (temporary file in the same
    /// directory, fsync, rename). The copy is named by the hash of the bytes actually copied,
    /// so a program rebuilt while it is being stored cannot end up under a wrong name.
    pub fn put(&self, program: &Path) -> Result<(Artifact, PathBuf), StateError> {
        let hex = hash_file(program)?;
        let stored = self.dir.join(&hex);
        let hex = if stored.try_exists().unwrap_or(false) {
            hex
        } else {
            self.copy_in(program, false)?
        };
        let artifact = Artifact {
            digest: format!("{DIGEST_PREFIX}{hex}"),
            source: program.display().to_string(),
        };
        Ok((artifact, self.dir.join(hex)))
    }

    /// Where the artifact with `digest` is stored, if it is a `sha256:` digest and stored here.
    /// Anything else (an image reference, a malformed digest) gives `None`, never a path
    /// outside the store.
    pub fn path_of(&self, digest: &str) -> Option<PathBuf> {
        self.place_of(digest).filter(|path| path.is_file())
    }

    /// Where the copy of a well-formed `sha256:` digest belongs, stored or not.
    fn place_of(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix(DIGEST_PREFIX)?;
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        well_formed.then(|| self.dir.join(hex))
    }

    /// Whether the stored copy of the artifact with `digest` still holds the bytes the digest
    /// names: `tier drift` reports a copy changed or removed behind tier's back, since the
    /// local runtime runs replicas from these copies. `None` for a digest this store does not
    /// keep (an image reference).
    pub fn check(&self, digest: &str) -> Option<Stored> {
        let path = self.place_of(digest)?;
        let hex = digest.strip_prefix(DIGEST_PREFIX).unwrap_or_default();
        Some(match hash_file(&path) {
            Ok(found) if found == hex => Stored::Intact,
            Ok(found) => Stored::Changed {
                path,
                digest: format!("{DIGEST_PREFIX}{found}"),
            },
            Err(_) => Stored::Missing { path },
        })
    }

    /// [`check`](Self::check) without reading the copy: `Missing` when no file is there,
    /// `Intact` otherwise. For a quick look (`tier status`); only `check` sees a changed copy.
    pub fn check_present(&self, digest: &str) -> Option<Stored> {
        let path = self.place_of(digest)?;
        Some(if path.is_file() {
            Stored::Intact
        } else {
            Stored::Missing { path }
        })
    }

    /// Puts back the stored copy of the artifact with `digest` from `program` when the copy
    /// was changed or removed and `program` still has those bytes. Whether it put one back.
    pub fn repair(&self, digest: &str, program: &Path) -> Result<bool, StateError> {
        match self.check(digest) {
            None | Some(Stored::Intact) => Ok(false),
            Some(_) => {
                let wanted = digest.strip_prefix(DIGEST_PREFIX).unwrap_or_default();
                if hash_file(program)? != wanted {
                    return Ok(false);
                }
                Ok(self.copy_in(program, true)? == wanted)
            }
        }
    }

    /// Copies `program` into the store and returns the hex digest of what was copied. A copy
    /// stored under that name already is kept, unless `replace` (a copy found changed).
    fn copy_in(&self, program: &Path, replace: bool) -> Result<String, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        // Unique per process and per call, so parallel puts never share a temporary file.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let temporary = self.dir.join(format!(
            ".incoming-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let result = copy_hashing(program, &temporary).and_then(|hex| {
            let stored = self.dir.join(&hex);
            if !replace && stored.try_exists().unwrap_or(false) {
                // Stored meanwhile by another put: the content is the same, keep the old file.
                std::fs::remove_file(&temporary).map_err(io_error(&temporary))?;
            } else {
                std::fs::rename(&temporary, &stored).map_err(io_error(&stored))?;
                // The rename is durable only once the directory is synced.
                File::open(&self.dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(io_error(&self.dir))?;
            }
            Ok(hex)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }
}

/// The lowercase hex sha256 of a file, read in chunks so large executables are not loaded.
fn hash_file(path: &Path) -> Result<String, StateError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// Copies `from` to the new file `to` (mode 0755, synced) and returns the hex sha256 of the
/// bytes written.
fn copy_hashing(from: &Path, to: &Path) -> Result<String, StateError> {
    let mut source = File::open(from).map_err(io_error(from))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_error(to))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = source.read(&mut buffer).map_err(io_error(from))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        target.write_all(&buffer[..read]).map_err(io_error(to))?;
    }
    target
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io_error(to))?;
    target.sync_all().map_err(io_error(to))?;
    Ok(to_hex(&hasher.finalize()))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_the_empty_input_is_the_known_sha256() {
        assert_eq!(
            to_hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn path_of_refuses_anything_but_a_well_formed_digest() {
        let store = ArtifactStore::new(Path::new("/nonexistent"));
        assert_eq!(store.path_of("sha256:../../etc/passwd"), None);
        assert_eq!(store.path_of("sample-app-backend:0.0.1"), None);
        assert_eq!(store.path_of(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(store.path_of(&format!("sha256:{}", "a".repeat(64))), None);
    }

    #[test]
    fn check_tells_an_intact_copy_from_a_changed_or_missing_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let program = dir.path().join("program");
        std::fs::write(&program, b"#!/bin/sh\n").expect("written");
        let store = ArtifactStore::new(dir.path());
        let (artifact, stored) = store.put(&program).expect("stored");
        assert_eq!(store.check(&artifact.digest), Some(Stored::Intact));
        std::fs::write(&stored, b"#!/bin/sh\necho changed\n").expect("changed");
        assert!(matches!(
            store.check(&artifact.digest),
            Some(Stored::Changed { digest, .. }) if digest != artifact.digest
        ));
        assert_eq!(
            store.check_present(&artifact.digest),
            Some(Stored::Intact),
            "a quick check does not read the copy"
        );
        std::fs::remove_file(&stored).expect("removed");
        assert!(matches!(
            store.check_present(&artifact.digest),
            Some(Stored::Missing { .. })
        ));
        assert!(matches!(
            store.check(&artifact.digest),
            Some(Stored::Missing { .. })
        ));
        assert!(store.repair(&artifact.digest, &program).expect("repaired"));
        assert_eq!(store.check(&artifact.digest), Some(Stored::Intact));
        assert!(!store.repair(&artifact.digest, &program).expect("intact"));
        assert_eq!(store.check("sample-app-backend:0.0.1"), None);
    }
}
