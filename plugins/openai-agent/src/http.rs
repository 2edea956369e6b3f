//! One streamed HTTP POST over `wasi:http`: send a body, then read the response body
//! chunk by chunk as the network delivers it. Every wait wakes up regularly to ask
//! whether the turn was aborted, so an abort is noticed even while the server is
//! silent.

use std::time::Duration;

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, StreamError};

/// How often a wait wakes up to check for an abort.
const ABORT_CHECK: Duration = Duration::from_millis(100);
/// Longest wait for the TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most bytes taken from the body stream per read.
const READ_BYTES: u64 = 64 * 1024;
/// Most bytes written to the request body stream per call (the wasi:io limit).
const WRITE_BYTES: usize = 4096;

/// Where the requests go: `<scheme>://<authority><path>`.
#[derive(Debug, PartialEq)]
pub struct Endpoint {
    pub https: bool,
    /// `host` or `host:port`, as written in the URL.
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    /// `base_url` (e.g. `https://api.openai.com/v1`) with `suffix` appended to its path.
    pub fn parse(base_url: &str, suffix: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("config key `base_url` ({base_url:?}) {why}");
        let (scheme, rest) = base_url
            .trim()
            .split_once("://")
            .ok_or_else(|| bad("must look like https://host[:port][/path]"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("must start with https:// or http://")),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("must name a host (without user information)"));
        }
        if path.contains(['?', '#']) || authority.contains(['?', '#']) {
            return Err(bad("must not have a query or a fragment"));
        }
        Ok(Self {
            https,
            authority: authority.to_owned(),
            path: format!("{}{suffix}", path.trim_end_matches('/')),
        })
    }

    /// The host without the port: what `permissions.allowed_hosts` must list.
    pub fn host(&self) -> &str {
        match self.authority.rfind(':') {
            Some(i) if !self.authority[i..].contains(']') => &self.authority[..i],
            _ => &self.authority,
        }
    }
}

/// Why no response (or no more of it) could be had.
pub enum Failure {
    /// The turn was aborted while waiting.
    Aborted,
    /// The request failed; the text says why, in the user's terms.
    Failed(String),
}

/// The next piece of a response body.
pub enum Read {
    Data(Vec<u8>),
    /// The body ended normally.
    End,
    Aborted,
    /// The body stream failed (e.g. the connection was cut); the text is the detail.
    Failed(String),
}

/// A response whose body is being read. Field order is drop order: a stream must be
/// dropped before its body, and the body before its response.
pub struct Response {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// POST `body` to `endpoint` with `headers` (names lower-case); wait for the response
/// head. `aborted` is asked while waiting.
pub fn post(
    endpoint: &Endpoint,
    headers: &[(&str, &str)],
    body: &[u8],
    aborted: &dyn Fn() -> bool,
) -> Result<Response, Failure> {
    let failed = |what: &str| Failure::Failed(format!("cannot build the request: {what}"));
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    fields.push(("content-length".into(), body.len().to_string().into_bytes()));
    let fields = Fields::from_list(&fields).map_err(|e| failed(&format!("header {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&Method::Post)
        .map_err(|()| failed("method"))?;
    let scheme = if endpoint.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| failed("scheme"))?;
    request
        .set_authority(Some(&endpoint.authority))
        .map_err(|()| failed("authority (check base_url)"))?;
    request
        .set_path_with_query(Some(&endpoint.path))
        .map_err(|()| failed("path (check base_url)"))?;
    let outgoing = request.body().map_err(|()| failed("body"))?;
    let options = RequestOptions::new();
    // A host that does not support the option keeps its own default.
    let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT.as_nanos() as u64));

    let future = outgoing_handler::handle(request, Some(options))
        .map_err(|code| Failure::Failed(request_error(endpoint, &code)))?;
    // Send the body after handing the request over, so the host is already reading
    // it. A failed write surfaces as the response's error below.
    let _ = write_body(outgoing, body);

    if !wait(&future.subscribe(), aborted) {
        return Err(Failure::Aborted);
    }
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Failure::Failed(request_error(endpoint, &code))),
        Some(Err(())) => return Err(Failure::Failed("the response was already taken".into())),
        None => return Err(Failure::Failed("the response is not ready".into())),
    };
    let status = response.status();
    let (retry_after, content_type) = {
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .first()
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        };
        (header("retry-after"), header("content-type"))
    };
    let body = response
        .consume()
        .map_err(|()| Failure::Failed("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| Failure::Failed("the response body stream was already taken".into()))?;
    Ok(Response {
        stream,
        _body: body,
        _response: response,
        status,
        retry_after,
        content_type,
    })
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing.write().map_err(|()| "body stream taken")?;
        for piece in body.chunks(WRITE_BYTES) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| e.to_string())?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| format!("{code:?}"))
}

