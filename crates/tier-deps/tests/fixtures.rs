//! scan, why, outdated, conflicts, bump and release order on the checked-in fixtures, whose
//! lockfiles cargo and npm produced (see `fixtures/regenerate.sh`).

use std::path::PathBuf;

use semver::Version;
use tier_deps::scan::{LibrarySource, ServiceSource, read_manifests, scan};
use tier_deps::{
    AffectedRange, DepsError, Ecosystem, Inventory, Library, bump, conflicts, outdated,
    release_order, release_order_from, why,
};

fn project_services() -> Vec<ServiceSource> {
    ["backend", "billing", "frontend", "web"]
        .into_iter()
        .map(|name| ServiceSource {
            name: name.to_owned(),
            dir: PathBuf::from(format!("tests/fixtures/project/services/{name}")),
        })
        .collect()
}

fn project_libraries() -> Vec<LibrarySource> {
    ["util-security", "util-http", "ui-kit"]
        .into_iter()
        .map(|name| LibrarySource {
            name: name.to_owned(),
            path: PathBuf::from(format!("tests/fixtures/project/libs/{name}")),
        })
        .collect()
}

fn project() -> Inventory {
    match scan(&project_services(), &project_libraries()) {
        Ok(inventory) => inventory,
        Err(errors) => panic!("the fixture project scans: {errors}"),
    }
}

fn diamond() -> Inventory {
    let services = [ServiceSource {
        name: "diamond".to_owned(),
        dir: PathBuf::from("tests/fixtures/diamond/service"),
    }];
    let libraries = ["old-itoa", "new-itoa"].map(|name| LibrarySource {
        name: name.to_owned(),
        path: PathBuf::from(format!("tests/fixtures/diamond/libs/{name}")),
    });
    match scan(&services, &libraries) {
        Ok(inventory) => inventory,
        Err(errors) => panic!("the diamond fixture scans: {errors}"),
    }
}

/// One line per package: what `tier deps scan` would list, and its edges by label.
fn summary(inventory: &Inventory) -> Vec<String> {
    let mut lines = Vec::new();
    for service in &inventory.services {
        lines.push(format!(
            "{} ({} lockfiles)",
            service.name,
            service.lockfiles.len()
        ));
        for package in &service.packages {
            let flags = match (package.root, package.direct) {
                (true, _) => " root",
                (false, true) => " direct",
                (false, false) => "",
            };
            let dependencies: Vec<String> = package
                .dependencies
                .iter()
                .map(|&index| service.packages[index].label())
                .collect();
            lines.push(format!(
                "  {} {} {:?}{} -> [{}]",
                package.ecosystem,
                package.label(),
                package.source,
                flags,
                dependencies.join(", ")
            ));
        }
    }
    for library in &inventory.libraries {
        lines.push(format!(
            "library {} = {} {} {} (depends on {:?})",
            library.name, library.ecosystem, library.package, library.version, library.depends_on
        ));
    }
    lines
}

#[test]
fn scan_reads_cargo_and_npm_lockfiles() {
    insta::assert_yaml_snapshot!(summary(&project()));
}

#[test]
fn scan_serialises_the_inventory() {
    insta::assert_json_snapshot!(project().services[0]);
}

#[test]
fn why_finds_direct_and_transitive_users_with_the_affected_range() {
    let range = AffectedRange::parse("<1.4.2").ok();
    let report = why(&project(), "util-security", range.as_ref());
    let report = match report {
        Ok(report) => report,
        Err(error) => panic!("{error}"),
    };
    assert!(report.any_affected, "billing locks 0.9.3");
    let services: Vec<&str> = report.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services, ["backend", "billing", "frontend"]);
    insta::assert_yaml_snapshot!(report);
}

#[test]
fn why_is_clean_when_every_version_is_outside_the_range() {
    let range = AffectedRange::parse("<0.9.0").ok();
    let report = why(&project(), "util-security", range.as_ref()).ok();
    assert_eq!(report.map(|report| report.any_affected), Some(false));
}

