//! `tools/call` throughput over streamable HTTP: mcp-lp with bearer-token validation (a signed
//! JWT checked on every request, the scope-to-grant check, session binding, the checkpoint and
//! its audit event) vs the same tool on a plain rmcp HTTP server without authentication. A third
//! server, mcp-lp without authentication, separates the cost of tokens from the rest. All
//! run in this process on loopback, measured interleaved round by round, sequentially and with
//! concurrent clients, in both protocol modes: MCP 2025-11-25 with a session per client, and
//! MCP 2026-07-28, stateless, every request carrying its own version, capabilities and headers.
//!
//! ```sh
//! cargo bench -p mcp-lp-tests --bench http_calls        # ROUNDS=10 CALLS=500 CLIENTS=16
//! ```
//!
//! `ONLY=N` serves and measures the N-th server of the table alone, for counting its
//! instructions under `valgrind --tool=callgrind`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt as _;
use mcp_lp::{Config, Server};
use mcp_lp_tests::bench::{env_or, median, only};
use mcp_lp_tests::http::AuthServer;
use mcp_lp_tests::{GuardedEcho, OpenEcho, PlainEcho};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

const ACCEPT: &str = "application/json, text/event-stream";

async fn listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

/// The mcp-lp server, started by `serve_http` from configuration as `serve --http` does.
async fn guarded() -> (String, Option<String>) {
    let (probe, port) = listener().await;
    drop(probe);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let auth = AuthServer::start().await;
    let token = auth.token(&url, "bench@example.com", "bench:echo");
    let issuer = &auth.issuer;
    let text = format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\nresource = \"{url}\"\n[http.auth]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks.json\"\n"
    );
    let config = Config::from_toml(&text, "bench.toml").expect("config");
    tokio::spawn(async move {
        mcp_lp::transport::http::serve_http(Server::new(GuardedEcho), &config).await
    });
    (url, Some(token))
}

/// The mcp-lp server without authentication (`[dev] allow_unauthenticated_http`): the gate, the
/// checkpoint and its audit event, with no token to validate.
async fn open() -> (String, Option<String>) {
    let (probe, port) = listener().await;
    drop(probe);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let text = format!(
        "[dev]\nallow_unauthenticated_http = true\n[http]\nlisten = \"127.0.0.1:{port}\"\nresource = \"{url}\"\n"
    );
    let config = Config::from_toml(&text, "bench.toml").expect("config");
    tokio::spawn(async move {
        mcp_lp::transport::http::serve_http(Server::new(OpenEcho), &config).await
    });
    (url, None)
}

/// The plain rmcp server: rmcp's defaults, no authentication.
async fn plain() -> (String, Option<String>) {
    let (listener, port) = listener().await;
    let service = StreamableHttpService::new(
        || Ok(PlainEcho::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    // TCP_NODELAY as mcp-lp's `serve_http` sets it, so the comparison is of the servers alone.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/mcp"), None)
}

/// How a client speaks to a server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// MCP 2025-11-25: `initialize`, then requests in the session it opened.
    Session,
    /// MCP 2026-07-28: no session; each request names its version and capabilities in `_meta`
    /// and its method and tool in headers.
    Stateless,
}

impl Protocol {
    fn version(self) -> &'static str {
        match self {
            Self::Session => "2025-11-25",
            Self::Stateless => "2026-07-28",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Session => "2025-11-25 session",
            Self::Stateless => "2026-07-28 stateless",
        }
    }
}

struct Target {
    url: String,
    token: Option<String>,
}

/// A client of one target: its connection pool and, in session mode, its session.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    protocol: Protocol,
    session: Option<String>,
}

impl Target {
    async fn post(
        &self,
        client: &reqwest::Client,
        protocol: Protocol,
        session: Option<&str>,
        message: &Value,
    ) -> (Option<String>, Value) {
        let mut request = client
            .post(&self.url)
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", protocol.version());
        if protocol == Protocol::Stateless {
            request = request.header("mcp-method", message["method"].as_str().unwrap_or(""));
            if let Some(name) = message["params"]["name"].as_str() {
                request = request.header("mcp-name", name);
            }
        }
        let mut request = request.json(message);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.expect("request");
        assert!(
            response.status().is_success(),
            "{} answered {}",
            self.url,
            response.status()
        );
        let issued = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.expect("body");
        let reply = body
            .lines()
            .rev()
            .filter_map(|line| line.strip_prefix("data:"))
            .find_map(|data| serde_json::from_str(data.trim()).ok())
            .or_else(|| serde_json::from_str(&body).ok())
            .unwrap_or(Value::Null);
        (issued, reply)
    }