impl Response {
    /// The next bytes of the body, as soon as any arrive.
    pub fn next(&mut self, aborted: &dyn Fn() -> bool) -> Read {
        loop {
            match self.stream.read(READ_BYTES) {
                Ok(bytes) if !bytes.is_empty() => return Read::Data(bytes),
                Ok(_) => {
                    if !wait(&self.stream.subscribe(), aborted) {
                        return Read::Aborted;
                    }
                }
                Err(StreamError::Closed) => return Read::End,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Read::Failed(match wasip2::http::types::http_error_code(&e) {
                        Some(code) => format!("{code:?}"),
                        None => e.to_debug_string(),
                    });
                }
            }
        }
    }

    /// The rest of the body (at most `limit` bytes), for an error answer; a body that
    /// fails or is aborted midway gives what was read.
    pub fn read_to_limit(&mut self, limit: usize, aborted: &dyn Fn() -> bool) -> Vec<u8> {
        let mut all = Vec::new();
        while all.len() < limit {
            match self.next(aborted) {
                Read::Data(bytes) => all.extend_from_slice(&bytes),
                Read::End | Read::Aborted | Read::Failed(_) => break,
            }
        }
        all.truncate(limit);
        all
    }
}

/// Wait until `pollable` is ready (true) or the turn is aborted (false).
fn wait(pollable: &Pollable, aborted: &dyn Fn() -> bool) -> bool {
    loop {
        if aborted() {
            return false;
        }
        let tick = monotonic_clock::subscribe_duration(ABORT_CHECK.as_nanos() as u64);
        if poll(&[pollable, &tick]).contains(&0) {
            return true;
        }
    }
}

/// A failed request in the user's terms.
fn request_error(endpoint: &Endpoint, code: &ErrorCode) -> String {
    let url = format!(
        "{}://{}{}",
        if endpoint.https { "https" } else { "http" },
        endpoint.authority,
        endpoint.path
    );
    match code {
        ErrorCode::HttpRequestDenied => format!(
            "outbound HTTP to {} was denied: add \"{}\" to permissions.allowed_hosts in the \
             plugin's plugin.toml (or point base_url at an allowed host)",
            endpoint.authority,
            endpoint.host()
        ),
        ErrorCode::ConnectionRefused => format!(
            "cannot connect to {}: connection refused (is a server listening at {url}?)",
            endpoint.authority
        ),
        ErrorCode::ConnectionTimeout => format!(
            "cannot connect to {}: timed out after {} s",
            endpoint.authority,
            CONNECT_TIMEOUT.as_secs()
        ),
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => {
            format!("cannot resolve the host of {url} ({code:?})")
        }
        other => format!("the request to {url} failed: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_base_urls() {
        let e = Endpoint::parse("https://api.openai.com/v1/", "/chat/completions").unwrap();
        assert_eq!(
            e,
            Endpoint {
                https: true,
                authority: "api.openai.com".into(),
                path: "/v1/chat/completions".into()
            }
        );
        assert_eq!(e.host(), "api.openai.com");
        let e = Endpoint::parse("HTTP://127.0.0.1:8080", "/chat/completions").unwrap();
        assert_eq!(
            (e.https, e.authority.as_str(), e.path.as_str(), e.host()),
            (false, "127.0.0.1:8080", "/chat/completions", "127.0.0.1")
        );
        let e = Endpoint::parse("http://[::1]:9000/v1", "/x").unwrap();
        assert_eq!(e.host(), "[::1]");
        assert_eq!(
            Endpoint::parse("http://[::1]/v1", "").unwrap().host(),
            "[::1]"
        );
        for bad in [
            "api.openai.com/v1",
            "ftp://x/v1",
            "https:///v1",
            "https://u@h/v1",
            "https://h/v1?x=1",
        ] {
            let err = Endpoint::parse(bad, "/c").unwrap_err();
            assert!(err.contains("base_url"), "{bad}: {err}");
        }
    }
}
