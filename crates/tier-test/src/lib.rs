//! Test support for tier: a project in a temporary directory, the `tier` binary run inside it
//! with stable output, and filters that make snapshots independent of the machine.

use std::path::{Path, PathBuf};

pub mod api_server;
pub mod browser;
mod context;
pub mod etcd;
pub mod fake_kube;

pub use assert_cmd;
pub use context::{COMMON_FILTERS, FollowedChild, Run, Stream, TestContext, escape, with_filters};
pub use insta;

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
    assert_cmd::Command::from_std(tier_process())
}

/// The same as [`tier()`], as a process to start in the background.
#[expect(
    clippy::disallowed_methods,
    reason = "tests run the built binary itself, with the environment set here"
)]
pub fn tier_process() -> std::process::Command {
    let mut process = std::process::Command::new(tier_binary());
    process
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("TIER_PROJECT")
        .env_remove("RUST_LOG");
    process
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
        // Build output and runtime state are not part of a project's files.
        if entry.file_name() == "target" || entry.file_name() == ".tier" {
            continue;
        }
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a fixture file");
        }
    }
}

impl TestProject {
    /// A copy of `examples/sample-app` whose `target/release/` holds the sample binaries
    /// that cargo built for this test run.
    pub fn sample_app() -> TestProject {
        TestProject::example(
            "examples/sample-app",
            &["sample-backend", "sample-frontend"],
        )
    }

    /// A copy of an example project whose `target/release/` holds the named binaries that
    /// cargo built for this test run.
    pub fn example(relative_to_repo: &str, binaries: &[&str]) -> TestProject {
        let project = TestProject::copy_of(relative_to_repo);
        project.link_binaries(binaries);
        project
    }

    /// Links the named binaries of this test run into the project's `target/release/`, where
    /// the examples' commands point.
    pub fn link_binaries(&self, binaries: &[&str]) {
        let release = self.path().join("target/release");
        std::fs::create_dir_all(&release).expect("create target/release");
        let built = tier_binary()
            .parent()
            .map(Path::to_path_buf)
            .expect("the build directory");
        for name in binaries {
            let binary = built.join(name);
            assert!(
                binary.exists(),
                "{} is not built: run `cargo build --workspace`",
                binary.display()
            );
            std::os::unix::fs::symlink(&binary, release.join(name)).expect("link a binary");
        }
    }
}

/// A local environment started with `tier up <env> -d`, stopped with `tier down` when dropped,
/// so a failing test leaves nothing running.
pub struct RunningEnv<'a> {
    pub(crate) project: &'a TestProject,
    pub(crate) environment: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
    pub(crate) env: String,
}

impl<'a> RunningEnv<'a> {
    /// `tier up <env> -d --set ...`, which waits until every service is ready.
    pub fn up(project: &'a TestProject, env: &str, sets: &[&str]) -> RunningEnv<'a> {
        RunningEnv::start(project, &[], env, sets, &[])
    }

    /// `tier up <env> -d --no-wait --set ...`.
    pub fn up_no_wait(project: &'a TestProject, env: &str, sets: &[&str]) -> RunningEnv<'a> {
        RunningEnv::start(project, &[], env, sets, &["--no-wait"])
    }

    pub(crate) fn start(
        project: &'a TestProject,
        environment: &[(std::ffi::OsString, Option<std::ffi::OsString>)],
        env: &str,
        sets: &[&str],
        flags: &[&str],
    ) -> RunningEnv<'a> {
        let running = RunningEnv {
            project,
            environment: environment.to_vec(),
            env: env.to_owned(),
        };
        let mut command = running.tier();
        command.args(["up", env, "-d"]).args(flags);
        for set in sets {
            command.args(["--set", set]);
        }
        let output = command.output().expect("run tier up");
        assert!(
            output.status.success(),
            "tier up {env} failed:\n{}{}\nagent log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(project.path().join(format!(".tier/{env}/agent.log")))
                .unwrap_or_default()
        );
        running
    }

    /// `tier status <env> --output json`, the environment's entry.
    pub fn status(&self) -> serde_json::Value {
        let output = self
            .tier()
            .args(["status", &self.env, "--output", "json"])
            .output()
            .expect("run tier status");
        let all: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
                panic!(
                    "tier status printed no JSON ({error}): {}",
                    String::from_utf8_lossy(&output.stdout)
                )
            });
        all[0]["status"].clone()
    }

    fn tier(&self) -> std::process::Command {
        let mut process = tier_process();
        process.arg("--project").arg(self.project.path());
        context::apply_environment(&mut process, &self.environment);
        process
    }
}

impl Drop for RunningEnv<'_> {
    fn drop(&mut self) {
        // Confirmed, so a protected environment's agent does not outlive its test.
        let _ = self
            .tier()
            .args(["down", &self.env, "--confirm", &self.env])
            .output();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A plain HTTP/1.1 GET to 127.0.0.1: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_call(port, "GET", path, None, None)
}

/// One HTTP/1.1 request to 127.0.0.1 on a connection of its own, with an optional bearer token
/// and JSON body: the status code (0 when nothing came back) and the body.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    let (status, _, body) = http_request(port, method, path, &headers, body);
    (status, body)
}

/// A GET to 127.0.0.1 with the given request headers: the status code, the response's head
/// (status line and headers) and its body.
pub fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    http_request(port, "GET", path, headers, None)
}

fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new(), "connection refused".to_owned());
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new(), "could not send".to_owned());
    }
    let mut answer = String::new();
    if let Err(error) = stream.read_to_string(&mut answer) {
        return (0, String::new(), format!("could not read: {error}"));
    }
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Waits for a condition, checking every 50 ms, and fails the test when `within` passes.
#[expect(
    clippy::disallowed_methods,
    reason = "this is the waiting helper tests use instead of sleeping"
)]
pub fn wait_for(within: std::time::Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what} after {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A client that keeps one HTTP/1.1 connection open across requests, as browsers and load
/// generators do. Answers must carry a `content-length`.
pub struct KeepAliveClient {
    port: u16,
    stream: Option<std::io::BufReader<std::net::TcpStream>>,
}

impl KeepAliveClient {
    pub fn new(port: u16) -> KeepAliveClient {
        KeepAliveClient { port, stream: None }
    }

    /// GET on the open connection (opening one if needed): the status and the body, or why it
    /// failed. A failed request closes the connection.
    pub fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let result = self.try_get(path);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_get(&mut self, path: &str) -> Result<(u16, String), String> {
        use std::io::{BufRead, Read, Write};
        if self.stream.is_none() {
            let stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .map_err(|error| error.to_string())?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .map_err(|error| error.to_string())?;
            self.stream = Some(std::io::BufReader::new(stream));
        }
        let reader = self.stream.as_mut().ok_or("no connection")?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|error| error.to_string())?;
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .map_err(|error| error.to_string())?;
        let status = status_line
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .ok_or(format!("no status line: {status_line:?}"))?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|error| error.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad content-length {value}"))?;
            }
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|error| error.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
