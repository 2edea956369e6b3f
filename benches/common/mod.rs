//! Helpers shared by the bench binaries: a real `switchyard serve` (this build) on a
//! free loopback port.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin token the bench servers accept.
pub const TOKEN: &str = "bench-admin-token-not-secret";

/// An HTTP client that sends [`TOKEN`]; `max_idle` connections kept per host.
pub fn http(max_idle: usize) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(max_idle)
        .build()
        .unwrap()
}

/// A WebSocket to `path` on the server at `url` (`http://…`), sending [`TOKEN`].
pub async fn websocket(
    url: &str,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}{path}", url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    // The server's read size (`api::extract::READ_BUFFER`): the default zero-fills
    // 128 KiB before every read, which the client then spends CPU on beside the server.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    tokio_tungstenite::connect_async_with_config(req, Some(config), false)
        .await
        .unwrap()
        .0
}

/// The bench's plain arguments (`cargo bench --bench X -- a b…`), without cargo's
/// `--bench` flag.
pub fn plain_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// Whether the section `name` was asked for: the plain arguments name the sections to
/// run; none runs them all.
pub fn selected(name: &str) -> bool {
    let args = plain_args();
    args.is_empty() || args.iter().any(|a| a == name)
}

/// The `p` quantile (0.5 = median) of samples sorted ascending.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build the shipped plugins and the test fixtures if any of `components` (paths
/// under the repository) is missing: `plugins/build-all.sh` builds only what changed.
pub fn ensure_built(components: &[&str]) {
    let missing = |c: &str| !repo().join(c).is_file();
    if !components.iter().any(|c| missing(c)) {
        return;
    }
    eprintln!("bench: building the plugins and fixtures first (plugins/build-all.sh)");
    let status = Command::new(repo().join("plugins/build-all.sh"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run plugins/build-all.sh: {e}"));
    let still: Vec<&str> = components.iter().copied().filter(|c| missing(c)).collect();
    assert!(
        status.success() && still.is_empty(),
        "plugins/build-all.sh ({status}) left {still:?} missing; run it by hand to see why"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CPU time (user and system, every thread) that process `pid` has used so far. The
/// kernel counts it in clock ticks (10 ms), so runs of a second or more read it to
/// about 1%.
pub fn cpu_time(pid: u32) -> Duration {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat"))
}

/// CPU time that the threads of process `pid` named `name` have used so far (summed;
/// a thread that has exited no longer counts).
pub fn thread_cpu_time(pid: u32, name: &str) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            Some(stat_cpu(&std::fs::read_to_string(dir.join("stat")).ok()?))
        })
        .sum()
}

/// User and system time of a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Duration {
    // The fields after the command name, which is in parentheses and may hold spaces:
    // state is the first of them, utime and stime the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    /// Start `command`, tied to this process: killed on drop, and by the kernel when
    /// this process dies without dropping it (Ctrl-C, SIGKILL), so that a stopped bench
    /// leaves no server behind to skew the next run. (The signal follows the spawning
    /// thread: spawn from the main thread or a runtime worker, which live as long as
    /// the bench.)
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec the closure only makes one async-signal-safe
        // system call.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().map(Proc)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `switchyard serve` (this build, release, or the binary named by
/// `BENCH_SWITCHYARD`, to compare two builds in one run) with echo-agent on `dir`,
/// configured by `dir/switchyard.toml` if there is one.
pub async fn start_switchyard(dir: &std::path::Path) -> (Proc, String) {
    let plugins = dir.join("plugins/echo-agent");
    std::fs::create_dir_all(&plugins).unwrap();
    for f in ["plugin.toml", "echo-agent.wasm"] {
        std::fs::copy(repo().join("plugins/echo-agent").join(f), plugins.join(f)).unwrap();
    }
    let port = free_port();
    let child = Proc::spawn(
        Command::new(
            std::env::var_os("BENCH_SWITCHYARD")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchyard").into()),
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--recipes")
        .arg(dir.join("recipes"))
        .env("SWITCHYARD_CONFIG", {
            let config = dir.join("switchyard.toml");
            if !config.exists() {
                std::fs::write(&config, "").unwrap();
            }
            config
        })
        .env("SWITCHYARD_LOG", "warn")
        .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null()),
    )
    .expect("start switchyard");
    let url = format!("http://127.0.0.1:{port}");
    let http = http(8);
    let start = Instant::now();
    while !http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            // Generous: the automations bench loads 100,000 recipe files first.
            start.elapsed() < Duration::from_secs(600),
            "switchyard did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}
