//! `tools/call` round trips through an mcp-lp server vs the same tool on plain rmcp, in one
//! process over in-memory pipes, interleaved round by round so both see the same machine state.
//!
//! ```sh
//! cargo bench -p mcp-lp-tests --bench tools_call            # ROUNDS=30 CALLS=2000 WORKERS=0
//! ROUNDS=50 CALLS=5000 WORKERS=2 cargo bench -p mcp-lp-tests --bench tools_call
//! ```
//!
//! `ONLY=N` runs the N-th server of the table alone, for counting its instructions under
//! `valgrind --tool=callgrind`.
//!
//! Both servers log through the CLI's JSON subscriber into a sink, so mcp-lp pays for writing
//! its audit event as it does in production: sealed into a keyed hash chain. `AUDIT_FILE=PATH`
//! adds the durable file sink, with `FSYNC=every_event` (the default) or an interval such as
//! `FSYNC=10ms`.

use std::time::{Duration, Instant};

use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Grant, Principal};
use mcp_lp_tests::bench::{env_or, median, only};
use mcp_lp_tests::{GuardedEcho, PlainEcho, object};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt as _};

type Client = RunningService<RoleClient, ()>;

async fn plain_client() -> Client {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let server = PlainEcho::new();
        let running = server
            .serve(tokio::io::split(server_io))
            .await
            .expect("plain server");
        let _ = running.waiting().await;
    });
    ().serve(tokio::io::split(client_io)).await.expect("client")
}

/// The mcp-lp server over its own stdio transport (`line_transport`) or rmcp's.
async fn guarded_client(line_transport: bool) -> Client {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let principal =
        Principal::new("bench@example.com").with_grant(Grant::new("bench:echo").expect("grant"));
    let checkpoint =
        Checkpoint::new(GuardedEcho, &Config::defaults(), principal).expect("checkpoint");
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(server_io);
        let running = if line_transport {
            checkpoint.serve(LineTransport::new(read, write)).await
        } else {
            checkpoint.serve((read, write)).await
        };
        let _ = running.expect("mcp-lp server").waiting().await;
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

/// The process's audit trail as a production server has it: keyed, on stderr (here the
/// subscriber's sink), and on a file when `AUDIT_FILE` is set.
fn install_trail() {
    use mcp_lp::audit::{
        AuditSink, AuditTrail, ChainKey, FileSink, FileSinkOptions, FsyncPolicy, TrailOptions,
    };

    let secret = secrecy::SecretString::from("bench-audit-key-0123456789abcdef0123");
    let key = ChainKey::new("bench", &secret).expect("audit key");
    let mut sinks: Vec<Box<dyn AuditSink>> = Vec::new();
    if let Ok(path) = std::env::var("AUDIT_FILE") {
        let fsync = match std::env::var("FSYNC").as_deref() {
            Err(_) | Ok("every_event") => FsyncPolicy::EveryEvent,
            Ok(interval) => {
                FsyncPolicy::Every(mcp_lp::limits::parse_duration(interval).expect("FSYNC"))
            }
        };
        let sink = FileSink::open(FileSinkOptions {
            path: path.into(),
            rotate_bytes: None,
            rotate_every: None,
            fsync,
        })
        .expect("AUDIT_FILE");
        sinks.push(Box::new(sink));
    }
    let trail = AuditTrail::start(
        TrailOptions {
            key,
            ..TrailOptions::default()
        },
        sinks,
    );
    assert!(
        mcp_lp::audit::install(trail).is_ok(),
        "the first trail of the process"
    );
}

fn main() {
    let rounds: u32 = env_or("ROUNDS", 30);
    let calls: u32 = env_or("CALLS", 2000);
    let workers: u32 = env_or("WORKERS", 0);
    tracing::subscriber::set_global_default(mcp_lp::cli::json_subscriber::<GuardedEcho, _>(
        std::io::sink,
    ))
    .expect("the only subscriber");
    // One thread by default: client and server then share a core, which keeps cross-core
    // wake-ups (noise of the same size as the effect measured) out of the figures.
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers as usize)
            .enable_all()
            .build()
    }
    .expect("runtime");
    runtime.block_on(async {
        install_trail();
        let names = [
            "plain rmcp 3.11",
            "mcp-lp checkpoint, rmcp's stdio transport",
            "mcp-lp checkpoint, mcp-lp's stdio transport (what `serve_stdio` uses)",
        ];
        let only = only(names.len());
        let mut clients = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            if only.is_some_and(|only| only != i) {
                continue;
            }
            let client = match i {
                0 => plain_client().await,
                1 => guarded_client(false).await,
                _ => guarded_client(true).await,
            };
            clients.push((name, client));
        }
        // Ratios are to plain rmcp, so only when it runs too.
        let with_plain = only.is_none_or(|only| only == 0);
        // Warm up every path (allocators, schema caches, branch predictors).
        for (_, client) in &clients {
            per_call(client, calls).await;
        }
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
        for round in 0..rounds as usize {
            // Rotate which server goes first so none always runs on a warmer machine.
            let mut this_round = vec![0.0; clients.len()];
            for k in 0..clients.len() {
                let i = (round + k) % clients.len();
                this_round[i] = per_call(&clients[i].1, calls).await.as_secs_f64() * 1e6;
            }
            for i in 0..clients.len() {
                samples[i].push(this_round[i]);
                ratios[i].push(this_round[i] / this_round[0]);
            }
        }
        let threads = if workers == 0 { "current-thread runtime".to_owned() } else { format!("{workers} worker threads") };
        println!("tools/call round trip, {rounds} interleaved rounds x {calls} sequential calls, {threads}");
        println!("| server | median µs/call | ratio to plain rmcp: median (p10, p90) |");
        println!("|---|---|---|");
        for (i, (name, _)) in clients.iter().enumerate() {
            let us = median(&mut samples[i]);
            let r = median(&mut ratios[i]);
            let (lo, hi) = (ratios[i][ratios[i].len() / 10], ratios[i][ratios[i].len() * 9 / 10]);
            if with_plain {
                println!("| {name} | {us:.2} | {r:.3} ({lo:.3}, {hi:.3}) |");
            } else {
                println!("| {name} | {us:.2} | n/a |");
            }
        }
    });
}