#[test]
fn why_reads_npm_ranges_and_nested_packages() {
    // An npm-only range syntax: `||` and a hyphen range.
    let range = AffectedRange::parse("2.1.0 - 2.1.3 || 1.x").ok();
    let report = why(&project(), "ms", range.as_ref());
    let report = match report {
        Ok(report) => report,
        Err(error) => panic!("{error}"),
    };
    assert!(report.any_affected);
    insta::assert_yaml_snapshot!(report);
}

#[test]
fn why_follows_npm_links_to_internal_libraries() {
    let report = why(&project(), "ui-kit", None).ok();
    insta::assert_yaml_snapshot!(report);
}

#[test]
fn an_invalid_range_is_an_error() {
    assert!(matches!(
        AffectedRange::parse("not a range"),
        Err(DepsError::Range { .. })
    ));
}

#[test]
fn outdated_compares_with_internal_and_newest_locked_versions() {
    insta::assert_yaml_snapshot!(outdated(&project()));
}

#[test]
fn outdated_counts_a_zero_major_minor_bump_as_major() {
    let found = outdated(&diamond());
    let itoa: Vec<_> = found
        .iter()
        .filter(|package| package.name == "itoa")
        .collect();
    assert_eq!(itoa.len(), 1);
    assert_eq!(itoa[0].locked, Version::new(0, 4, 8));
    assert_eq!(itoa[0].kind, tier_deps::BumpKind::Major);
}

#[test]
fn conflicts_finds_a_diamond_with_both_chains() {
    let found = conflicts(&diamond());
    assert_eq!(found.diamonds.len(), 1);
    insta::assert_yaml_snapshot!(found);
}

#[test]
fn conflicts_finds_an_internal_library_split_across_majors() {
    let found = conflicts(&project());
    // ms 2.0.0 and 2.1.3 in `web` are compatible: not a diamond.
    assert!(found.diamonds.is_empty());
    insta::assert_yaml_snapshot!(found);
}

#[test]
fn bump_rewrites_every_dependent_manifest_and_keeps_formatting() {
    let manifests = match read_manifests(&project_services()) {
        Ok(manifests) => manifests,
        Err(errors) => panic!("{errors}"),
    };
    let edits = match bump(&manifests, "util-security", &Version::new(1, 5, 0)) {
        Ok(edits) => edits,
        Err(errors) => panic!("{errors}"),
    };
    let files: Vec<String> = edits
        .iter()
        .map(|edit| edit.file.display().to_string())
        .collect();
    // frontend reaches util-security only through util-http: its manifest has nothing to bump.
    assert_eq!(
        files,
        [
            "tests/fixtures/project/services/backend/Cargo.toml",
            "tests/fixtures/project/services/billing/Cargo.toml"
        ]
    );
    assert!(!edits[0].crosses_major);
    assert!(edits[1].crosses_major, "billing goes from 0.9 to 1.5");
    insta::assert_yaml_snapshot!(edits);
    for edit in &edits {
        insta::assert_snapshot!(
            format!("bump_{}", edit.service),
            diff_lines(&edit.before, &edit.after)
        );
    }
}

