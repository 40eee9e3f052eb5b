//! What the sample app's backend and frontend share: where they listen, and how they stop.

/// Listens on `$PORT`: on 127.0.0.1 (the local runtime's proxy is on the same machine), or on
/// every interface in a Kubernetes pod, where kubelet's probes and the Service reach the pod's
/// own address. Answers the listener and the `host:port` it is on.
pub async fn listen() -> Result<(tokio::net::TcpListener, String), String> {
    let port = std::env::var("PORT").map_err(|_| "PORT is not set".to_owned())?;
    let host = listen_host(std::env::var_os("KUBERNETES_SERVICE_HOST").is_some());
    let address = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;
    Ok((listener, address))
}

/// The interface to listen on: every one in a Kubernetes pod (`KUBERNETES_SERVICE_HOST` is
/// set in every pod), only the loopback interface otherwise.
fn listen_host(in_kubernetes_pod: bool) -> &'static str {
    if in_kubernetes_pod {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    }
}

/// Ends on SIGTERM or Ctrl-C, so the supervisor's stop is a clean exit.
pub async fn shutdown() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn listens_on_every_interface_only_in_a_kubernetes_pod() {
        assert_eq!(super::listen_host(true), "0.0.0.0");
        assert_eq!(super::listen_host(false), "127.0.0.1");
    }
}
