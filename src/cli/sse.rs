//! A small Server-Sent Events reader over a reqwest response body, for the CLI verbs
//! that follow a stream (`session send --follow`, `bus tail`).
//!
//! It follows the parts of the WHATWG event-stream format the server uses: lines end in
//! LF, CRLF or CR; a blank line ends a message; `:` starts a comment (keep-alives);
//! `data` lines join with `\n`; `id` and `event` are remembered per message. Bytes are
//! buffered until a line is complete, so a UTF-8 character split across chunks is
//! decoded whole.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::client::{ApiError, Client};

/// One SSE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `id:` field (the bus seq, for Switchyard's streams).
    pub id: Option<String>,
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    pub data: String,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads an SSE response message by message.
pub struct SseReader {
    body: Body,
    parser: Parser,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self::from_stream(response.bytes_stream())
    }

    pub fn from_stream(
        stream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    ) -> Self {
        Self {
            body: Box::pin(stream),
            parser: Parser::default(),
        }
    }

    /// The next message; `Ok(None)` when the server ended the stream, `Err` when the
    /// connection broke.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseMessage>> {
        loop {
            if let Some(msg) = self.parser.next_message() {
                return Ok(Some(msg));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.parser.push(&chunk),
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("the stream broke")),
                None => return Ok(None),
            }
        }
    }
}

/// A followed stream that survives dropped connections: when the connection breaks
/// or the server ends the stream, it reconnects (with backoff, logging to stderr) and
/// resumes with `Last-Event-ID` = the last id it saw, so no event is lost or repeated.
/// Messages of type `error` (the server's reason for ending a stream) are logged and
/// skipped.
pub struct Resumable<'a> {
    client: &'a Client,
    path: String,
    label: &'static str,
    last_id: Option<String>,
    reader: SseReader,
}

impl<'a> Resumable<'a> {
    /// Connect once; failing here is an error (a wrong URL or pattern should not be
    /// retried forever).
    pub async fn connect(
        client: &'a Client,
        path: String,
        label: &'static str,
    ) -> anyhow::Result<Self> {
        let response = client.stream(&path, None).await?;
        Ok(Self {
            client,
            path,
            label,
            last_id: None,
            reader: SseReader::new(response),
        })
    }

    /// The next message, reconnecting as often as needed. Errors only when the server
    /// refuses the stream (a 4xx answer, e.g. the session was deleted).
    pub async fn next(&mut self) -> anyhow::Result<SseMessage> {
        loop {
            let reason = match self.reader.next().await {
                Ok(Some(msg)) if msg.event.as_deref() == Some("error") => {
                    eprintln!("{}: the server ended the stream: {}", self.label, msg.data);
                    continue;
                }
                Ok(Some(msg)) => {
                    if let Some(id) = &msg.id {
                        self.last_id = Some(id.clone());
                    }
                    return Ok(msg);
                }
                Ok(None) => "the server closed the stream".to_owned(),
                Err(e) => e.root_cause().to_string(),
            };
            self.reconnect(&reason).await?;
        }
    }

    async fn reconnect(&mut self, reason: &str) -> anyhow::Result<()> {
        let from = match &self.last_id {
            Some(id) => format!(" after event {id}"),
            None => String::new(),
        };
        eprintln!(
            "{}: connection lost ({reason}); reconnecting{from}",
            self.label
        );
        let mut delay = Duration::from_millis(250);
        loop {
            tokio::time::sleep(delay).await;
            match self
                .client
                .stream(&self.path, self.last_id.as_deref())
                .await
            {
                Ok(response) => {
                    self.reader = SseReader::new(response);
                    eprintln!("{}: reconnected", self.label);
                    return Ok(());
                }
                Err(e) => {
                    let refused = e
                        .downcast_ref::<ApiError>()
                        .is_some_and(|a| a.status.is_client_error());
                    if refused {
                        return Err(e);
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    // The root cause ("Connection refused") says it; the full chain
                    // repeats the URL on every attempt.
                    let why = match e.downcast_ref::<ApiError>() {
                        Some(a) => a.to_string(),
                        None => e.root_cause().to_string(),
                    };
                    eprintln!(
                        "{}: {why}; retrying in {:.1} s",
                        self.label,
                        delay.as_secs_f64()
                    );
                }
            }
        }
    }
}

/// Resolves on the first Ctrl-C (SIGINT). The handler is installed right away, so a
/// Ctrl-C from now on is seen here instead of killing the process.
pub fn interrupted() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered now, not when the task first runs.
        if let Ok(mut sigint) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                if sigint.recv().await.is_some() {
                    let _ = tx.send(());
                }
            });
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(());
        }
    });
    rx
}

/// The incremental parser, separate from I/O so it can be tested with any chunking.
#[derive(Default)]
struct Parser {
    buffer: Vec<u8>,
    /// The message being assembled.
    current: SseMessage,
    has_fields: bool,
    data_lines: usize,
    /// A CR ended the last line; a LF right after it belongs to that line ending.
    skip_lf: bool,
}

impl Parser {
    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Consume complete lines until a message is complete.
    fn next_message(&mut self) -> Option<SseMessage> {
        loop {
            if self.skip_lf && !self.buffer.is_empty() {
                if self.buffer[0] == b'\n' {
                    self.buffer.remove(0);
                }
                self.skip_lf = false;
            }
            let end = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r')?;
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            if line[end] == b'\r' {
                self.skip_lf = true;
            }
            let line = String::from_utf8_lossy(&line[..end]);
            if line.is_empty() {
                if self.has_fields {
                    self.has_fields = false;
                    self.data_lines = 0;
                    return Some(std::mem::take(&mut self.current));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    if self.data_lines > 0 {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.data_lines += 1;
                }
                "event" => self.current.event = Some(value.to_owned()),
                "id" => self.current.id = Some(value.to_owned()),
                _ => continue, // `retry` and unknown fields
            }
            self.has_fields = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(input: &[u8], size: usize) -> Vec<SseMessage> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in input.chunks(size) {
            parser.push(chunk);
            while let Some(m) = parser.next_message() {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn messages_survive_any_chunking() {
        let input = ": keep-alive\n\nevent: snapshot\ndata: {\"a\":\"é\"}\n\n\
                     id: 7\r\nevent: x\r\ndata: one\r\ndata:two\r\n\r\n\
                     id: 8\rdata\r\r";
        let expected = vec![
            SseMessage {
                id: None,
                event: Some("snapshot".into()),
                data: "{\"a\":\"é\"}".into(),
            },
            SseMessage {
                id: Some("7".into()),
                event: Some("x".into()),
                data: "one\ntwo".into(),
            },
            SseMessage {
                id: Some("8".into()),
                event: None,
                data: String::new(),
            },
        ];
        for size in 1..=input.len() {
            assert_eq!(
                parse_in_chunks(input.as_bytes(), size),
                expected,
                "chunks of {size}"
            );
        }
    }
}
