//! The one place that starts processes. Every replica runs in its own process group, so a stop
//! reaches everything it started, and is bound to the agent's life: on Linux the kernel kills
//! it when the agent dies, even by SIGKILL.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What to start.
#[derive(Clone, Debug)]
pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(OsString, OsString)>,
}

/// Where a command's program is: a path with a `/` is relative to the project directory, a
/// bare name is looked up in `PATH`. Says why when it cannot be run.
pub fn find_program(program: &str, project_dir: &Path) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = project_dir.join(program);
        return check_executable(&path).map(|()| path);
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| check_executable(candidate).is_ok())
        .ok_or_else(|| format!("`{program}` is not a program on PATH"))
}

fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("cannot read {}: {error}", path.display()),
    })?;
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{} is not executable (chmod +x it)",
            path.display()
        ));
    }
    Ok(())
}

/// Starts a replica: stdin closed, stdout and stderr piped to the agent, its own process
/// group, and a death signal tied to the agent.
///
/// Must be called from a tokio worker thread, never from `spawn_blocking`: Linux sends the
/// death signal when the *thread* that forked the child exits, and worker threads live as long
/// as the runtime, while blocking-pool threads come and go.
#[expect(clippy::disallowed_methods, reason = "this is the spawning helper")]
pub fn spawn_replica(spawn: &Spawn) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&spawn.program);
    command
        .args(&spawn.args)
        .current_dir(&spawn.dir)
        .env_clear()
        .envs(inherited_environment())
        .envs(spawn.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    bind_to_parent(command.as_std_mut());
    command.spawn()
}

/// Starts an exec probe's command: like a replica (its own process group, bound to the
/// agent, the replica's variables), its output discarded, killed when the probe gives up.
#[expect(clippy::disallowed_methods, reason = "this is the spawning helper")]
pub fn spawn_probe(spawn: &Spawn) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&spawn.program);
    command
        .args(&spawn.args)
        .current_dir(&spawn.dir)
        .env_clear()
        .envs(inherited_environment())
        .envs(spawn.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    bind_to_parent(command.as_std_mut());
    command.spawn()
}

/// Starts a detached agent: a new session, so it outlives the command that started it and
/// no terminal signal reaches it. Its output goes to `log`; `input` is written to its stdin,
/// which is then closed (how secret values reach it without a file or a variable). It gets
/// only the few variables a program needs, not the shell's: a secret exported for `tier`
/// does not sit in the agent's environment.
#[expect(clippy::disallowed_methods, reason = "this is the spawning helper")]
pub fn spawn_detached(
    program: &Path,
    args: &[OsString],
    dir: &Path,
    log: std::fs::File,
    input: &[u8],
) -> std::io::Result<std::process::Child> {
    use std::io::Write;
    let mut command = std::process::Command::new(program);
    let stderr = log.try_clone()?;
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(inherited_environment())
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(stderr);
    new_session(&mut command);
    let mut child = command.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // An agent that died at once closed its end; its log says why.
        let _ = stdin.write_all(input);
    }
    Ok(child)
}

/// A few variables a program needs to behave (PATH, HOME, locale); nothing else of the
/// agent's environment leaks into a replica.
fn inherited_environment() -> impl Iterator<Item = (OsString, OsString)> {
    const KEEP: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "RUST_BACKTRACE",
        "RUST_LOG",
    ];
    std::env::vars_os().filter(|(key, _)| key.to_str().is_some_and(|key| KEEP.contains(&key)))
}

#[expect(
    unsafe_code,
    reason = "pre_exec is the only way to set the parent-death signal in the child"
)]
fn bind_to_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                // The agent may have died between fork and prctl; then no signal will come.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    nix::libc::_exit(1);
                }
            }
            Ok(())
        });
    }
}

#[expect(
    unsafe_code,
    reason = "pre_exec is the only way to call setsid in the child"
)]
fn new_session(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// Sends a signal to a replica's whole process group. A group that is already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Whether a process is alive (signal 0).
pub fn is_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok())
}

/// Runs a command to its end in `dir`, its output captured: for the tools tier drives (cargo,
/// npm, a service's tests), not for replicas.
#[expect(clippy::disallowed_methods, reason = "this is the spawning helper")]
pub fn run_to_end(
    program: &str,
    args: &[&str],
    dir: &Path,
) -> std::io::Result<std::process::Output> {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
}

/// Whether a program can be found on PATH.
pub fn on_path(program: &str) -> bool {
    find_program(program, Path::new(".")).is_ok()
}
