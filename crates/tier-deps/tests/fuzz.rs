//! Mutated lockfiles never panic, and every error names the file and, for a TOML or JSON
//! syntax error, a line.

use std::path::Path;

use proptest::prelude::*;
use tier_deps::{DepsError, parse_cargo_lock, parse_package_lock};

const CARGO_LOCKS: [&str; 3] = [
    include_str!("fixtures/project/services/frontend/Cargo.lock"),
    include_str!("fixtures/project/services/billing/Cargo.lock"),
    include_str!("fixtures/diamond/service/Cargo.lock"),
];
const PACKAGE_LOCK: &str = include_str!("fixtures/project/services/web/package-lock.json");

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipByte(usize, u8),
    DuplicateLine(usize),
    DeleteLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::FlipByte(at, byte)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DeleteLine),
    ]
}

/// Applies mutations to bytes, then reads them back as text (lossily, as a file read would
/// fail on invalid UTF-8 before any parser saw it).
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for mutation in mutations {
        match *mutation {
            Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::FlipByte(at, byte) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
            }
            Mutation::DuplicateLine(at) | Mutation::DeleteLine(at) => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let at = at % lines.len();
                if matches!(mutation, Mutation::DuplicateLine(_)) {
                    let line = lines[at].clone();
                    lines.insert(at, line);
                } else {
                    lines.remove(at);
                }
                bytes = lines.join(&b'\n');
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check_error(error: &DepsError, file: &Path, syntax_error: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.file(), Some(file), "error: {}", error);
    prop_assert!(
        error.to_string().starts_with(&file.display().to_string()),
        "the message names the file: {}",
        error
    );
    if syntax_error {
        prop_assert!(
            error.line().is_some(),
            "a syntax error has a line: {}",
            error
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_cargo_locks_never_panic(
        which in 0..CARGO_LOCKS.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let text = mutate(CARGO_LOCKS[which], &mutations);
        let file = Path::new("services/x/Cargo.lock");
        if let Err(error) = parse_cargo_lock(file, &text, &["frontend".to_owned()]) {
            let syntax_error = toml::from_str::<toml::Table>(&text).is_err();
            check_error(&error, file, syntax_error)?;
        }
    }

    #[test]
    fn mutated_package_locks_never_panic(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let text = mutate(PACKAGE_LOCK, &mutations);
        let file = Path::new("services/web/package-lock.json");
        if let Err(error) = parse_package_lock(file, &text) {
            let syntax_error = serde_json::from_str::<serde_json::Value>(&text).is_err();
            check_error(&error, file, syntax_error)?;
        }
    }
}

#[test]
fn a_bad_version_in_a_package_lock_is_reported_at_its_line() {
    let text = PACKAGE_LOCK.replace("\"version\": \"4.4.3\"", "\"version\": \"four\"");
    let file = Path::new("package-lock.json");
    let error = parse_package_lock(file, &text).err();
    let line = PACKAGE_LOCK
        .lines()
        .position(|line| line.contains("\"4.4.3\""))
        .map(|index| index + 1);
    assert_eq!(error.as_ref().and_then(DepsError::line), line);
    insta::assert_snapshot!(error.map(|error| error.to_string()).unwrap_or_default());
}

#[test]
fn a_v1_package_lock_is_refused_with_a_hint() {
    let text = r#"{"name": "old", "lockfileVersion": 1, "dependencies": {}}"#;
    let error = parse_package_lock(Path::new("package-lock.json"), text).err();
    insta::assert_snapshot!(error.map(|error| error.to_string()).unwrap_or_default());
}
