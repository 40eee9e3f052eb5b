//! Starting one replica's process and the tasks around it: the pumps that copy its output to
//! its log, the task that waits for its exit, and its probes. Each sends what it sees to the
//! loop as an event; none of them decides anything.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tier_model::address;
use tier_model::environment::{Health, Probe, Service, VolumeSource};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::prepare::free_port;
use super::supervisor::{self, Replica, Supervised};
use super::{Agent, Event, status};
use crate::config_file::LocalAddresses;
use crate::health::Check;
use crate::logs::{self, LogFile, Stream};
use crate::probes::{ProbeKind, ProbePlan, Timed, run_probes};
use crate::spawn::{self, Spawn};
use tier_state::paths::EnvDir;

/// What the loop keeps of one spawn of a replica.
pub(super) struct Handles {
    /// Stops the spawn's probes.
    stop_probes: CancellationToken,
    /// The last line the replica wrote, shared with its output pumps; it carries over to the
    /// replica's next spawn, so a restart that prints nothing still explains its exit.
    last_output: Arc<Mutex<Option<String>>>,
}

impl Handles {
    pub fn stop_probes(&self) {
        self.stop_probes.cancel();
    }

    pub fn last_output(&self) -> Option<String> {
        self.last_output.lock().ok().and_then(|line| line.clone())
    }
}

