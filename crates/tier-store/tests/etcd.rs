//! The etcd backend against a real etcd 3.4 (`apt-get install -y etcd-server`): the
//! conformance suite, each case on an etcd of its own, plus what only etcd shows (namespaces
//! sharing one cluster, a watch resuming across an etcd restart). Without the etcd binary these
//! tests fail; they never skip.
#![cfg(feature = "etcd")]

mod conformance;

use conformance::{keys, next_events, ok, summary};
use tier_store::{Backend, EtcdConfig, EtcdStore, Revision, Selector, StoreError};
use tier_test::etcd::EtcdServer;

/// A store configuration for `server` in `namespace`.
fn config(server: &EtcdServer, namespace: &str) -> EtcdConfig {
    EtcdConfig::new(vec![server.endpoint()], namespace)
}

async fn started() -> EtcdServer {
    match EtcdServer::start(None).await {
        Ok(server) => server,
        Err(error) => panic!("{error}"),
    }
}

/// A store in a namespace of a fresh etcd, with a key outside the namespace that the store
/// must never see.
async fn fresh_etcd() -> (EtcdStore, EtcdServer) {
    let server = started().await;
    let outside = ok(EtcdStore::connect(config(&server, "")).await);
    ok(outside.put("elsewhere/k", b"not ours".to_vec(), None).await);
    let store = ok(EtcdStore::connect(config(&server, "tier/test")).await);
    (store, server)
}

conformance_suite!(fresh_etcd);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_share_one_etcd_without_seeing_each_other() {
    let server = started().await;
    let dev = ok(EtcdStore::connect(config(&server, "tier/dev")).await);
    let prod = ok(EtcdStore::connect(config(&server, "tier/prod/")).await);
    let prod_ie = ok(EtcdStore::connect(config(&server, "tier/prod-ie")).await);
    assert_eq!(prod.namespace(), "tier/prod/");
    let mut prod_watch = ok(prod
        .watch(Selector::Prefix(String::new()), Revision(0))
        .await);
    ok(dev.put("flags/new-ui", b"on".to_vec(), None).await);
    ok(prod_ie.put("flags/new-ui", b"off".to_vec(), None).await);
    let written = ok(prod.put("flags/new-ui", b"off".to_vec(), None).await);
    assert_eq!(keys(&ok(dev.range("").await).kvs), ["flags/new-ui"]);
    assert_eq!(keys(&ok(prod.range("").await).kvs), ["flags/new-ui"]);
    assert_eq!(
        summary(&next_events(&mut prod_watch, 1).await),
        [format!("put flags/new-ui@{written}")],
        "a watch sees only its own namespace"
    );
    ok(dev.delete("flags/new-ui").await);
    assert!(ok(prod.get("flags/new-ui").await).is_some());
    assert!(ok(prod_ie.get("flags/new-ui").await).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_from_its_revision_after_etcd_restarts() {
    let mut server = started().await;
    let store = ok(EtcdStore::connect(config(&server, "tier/test")).await);
    let first = ok(store.put("cfg/a", b"1".to_vec(), None).await);
    let mut watch = ok(store.watch(Selector::Prefix("cfg/".into()), first).await);
    assert_eq!(
        summary(&next_events(&mut watch, 1).await),
        [format!("put cfg/a@{first}")]
    );
    if let Err(error) = server.restart().await {
        panic!("{error}");
    }
    let second = ok(store.put("cfg/b", b"2".to_vec(), None).await);
    let third = ok(store.put("cfg/a", b"3".to_vec(), None).await);
    assert_eq!(
        summary(&next_events(&mut watch, 2).await),
        [format!("put cfg/b@{second}"), format!("put cfg/a@{third}")],
        "nothing lost or repeated across the restart"
    );
}

#[tokio::test]
async fn an_unreachable_etcd_is_an_error_within_the_timeout() {
    let mut config = EtcdConfig::new(vec!["127.0.0.1:1".into()], "");
    config.request_timeout = std::time::Duration::from_secs(2);
    let connected = EtcdStore::connect(config).await;
    assert!(
        matches!(&connected, Err(StoreError::Etcd(_))),
        "{:?}",
        connected.err()
    );
}

#[tokio::test]
async fn connect_to_parses_the_address() {
    let server = started().await;
    let address = format!("etcd://{}/tier/cli", server.endpoint());
    let store = ok(EtcdStore::connect_to(&address).await);
    assert_eq!(store.namespace(), "tier/cli/");
    assert!(matches!(
        EtcdStore::connect_to("etcd://nowhere").await,
        Err(StoreError::InvalidAddress { .. })
    ));
}
