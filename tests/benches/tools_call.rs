//! `tools/call` round trips through an mcp-lp server vs the same tool on plain rmcp, in one
//! process over in-memory pipes, interleaved round by round so both see the same machine state.
//!
//! ```sh
//! cargo bench -p mcp-lp-tests --bench tools_call            # ROUNDS=30 CALLS=2000 by default
//! ROUNDS=50 CALLS=5000 cargo bench -p mcp-lp-tests --bench tools_call
//! ```
//!
//! Both servers log through the CLI's JSON subscriber into a sink, so mcp-lp pays for writing
//! its audit event as it does in production.

use std::time::{Duration, Instant};

use mcp_lp::prelude::*;
use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Grant, Principal};
use mcp_lp_tests::{EchoArgs, object};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};

/// The tool on plain rmcp, with its router built once as rmcp's examples do.
#[derive(Clone)]
struct Plain {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Plain {
    /// Return the text.
    #[tool]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Plain {}

/// The same tool on mcp-lp, requiring a grant so the full authorization path runs.
#[derive(Clone)]
struct Guarded;

#[mcp_lp::server]
impl Guarded {
    /// Return the text.
    #[tool(requires = "bench:echo")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

type Client = RunningService<RoleClient, ()>;

async fn plain_client() -> Client {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let server = Plain {
            tool_router: Plain::tool_router(),
        };
        let running = server
            .serve(tokio::io::split(server_io))
            .await
            .expect("plain server");
        let _ = running.waiting().await;
    });
    ().serve(tokio::io::split(client_io)).await.expect("client")
}

async fn guarded_client() -> Client {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let principal =
        Principal::new("bench@example.com").with_grant(Grant::new("bench:echo").expect("grant"));
    let checkpoint = Checkpoint::new(Guarded, &Config::defaults(), principal).expect("checkpoint");
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(server_io);
        let running = checkpoint
            .serve(LineTransport::new(read, write))
            .await
            .expect("mcp-lp server");
        let _ = running.waiting().await;
    });
    ().serve(tokio::io::split(client_io)).await.expect("client")
}

/// Mean time per call over `calls` sequential round trips.
async fn per_call(client: &Client, calls: u32) -> Duration {
    let arguments = object(serde_json::json!({"text": "quarterly report, page 3"}));
    let started = Instant::now();
    for _ in 0..calls {
        let params = CallToolRequestParams::new("echo").with_arguments(arguments.clone());
        let result = client.call_tool(params).await.expect("tools/call");
        assert_ne!(result.is_error, Some(true));
    }
    started.elapsed() / calls
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds = env_or("ROUNDS", 30);
    let calls = env_or("CALLS", 2000);
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            mcp_lp::cli::DEFAULT_LOG_FILTER,
        ))
        .with_writer(std::io::sink)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let plain = plain_client().await;
        let guarded = guarded_client().await;
        // Warm up both paths (allocators, schema caches, branch predictors).
        per_call(&plain, calls).await;
        per_call(&guarded, calls).await;

        let (mut plain_us, mut guarded_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first so neither always runs on a warmer machine.
            let (p, g) = if round % 2 == 0 {
                let p = per_call(&plain, calls).await;
                (p, per_call(&guarded, calls).await)
            } else {
                let g = per_call(&guarded, calls).await;
                (per_call(&plain, calls).await, g)
            };
            let (p, g) = (p.as_secs_f64() * 1e6, g.as_secs_f64() * 1e6);
            plain_us.push(p);
            guarded_us.push(g);
            ratios.push(g / p);
        }
        let (p, g, r) = (
            median(&mut plain_us),
            median(&mut guarded_us),
            median(&mut ratios),
        );
        let (lo, hi) = (ratios[ratios.len() / 10], ratios[ratios.len() * 9 / 10]);
        println!("tools/call round trip, {rounds} interleaved rounds x {calls} sequential calls");
        println!("| server | median µs/call |");
        println!("|---|---|");
        println!("| plain rmcp 3.9 | {p:.2} |");
        println!("| mcp-lp (grant check, limits, audit event) | {g:.2} |");
        println!("median ratio mcp-lp / rmcp: {r:.3} (p10 {lo:.3}, p90 {hi:.3}); target <= 1.05");
    });
}
