//! Online Boutique on kubernetes: the rendered prod-us, field for field against what the
//! upstream manifests specify (`upstream.json`, written as data from
//! release/kubernetes-manifests.yaml), and every rendered environment through the real
//! `kubernetes-validate --strict` and checkov's Kubernetes checks. A missing tool fails the
//! test; it never skips it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tier_kube::{Object, RenderOptions, render, to_yaml, write_dir};
use tier_model::Project;

const KUBERNETES_VERSION: &str = "1.36";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn rendered(root: &Path, environment: &str) -> Vec<Object> {
    let mut project = Project::load(root).expect("the project loads");
    let resolved = project
        .resolve(environment, &[])
        .unwrap_or_else(|problems| panic!("{environment} resolves: {problems:?}"));
    render(&resolved.environment, &RenderOptions::default())
        .unwrap_or_else(|problems| panic!("{environment} renders: {problems:?}"))
}

fn as_json(objects: &[Object]) -> Vec<Value> {
    objects
        .iter()
        .map(|object| serde_json::to_value(object).expect("an object serialises"))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
}

#[test]
fn prod_us_manifests() {
    let yaml = to_yaml(&rendered(&root(), "prod-us")).expect("prints");
    insta::assert_snapshot!(yaml);
}

/// An address as the upstream manifests write it (`cartservice:7070`): the cluster DNS name
/// tier renders, without the namespace's suffix.
fn short_address(value: &str, namespace: &str) -> String {
    value.replace(&format!(".{namespace}.svc.cluster.local"), "")
}

fn check(missing: &mut Vec<String>, service: &str, field: &str, want: &Value, got: &Value) {
    if want != got {
        missing.push(format!(
            "{service}: {field}: upstream {want}, rendered {got}"
        ));
    }
}

#[test]
fn every_field_the_upstream_manifests_specify_is_rendered() {
    let namespace = "boutique-prod-us";
    let upstream: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/upstream.json")).expect("the fixture"),
    )
    .expect("the fixture is JSON");
    let objects = as_json(&rendered(&root(), "prod-us"));
    let mut missing = Vec::new();
    let services = upstream["services"].as_object().expect("services");
    for (name, want) in services {
        let Some(deployment) = find(&objects, "Deployment", name) else {
            missing.push(format!("{name}: no Deployment"));
            continue;
        };
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        check(
            &mut missing,
            name,
            "image",
            &want["image"],
            &container["image"],
        );
        check(
            &mut missing,
            name,
            "serviceAccountName",
            &want["service_account"],
            &pod["serviceAccountName"],
        );
        if !want["termination_grace_seconds"].is_null() {
            check(
                &mut missing,
                name,
                "terminationGracePeriodSeconds",
                &want["termination_grace_seconds"],
                &pod["terminationGracePeriodSeconds"],
            );
        }
        let ports: Vec<Value> = container["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .map(|port| port["containerPort"].clone())
                    .collect()
            })
            .unwrap_or_default();
        check(
            &mut missing,
            name,
            "containerPorts",
            &want["container_ports"],
            &Value::from(ports),
        );
        let env: BTreeMap<String, String> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|var| {
                Some((
                    var["name"].as_str()?.to_owned(),
                    short_address(var["value"].as_str()?, namespace),
                ))
            })
            .collect();
        for (variable, value) in want["env"].as_object().into_iter().flatten() {
            check(
                &mut missing,
                name,
                &format!("env {variable}"),
                value,
                &env.get(variable)
                    .map_or(Value::Null, |got| Value::from(got.as_str())),
            );
        }
        for (kind, field) in [
            ("readiness", "readinessProbe"),
            ("liveness", "livenessProbe"),
            ("startup", "startupProbe"),
        ] {
            let probe = &container[field];
            let expected = &want[kind];
            if expected.is_null() {
                check(&mut missing, name, field, &Value::Null, probe);
                continue;
            }
            let action = match expected["kind"].as_str() {
                Some("grpc") => &probe["grpc"],
                Some("tcpSocket") => &probe["tcpSocket"],
                _ => &probe["httpGet"],
            };
            check(
                &mut missing,
                name,
                &format!("{field}.port"),
                &expected["port"],
                &action["port"],
            );
            if let Some(path) = expected.get("path") {
                check(
                    &mut missing,
                    name,
                    &format!("{field}.path"),
                    path,
                    &action["path"],
                );
                let headers: BTreeMap<String, Value> = action["httpHeaders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|header| {
                        Some((header["name"].as_str()?.to_owned(), header["value"].clone()))
                    })
                    .collect();
                check(
                    &mut missing,
                    name,
                    &format!("{field}.httpHeaders"),
                    &expected["headers"],
                    &serde_json::to_value(headers).unwrap_or_default(),
                );
            }
            for timing in [
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            ] {
                if let Some(value) = expected.get(timing) {
                    check(
                        &mut missing,
                        name,
                        &format!("{field}.{timing}"),
                        value,
                        &probe[timing],
                    );
                }
            }
        }
        check(
            &mut missing,
            name,
            "resources",
            &want["resources"],
            &container["resources"],
        );
        for (key, value) in want["pod_security"].as_object().into_iter().flatten() {
            check(
                &mut missing,
                name,
                &format!("pod securityContext.{key}"),
                value,
                &pod["securityContext"][key],
            );
        }
        for (key, value) in want["container_security"].as_object().into_iter().flatten() {
            check(
                &mut missing,
                name,
                &format!("container securityContext.{key}"),
                value,
                &container["securityContext"][key],
            );
        }
        for volume in want["volumes"].as_array().into_iter().flatten() {
            let found = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|rendered| rendered["name"] == volume["name"]);
            check(
                &mut missing,
                name,
                "volume",
                volume,
                found.unwrap_or(&Value::Null),
            );
        }
        for mount in want["volume_mounts"].as_array().into_iter().flatten() {
            let found = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|rendered| rendered["mountPath"] == mount["mountPath"]);
            check(
                &mut missing,
                name,
                "volumeMount",
                mount,
                found.unwrap_or(&Value::Null),
            );
        }
        for (key, value) in want["pod_annotations"].as_object().into_iter().flatten() {
            check(
                &mut missing,
                name,
                &format!("pod annotation {key}"),
                value,
                &deployment["spec"]["template"]["metadata"]["annotations"][key],
            );
        }
        let expected_services: BTreeSet<String> = want["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|service| service["name"].as_str().map(str::to_owned))
            .collect();
        let rendered_services: BTreeSet<String> = objects
            .iter()
            .filter(|object| {
                object["kind"] == "Service"
                    && object["metadata"]["labels"]["app.kubernetes.io/name"] == name.as_str()
            })
            .filter_map(|object| object["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        if expected_services != rendered_services {
            missing.push(format!(
                "{name}: Services: upstream {expected_services:?}, rendered {rendered_services:?}"
            ));
        }
        for service in want["services"].as_array().into_iter().flatten() {
            let Some(rendered) = service["name"]
                .as_str()
                .and_then(|service| find(&objects, "Service", service))
            else {
                continue;
            };
            check(
                &mut missing,
                name,
                "Service type",
                &service["type"],
                &rendered["spec"]["type"],
            );
            let ports: Vec<Value> = rendered["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| {
                    serde_json::json!({"name": port["name"], "port": port["port"], "targetPort": port["targetPort"]})
                })
                .collect();
            check(
                &mut missing,
                name,
                "Service ports",
                &service["ports"],
                &Value::from(ports),
            );
        }
    }
    assert!(
        missing.is_empty(),
        "rendered prod-us leaves out what upstream specifies:\n{}",
        missing.join("\n")
    );
}

