//! One stand-in for every Online Boutique service on the local runtime, told which role it
//! plays by `TIER_SERVICE` (tier sets it for every replica):
//!
//! - `frontend`: an HTTP page on `$PORT`. `/` asks each backend it is given an address of
//!   (`*_SERVICE_ADDR`, `REDIS_ADDR`) whether it is serving and lists the answers;
//!   `/_healthz` answers `ok`.
//! - `redis-cart`: a TCP listener that answers every line with `+PONG`.
//! - `loadgenerator`: listens on nothing; fetches `http://$FRONTEND_ADDR/` every `$RATE`
//!   seconds and prints the status.
//! - every other name: a gRPC server on `$PORT` with the standard health service
//!   (grpc.health.v1), the protocol the upstream manifests probe.
//!
//! Test hooks, all optional: `STANDIN_START_DELAY_MS` waits before listening;
//! `STANDIN_HEALTH_FILE` names a file whose text `down` makes the health answer NOT_SERVING
//! (the gRPC status, and 503 on `/_healthz`).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Answer;
use tonic_health::pb::health_client::HealthClient;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let role = std::env::var("TIER_SERVICE").unwrap_or_default();
    if let Some(delay) = variable("STANDIN_START_DELAY_MS").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let result = match role.as_str() {
        "frontend" => frontend().await,
        "redis-cart" => redis().await,
        "loadgenerator" => loadgenerator().await,
        "" => Err("TIER_SERVICE is not set: run me under tier".to_owned()),
        _ => grpc().await,
    };
    if let Err(error) = result {
        eprintln!("{role}: {error}");
        std::process::exit(1);
    }
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Whether the test hook says this replica is down.
fn marked_down() -> bool {
    variable("STANDIN_HEALTH_FILE")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .is_some_and(|text| text.trim() == "down")
}

/// `$PORT` on 127.0.0.1, or on every interface in a Kubernetes pod.
async fn listen() -> Result<TcpListener, String> {
    let port = variable("PORT").ok_or("PORT is not set")?;
    let host = if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    TcpListener::bind(format!("{host}:{port}"))
        .await
        .map_err(|error| format!("cannot listen on {host}:{port}: {error}"))
}

async fn shutdown() {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    terminate.recv().await;
}

async fn grpc() -> Result<(), String> {
    let listener = listen().await?;
    let (reporter, service) = tonic_health::server::health_reporter();
    let watcher = reporter.clone();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let status = if marked_down() {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            if last != Some(status) {
                watcher.set_service_status("", status).await;
                last = Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown())
        .await
        .map_err(|error| error.to_string())
}

async fn frontend() -> Result<(), String> {
    let listener = listen().await?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown() => return Ok(()),
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(answer(stream));
    }
}

/// One HTTP/1.1 request, answered and closed.
async fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    if reader.read_line(&mut first).await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (status, body) = if path == "/_healthz" {
        if marked_down() {
            ("503 Service Unavailable", "down\n".to_owned())
        } else {
            ("200 OK", "ok\n".to_owned())
        }
    } else {
        ("200 OK", page().await)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(response.as_bytes()).await;
}

/// Every backend the frontend has an address of, and what it answered.
async fn page() -> String {
    let mut addresses: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.ends_with("_SERVICE_ADDR") || name == "REDIS_ADDR")
        .collect();
    addresses.sort();
    let mut page = String::from("Online Boutique (stand-in)\n");
    for (name, address) in addresses {
        let answer = check(&address).await;
        page.push_str(&format!("{name} {address} {answer}\n"));
    }
    page
}

async fn check(address: &str) -> String {
    let attempt = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| error.to_string())?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| error.to_string())?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| status.message().to_owned())?;
        Ok::<_, String>(match Answer::try_from(answer.into_inner().status) {
            Ok(Answer::Serving) => "SERVING".to_owned(),
            Ok(other) => other.as_str_name().to_owned(),
            Err(_) => "UNKNOWN".to_owned(),
        })
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => format!("unreachable ({error})"),
        Err(_) => "unreachable (timeout)".to_owned(),
    }
}

async fn redis() -> Result<(), String> {
    let listener = listen().await?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown() => return Ok(()),
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                if write.write_all(b"+PONG\r\n").await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn loadgenerator() -> Result<(), String> {
    let frontend = variable("FRONTEND_ADDR").ok_or("FRONTEND_ADDR is not set")?;
    let every = variable("RATE")
        .and_then(|rate| rate.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    loop {
        let outcome = fetch(&frontend).await;
        println!("GET http://{frontend}/ {outcome}");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(every)) => {}
            () = shutdown() => return Ok(()),
        }
    }
}

async fn fetch(address: &str) -> String {
    let attempt = async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("no answer")
            .to_owned(),
        Ok(Err(error)) => format!("failed: {error}"),
        Err(_) => "failed: timeout".to_owned(),
    }
}
