//! Test harness: real plugin folders in a temp dir, a real `switchyard serve` process on
//! a free loopback port, and a JSON client — so each test reads like a user session.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The admin token every test server accepts (`SWITCHYARD_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token-not-secret";

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

/// An HTTP client that sends the admin token.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(bearer(ADMIN_TOKEN))
        .build()
        .unwrap()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One compile cache for every test run, so an 18 MB Python component is compiled once.
pub fn shared_cache() -> PathBuf {
    repo().join("target").join("test-component-cache")
}

/// The folder of a shipped plugin (`plugins/NAME`) or a fixture (`tests/fixtures/NAME`).
pub fn plugin_source(name: &str) -> PathBuf {
    let shipped = repo().join("plugins").join(name);
    let dir = if shipped.join("plugin.toml").exists() {
        shipped
    } else {
        repo().join("tests/fixtures").join(name)
    };
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(
        wasm.exists(),
        "{} is missing: run plugins/build-all.sh (scripts/test.sh does) before cargo test",
        wasm.display()
    );
    dir
}

/// Copy a plugin's manifest and component into `plugins_dir/NAME`.
pub fn install_plugin(plugins_dir: &Path, name: &str) -> PathBuf {
    let src = plugin_source(name);
    let dst = plugins_dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for file in ["plugin.toml".to_owned(), format!("{name}.wasm")] {
        std::fs::copy(src.join(&file), dst.join(&file)).unwrap();
    }
    dst
}

