//! `tier store serve` in front of a real etcd 3.4, end to end: the real `tier` binary, a real
//! etcd started by `tier_test::etcd`, plain HTTP from the test. Without the etcd binary these
//! tests fail (naming `apt-get install -y etcd-server`); they never skip.
#![cfg(feature = "etcd")]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use tier_test::etcd::EtcdServer;
use tier_test::{TestProject, http_call, wait_for};

/// How long a server may take to start answering.
const STARTUP: Duration = Duration::from_secs(60);

/// A `tier store serve` child process, killed when dropped.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Served {
    /// Starts `tier store serve` and waits (bounded) until it answers an unauthenticated
    /// request with 401.
    fn start(project: &Path, backend: &str, env: &str, tokens: &Path, log: PathBuf) -> Served {
        let port = match tier_test::etcd::free_port() {
            Ok(port) => port,
            Err(error) => panic!("{error}"),
        };
        let stderr = match std::fs::File::create(&log) {
            Ok(file) => file,
            Err(error) => panic!("cannot create {}: {error}", log.display()),
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "the test drives the real tier binary as a long-running server"
        )]
        let mut command = std::process::Command::new(tier_test::tier_binary());
        command
            .arg("-C")
            .arg(project)
            .args(["store", "serve", "--backend", backend, "--env", env])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tokens")
            .arg(tokens)
            .env("NO_COLOR", "1")
            .env_remove("TIER_PROJECT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("cannot start tier store serve: {error}"),
        };
        let mut served = Served { child, port, log };
        wait_for(STARTUP, &format!("tier store serve on {port}"), || {
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!(
                    "tier store serve exited ({status}):\n{}",
                    std::fs::read_to_string(&served.log).unwrap_or_default()
                );
            }
            http_call(port, "GET", "/v1/kv/ping", None, None).0 == 401
        });
        served
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
        http_call(self.port, method, path, Some(token), body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd() -> EtcdServer {
    match EtcdServer::start_blocking(None) {
        Ok(server) => server,
        Err(error) => panic!("{error}"),
    }
}

/// The read-write token from a tokens file `tier store serve` made.
fn read_write_token(tokens: &Path) -> String {
    let text = match std::fs::read_to_string(tokens) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {}: {error}", tokens.display()),
    };
    let file: serde_json::Value = match serde_json::from_str(&text) {
        Ok(file) => file,
        Err(error) => panic!("{} is not JSON: {error}", tokens.display()),
    };
    match file["read_write"].as_str() {
        Some(token) => token.to_owned(),
        None => panic!("{} has no read_write token", tokens.display()),
    }
}

fn json(text: &str) -> serde_json::Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("not JSON ({error}): {text}"),
    }
}

/// Standard base64 with padding, for etcd's JSON gateway.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn tier_store_serve_in_front_of_etcd_serves_the_namespace_to_the_api_and_the_cli() {
    let etcd = etcd();
    let project = TestProject::sample_app();
    let scratch = TestProject::empty();
    let prod_tokens = scratch.path().join("prod/tokens.json");
    let prod = Served::start(
        project.path(),
        &format!("etcd://{}/tier/prod", etcd.endpoint()),
        "prod",
        &prod_tokens,
        scratch.path().join("prod.log"),
    );

    // Nothing without a token, nothing with a made-up one.
    assert_eq!(
        http_call(prod.port, "GET", "/v1/kv/app/limit", None, None).0,
        401
    );
    assert_eq!(
        prod.call("GET", "/v1/kv/app/limit", "tier_prod_rw_00", None)
            .0,
        401
    );

    let token = read_write_token(&prod_tokens);
    let (status, body) = prod.call("PUT", "/v1/kv/app/limit", &token, Some(r#"{"value": 42}"#));
    assert_eq!(status, 200, "{body}");
    let revision = json(&body)["revision"].as_u64();
    assert!(revision.is_some(), "{body}");
    let (status, body) = prod.call("GET", "/v1/kv/app/limit", &token, None);
    assert_eq!(status, 200, "{body}");
    let read = json(&body);
    assert_eq!(read["value"], 42);
    assert_eq!(read["mod_revision"].as_u64(), revision);
    let (status, body) = prod.call("GET", "/v1/kv/app/limit?history", &token, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["history"][0]["revision"].as_u64(), revision);

    // In etcd, the key lives under the namespace (read through etcd's own JSON gateway).
    let range = format!(r#"{{"key": "{}"}}"#, base64(b"tier/prod/app/limit"));
    let (status, body) = http_call(
        etcd.client_port(),
        "POST",
        "/v3/kv/range",
        None,
        Some(&range),
    );
    assert_eq!(status, 200, "{body}");
    let kvs = json(&body)["kvs"].clone();
    assert_eq!(
        kvs[0]["value"].as_str(),
        Some(base64(b"42").as_str()),
        "{body}"
    );

    // Another namespace of the same etcd does not see it.
    let stage_tokens = scratch.path().join("stage/tokens.json");
    let stage = Served::start(
        project.path(),
        &format!("etcd://{}/tier/stage", etcd.endpoint()),
        "stage",
        &stage_tokens,
        scratch.path().join("stage.log"),
    );
    let stage_token = read_write_token(&stage_tokens);
    let (status, body) = stage.call("GET", "/v1/kv/app/limit", &stage_token, None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = stage.call("GET", "/v1/kv?prefix=", &stage_token, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["kvs"], serde_json::json!([]));
    // And prod's token is refused there as another environment's.
    assert_eq!(stage.call("GET", "/v1/kv/app/limit", &token, None).0, 403);

    // The CLI reaches a kubernetes environment's store with --store and TIER_TOKEN.
    let output = tier_test::tier()
        .arg("-C")
        .arg(project.path())
        .args(["config", "get", "prod", "app/limit", "--store"])
        .arg(format!("http://127.0.0.1:{}", prod.port))
        .env("TIER_TOKEN", &token)
        .env_remove("TIER_STORE_URL")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!("cannot run tier config get: {error}"),
    };
    assert!(
        output.status.success(),
        "tier config get failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");
}
