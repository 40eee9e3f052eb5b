//! The environment's runtime config store, hosted by its agent: the embedded store in
//! `.tier/<env>/store.redb`, its HTTP API on 127.0.0.1 (the port is remembered, so
//! `TIER_AGENT_URL` stays the same across restarts), the environment's tokens, and service
//! discovery: every ready replica registered under one lease the agent keeps alive, so the
//! entries of an agent killed with SIGKILL expire on their own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tier_model::Environment;
use tier_store::http::{ApiConfig, FlagDefault, Registry, Tokens};
use tier_store::{Backend, EmbeddedConfig, EmbeddedStore, LeaseId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use tier_state::paths::EnvDir;

/// How long a replica's registration outlives the agent that stopped renewing it.
const DISCOVERY_TTL: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// What `prepare` claims before anything starts: the API's port and the tokens.
pub(crate) struct Claimed {
    listener: std::net::TcpListener,
    tokens: Tokens,
}

impl Claimed {
    pub(crate) fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(0)
    }
}

pub(crate) fn claim(dir: &EnvDir, env: &str, remembered: Option<u16>) -> Result<Claimed, String> {
    let tokens = Tokens::load_or_create(&dir.tokens(), env)
        .map_err(|error| format!("runtime config store: {error}"))?;
    let listener = remembered
        .and_then(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
        .map_or_else(|| std::net::TcpListener::bind(("127.0.0.1", 0)), Ok)
        .map_err(|error| format!("runtime config store: cannot open its port: {error}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("runtime config store: {error}"))?;
    Ok(Claimed { listener, tokens })
}

/// The environment's declared flags as the store's API serves their defaults.
pub fn flag_defaults(environment: &Environment) -> BTreeMap<String, FlagDefault> {
    environment
        .flags
        .iter()
        .map(|(name, flag)| {
            (
                name.clone(),
                FlagDefault {
                    value: flag.default.clone(),
                    description: flag.description.clone(),
                },
            )
        })
        .collect()
}

/// A change to what discovery lists.
enum Registration {
    Ready {
        service: String,
        replica: String,
        address: String,
    },
    Gone {
        service: String,
        replica: String,
    },
}

/// The running store: its URL and read-only token for replicas, and discovery.
pub(crate) struct Host {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) discovery: Discovery,
    shutdown: CancellationToken,
}

/// Tells discovery which replicas are ready; cheap to clone, one per service.
#[derive(Clone)]
pub(crate) struct Discovery {
    registrations: mpsc::UnboundedSender<Registration>,
}

impl Host {
    /// Opens the store and serves its API until [`Host::stop`].
    pub(crate) async fn start(
        dir: &EnvDir,
        claimed: Claimed,
        environment: &Environment,
    ) -> Result<Host, String> {
        let store = EmbeddedStore::open(&dir.store(), EmbeddedConfig::default())
            .await
            .map_err(|error| format!("runtime config store: {error}"))?;
        let store = Arc::new(store);
        let port = claimed.port();
        let listener = tokio::net::TcpListener::from_std(claimed.listener)
            .map_err(|error| format!("runtime config store: {error}"))?;
        let shutdown = CancellationToken::new();
        let flags = flag_defaults(environment);
        let token = claimed.tokens.read_only().expose().to_owned();
        let config = ApiConfig {
            flags,
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let serving = Arc::clone(&store);
        let tokens = claimed.tokens;
        tokio::spawn(async move {
            if let Err(error) = tier_store::http::serve(listener, serving, tokens, config).await {
                eprintln!("runtime config store: the API stopped: {error}");
            }
        });
        let (registrations, inbox) = mpsc::unbounded_channel();
        tokio::spawn(register(store, inbox, shutdown.clone()));
        Ok(Host {
            url: format!("http://127.0.0.1:{port}"),
            token,
            discovery: Discovery { registrations },
            shutdown,
        })
    }

    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Discovery {
    pub(crate) fn ready(&self, service: &str, replica: u32, address: std::net::SocketAddr) {
        let _ = self.registrations.send(Registration::Ready {
            service: service.to_owned(),
            replica: replica.to_string(),
            address: address.to_string(),
        });
    }

    pub(crate) fn gone(&self, service: &str, replica: u32) {
        let _ = self.registrations.send(Registration::Gone {
            service: service.to_owned(),
            replica: replica.to_string(),
        });
    }
}

/// Applies registrations in the order they were made, under one lease renewed every few
/// seconds; a lease that lapsed anyway (the machine slept) is replaced and every live
/// registration written again.
async fn register(
    store: Arc<EmbeddedStore>,
    mut inbox: mpsc::UnboundedReceiver<Registration>,
    shutdown: CancellationToken,
) {
    let registry = Registry::new(Arc::clone(&store));
    let mut live: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut lease: Option<LeaseId> = None;
    let mut renew = tokio::time::interval(RENEW_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = renew.tick() => {
                let renewed = match lease {
                    Some(id) => store.keep_alive(id).await.is_ok(),
                    None => false,
                };
                if !renewed {
                    lease = store.grant(DISCOVERY_TTL).await.ok().map(|granted| granted.id);
                    if let Some(id) = lease {
                        for ((service, replica), address) in &live {
                            let _ = registry.register(service, replica, address, id).await;
                        }
                    }
                }
            }
            registration = inbox.recv() => {
                let Some(registration) = registration else { break };
                match registration {
                    Registration::Ready { service, replica, address } => {
                        if let Some(id) = lease {
                            let _ = registry.register(&service, &replica, &address, id).await;
                        }
                        live.insert((service, replica), address);
                    }
                    Registration::Gone { service, replica } => {
                        if live.remove(&(service.clone(), replica.clone())).is_some() {
                            let _ = registry.deregister(&service, &replica).await;
                        }
                    }
                }
            }
        }
    }
    // A clean stop withdraws every endpoint at once rather than waiting for the lease.
    if let Some(id) = lease {
        let _ = store.revoke(id).await;
    }
}
