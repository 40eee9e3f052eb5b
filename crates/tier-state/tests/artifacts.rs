//! The content-addressed artifact store: dedupe, immutability across rebuilds, modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tier_state::ArtifactStore;

fn write_program(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the build dir");
    std::fs::write(path, contents).expect("write the program");
}

fn stored_files(store: &ArtifactStore) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .expect("the store exists")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn put_stores_a_copy_named_by_its_sha256() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let program = temp.path().join("target/release/sample-backend");
    write_program(&program, b"");
    let store = ArtifactStore::new(temp.path());

    let (artifact, stored) = store.put(&program).expect("put");
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(artifact.digest, format!("sha256:{hex}"));
    assert_eq!(artifact.source, program.display().to_string());
    assert_eq!(stored, temp.path().join(".tier/artifacts").join(hex));
    let mode = std::fs::metadata(&stored)
        .expect("stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(store.path_of(&artifact.digest), Some(stored));
    assert_eq!(stored_files(&store), [hex]);
}

#[test]
fn identical_programs_are_stored_once() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let backend = temp.path().join("target/release/backend");
    let copy = temp.path().join("elsewhere/backend-copy");
    let contents = b"#!/bin/sh\necho backend\n".repeat(10_000);
    write_program(&backend, &contents);
    write_program(&copy, &contents);
    let store = ArtifactStore::new(temp.path());

    let (first, first_path) = store.put(&backend).expect("put");
    let (second, second_path) = store.put(&copy).expect("put again");
    let (third, _) = store.put(&backend).expect("put the same file again");
    assert_eq!(first.digest, second.digest);
    assert_eq!(first.digest, third.digest);
    assert_eq!(first_path, second_path);
    assert_eq!(second.source, copy.display().to_string());
    assert_eq!(stored_files(&store).len(), 1);
    assert_eq!(std::fs::read(&first_path).expect("stored"), contents);
}

#[test]
fn a_rebuild_never_changes_the_stored_copy() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let program = temp.path().join("target/release/backend");
    write_program(&program, b"version 1");
    let store = ArtifactStore::new(temp.path());
    let (v1, v1_path) = store.put(&program).expect("put v1");

    // A rebuild overwrites the program in place (as the linker does) and replaces it.
    std::fs::write(&program, b"version 2, rebuilt in place").expect("rebuild in place");
    assert_eq!(std::fs::read(&v1_path).expect("v1 stored"), b"version 1");
    let replacement = temp.path().join("target/release/backend.new");
    std::fs::write(&replacement, b"version 3, renamed over").expect("write v3");
    std::fs::rename(&replacement, &program).expect("rename over");
    assert_eq!(std::fs::read(&v1_path).expect("v1 stored"), b"version 1");

    let (v3, v3_path) = store.put(&program).expect("put v3");
    assert_ne!(v1.digest, v3.digest);
    assert_eq!(store.path_of(&v1.digest), Some(v1_path.clone()));
    assert_eq!(std::fs::read(&v1_path).expect("v1 stored"), b"version 1");
    assert_eq!(
        std::fs::read(&v3_path).expect("v3 stored"),
        b"version 3, renamed over"
    );
    assert_eq!(stored_files(&store).len(), 2);
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let store = ArtifactStore::new(temp.path());
    let missing = temp.path().join("target/release/missing");
    let message = store.put(&missing).expect_err("missing").to_string();
    assert!(message.contains("target/release/missing"), "{message}");
    assert_eq!(store.path_of(&format!("sha256:{}", "0".repeat(64))), None);
}