#[test]
fn bump_handles_every_way_to_write_a_cargo_dependency() {
    let text = r#"[package]
name = "svc"
version = "0.1.0"

[dependencies]
lib = "1.2"   # plain
other = "3"
inline = { package = "lib", version = "~1.2.3", features = ["x"] } # renamed

[dependencies.lib-as-table]
package = "lib"
version = "=1.2.0" # exact
path = "../lib"

[dev-dependencies]
lib = { path = "../lib" } # path only: nothing to bump

[build-dependencies]
lib = ">=1.0, <2"

[target.'cfg(unix)'.dependencies]
lib = { version = "0.9", optional = true }

[workspace.dependencies]
lib = "1"
"#;
    let manifests = [tier_deps::ManifestText {
        service: "svc".to_owned(),
        file: PathBuf::from("svc/Cargo.toml"),
        text: text.to_owned(),
    }];
    let edits = match bump(&manifests, "lib", &Version::new(2, 0, 1)) {
        Ok(edits) => edits,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(edits.len(), 1);
    insta::assert_snapshot!(edits[0].after);
    insta::assert_yaml_snapshot!(edits[0].changes);
}

#[test]
fn bump_rewrites_only_the_version_text_in_package_json() {
    let text = "{\n  \"name\": \"web\",\n  \"dependencies\": {\n    \"ui-kit\":   \"^3.1.0\",\n    \"ms\": \"2.0.0\"\n  },\n  \"devDependencies\": { \"ui-kit\": \"~3.0\" },\n  \"peerDependencies\": { \"ui-kit\": \"file:../ui-kit\" }\n}\n";
    let manifests = [tier_deps::ManifestText {
        service: "web".to_owned(),
        file: PathBuf::from("web/package.json"),
        text: text.to_owned(),
    }];
    let edits = match bump(&manifests, "ui-kit", &Version::new(4, 0, 0)) {
        Ok(edits) => edits,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0].after,
        text.replace("\"^3.1.0\"", "\"^4.0.0\"")
            .replace("\"~3.0\"", "\"~4.0.0\"")
    );
    assert!(edits[0].crosses_major);
}

#[test]
fn bump_reports_a_broken_manifest_with_its_line() {
    let manifests = [tier_deps::ManifestText {
        service: "svc".to_owned(),
        file: PathBuf::from("svc/Cargo.toml"),
        text: "[dependencies]\nlib = \"1\"\nlib = \"2\"\n".to_owned(),
    }];
    let errors = bump(&manifests, "lib", &Version::new(2, 0, 0)).err();
    let error = errors.as_ref().and_then(|errors| errors.0.first());
    assert_eq!(error.and_then(DepsError::line), Some(3));
    insta::assert_snapshot!(errors.map(|errors| errors.to_string()).unwrap_or_default());
}

#[test]
fn release_order_puts_dependencies_first() {
    let libraries = project().libraries;
    assert_eq!(
        release_order(&libraries).ok(),
        Some(vec![
            "ui-kit".to_owned(),
            "util-security".to_owned(),
            "util-http".to_owned()
        ])
    );
    assert_eq!(
        release_order_from(&libraries, "util-security").ok(),
        Some(vec!["util-security".to_owned(), "util-http".to_owned()])
    );
}

#[test]
fn release_order_names_a_cycle() {
    let library = |name: &str, needs: &[&str]| Library {
        name: name.to_owned(),
        package: name.to_owned(),
        ecosystem: Ecosystem::Cargo,
        version: Version::new(1, 0, 0),
        manifest: PathBuf::from(format!("libs/{name}/Cargo.toml")),
        depends_on: needs.iter().map(|need| (*need).to_owned()).collect(),
    };
    let libraries = [
        library("a", &["b"]),
        library("b", &["c"]),
        library("c", &["a"]),
        library("z", &[]),
    ];
    let error = release_order(&libraries)
        .err()
        .map(|error| error.to_string());
    assert_eq!(
        error.as_deref(),
        Some("internal libraries depend on each other in a cycle: a -> b -> c -> a")
    );
}

#[test]
fn scan_reports_every_broken_file_with_its_location() {
    let services = [
        ServiceSource {
            name: "missing".to_owned(),
            dir: PathBuf::from("tests/fixtures/does-not-exist"),
        },
        ServiceSource {
            name: "broken".to_owned(),
            dir: PathBuf::from("tests/fixtures/broken"),
        },
    ];
    let errors = scan(&services, &[]).err().map(|errors| errors.to_string());
    insta::assert_snapshot!(errors.unwrap_or_default());
}

fn diff_lines(before: &str, after: &str) -> String {
    let mut out = String::new();
    for (old, new) in before.lines().zip(after.lines()) {
        if old == new {
            out.push_str(&format!("  {old}\n"));
        } else {
            out.push_str(&format!("- {old}\n+ {new}\n"));
        }
    }
    assert_eq!(before.lines().count(), after.lines().count());
    out
}
