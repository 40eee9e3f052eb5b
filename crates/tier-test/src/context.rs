//! One context per end-to-end test: a project directory, the `tier` binary run inside it with
//! the same environment every time, and the filters that make its output a stable snapshot.

use std::ffi::{OsStr, OsString};
use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::{RunningEnv, TestProject};

/// A project and how `tier` runs in it: extra environment variables for every command and the
/// filters its output goes through before it is snapshotted.
pub struct TestContext {
    project: TestProject,
    environment: Vec<(OsString, Option<OsString>)>,
    filters: Vec<(String, String)>,
}

impl TestContext {
    /// A context around an existing project.
    pub fn new(project: TestProject) -> TestContext {
        let mut filters = Vec::new();
        let path = project.path().display().to_string();
        if let Ok(canonical) = std::fs::canonicalize(project.path()) {
            let canonical = canonical.display().to_string();
            if canonical != path {
                filters.push((escape(&canonical), "[PROJECT]".to_owned()));
            }
        }
        filters.push((escape(&path), "[PROJECT]".to_owned()));
        // Revisions and changes record `user@host`.
        if let Ok(host) = std::fs::read_to_string("/etc/hostname")
            && !host.trim().is_empty()
        {
            filters.push((escape(&format!("@{}", host.trim())), "@[HOST]".to_owned()));
        }
        TestContext {
            project,
            environment: vec![("USER".into(), Some("tester".into()))],
            filters,
        }
    }

    /// An empty project directory.
    pub fn empty() -> TestContext {
        TestContext::new(TestProject::empty())
    }

    /// A project made of the given files (path relative to the root, contents).
    pub fn with_files(files: &[(&str, &str)]) -> TestContext {
        TestContext::new(TestProject::with_files(files))
    }

    /// A copy of a directory of the repository, e.g. `examples/sample-app`.
    pub fn copy_of(relative_to_repo: &str) -> TestContext {
        TestContext::new(TestProject::copy_of(relative_to_repo))
    }

    /// A copy of `examples/sample-app` with this test run's sample binaries in place.
    pub fn sample_app() -> TestContext {
        TestContext::new(TestProject::sample_app())
    }

    pub fn project(&self) -> &TestProject {
        &self.project
    }

    pub fn path(&self) -> &Path {
        self.project.path()
    }

    pub fn write(&self, path: &str, text: &str) {
        self.project.write(path, text);
    }

    pub fn read(&self, path: &str) -> String {
        self.project.read(path)
    }

    /// Sets an environment variable for every command this context runs.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestContext {
        self.environment
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from every command this context runs.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut TestContext {
        self.environment.push((key.as_ref().to_owned(), None));
        self
    }

    /// Adds a filter for this context's snapshots: every match of `regex` becomes
    /// `replacement`. Filters apply in the order they were added, before the common ones.
    pub fn filter(&mut self, regex: &str, replacement: &str) -> &mut TestContext {
        self.filters
            .push((regex.to_owned(), replacement.to_owned()));
        self
    }

    /// Replaces a literal text, such as a path outside the project, in this context's
    /// snapshots.
    pub fn filter_text(&mut self, text: &str, replacement: &str) -> &mut TestContext {
        self.filter(&escape(text), replacement)
    }

    /// A free TCP port on 127.0.0.1, shown as `[PORT]` in this context's snapshots.
    pub fn free_port(&mut self) -> u16 {
        let port = crate::free_port();
        self.filter(&format!(r"\b{port}\b"), "[PORT]");
        port
    }

    /// `tier <args>` in this project, not yet run, for a test that sets its own variables or
    /// stdin; [`TestContext::run`] runs it.
    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.process(args))
    }

    /// Runs `tier <args>` in this project.
    pub fn tier(&self, args: &[&str]) -> Run {
        self.run(self.command(args))
    }

    /// Runs a command made by [`TestContext::command`].
    pub fn run(&self, mut command: assert_cmd::Command) -> Run {
        let output = command.output().expect("run tier");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            filters: self.filters.clone(),
        }
    }

    /// `tier <args> --output json` in this project, which must succeed: what it printed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        self.tier(&args).success().json()
    }

    /// `tier up <env> -d --set ...`, which waits until every service is ready; the guard runs
    /// `tier down <env>` when dropped.
    pub fn up(&self, env: &str, sets: &[&str]) -> RunningEnv<'_> {
        RunningEnv::start(&self.project, &self.environment, env, sets, &[])
    }

    /// `tier up <env> -d --no-wait --set ...`.
    pub fn up_no_wait(&self, env: &str, sets: &[&str]) -> RunningEnv<'_> {
        RunningEnv::start(&self.project, &self.environment, env, sets, &["--no-wait"])
    }

    /// A guard that runs `tier down <env>` when dropped, for an environment a test starts
    /// itself (with `tier apply`, say).
    pub fn down_on_drop(&self, env: &str) -> RunningEnv<'_> {
        RunningEnv {
            project: &self.project,
            environment: self.environment.clone(),
            env: env.to_owned(),
        }
    }

    /// Starts `tier <args>` in the background; its output lines are read as they come.
    pub fn spawn(&self, args: &[&str]) -> FollowedChild {
        let mut process = self.process(args);
        process
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        FollowedChild::start(process, args)
    }

    /// The filters of this context's snapshots followed by the common ones, in order.
    pub fn filters(&self) -> Vec<(String, String)> {
        all_filters(&self.filters)
    }

    fn process(&self, args: &[&str]) -> std::process::Command {
        let mut process = crate::tier_process();
        process.arg("--project").arg(self.project.path()).args(args);
        apply_environment(&mut process, &self.environment);
        process
    }
}

