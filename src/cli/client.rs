//! A small JSON client for the server's API, used by the CLI verbs.

use anyhow::{Context, bail};
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
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
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

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach switchyard at {} (is `switchyard serve` running? set --server or SWITCHYARD_URL)", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            bail!("{status}: {message}");
        }
        Ok(body)
    }
}
