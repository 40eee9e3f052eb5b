//! Readiness probes: an HTTP GET that must answer 2xx or 3xx, or a TCP connect.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to check on a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Http { path: String },
    Tcp { port: u16 },
}

/// Runs one probe against a replica listening on `port`. The error says what went wrong in
/// words a user can act on ("connection refused", "answered 500").
pub async fn probe(check: &Check, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, run(check, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

async fn run(check: &Check, port: u16) -> Result<(), String> {
    let target = match check {
        Check::Http { .. } => port,
        Check::Tcp { port: probe_port } => *probe_port,
    };
    let address = SocketAddr::from(([127, 0, 0, 1], target));
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|error| describe(&error))?;
    let Check::Http { path } = check else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\nUser-Agent: tier-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| describe(&error))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let count = stream
            .read(&mut head[read..])
            .await
            .map_err(|error| describe(&error))?;
        if count == 0 {
            return Err("closed the connection without an answer".to_owned());
        }
        read += count;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "did not answer HTTP".to_owned())?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{path} answered {status}"))
    }
}

fn describe(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => error.to_string(),
    }
}
