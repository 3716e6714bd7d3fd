//! A read-capability call through mcp-lp-db vs a raw deadpool-postgres checkout and the same
//! query, against the local PostgreSQL (`scripts/postgres.sh start`), interleaved round by
//! round in one process.
//!
//! ```sh
//! scripts/postgres.sh start
//! cargo bench -p mcp-lp-db --bench db_call                  # ROUNDS=30 CALLS=1000
//! ROUNDS=60 CALLS=2000 cargo bench -p mcp-lp-db --bench db_call
//! ```
//!
//! Three servers answer the same `item` tool over in-memory pipes, each called by an rmcp
//! client, one call at a time, for two queries: one row by primary key, and a page of 20 rows
//! by an indexed range:
//!
//! - plain rmcp with a deadpool-postgres pool in the service: checkout, one query;
//! - the mcp-lp checkpoint with the same raw pool in the service;
//! - the mcp-lp checkpoint with `PgRead`: checkout, `BEGIN READ ONLY`, the principal's
//!   `set_config`, the query, and, after the call, rollback and session reset.
//!
//! Each handler also times its own database work (checkout to rows), reported separately.
//! Ratios are to the raw pool behind the same checkpoint, so they are mcp-lp-db's cost alone.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Sandbox;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use mcp_lp::prelude::*;
use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Principal, Server};
use mcp_lp_db::{Databases, PgRead};
use mcp_lp_tests::bench::{env_or, median};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use serde::Deserialize;

/// The queries every contender runs, on a plain table of 10,000 rows.
const QUERIES: [(&str, &str); 2] = [
    (
        "one row by primary key",
        "SELECT name FROM items WHERE id = $1",
    ),
    (
        "20 rows by an indexed range",
        "SELECT id, name FROM items WHERE id >= $1 ORDER BY id LIMIT 20",
    ),
];

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ItemArgs {
    /// Which of `QUERIES`.
    query: usize,
    /// The first id, 1 to 9,000.
    id: i32,
}

impl ItemArgs {
    fn sql(&self) -> Result<&'static str, ToolError> {
        QUERIES
            .get(self.query)
            .map(|q| q.1)
            .ok_or_else(|| ToolError::invalid_argument("query", "no such query"))
    }
}

/// Nanoseconds each contender's handlers spent on database work, by contender.
static DB_NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn record(contender: usize, started: Instant) {
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    DB_NANOS[contender].fetch_add(nanos, Ordering::Relaxed);
}

async fn raw_item(pool: &Pool, args: &ItemArgs, contender: usize) -> Result<String, ToolError> {
    let started = Instant::now();
    let client = pool
        .get()
        .await
        .map_err(|e| ToolError::new(e.to_string()))?;
    let statement = client
        .prepare_cached(args.sql()?)
        .await
        .map_err(|e| ToolError::new(e.to_string()))?;
    let rows = client
        .query(&statement, &[&args.id])
        .await
        .map_err(|e| ToolError::new(e.to_string()))?;
    record(contender, started);
    Ok(rows.len().to_string())
}

/// Plain rmcp, with the raw pool in the service.
#[derive(Clone)]
struct Plain {
    pool: Pool,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Plain {
    /// One item's name.
    #[tool]
    async fn item(&self, Parameters(args): Parameters<ItemArgs>) -> Result<String, ToolError> {
        raw_item(&self.pool, &args, 0).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Plain {}

/// The mcp-lp checkpoint, with the raw pool in the service.
#[derive(Clone)]
struct CheckpointRaw {
    pool: Pool,
}

#[mcp_lp::server]
impl CheckpointRaw {
    /// One item's name.
    #[tool]
    async fn item(&self, Parameters(args): Parameters<ItemArgs>) -> Result<String, ToolError> {
        raw_item(&self.pool, &args, 1).await
    }
}

/// The mcp-lp checkpoint, with a read capability.
#[derive(Clone)]
struct CheckpointDb;

#[mcp_lp::server]
impl CheckpointDb {
    /// One item's name.
    #[tool(db = "reader")]
    async fn item(
        &self,
        mut db: PgRead,
        Parameters(args): Parameters<ItemArgs>,
    ) -> Result<String, ToolError> {
        let started = Instant::now();
        let rows = db.query(args.sql()?, &[&args.id]).await?;
        record(2, started);
        Ok(rows.len().to_string())
    }
}

type Client = RunningService<RoleClient, ()>;

async fn connect_client<S>(serve: impl FnOnce(tokio::io::DuplexStream) -> S) -> Client
where
    S: Future<Output = ()> + Send + 'static,
{
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(serve(server_io));
    ().serve(tokio::io::split(client_io)).await.expect("client")
}

async fn serve_checkpoint<S: mcp_lp::ToolSet>(
    checkpoint: Checkpoint<S>,
    io: tokio::io::DuplexStream,
) {
    let (read, write) = tokio::io::split(io);
    let running = checkpoint
        .serve(LineTransport::new(read, write))
        .await
        .expect("mcp-lp server");
    let _ = running.waiting().await;
}

/// Mean time per call over `calls` sequential round trips running query `query`, and the
/// mean database time.
async fn per_call(
    client: &Client,
    query: usize,
    calls: u32,
    contender: usize,
) -> (Duration, Duration) {
    DB_NANOS[contender].store(0, Ordering::Relaxed);
    let started = Instant::now();
    for i in 0..calls {
        let id = i64::from(i % 9000 + 1);
        let params = CallToolRequestParams::new("item").with_arguments(mcp_lp_tests::object(
            serde_json::json!({ "query": query, "id": id }),
        ));
        let result = client.call_tool(params).await.expect("tools/call");
        assert_ne!(
            result.is_error,
            Some(true),
            "{}",
            mcp_lp_tests::text(&result)
        );
    }
    let total = started.elapsed() / calls;
    let db = Duration::from_nanos(DB_NANOS[contender].load(Ordering::Relaxed)) / calls;
    (total, db)
}

fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 10],
        values[values.len() / 2],
        values[values.len() * 9 / 10],
    )
}