impl Agent {
    /// Spawns one replica as the generation the supervisor gave it, with a fresh port. A
    /// replica that cannot start is reported as exited, so its restart policy applies.
    pub(super) fn spawn_replica(
        &mut self,
        name: &str,
        id: u32,
        generation: u64,
        previous: Option<u64>,
    ) {
        let last_output = previous
            .and_then(|previous| self.handles.remove(&previous))
            .map(|handles| handles.last_output)
            .unwrap_or_default();
        let stop_probes = CancellationToken::new();
        self.handles.insert(
            generation,
            Handles {
                stop_probes: stop_probes.clone(),
                last_output: Arc::clone(&last_output),
            },
        );
        let Some((spec, program, variables)) = self
            .supervisor
            .service(name)
            .and_then(|service| {
                let replica = service
                    .replicas
                    .iter()
                    .find(|replica| replica.id == id && replica.generation == generation)?;
                Some((service, replica))
            })
            .map(|(service, replica)| {
                (
                    Arc::clone(&replica.spec),
                    Arc::clone(&replica.program),
                    self.replica_environment(name, service, replica),
                )
            })
        else {
            return;
        };
        let events = self.events.clone();
        let service = name.to_owned();
        let exited = move |how: String| {
            let _ = events.send(Event::Replica(supervisor::Event::Exited {
                service,
                replica: id,
                generation,
                success: false,
                how,
                output: None,
            }));
        };
        let port = match free_port() {
            Ok(port) => port,
            Err(error) => return exited(format!("no free port: {error}")),
        };
        self.supervisor.started(name, id, generation, port, None);
        let mut variables: Vec<(OsString, OsString)> = variables
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        variables.push(("PORT".into(), port.to_string().into()));
        match self.secrets.variables(name, &spec.secret_fingerprints) {
            Ok(secrets) => variables.extend(secrets),
            Err(secret) => {
                return exited(format!(
                    "the value of secret {secret} was not handed to the agent; apply again"
                ));
            }
        }
        let command = spec.command.clone().unwrap_or_default();
        let spawn = Spawn {
            program: program.as_ref().clone(),
            args: command
                .iter()
                .skip(1)
                .chain(spec.args.iter().flatten())
                .cloned()
                .collect(),
            dir: self.root.clone(),
            env: variables,
        };
        let source = format!("{name}-{id}");
        if let Err(error) = prepare_volumes(&self.dir, name, id, &spec) {
            return exited(format!("cannot make its volumes: {error}"));
        }
        let mut child = match spawn::spawn_replica(&spawn) {
            Ok(child) => child,
            Err(error) => {
                return exited(format!(
                    "could not start {}: {error}",
                    spawn.program.display()
                ));
            }
        };
        self.supervisor
            .started(name, id, generation, port, child.id());
        let log = match LogFile::open(&self.dir.replica_log(name, id), logs::ROTATE_BYTES) {
            Ok(log) => Some(Arc::new(Mutex::new(log))),
            Err(error) => {
                eprintln!("{}: {source}: cannot open its log: {error}", self.env);
                None
            }
        };
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(
                stdout,
                Stream::Out,
                log.clone(),
                Arc::clone(&last_output),
                self.echo,
                source.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(
                stderr,
                Stream::Err,
                log,
                Arc::clone(&last_output),
                self.echo,
                source,
            ));
        }
        let events = self.events.clone();
        let service = name.to_owned();
        tokio::spawn(async move {
            let (success, how) = match child.wait().await {
                Ok(status) => (status.success(), describe_exit(status)),
                Err(error) => (false, format!("could not be waited for: {error}")),
            };
            let _ = events.send(Event::Replica(supervisor::Event::Exited {
                service,
                replica: id,
                generation,
                success,
                how,
                output: None,
            }));
        });
        let plan = self.probe_plan(&spec, &spawn, port);
        let events = self.events.clone();
        let service = name.to_owned();
        let send = move |kind: ProbeKind, result: Result<(), String>| {
            events
                .send(Event::Replica(supervisor::Event::Probe {
                    service: service.clone(),
                    replica: id,
                    generation,
                    kind,
                    result,
                }))
                .is_ok()
        };
        tokio::spawn(async move {
            tokio::select! {
                () = stop_probes.cancelled() => {}
                () = run_probes(plan, port, send) => {}
            }
        });
    }

    /// The replica's probes, aimed at the port it was given.
    fn probe_plan(&self, spec: &Service, spawn: &Spawn, port: u16) -> ProbePlan {
        let probe_command = |argv: &[String]| Spawn {
            program: spawn::find_program(argv.first().map_or("", String::as_str), &self.root)
                .unwrap_or_else(|_| PathBuf::from(argv.first().map_or("", String::as_str))),
            args: argv.iter().skip(1).cloned().collect(),
            dir: self.root.clone(),
            env: spawn.env.clone(),
        };
        let to_check = |health: &Health| -> Check {
            match health.probe(spec.port) {
                Some(Probe::Http {
                    path,
                    port: probe_port,
                    headers,
                }) => Check::Http {
                    path: path.to_owned(),
                    // The declared port means the replica's own port here, since every
                    // replica listens on the PORT it was given.
                    port: (probe_port != spec.port).then_some(probe_port),
                    headers: headers.clone(),
                },
                Some(Probe::Tcp(probe_port)) if probe_port == spec.port => Check::Tcp { port },
                Some(Probe::Tcp(probe_port)) => Check::Tcp { port: probe_port },
                Some(Probe::Grpc {
                    port: probe_port,
                    service,
                }) => Check::Grpc {
                    port: if probe_port == spec.port {
                        port
                    } else {
                        probe_port
                    },
                    service: service.to_owned(),
                },
                Some(Probe::Exec(argv)) => Check::Exec(probe_command(argv)),
                None => Check::Tcp { port },
            }
        };
        ProbePlan {
            readiness: spec.health.as_ref().map_or_else(
                || Timed {
                    check: if spec.service {
                        Check::Tcp { port }
                    } else {
                        Check::Running
                    },
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1),
                    initial_delay: Duration::ZERO,
                },
                |health| Timed::of(health, to_check(health)),
            ),
            liveness: spec
                .liveness
                .as_ref()
                .map(|health| Timed::of(health, to_check(health))),
            startup: spec
                .startup
                .as_ref()
                .map(|health| Timed::of(health, to_check(health))),
        }
    }

    /// The environment of a replica, as DESIGN.md lists it.
    fn replica_environment(
        &self,
        name: &str,
        service: &Supervised,
        replica: &Replica,
    ) -> Vec<(String, String)> {
        let mut variables = vec![
            ("ENV_NAME".to_owned(), self.env.clone()),
            ("TIER_AGENT_URL".to_owned(), self.store.url.clone()),
            ("TIER_TOKEN".to_owned(), self.store.token.clone()),
            ("TIER_SERVICE".to_owned(), name.to_owned()),
            ("TIER_REPLICA".to_owned(), replica.id.to_string()),
            (
                "TIER_CONFIG".to_owned(),
                self.dir
                    .config(name, &replica.spec.config)
                    .display()
                    .to_string(),
            ),
        ];
        for dependency in &service.dependencies {
            let (Some(proxy), Some(supervised)) = (
                self.proxies.get(dependency),
                self.supervisor.service(dependency),
            ) else {
                continue;
            };
            variables.push((
                format!("{}_URL", variable_name(dependency)),
                status::url(supervised.spec.protocol, proxy.proxy_port),
            ));
        }
        let addresses = LocalAddresses::new(&self.current, |name| {
            self.proxies.get(name).map(|proxy| proxy.proxy_port)
        });
        for (port_name, port) in &replica.spec.ports {
            variables.push((
                format!("PORT_{}", variable_name(port_name)),
                port.to_string(),
            ));
        }
        for (volume_name, volume) in &replica.spec.volumes {
            let path = match &volume.source {
                VolumeSource::Config { dir, .. } => self.root.join(dir),
                VolumeSource::EmptyDir { .. } => {
                    self.dir.volume(name, volume_name, Some(replica.id))
                }
                VolumeSource::Claim { .. } | VolumeSource::Secret { .. } => {
                    self.dir.volume(name, volume_name, None)
                }
            };
            variables.push((
                format!("TIER_VOLUME_{}", variable_name(volume_name)),
                path.display().to_string(),
            ));
        }
        variables.extend(
            replica
                .spec
                .env
                .iter()
                .map(|(key, value)| (key.clone(), address::substitute(value, &addresses))),
        );
        variables
    }
}

