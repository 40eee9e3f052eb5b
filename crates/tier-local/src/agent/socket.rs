//! The agent's two listeners besides the proxies: the control socket, whose requests go to
//! the loop as events, and the writer of the proxies' access log.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::Event;
use crate::control::{Request, Response};
use crate::logs::{self, LogFile, Stream};

/// Writes access log lines in the batches the proxy workers hand over, one write per batch.
pub(super) async fn write_access_log(
    path: PathBuf,
    mut batches: mpsc::UnboundedReceiver<Vec<String>>,
) {
    let Ok(mut log) = LogFile::open(&path, logs::ROTATE_BYTES) else {
        return;
    };
    while let Some(batch) = batches.recv().await {
        let _ = log.append_all(Stream::Out, &batch);
    }
}

/// Answers each connection's one request through the loop.
pub(super) async fn serve_control(
    listener: tokio::net::UnixListener,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let Ok(Some(line)) = lines.next_line().await else {
                return;
            };
            let response = match serde_json::from_str::<Request>(&line) {
                Err(error) => Response::Error {
                    message: format!("bad request: {error}"),
                },
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    if events.send(Event::Control { request, reply }).is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(response) => response,
                        Err(_) => return,
                    }
                }
            };
            if let Ok(mut text) = serde_json::to_string(&response) {
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
}
