//! The etcd backend: the same [`Backend`](crate::Backend) over a real etcd cluster (v3 API,
//! gRPC), behind the cargo feature `etcd`.
//!
//! Addresses have the form `etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`, for example
//! `etcd://10.0.0.5:2379,10.0.0.6:2379/tier/prod`. The namespace is a key prefix: every key
//! the store reads or writes is `NAMESPACE/` followed by the key, and keys come back without
//! it, so several environments can share one etcd cluster without seeing each other's keys.
//! A namespace that does not end in `/` gets one, so `tier/prod` never overlaps
//! `tier/prod-ie`. No namespace uses the whole keyspace.
//!
//! What differs from the embedded store, all of it etcd's own behaviour:
//! - Revisions are the cluster's. A fresh etcd is at revision 1, so its first write is
//!   revision 2, and writes in other namespaces advance the revision too: revisions grow and
//!   are never reused, but a namespace's own writes may have gaps between them.
//! - One revision may hold several events: a lease that expires or is revoked deletes all its
//!   keys in one revision. A watcher resuming after revision R asks for R + 1 once it has every
//!   event of R.
//! - Lease times to live are whole seconds (rounded up), and etcd raises very short ones to its
//!   minimum (about two seconds with default settings).
//!
//! The parsing of addresses is always compiled, so a binary built without the feature can
//! still say what it was asked for.
//!
//! With the feature: the connection and what every call shares in `client`, the `Backend`
//! calls in `operations`, watches in `watch`, and time limits and etcd's errors in `requests`.

#[cfg(feature = "etcd")]
mod client;
#[cfg(feature = "etcd")]
mod operations;
#[cfg(feature = "etcd")]
mod requests;
#[cfg(feature = "etcd")]
mod watch;

use std::time::Duration;

use crate::error::StoreError;

#[cfg(feature = "etcd")]
pub use client::EtcdStore;

/// Where the etcd cluster is and which part of its keyspace this store owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// gRPC endpoints, each `http://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// The key prefix, empty or ending in `/`.
    pub namespace: String,
    /// How long connecting and each unary request may take.
    pub request_timeout: Duration,
    /// How long a watch keeps trying to reconnect after its stream broke before it fails.
    pub watch_reconnect: Duration,
}

impl EtcdConfig {
    /// A store over `endpoints` (`HOST:PORT` each) in `namespace`.
    pub fn new(endpoints: Vec<String>, namespace: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints
                .into_iter()
                .map(|endpoint| format!("http://{endpoint}"))
                .collect(),
            namespace: normalise_namespace(namespace),
            request_timeout: Duration::from_secs(10),
            watch_reconnect: Duration::from_secs(30),
        }
    }

    /// Parses `etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`.
    pub fn from_address(address: &str) -> Result<EtcdConfig, StoreError> {
        let invalid = |reason| StoreError::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let rest = address
            .strip_prefix("etcd://")
            .ok_or_else(|| invalid("it must start with etcd://"))?;
        if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(invalid(
                "it takes no user, query, fragment or spaces: etcd://HOST:PORT[,HOST:PORT][/NAMESPACE]",
            ));
        }
        let (hosts, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        let mut endpoints = Vec::new();
        for endpoint in hosts.split(',') {
            let (host, port) = endpoint
                .rsplit_once(':')
                .ok_or_else(|| invalid("every endpoint needs a port: HOST:PORT"))?;
            let bracketed = host.starts_with('[') && host.ends_with(']');
            if host.is_empty() || (host.contains(':') && !bracketed) {
                return Err(invalid(
                    "an endpoint's host is empty or an IPv6 address without brackets",
                ));
            }
            match port.parse::<u16>() {
                Ok(port) if port > 0 => endpoints.push(format!("{host}:{port}")),
                _ => return Err(invalid("a port must be a number from 1 to 65535")),
            }
        }
        Ok(EtcdConfig::new(endpoints, namespace))
    }
}

fn normalise_namespace(namespace: &str) -> String {
    let namespace = namespace.trim_start_matches('/');
    if namespace.is_empty() || namespace.ends_with('/') {
        namespace.to_owned()
    } else {
        format!("{namespace}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_into_endpoints_and_a_namespace() {
        let config = EtcdConfig::from_address("etcd://127.0.0.1:2379");
        assert!(
            config
                .as_ref()
                .is_ok_and(|config| config.endpoints == ["http://127.0.0.1:2379"]
                    && config.namespace.is_empty())
        );
        let config = EtcdConfig::from_address("etcd://a:1,[::1]:2/tier/prod");
        assert!(config.as_ref().is_ok_and(|config| config.endpoints
            == ["http://a:1", "http://[::1]:2"]
            && config.namespace == "tier/prod/"));
        let config = EtcdConfig::from_address("etcd://a:1/tier/dev/");
        assert!(config.is_ok_and(|config| config.namespace == "tier/dev/"));
    }

    #[test]
    fn bad_addresses_are_errors_that_say_why() {
        for bad in [
            "http://a:1",
            "etcd://",
            "etcd://a",
            "etcd://a:0",
            "etcd://a:99999",
            "etcd://:1",
            "etcd://a:1,",
            "etcd://::1:2",
            "etcd://user@a:1",
            "etcd://a:1?x=y",
            "etcd://a :1",
        ] {
            let error = EtcdConfig::from_address(bad).err();
            assert!(
                matches!(&error, Some(StoreError::InvalidAddress { address, .. }) if address == bad),
                "{bad}: {error:?}"
            );
        }
    }
}
