//! Reading server-sent events from a response body.

use std::time::Duration;

/// The server sends a keep-alive comment every 15 seconds; this long without a byte means
/// the connection is dead even if the socket does not say so.
const SILENCE: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

pub(crate) struct EventReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    pending: SseEvent,
}

/// Why the stream stopped.
#[derive(Debug)]
pub(crate) enum Broken {
    Network,
    Silent,
}

impl EventReader {
    pub(crate) fn new(response: reqwest::Response) -> EventReader {
        EventReader {
            response,
            buffer: Vec::new(),
            pending: empty(),
        }
    }

    /// The next event; `Ok(None)` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<SseEvent>, Broken> {
        loop {
            while let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(event) = self.take_line(line) {
                    return Ok(Some(event));
                }
            }
            let chunk = match tokio::time::timeout(SILENCE, self.response.chunk()).await {
                Err(_) => return Err(Broken::Silent),
                Ok(Err(_)) => return Err(Broken::Network),
                Ok(Ok(chunk)) => chunk,
            };
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// Adds one line to the event being read; returns the event at its blank line.
    fn take_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::replace(&mut self.pending, empty());
            return (!event.data.is_empty()).then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.pending.event),
            "id" => self.pending.id = Some(value.to_owned()),
            "data" => {
                if !self.pending.data.is_empty() {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

fn empty() -> SseEvent {
    SseEvent {
        event: "message".to_owned(),
        id: None,
        data: String::new(),
    }
}