pub(crate) fn apply_environment(
    process: &mut std::process::Command,
    environment: &[(OsString, Option<OsString>)],
) {
    for (key, value) in environment {
        match value {
            Some(value) => process.env(key, value),
            None => process.env_remove(key),
        };
    }
}

/// What one run of `tier` printed, with its exit code (-1 when a signal ended it).
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    filters: Vec<(String, String)>,
}

impl Run {
    /// Checks that the run exited with 0.
    #[track_caller]
    pub fn success(self) -> Run {
        self.expect_code(0)
    }

    /// Checks the exit code, showing everything the run printed when it is another.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "tier exited with {}, expected {code}\n{}",
            self.code, self
        );
        self
    }

    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("tier printed no JSON ({error})\n{self}"))
    }

    /// The run as a snapshot shows it, before filtering.
    pub fn snapshot(&self) -> String {
        format!(
            "success: {}\nexit_code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.code == 0,
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// The filters this run's snapshot goes through, in order.
    pub fn filters(&self) -> Vec<(String, String)> {
        all_filters(&self.filters)
    }

    /// Adds a filter for this run's snapshot, before the common ones.
    pub fn filter(mut self, regex: &str, replacement: &str) -> Run {
        self.filters
            .push((regex.to_owned(), replacement.to_owned()));
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.snapshot())
    }
}

/// The filters every snapshot of `tier`'s output goes through, after a context's own: the
/// parts of it that differ from run to run and machine to machine.
pub const COMMON_FILTERS: &[(&str, &str)] = &[
    // Addresses of listeners that tier or the test picked.
    (r"(127\.0\.0\.1|localhost|\[::1\]):\d{2,5}\b", "$1:[PORT]"),
    (r"\b(pid[=:]? ?|PID )\d+\b", "${1}[PID]"),
    // Times of day and dates.
    (
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        "[TIME]",
    ),
    (r"\b\d{2}:\d{2}:\d{2}(\.\d+)?\b", "[TIME]"),
    // Measured durations; declared ones, such as a deadline of `2s`, are whole numbers.
    (r"\b\d+\.\d+ ?(s|ms|µs|us)\b", "[ELAPSED]"),
    (r"\b\d+ ?(ms|µs|us)\b", "[ELAPSED]"),
    // The digests of programs built for this run and the fingerprints of secret values.
    (r"\bsha256:[0-9a-f]{8,64}\b", "sha256:[DIGEST]"),
    (r"\bhmac:[0-9a-f]{8,64}\b", "hmac:[DIGEST]"),
    // Content-addressed names: stored programs and config files.
    (r"\b[0-9a-f]{16,64}\b", "[HASH]"),
];

fn all_filters(own: &[(String, String)]) -> Vec<(String, String)> {
    own.iter()
        .cloned()
        .chain(
            COMMON_FILTERS
                .iter()
                .map(|(regex, replacement)| ((*regex).to_owned(), (*replacement).to_owned())),
        )
        .collect()
}

