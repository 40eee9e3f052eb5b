//! Each service's proxy as the agent holds it: the listeners it serves, the ready set it
//! balances over, and the service discovery entries that follow that set.

use std::net::SocketAddr;
use std::sync::Arc;

use tier_model::environment::{Protocol, Service};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::prepare::bind_proxy;
use super::supervisor::Supervised;
use crate::proxy::{self, Endpoint, ProxyEvent};
use crate::store::Discovery;

/// What starting another service's proxy takes.
pub(super) struct ProxyKit {
    pub workers: proxy::Workers,
    pub events: mpsc::UnboundedSender<ProxyEvent>,
    pub access: mpsc::UnboundedSender<Vec<String>>,
    /// The parent of every proxy's own token: cancelled when the agent has stopped.
    pub halt: CancellationToken,
}

impl ProxyKit {
    fn serve(
        &self,
        name: &str,
        spec: &Service,
        listeners: Vec<std::net::TcpListener>,
        halt: CancellationToken,
        endpoints: proxy::Endpoints,
    ) {
        match spec.protocol {
            Protocol::Http => proxy::serve_http(
                &self.workers,
                name.to_owned(),
                listeners,
                endpoints,
                self.events.clone(),
                self.access.clone(),
                halt,
            ),
            Protocol::Tcp => proxy::serve_tcp(
                &self.workers,
                name,
                listeners,
                endpoints,
                self.events.clone(),
                halt,
            ),
        }
    }
}

/// One service's proxy, serving from the moment it is made.
pub(super) struct ServiceProxy {
    pub proxy_port: u16,
    /// The host port it is published on (`expose`).
    pub exposed: Option<u16>,
    endpoints: watch::Sender<Arc<Vec<Endpoint>>>,
    /// Lists the ready replicas in the store's service discovery.
    discovery: Discovery,
    /// Stops this proxy alone, when an apply removes the service or moves its host port.
    halt: CancellationToken,
    /// A handle on the proxy's own listener, so the proxy can be served again (with another
    /// host port) without giving up its port.
    proxy_listener: Option<std::net::TcpListener>,
}

impl ServiceProxy {
    /// Serves `listeners` (the proxy's own first, then the host port's) for the service.
    pub fn serve(
        kit: &ProxyKit,
        name: &str,
        spec: &Service,
        listeners: Vec<std::net::TcpListener>,
        proxy_port: u16,
        discovery: Discovery,
    ) -> ServiceProxy {
        let (endpoints, watcher) = watch::channel(Arc::new(Vec::new()));
        let halt = kit.halt.child_token();
        let proxy_listener = listeners
            .first()
            .and_then(|listener| listener.try_clone().ok());
        kit.serve(name, spec, listeners, halt.clone(), watcher);
        ServiceProxy {
            proxy_port,
            exposed: spec.expose,
            endpoints,
            discovery,
            halt,
            proxy_listener,
        }
    }

    /// A proxy on a new port (and the spec's host port) for a service an apply adds.
    pub fn bind(
        kit: &ProxyKit,
        name: &str,
        spec: &Service,
        discovery: Discovery,
    ) -> Result<ServiceProxy, String> {
        let proxy = bind_proxy(None)
            .map_err(|error| format!("{name}: cannot open its proxy port: {error}"))?;
        let proxy_port = proxy
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(0);
        let mut listeners = vec![proxy];
        if let Some(port) = spec.expose {
            listeners.push(
                std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|error| {
                    format!("{name}: cannot listen on host port {port}: {error}")
                })?,
            );
        }
        for listener in &listeners {
            listener
                .set_nonblocking(true)
                .map_err(|error| format!("{name}: {error}"))?;
        }
        Ok(ServiceProxy::serve(
            kit, name, spec, listeners, proxy_port, discovery,
        ))
    }

    /// Hands the proxy the service's ready replicas, and tells service discovery which came
    /// and went; nothing when the set is unchanged.
    pub fn publish(&self, name: &str, service: Option<&Supervised>) {
        let ready: Vec<Endpoint> = service
            .into_iter()
            .flat_map(Supervised::in_rotation)
            .map(|replica| Endpoint {
                replica: replica.id,
                address: SocketAddr::from(([127, 0, 0, 1], replica.port)),
            })
            .collect();
        if **self.endpoints.borrow() != ready {
            let before = self.endpoints.send_replace(Arc::new(ready.clone()));
            for gone in before.iter().filter(|old| !ready.contains(old)) {
                self.discovery.gone(name, gone.replica);
            }
            for new in ready.iter().filter(|new| !before.contains(new)) {
                self.discovery.ready(name, new.replica, new.address);
            }
        }
    }

    /// Sends no more connections to any replica (the agent is stopping; the store's lease
    /// takes the discovery entries with it).
    pub fn drain(&self) {
        self.endpoints.send_replace(Arc::new(Vec::new()));
    }

    /// Stops serving: the service is gone.
    pub fn halt(&self, name: &str) {
        self.publish(name, None);
        self.halt.cancel();
    }

    /// Serves the proxy again with the host port of `spec` (or none): the new port is bound
    /// first, so a port in use changes nothing; the proxy's own port stays.
    pub fn move_host_port(
        &mut self,
        kit: &ProxyKit,
        env: &dyn std::fmt::Display,
        name: &str,
        spec: &Service,
    ) -> Result<(), String> {
        let exposed = match spec.expose {
            Some(port) => Some(std::net::TcpListener::bind(("127.0.0.1", port)).map_err(
                |error| {
                    if error.kind() == std::io::ErrorKind::AddrInUse {
                        format!("{name}: {}", port_in_use(&name, &env, port))
                    } else {
                        format!("{name}: cannot listen on host port {port}: {error}")
                    }
                },
            )?),
            None => None,
        };
        let proxy = self
            .proxy_listener
            .as_ref()
            .and_then(|listener| listener.try_clone().ok())
            .ok_or_else(|| format!("{name}: its proxy cannot be served again"))?;
        let mut listeners = vec![proxy];
        listeners.extend(exposed);
        for listener in &listeners {
            listener
                .set_nonblocking(true)
                .map_err(|error| format!("{name}: {error}"))?;
        }
        self.halt.cancel();
        self.halt = kit.halt.child_token();
        self.exposed = spec.expose;
        let watcher = self.endpoints.subscribe();
        kit.serve(name, spec, listeners, self.halt.clone(), watcher);
        Ok(())
    }
}

/// Why a service's host port cannot be had, and how to pick another: a port that is free now
/// (the first free one from `port + 10000`, as 8080 becomes 18080), by `--set` for one run
/// or in the environment's override file for good.
pub(super) fn port_in_use(
    name: &dyn std::fmt::Display,
    env: &dyn std::fmt::Display,
    port: u16,
) -> String {
    let start = port.checked_add(10_000).unwrap_or(20_000);
    let free = (start..start.saturating_add(200))
        .find(|candidate| std::net::TcpListener::bind(("127.0.0.1", *candidate)).is_ok());
    let other = free.map_or_else(|| "<port>".to_owned(), |free| free.to_string());
    format!(
        "host port {port} is already in use (expose = {port}): stop what listens on it, or run \
         on another port with `--set services.{name}.expose={other}` (or `expose = {other}` \
         under [services.{name}] in envs/{env}.toml)"
    )
}
