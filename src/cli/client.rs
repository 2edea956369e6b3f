//! A small JSON client for the server's API, used by the CLI verbs.

use anyhow::Context;
use serde_json::Value;

/// The server to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// URL of a running switchyard.
    #[arg(
        long = "server",
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:7777"
    )]
    pub url: String,
    /// API token [default: the admin token a local server's first start wrote to
    /// `$SWITCHYARD_DATA_DIR/admin-token` (or `./.switchyard/admin-token`)].
    #[arg(long = "token", env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArgs {
    /// The token to send: given, or the local admin token file's.
    fn token(&self) -> Option<String> {
        self.token.clone().or_else(|| {
            let dir = std::env::var_os("SWITCHYARD_DATA_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| ".switchyard".into());
            std::fs::read_to_string(dir.join(crate::auth::ADMIN_TOKEN_FILE))
                .ok()
                .map(|t| t.trim().to_owned())
        })
    }
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = args.token()
            && let Ok(mut value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// GET a Server-Sent Events stream (optionally resuming after `last_event_id`);
    /// the response once it answered 2xx, else the server's error.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.connect(request).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(api_error(status, &body));
        }
        Ok(response)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self.connect(request).await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok(body)
    }

    async fn connect(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach switchyard at {} (is `switchyard serve` running? set --server or SWITCHYARD_URL)", self.base))
    }
}

/// An error answer of the API (`{"error": {"code", "message", "field"}}`), shown as
/// `<status>: <message>`; callers that react to a status (e.g. 404) downcast to it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: reqwest::StatusCode,
    pub message: String,
}

fn api_error(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    anyhow::Error::new(ApiError {
        status,
        message: body["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_owned(),
    })
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The HTTP status of an error from [`Client`], if the server answered one.
pub fn status_of(error: &anyhow::Error) -> Option<u16> {
    error.downcast_ref::<ApiError>().map(|e| e.status.as_u16())
}

/// Percent-encode `s` for one path segment or query value (everything but unreserved
/// characters), so keys and topic patterns like `a/b` or `x.>` reach the server intact.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