/// `text` as a regular expression that matches exactly it.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Snapshots a [`Run`] (or the [`TestContext::tier`] call that makes one) as its success, exit
/// code, stdout and stderr, through the run's filters; evaluates to the run.
///
/// `tier_snapshot!(run)` names the snapshot after the test, `tier_snapshot!("name", run)`
/// names it, and `tier_snapshot!(run, @"...")` keeps it inline.
#[macro_export]
macro_rules! tier_snapshot {
    ($run:expr, @$snapshot:literal) => {{
        let run: $crate::Run = $run;
        $crate::with_filters(&run.filters(), || {
            $crate::insta::assert_snapshot!(run.snapshot(), @$snapshot);
        });
        run
    }};
    ($name:expr, $run:expr) => {{
        let run: $crate::Run = $run;
        $crate::with_filters(&run.filters(), || {
            $crate::insta::assert_snapshot!($name, run.snapshot());
        });
        run
    }};
    ($run:expr) => {{
        let run: $crate::Run = $run;
        $crate::with_filters(&run.filters(), || {
            $crate::insta::assert_snapshot!(run.snapshot());
        });
        run
    }};
}

/// Runs `assert` with insta's filters set to `filters`, in order.
pub fn with_filters(filters: &[(String, String)], assert: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    for (regex, replacement) in filters {
        settings.add_filter(regex, replacement.as_str());
    }
    settings.bind(assert);
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A `tier` process running in the background, its output read line by line as it comes;
/// killed when dropped.
pub struct FollowedChild {
    child: std::process::Child,
    lines: mpsc::Receiver<(Stream, String)>,
    seen: Vec<(Stream, String)>,
    args: Vec<String>,
}

impl FollowedChild {
    fn start(mut process: std::process::Command, args: &[&str]) -> FollowedChild {
        let mut child = process.spawn().expect("start tier");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        forward_lines(stdout, Stream::Stdout, sender.clone());
        forward_lines(stderr, Stream::Stderr, sender);
        FollowedChild {
            child,
            lines,
            seen: Vec::new(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next line on either stream, up to `within`.
    pub fn next_line(&mut self, within: Duration) -> Option<(Stream, String)> {
        let line = self.lines.recv_timeout(within).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits for a line on `stream` that contains `pattern`, and fails the test when none
    /// came within `within`; the lines before it are kept in [`FollowedChild::seen`].
    #[track_caller]
    pub fn wait_for_line(&mut self, stream: Stream, pattern: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next_line(left) {
                Some((from, line)) if from == stream && line.contains(pattern) => return line,
                Some(_) => {}
                None => panic!(
                    "tier {:?} printed no line with {pattern:?} on {stream:?} within {within:?}; it printed:\n{}",
                    self.args,
                    self.seen_text()
                ),
            }
        }
    }

    /// Whether the process has exited, without waiting.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("check on tier").is_some()
    }

    /// Every line read so far, in the order it was read.
    pub fn seen(&self) -> &[(Stream, String)] {
        &self.seen
    }

    /// Waits up to `within` for the process to exit, then reads the rest of its output: its
    /// exit code (-1 when a signal ended it).
    #[track_caller]
    pub fn wait(&mut self, within: Duration) -> i32 {
        let mut status = None;
        crate::wait_for(within, "tier to exit", || {
            status = self.child.try_wait().expect("wait for tier");
            status.is_some()
        });
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        status.and_then(|status| status.code()).unwrap_or(-1)
    }

    /// The lines read so far from `stream`, each ending in a newline.
    pub fn text(&self, stream: Stream) -> String {
        self.seen
            .iter()
            .filter(|(from, _)| *from == stream)
            .map(|(_, line)| format!("{line}\n"))
            .collect()
    }

    fn seen_text(&self) -> String {
        self.seen
            .iter()
            .map(|(stream, line)| format!("{stream:?}: {line}\n"))
            .collect()
    }
}

impl Drop for FollowedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(
    from: impl std::io::Read + Send + 'static,
    stream: Stream,
    sender: mpsc::Sender<(Stream, String)>,
) {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if sender.send((stream, line)).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{Run, TestContext};

    #[test]
    fn a_snapshot_hides_the_project_ports_pids_times_and_digests() {
        let mut context = TestContext::empty();
        let port = context.free_port();
        let run = Run {
            code: 1,
            stdout: format!(
                "{}/tier.toml\nexpose: {port}\nhttp://127.0.0.1:43123 (agent pid 4242)\nsha256:472d8334032a\n",
                context.path().display()
            ),
            stderr:
                "2026-12-04 02:14:18 UTC, 2026-12-04T02:14:18.5Z: took 1.23s then 45 ms within 2s\n"
                    .to_owned(),
            filters: context.filters.clone(),
        };
        crate::tier_snapshot!(run, @r"
        success: false
        exit_code: 1
        ----- stdout -----
        [PROJECT]/tier.toml
        expose: [PORT]
        http://127.0.0.1:[PORT] (agent pid [PID])
        sha256:[DIGEST]

        ----- stderr -----
        [TIME] UTC, [TIME]: took [ELAPSED] then [ELAPSED] within 2s
        ");
    }
}
