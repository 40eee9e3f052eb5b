//! `tier store serve --backend file:PATH` end to end: the real `tier` binary serving a store
//! file of its own, with flags declared on the command line (as the store's pod gets them
//! beside a kubernetes environment), checked with plain HTTP.

use std::process::{Child, Stdio};
use std::time::Duration;

use tier_test::{TestProject, free_port, http_call, wait_for};

struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, flags: &str) -> Served {
    let port = free_port();
    #[expect(
        clippy::disallowed_methods,
        reason = "the test drives the real tier binary as a long-running server"
    )]
    let mut command = std::process::Command::new(tier_test::tier_binary());
    command
        .arg("-C")
        .arg(dir)
        .args(["store", "serve", "--env", "demo", "--backend"])
        .arg(format!("file:{}", dir.join("store.redb").display()))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tokens")
        .arg(dir.join("tokens.json"))
        .args(["--flags", flags])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().expect("start tier store serve");
    let mut served = Served { child, port };
    wait_for(
        Duration::from_secs(30),
        "tier store serve to answer",
        || {
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("tier store serve exited: {status}");
            }
            http_call(port, "GET", "/v1/flags", None, None).0 == 401
        },
    );
    served
}

#[test]
fn a_store_file_is_served_with_the_flags_given_on_the_command_line() {
    let project = TestProject::empty();
    let served = serve(
        project.path(),
        r#"{"beta": {"default": false, "description": "the beta page"}, "limit": {"default": 5}}"#,
    );
    let tokens: serde_json::Value =
        serde_json::from_str(&project.read("tokens.json")).expect("the tokens file");
    let write = tokens["read_write"].as_str().expect("a read-write token");

    let (status, body) = http_call(served.port, "GET", "/v1/flags", Some(write), None);
    assert_eq!(status, 200, "{body}");
    let flags: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(flags["flags"]["beta"]["value"], false, "{body}");
    assert_eq!(flags["flags"]["beta"]["description"], "the beta page");
    assert_eq!(flags["flags"]["limit"]["value"], 5);

    let (status, body) = http_call(
        served.port,
        "PUT",
        "/v1/flags/beta",
        Some(write),
        Some(r#"{"value": true}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = http_call(served.port, "GET", "/v1/flags/beta", Some(write), None);
    let beta: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(beta["enabled"], true, "{body}");
}

#[test]
fn flags_that_are_not_a_map_of_declarations_are_refused() {
    let project = TestProject::empty();
    let output = project
        .tier()
        .args([
            "store",
            "serve",
            "--env",
            "demo",
            "--backend",
            "file:store.redb",
        ])
        .args(["--flags", r#"{"beta": true}"#])
        .output()
        .expect("run tier");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--flags: not a map of flags"), "{stderr}");
    assert!(
        !project.path().join("store.redb").exists(),
        "nothing was made"
    );
}