/// Replace `path` the way editors and build tools do: write a sibling, rename it over.
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp-replace");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `switchyard serve`.
pub struct Server {
    child: ChildGuard,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub plugins_dir: PathBuf,
    plugins_root: tempfile::TempDir,
    envs: Vec<(String, Option<String>)>,
    http: reqwest::Client,
    /// What the server printed on stdout after its first line.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Start a server with copies of the named plugins; wait until it is ready.
    pub async fn start(plugins: &[&str]) -> Server {
        let plugins_root = tempfile::tempdir().unwrap();
        let plugins_dir = plugins_root.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).unwrap();
        for name in plugins {
            install_plugin(&plugins_dir, name);
        }
        Self::launch(plugins_root, tempfile::tempdir().unwrap(), Vec::new()).await
    }

    /// Like [`Server::start`], with environment variables set (`Some`) or removed
    /// (`None`) for the server process; a restart keeps them.
    pub async fn start_with_env(plugins: &[&str], envs: &[(&str, Option<&str>)]) -> Server {
        let plugins_root = tempfile::tempdir().unwrap();
        let plugins_dir = plugins_root.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).unwrap();
        for name in plugins {
            install_plugin(&plugins_dir, name);
        }
        let envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        Self::launch(plugins_root, tempfile::tempdir().unwrap(), envs).await
    }

    /// `switchyard ARGS` on the command line against this server, as the admin.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_as(ADMIN_TOKEN, args)
    }

    /// `switchyard ARGS` against this server with `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .env("SWITCHYARD_URL", &self.url)
            .env("SWITCHYARD_TOKEN", token)
            .output()
            .unwrap()
    }

    /// Write `recipes/NAME.yaml` (as editors save) and wait until the server has that
    /// version in force.
    pub async fn install_recipe(&self, name: &str, yaml: &str) {
        std::fs::create_dir_all(self.recipes_dir()).unwrap();
        replace_file(
            &self.recipes_dir().join(format!("{name}.yaml")),
            yaml.as_bytes(),
        );
        let version = switchyard::recipes::version_of(yaml);
        let start = Instant::now();
        loop {
            let (status, body) = self.get(&format!("/v1/recipes/{name}")).await;
            if status == 200 && body["version"] == version.as_str() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "recipe {name} never loaded: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the automations service has automation `id` (it takes a recipe up
    /// just after the registry loads it).
    pub async fn wait_automation(&self, id: &str) {
        let start = Instant::now();
        loop {
            let (_, list) = self.get("/v1/automations").await;
            if list
                .as_array()
                .is_some_and(|l| l.iter().any(|a| a["id"] == id))
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no automation {id}: {list}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's recipes directory (created empty).
    pub fn recipes_dir(&self) -> PathBuf {
        self.plugins_root.path().join("recipes")
    }

    /// Kill with SIGKILL (no shutdown at all) and start again on the same data.
    pub async fn kill_and_restart(mut self) -> Server {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
        Self::launch(self.plugins_root, self.data_dir, self.envs).await
    }

    /// Stop with SIGTERM and start again on the same data and plugins; also returns
    /// how the process exited and what it printed on stdout after its first line.
    pub async fn terminate_and_restart(
        mut self,
    ) -> (std::process::ExitStatus, Vec<String>, Server) {
        let exit = tokio::task::block_in_place(|| self.child.terminate());
        // The reader thread sees the end of the pipe right after the exit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let printed = std::mem::take(&mut *self.stdout.lock().unwrap());
        let server = Self::launch(self.plugins_root, self.data_dir, self.envs).await;
        (exit, printed, server)
    }

    /// Stop with SIGTERM and start again on the same data and plugins.
    pub async fn restart(mut self) -> Server {
        assert!(self.child.terminate().success());
        Self::launch(self.plugins_root, self.data_dir, self.envs).await
    }

    async fn launch(
        plugins_root: tempfile::TempDir,
        data_dir: tempfile::TempDir,
        envs: Vec<(String, Option<String>)>,
    ) -> Server {
        let plugins_dir = plugins_root.path().join("plugins");
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--plugins")
            .arg(&plugins_dir)
            .arg("--recipes")
            .arg(plugins_root.path().join("recipes"))
            .arg("--cache-dir")
            .arg(shared_cache())
            .env("SWITCHYARD_LOG", "info")
            .env("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in &envs {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let mut child = command.spawn().expect("start switchyard");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Keep draining stdout so a later print never hits a closed pipe.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let url = line
            .trim()
            .strip_prefix("switchyard listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let server = Server {
            child: ChildGuard(child),
            url,
            data_dir,
            plugins_dir,
            plugins_root,
            envs,
            http: http(),
            stdout,
        };
        server.wait_ready(Duration::from_secs(120)).await;
        server
    }

    async fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            // 401: up, with an admin token of its own (the test reads it from disk).
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && (r.status().is_success() || r.status() == 401)
            {
                return;
            }
            assert!(start.elapsed() < limit, "server not ready after {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET, returning (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON, returning (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Make an API token with `scopes` (and a `ttl` such as `"1s"`): its secret and
    /// its id.
    pub async fn token(&self, scopes: &[&str], ttl: Option<&str>) -> (String, String) {
        let (status, body) = self
            .post(
                "/v1/tokens",
                &json!({ "name": "test", "scopes": scopes, "ttl": ttl }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let field = |name: &str| body[name].as_str().unwrap().to_owned();
        (field("token"), field("id"))
    }

    /// Revoke the API token `id`.
    pub async fn revoke(&self, id: &str) {
        let (status, body) = self
            .post(&format!("/v1/tokens/{id}/revoke"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Call a plugin export through the API.
    pub async fn call(&self, plugin: &str, export: &str, input: Value) -> (u16, Value) {
        self.post(
            &format!("/v1/plugins/{plugin}/call"),
            &serde_json::json!({ "export": export, "input": input }),
        )
        .await
    }

    /// The plugin's entry in `GET /v1/plugins/NAME`.
    pub async fn plugin(&self, name: &str) -> Value {
        self.get(&format!("/v1/plugins/{name}")).await.1
    }

    /// Poll `check` on the plugin's summary until it holds (or panic after `limit`).
    pub async fn wait_plugin(
        &self,
        name: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let p = self.plugin(name).await;
            if check(&p) {
                return p;
            }
            assert!(
                start.elapsed() < limit,
                "plugin {name} never reached the expected state: {p}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send SIGTERM and wait for the process to exit; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.child.terminate()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// Kills the server process when a test ends, however it ends.
struct ChildGuard(Child);

impl ChildGuard {
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.0.wait().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One Server-Sent Events message.
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A reader of an SSE response, message by message.
pub struct SseStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseStream {
    /// GET `url` with optional `Last-Event-ID`; panics unless it answers 200.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> SseStream {
        let mut req = http().get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        SseStream {
            body: Box::pin(resp.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next message (keep-alive comments skipped), or None when the stream ends or
    /// nothing arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseMessage> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut msg = SseMessage {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        msg.id = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        msg.event = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !msg.data.is_empty() {
                            msg.data.push('\n');
                        }
                        msg.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(msg);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }
}

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message of `ws`, a JSON text, within 10 s.
pub async fn next_json(ws: &mut WebSocket) -> Value {
    use futures::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message within 10 s")
        .expect("the socket is open")
        .expect("a message");
    serde_json::from_str(message.to_text().expect("a text message")).expect("JSON")
}

/// Wait for `ws` to be closed by the server.
pub async fn assert_closes(ws: &mut WebSocket) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed within 5 s");
    assert!(
        matches!(next, None | Some(Ok(Message::Close(_)) | Err(_))),
        "{next:?}"
    );
}

/// Open a WebSocket on `path` of `server` with `token`; the handshake's refusal
/// (status and body) when it is refused.
pub async fn websocket(
    server: &Server,
    path: &str,
    token: &str,
) -> Result<WebSocket, (u16, Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", server.url.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = r.body().as_deref().unwrap_or_default();
            Err((
                r.status().as_u16(),
                serde_json::from_slice(body).unwrap_or_default(),
            ))
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

/// What a [`Load`] got a 2xx for.
#[derive(Default)]
pub struct Acknowledged {
    /// message id → session key
    pub messages: std::collections::HashMap<String, String>,
    /// event seq → event id
    pub events: std::collections::HashMap<u64, String>,
}

/// Clients that keep sending messages to the sessions `{prefix}0` … and publishing
/// events on `{prefix}.c{client}` (one request in three) until the server goes away,
/// recording every request that got a 2xx; only a full queue (429) may refuse.
pub struct Load {
    acked: Arc<Mutex<Acknowledged>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, prefix: &str, sessions: usize, clients: usize) -> Load {
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let clients = (0..clients)
            .map(|c| {
                let (url, acked, prefix) = (url.to_owned(), acked.clone(), prefix.to_owned());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .default_headers(bearer(ADMIN_TOKEN))
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap();
                    for i in 0.. {
                        let key = format!("{prefix}{}", (c + i) % sessions);
                        let sent = if i % 3 == 0 {
                            http.post(format!("{url}/v1/events"))
                                .json(&json!({ "topic": format!("{prefix}.c{c}"), "type": "test", "data": { "i": i } }))
                                .send()
                                .await
                        } else {
                            http.post(format!("{url}/v1/sessions/{key}/messages"))
                                .json(&json!({ "text": format!("client {c} message {i} with a few words") }))
                                .send()
                                .await
                        };
                        let Ok(r) = sent else { return }; // the server is gone
                        let status = r.status();
                        let Ok(body) = r.json::<Value>().await else { return };
                        if status.is_success() {
                            let mut a = acked.lock().unwrap();
                            if let Some(seq) = body["seq"].as_u64() {
                                a.events.insert(seq, body["id"].as_str().unwrap().to_owned());
                            } else {
                                a.messages.insert(body["id"].as_str().unwrap().to_owned(), key);
                            }
                        } else {
                            assert_eq!(status, 429, "only a full queue may refuse: {body}");
                        }
                    }
                })
            })
            .collect();
        Load { acked, clients }
    }

    /// Wait for every client to see the server gone; what was acknowledged.
    pub async fn finish(self) -> Acknowledged {
        for c in self.clients {
            c.await.unwrap();
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Create the sessions `{prefix}0` … `{prefix}{n-1}` on echo-agent, with a little delay
/// per word so that turns are in flight when a load is cut.
pub async fn create_load_sessions(server: &Server, prefix: &str, n: usize) {
    for s in 0..n {
        let (status, body) = server
            .post(
                "/v1/sessions",
                &json!({ "key": format!("{prefix}{s}"), "config": { "delay_ms": 2 } }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// Wait (at most a minute) until the sessions `{prefix}0` … have nothing queued or
/// processing.
pub async fn wait_sessions_idle(server: &Server, prefix: &str, n: usize) {
    let start = Instant::now();
    for s in 0..n {
        loop {
            let (_, snap) = server.get(&format!("/v1/sessions/{prefix}{s}")).await;
            if snap["queue_depth"] == 0 && snap["processing"] == false {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{prefix}{s} never drained: {snap}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The user messages of the sessions `{prefix}0` …: their ids, and how many have each
/// status. A `done` message is checked to have its reply (echo-agent: the same text).
pub async fn user_messages(
    server: &Server,
    prefix: &str,
    n: usize,
) -> (
    std::collections::HashSet<String>,
    std::collections::HashMap<String, usize>,
) {
    let mut found = std::collections::HashSet::new();
    let mut statuses = std::collections::HashMap::new();
    for s in 0..n {
        let (_, h) = server
            .get(&format!("/v1/sessions/{prefix}{s}/history?limit=10000"))
            .await;
        let messages = h["messages"].as_array().unwrap();
        for (i, m) in messages.iter().enumerate() {
            if m["role"] != "user" {
                continue;
            }
            let status = m["status"].as_str().unwrap().to_owned();
            if status == "done" {
                assert_eq!(
                    messages[i + 1]["role"],
                    "assistant",
                    "a done message has its reply"
                );
                assert_eq!(messages[i + 1]["text"], m["text"]);
            }
            *statuses.entry(status).or_default() += 1;
            found.insert(m["id"].as_str().unwrap().to_owned());
        }
    }
    (found, statuses)
}

/// Every event in the server's log, oldest first (read until a second passes with none).
pub async fn log_events(server: &Server) -> Vec<Value> {
    let mut log = SseStream::connect(&format!("{}/v1/events?after=0", server.url), None).await;
    let mut events = Vec::new();
    while let Some(msg) = log.next(Duration::from_millis(1000)).await {
        events.push(serde_json::from_str(&msg.data).unwrap());
    }
    events
}
