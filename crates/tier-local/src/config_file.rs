//! The app config file a service's replicas read as `TIER_CONFIG`: the service's merged
//! config with the addresses of other services filled in (their proxies on this machine).
//! The agent writes it at start and at each apply; `tier drift` reads it back to see whether
//! it was edited since.

use std::collections::BTreeMap;

use tier_model::Environment;
use tier_model::address::{self, Addresses};
use tier_model::environment::Protocol;

use tier_state::paths::EnvDir;

/// The bytes of the config file of a service whose merged config is `config`, with each
/// service's proxy on `proxy_port`.
pub fn contents(
    environment: &Environment,
    config: &serde_json::Value,
    proxy_port: impl Fn(&str) -> Option<u16>,
) -> Vec<u8> {
    let addresses = LocalAddresses::new(environment, proxy_port);
    let config = address::substitute_json(config, &addresses);
    serde_json::to_vec_pretty(&config).unwrap_or_else(|_| b"{}".to_vec())
}

/// The proxy ports the environment's agent gave out last time (`ports.json`), by service.
pub fn remembered_ports(dir: &EnvDir) -> BTreeMap<String, u16> {
    std::fs::read(dir.ports())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Where services are reached on this machine: their proxies on 127.0.0.1.
pub(crate) struct LocalAddresses {
    ports: BTreeMap<String, (u16, Protocol)>,
}

impl LocalAddresses {
    pub(crate) fn new(
        environment: &Environment,
        proxy_port: impl Fn(&str) -> Option<u16>,
    ) -> LocalAddresses {
        LocalAddresses {
            ports: environment
                .services
                .iter()
                .filter_map(|(name, service)| {
                    Some((
                        name.to_string(),
                        (proxy_port(name.as_str())?, service.protocol),
                    ))
                })
                .collect(),
        }
    }
}

impl Addresses for LocalAddresses {
    fn host_port(&self, service: &str) -> Option<(String, u16)> {
        self.ports
            .get(service)
            .map(|(port, _)| ("127.0.0.1".to_owned(), *port))
    }

    fn scheme(&self, service: &str) -> &'static str {
        self.ports
            .get(service)
            .map_or(Protocol::default(), |(_, protocol)| *protocol)
            .as_str()
    }
}