    /// A client: in session mode with an initialized session, in stateless mode with none.
    async fn client(&self, protocol: Protocol) -> Client {
        let http = reqwest::Client::new();
        if protocol == Protocol::Stateless {
            return Client {
                http,
                protocol,
                session: None,
            };
        }
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
        let (session, _) = self.post(&http, protocol, None, &init).await;
        let session = session.expect("a session id");
        self.post(
            &http,
            protocol,
            Some(&session),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        Client {
            http,
            protocol,
            session: Some(session),
        }
    }

    async fn calls(&self, client: &Client, n: usize) {
        for id in 1..=n {
            let mut params =
                json!({"name": "echo", "arguments": {"text": "quarterly report, page 3"}});
            if client.protocol == Protocol::Stateless {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                });
            }
            let call =
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
            let (_, reply) = self
                .post(
                    &client.http,
                    client.protocol,
                    client.session.as_deref(),
                    &call,
                )
                .await;
            assert_eq!(
                reply["result"]["content"][0]["text"], "quarterly report, page 3",
                "{reply}"
            );
        }
    }
}

/// CPU time this process's threads have run, from the kernel's scheduler statistics
/// (nanosecond resolution, unlike `/proc/self/stat`). Client and servers share the process, so
/// the difference between two servers' CPU per call is the difference in their own work.
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Calls per second and CPU microseconds per call: `clients` clients each making `calls`
/// sequential calls at once.
async fn throughput(target: &Arc<Target>, sessions: &[Client], calls: usize) -> (f64, f64) {
    let cpu = process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|client| {
            let target = Arc::clone(target);
            tokio::spawn(async move { target.calls(&client, calls).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    let elapsed = started.elapsed();
    let total = (sessions.len() * calls) as f64;
    let cpu_us = process_cpu().saturating_sub(cpu).as_secs_f64() * 1e6 / total;
    (total / elapsed.as_secs_f64(), cpu_us)
}

fn main() {
    let rounds: usize = env_or("ROUNDS", 10);
    let calls: usize = env_or("CALLS", 500);
    let clients: usize = env_or("CLIENTS", 16);
    tracing::subscriber::set_global_default(mcp_lp::cli::json_subscriber::<GuardedEcho, _>(
        std::io::sink,
    ))
    .expect("the only subscriber");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let names = [
            "plain rmcp 3.11, no authentication",
            "mcp-lp, no authentication",
            "mcp-lp, bearer JWT (EdDSA) + checkpoint",
        ];
        let only = only(names.len());
        let mut targets = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            if only.is_some_and(|only| only != i) {
                continue;
            }
            let (url, token) = match i {
                0 => plain().await,
                1 => open().await,
                _ => guarded().await,
            };
            targets.push((name, Arc::new(Target { url, token })));
        }
        // Ratios are to plain rmcp, so only when it runs too.
        let with_plain = only.is_none_or(|only| only == 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("tools/call over streamable HTTP on loopback, {rounds} interleaved rounds");
        println!(
            "| server | mode | median calls/s | ratio to plain: median (min, max) | CPU µs per call (client + server) |"
        );
        println!("|---|---|---|---|---|");
        let modes = [
            (Protocol::Session, "sequential, 1 client", 1, calls),
            (Protocol::Session, "concurrent", clients, calls / 4),
            (Protocol::Stateless, "sequential, 1 client", 1, calls),
            (Protocol::Stateless, "concurrent", clients, calls / 4),
        ];
        for (protocol, mode, n_clients, n_calls) in modes {
            let mut sessions = Vec::new();
            for (_, target) in &targets {
                let mut own = Vec::new();
                for _ in 0..n_clients {
                    own.push(target.client(protocol).await);
                }
                throughput(target, &own, n_calls / 5 + 1).await; // warm up
                sessions.push(own);
            }
            let n = targets.len();
            let mut rates = vec![Vec::new(); n];
            let mut cpu = vec![Vec::new(); n];
            let mut ratios = vec![Vec::new(); n];
            for round in 0..rounds {
                let mut this = vec![0.0; n];
                // Each round starts with a different server.
                for k in 0..n {
                    let i = (round + k) % n;
                    let (rate, cpu_us) = throughput(&targets[i].1, &sessions[i], n_calls).await;
                    this[i] = rate;
                    cpu[i].push(cpu_us);
                }
                for i in 0..n {
                    rates[i].push(this[i]);
                    ratios[i].push(this[i] / this[0]);
                }
            }
            let mode = if n_clients == 1 {
                format!("{}, {mode}", protocol.label())
            } else {
                format!("{}, {mode}, {n_clients} clients", protocol.label())
            };
            for i in 0..n {
                let ratios = &mut ratios[i];
                let (lo, hi) = (
                    ratios.iter().copied().fold(f64::INFINITY, f64::min),
                    ratios.iter().copied().fold(0.0, f64::max),
                );
                let ratio = if !with_plain {
                    "n/a".to_owned()
                } else if i == 0 {
                    "1.000".to_owned()
                } else {
                    format!("{:.3} ({lo:.3}, {hi:.3})", median(ratios))
                };
                println!(
                    "| {} | {mode} | {:.0} | {ratio} | {:.1} |",
                    targets[i].0,
                    median(&mut rates[i]),
                    median(&mut cpu[i])
                );
            }
        }
        println!("target: ratio >= 0.95 with bearer JWT validation, in both protocol modes");
    });
}