fn main() {
    let rounds: u32 = env_or("ROUNDS", 30);
    let calls: u32 = env_or("CALLS", 1000);
    tracing::subscriber::set_global_default(mcp_lp::cli::json_subscriber(std::io::sink))
        .expect("the only subscriber");
    // One thread, as in the tools/call benchmark: client and server share a core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sandbox = Sandbox::new("bench").await;
        let reader = sandbox.role("reader", "").await;
        sandbox
            .sql(&format!(
                "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
                 ALTER TABLE items OWNER TO {schema}_owner;
                 INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 10000) AS i;
                 ANALYZE items;
                 GRANT SELECT ON items TO {reader}",
                schema = sandbox.name,
                reader = reader.name,
            ))
            .await;
        let config = sandbox.config(&format!(
            "[db.reader]\nurl = {{ file = {:?} }}\nschemas = [\"{}\"]\nmax_connections = 4\n",
            reader.url_file.display().to_string(),
            sandbox.name
        ));
        let databases = Databases::connect::<CheckpointDb>(&config)
            .await
            .expect("the bench database starts");

        // The raw pool logs in as the same role with the same settings.
        let url = std::fs::read_to_string(&reader.url_file).expect("reader URL");
        let pg: tokio_postgres::Config = url.trim().parse().expect("reader URL parses");
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(4)
            .runtime(Runtime::Tokio1)
            .build()
            .expect("raw pool");

        let principal = Principal::new("bench@example.com");
        let clients = [
            (
                "plain rmcp, raw deadpool-postgres checkout + query",
                connect_client({
                    let server = Plain { pool: pool.clone(), tool_router: Plain::tool_router() };
                    move |io| async move {
                        let running = server.serve(tokio::io::split(io)).await.expect("plain server");
                        let _ = running.waiting().await;
                    }
                })
                .await,
            ),
            (
                "mcp-lp checkpoint, raw deadpool-postgres checkout + query",
                connect_client({
                    let checkpoint = Checkpoint::new(CheckpointRaw { pool: pool.clone() }, &mcp_lp::Config::defaults(), principal.clone())
                        .expect("checkpoint");
                    move |io| serve_checkpoint(checkpoint, io)
                })
                .await,
            ),
            (
                "mcp-lp checkpoint, `PgRead` (READ ONLY transaction, principal, query, reset)",
                connect_client({
                    let checkpoint = Checkpoint::new(Server::new(CheckpointDb).provide(databases), &config, principal.clone())
                        .expect("checkpoint");
                    move |io| serve_checkpoint(checkpoint, io)
                })
                .await,
            ),
        ];

        println!(
            "db read call, {rounds} interleaved rounds x {calls} sequential calls, current-thread runtime"
        );
        for (query, (shape, sql)) in QUERIES.iter().enumerate() {
            for (i, (_, client)) in clients.iter().enumerate() {
                per_call(client, query, calls, i).await;
            }
            let n = clients.len();
            let mut totals: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut dbs: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut total_ratios: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut db_ratios: Vec<Vec<f64>> = vec![Vec::new(); n];
            for round in 0..rounds as usize {
                let mut this_round = vec![(0.0, 0.0); n];
                for k in 0..n {
                    let i = (round + k) % n;
                    let (total, db) = per_call(&clients[i].1, query, calls, i).await;
                    this_round[i] = (total.as_secs_f64() * 1e6, db.as_secs_f64() * 1e6);
                }
                for i in 0..n {
                    totals[i].push(this_round[i].0);
                    dbs[i].push(this_round[i].1);
                    // Against the raw pool behind the same checkpoint: mcp-lp-db's cost alone.
                    total_ratios[i].push(this_round[i].0 / this_round[1].0);
                    db_ratios[i].push(this_round[i].1 / this_round[1].1);
                }
            }
            println!("\n{shape}: `{sql}`\n");
            println!(
                "| server | median µs/call | ratio: median (p10, p90) | handler's database µs | ratio: median (p10, p90) |"
            );
            println!("|---|---|---|---|---|");
            for (i, (name, _)) in clients.iter().enumerate() {
                let us = median(&mut totals[i]);
                let db = median(&mut dbs[i]);
                let (lo, mid, hi) = percentiles(&mut total_ratios[i]);
                let (dlo, dmid, dhi) = percentiles(&mut db_ratios[i]);
                println!(
                    "| {name} | {us:.1} | {mid:.3} ({lo:.3}, {hi:.3}) | {db:.1} | {dmid:.3} ({dlo:.3}, {dhi:.3}) |"
                );
            }
        }
        drop(clients);
        sandbox.cleanup().await;
    });
}