/// A name as part of a variable: `grpc-web` is `GRPC_WEB`.
fn variable_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Makes the directories of a replica's volumes: a `claim` (and a `secret`, empty here) is
/// kept across restarts, an `empty_dir` starts empty every time.
fn prepare_volumes(
    dir: &EnvDir,
    service: &str,
    replica: u32,
    spec: &Service,
) -> std::io::Result<()> {
    for (name, volume) in &spec.volumes {
        match &volume.source {
            VolumeSource::EmptyDir { .. } => {
                let path = dir.volume(service, name, Some(replica));
                match std::fs::remove_dir_all(&path) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(error);
                    }
                    _ => {}
                }
                std::fs::create_dir_all(&path)?;
            }
            VolumeSource::Claim { .. } | VolumeSource::Secret { .. } => {
                std::fs::create_dir_all(dir.volume(service, name, None))?;
            }
            VolumeSource::Config { .. } => {}
        }
    }
    Ok(())
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {}", signal.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => "exited".to_owned(),
    }
}

/// Copies a replica's output, line by line, to its log file and, in the foreground, to the
/// terminal. The one state it keeps is the last non-empty line, shared with the loop, which
/// puts it into the replica's `last_exit` when the process ends.
async fn pump(
    reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    log: Option<Arc<Mutex<LogFile>>>,
    last: Arc<Mutex<Option<String>>>,
    echo: Option<usize>,
    source: String,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(log) = &log
            && let Ok(mut log) = log.lock()
        {
            let _ = log.append(stream, &line);
        }
        if let Some(width) = echo {
            println!("{}", logs::format_line(&source, &line, width));
        }
        if !line.trim().is_empty()
            && let Ok(mut last) = last.lock()
        {
            *last = Some(line);
        }
    }
}
