//! Progress drawn from the engine's events: a spinner while a local environment starts or
//! rolls, spinners per Deployment for kubernetes, on a terminal only; plain lines otherwise.
//! Once a revision is recorded, Ctrl-C (or SIGTERM) becomes a request to undo it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tier_deploy::{DeployEvent, Interrupt, Phase};
use tier_kube::RolloutState;
use tier_model::ServiceName;

use crate::output;

/// Draws one command's events.
pub(super) struct Drawer {
    terminal: bool,
    interrupt: Interrupt,
    /// The spinner of a local environment starting or rolling.
    spinner: Mutex<Option<ProgressBar>>,
    /// The spinners of a kubernetes rollout, created on the first wave.
    bars: Mutex<Option<(MultiProgress, BTreeMap<ServiceName, ProgressBar>)>>,
    /// Services whose rollout ended, so each is told once without a terminal.
    done: Mutex<Vec<ServiceName>>,
    signals: std::sync::Once,
}

impl Drawer {
    pub(super) fn new(interrupt: Interrupt) -> Drawer {
        Drawer {
            terminal: console::Term::stderr().is_term(),
            interrupt,
            spinner: Mutex::new(None),
            bars: Mutex::new(None),
            done: Mutex::new(Vec::new()),
            signals: std::sync::Once::new(),
        }
    }

    pub(super) fn show(&self, event: DeployEvent) {
        if !matches!(event, DeployEvent::Progress { .. }) {
            self.clear_spinner();
        }
        match event {
            DeployEvent::Planned { plan, .. } => {
                output::stdout(&plan.render_text(output::colors()));
            }
            DeployEvent::RevisionRecorded { env, revision } => {
                eprintln!("{env}: applying revision {revision}");
                self.signals
                    .call_once(|| interrupt_on_signals(self.interrupt.clone()));
            }
            DeployEvent::Progress {
                env,
                phase,
                services,
            } => {
                if !self.terminal {
                    return;
                }
                let services: Vec<String> = services
                    .iter()
                    .map(|service| match phase {
                        Phase::Starting if service.waiting => format!("{} waiting", service.name),
                        _ => format!("{} {}/{}", service.name, service.ready, service.desired),
                    })
                    .collect();
                let message = match phase {
                    Phase::Starting => format!("starting {env}: {}", services.join(", ")),
                    Phase::Applying => format!("applying to {env}: {}", services.join(", ")),
                };
                let mut spinner = lock(&self.spinner);
                spinner
                    .get_or_insert_with(|| {
                        let bar = ProgressBar::new_spinner();
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    })
                    .set_message(message);
            }
            DeployEvent::Agent { note, .. } => eprintln!("  {note}"),
            DeployEvent::Cancelling { env } => {
                eprintln!("\n{env}: stopping at the next safe point and undoing this apply…");
            }
            DeployEvent::StoreStarted { deployments } => {
                if self.terminal {
                    self.spinners(deployments);
                } else {
                    let names: Vec<String> = deployments.iter().map(ToString::to_string).collect();
                    eprintln!("  runtime config store: {}", names.join(", "));
                }
            }
            DeployEvent::WaveStarted { index, services } => {
                if self.terminal {
                    self.spinners(services);
                } else {
                    let names: Vec<String> = services.iter().map(ToString::to_string).collect();
                    eprintln!("  wave {}: {}", index + 1, names.join(", "));
                }
            }
            DeployEvent::Rollout { service, state } => self.rollout(service, &state),
            DeployEvent::Pruned(pruned) => {
                let line = format!(
                    "  pruned {} {}/{} (no longer declared)",
                    pruned.kind.as_str(),
                    pruned.namespace,
                    pruned.name
                );
                match &*lock(&self.bars) {
                    Some((multi, _)) => {
                        let _ = multi.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
            DeployEvent::RolloutFailed { env, reason } => {
                self.finish();
                eprintln!("{env}: {reason}");
            }
            DeployEvent::Restoring { env, revision } => {
                lock(&self.done).clear();
                eprintln!("{env}: applying revision {revision} again, which was deployed before");
            }
            DeployEvent::Repaired { env, what } => {
                for what in what {
                    eprintln!("{env}: put back {what}");
                }
            }
            DeployEvent::Warning { message } => output::error(&message),
            DeployEvent::StateMoved {
                env,
                revisions,
                from,
                to,
            } => eprintln!(
                "{env}: moved {revisions} revision{} from {from} into the cluster ({to}); the file is now {from}.moved",
                if revisions == 1 { "" } else { "s" }
            ),
            DeployEvent::LockTaken { .. }
            | DeployEvent::AgentStarted { .. }
            | DeployEvent::EnvironmentReady { .. } => {}
        }
    }

    /// Ends whatever is still drawn.
    pub(super) fn finish(&self) {
        self.clear_spinner();
        if let Some((_, bars)) = &*lock(&self.bars) {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }

    fn clear_spinner(&self) {
        if let Some(bar) = lock(&self.spinner).take() {
            bar.finish_and_clear();
        }
    }

    fn rollout(&self, service: ServiceName, state: &RolloutState) {
        let counts = state.counts();
        let message = match state {
            RolloutState::Done { .. } => {
                format!(
                    "rolled out: {}/{} available",
                    counts.available, counts.desired
                )
            }
            RolloutState::Waiting { reason, .. } => format!(
                "{}/{} available: {reason}",
                counts.available, counts.desired
            ),
            RolloutState::Failed { reason, .. } => format!("failed: {reason}"),
        };
        let finished = !matches!(state, RolloutState::Waiting { .. });
        if self.terminal {
            if let Some((_, bars)) = &*lock(&self.bars)
                && let Some(bar) = bars.get(&service)
            {
                if finished {
                    bar.finish_with_message(message);
                } else {
                    bar.set_message(message);
                }
            }
        } else if finished {
            let mut done = lock(&self.done);
            if !done.contains(&service) {
                done.push(service.clone());
                eprintln!("  {service}: {message}");
            }
        }
    }

    /// A spinner per Deployment about to roll out (on a terminal only).
    fn spinners(&self, names: Vec<ServiceName>) {
        let mut bars = lock(&self.bars);
        let (multi, bars) = bars.get_or_insert_with(|| (MultiProgress::new(), BTreeMap::new()));
        for name in names {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.set_message("applied");
            bar.enable_steady_tick(Duration::from_millis(120));
            bars.insert(name, bar);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// From here on, SIGINT and SIGTERM wait for a thread that turns each into an interrupt of the
/// running rollout, instead of ending the process halfway through recording the revision.
fn interrupt_on_signals(interrupt: Interrupt) {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    let _ = signals.thread_block();
    std::thread::spawn(move || {
        while signals.wait().is_ok() {
            interrupt.interrupt();
        }
    });
}