#[test]
fn patches_and_manifests_reach_their_objects() {
    let us = as_json(&rendered(&root(), "prod-us"));
    let frontend = find(&us, "Deployment", "frontend").expect("the frontend");
    assert_eq!(
        frontend["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    let budget = find(&us, "PodDisruptionBudget", "frontend").expect("the prod manifest");
    assert_eq!(budget["metadata"]["namespace"], "boutique-prod-us");
    assert_eq!(
        budget["metadata"]["labels"]["tier.dev/environment"],
        "prod-us"
    );
    assert_eq!(
        find(&us, "Ingress", "frontend").expect("prod-us's host")["spec"]["rules"][0]["host"],
        "shop.example.com"
    );

    let eu = as_json(&rendered(&root(), "prod-eu"));
    let frontend = find(&eu, "Deployment", "frontend").expect("the frontend");
    assert_eq!(
        frontend["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/machine-family"],
        "e2"
    );
    assert!(frontend["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null());

    let stage = as_json(&rendered(&root(), "stage"));
    assert!(find(&stage, "PodDisruptionBudget", "frontend").is_none());
    assert!(find(&stage, "Ingress", "frontend").is_none());
    assert!(
        find(&stage, "Service", "loadgenerator").is_none(),
        "a worker with service = false has no Service"
    );
}

/// The checks a project's README lists as failing on purpose, each with a reason.
fn accepted_checks(project: &Path) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(project.join("README.md")).expect("the README");
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|id| id.starts_with("CKV"))
        .map(str::to_owned)
        .collect()
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the validators are external tools run once, with their output checked"
)]
fn every_environment_passes_kubernetes_validate_and_checkov() {
    // checkov skips hidden directories, and tempfile's default names start with a dot.
    let dir = tempfile::Builder::new()
        .prefix("boutique-")
        .tempdir()
        .expect("a temporary directory");
    let sample = root().join("../sample-app");
    let mut sets: Vec<(PathBuf, Vec<Object>, PathBuf)> = Vec::new();
    for environment in ["stage", "prod-eu", "prod-us"] {
        sets.push((
            dir.path().join(environment),
            rendered(&root(), environment),
            root(),
        ));
    }
    sets.push((
        dir.path().join("sample-prod"),
        rendered(&sample, "prod"),
        sample,
    ));
    let mut files = Vec::new();
    for (out, objects, _) in &sets {
        files.extend(write_dir(objects, out).expect("writes"));
    }
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run kubernetes-validate ({error}); install it with `pip install kubernetes-validate`")
        });
    assert!(
        output.status.success(),
        "kubernetes-validate rejected the manifests:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    for (out, _, project) in &sets {
        let accepted = accepted_checks(project);
        assert!(
            accepted.len() >= 3,
            "the README lists its accepted checks: {accepted:?}"
        );
        let output = std::process::Command::new("checkov")
            .args([
                "--framework",
                "kubernetes",
                "--compact",
                "--quiet",
                "--output",
                "json",
                "-d",
            ])
            .arg(out)
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run checkov ({error}); install it with `pip install checkov`")
            });
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "checkov printed no JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        let report = if report.is_array() {
            &report[0]
        } else {
            &report
        };
        assert!(
            report["summary"]["passed"].as_u64().unwrap_or(0) > 100,
            "checkov ran its checks on {}: {}",
            out.display(),
            report["summary"]
        );
        let unexpected: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|check| !accepted.contains(check["check_id"].as_str().unwrap_or_default()))
            .map(|check| {
                format!(
                    "{} {} ({})",
                    check["check_id"].as_str().unwrap_or_default(),
                    check["check_name"].as_str().unwrap_or_default(),
                    check["resource"].as_str().unwrap_or_default()
                )
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "checkov failed checks the README does not list, in {}:\n{}",
            out.display(),
            unexpected.join("\n")
        );
    }
}
