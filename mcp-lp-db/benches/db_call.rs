//! Database calls through mcp-lp-db vs a raw deadpool-postgres pool doing the same work, against
//! the local PostgreSQL (`scripts/postgres.sh start`), interleaved round by round in one process.
//!
//! ```sh
//! scripts/postgres.sh start
//! cargo bench -p mcp-lp-db --bench db_call                  # ROUNDS=30 CALLS=1000
//! ROUNDS=60 CALLS=2000 cargo bench -p mcp-lp-db --bench db_call
//! ```
//!
//! Every server answers over an in-memory pipe to an rmcp client, one call at a time.
//!
//! Reads, two queries (one row by primary key; 20 rows by an indexed range):
//!
//! - plain rmcp with a deadpool-postgres pool in the service: checkout, the query;
//! - the mcp-lp checkpoint with the same raw pool in the service (the baseline);
//! - `PgRead` on a capability whose role reaches no table with a policy reading the principal:
//!   the query alone on a connection that is read-only by default, and a reset after the call;
//! - `PgRead` on a capability whose table has such a policy (all its rows the caller's, so the
//!   same rows come back): one `set_config` statement pipelined with the query, and the reset.
//!
//! Writes, one `INSERT` committed:
//!
//! - the checkpoint with the raw pool: `BEGIN`, the insert, `COMMIT` (the baseline);
//! - `PgWrite` on a table without a principal-reading policy: `BEGIN READ WRITE` pipelined with
//!   the insert, `COMMIT`, and a session reset after the call;
//! - `PgWrite` on a table with one: the same with the `set_config` statement after `BEGIN`.
//!
//! Each handler also times its own database work (checkout to rows), reported separately.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Sandbox;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use mcp_lp::prelude::*;
use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Principal, Server};
use mcp_lp_db::{Databases, PgRead, PgWrite};
use mcp_lp_tests::bench::{env_or, median};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use serde::Deserialize;

/// The queries every read contender runs, on a table of 10,000 rows; `{table}` is `items` or,
/// for the policy contender, `owned_items`.
const QUERIES: [(&str, &str, &str); 2] = [
    (
        "one row by primary key",
        "SELECT name FROM items WHERE id = $1",
        "SELECT name FROM owned_items WHERE id = $1",
    ),
    (
        "20 rows by an indexed range",
        "SELECT id, name FROM items WHERE id >= $1 ORDER BY id LIMIT 20",
        "SELECT id, name FROM owned_items WHERE id >= $1 ORDER BY id LIMIT 20",
    ),
];

/// The insert every write contender commits.
const INSERT: &str = "INSERT INTO log (name) VALUES ($1)";
const INSERT_OWNED: &str = "INSERT INTO owned_log (name) VALUES ($1)";

const PRINCIPAL: &str = "bench@example.com";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ItemArgs {
    /// Which of `QUERIES`.
    query: usize,
    /// The first id, 1 to 9,000.
    id: i32,
}

impl ItemArgs {
    fn sql(&self, owned: bool) -> Result<&'static str, ToolError> {
        QUERIES
            .get(self.query)
            .map(|q| if owned { q.2 } else { q.1 })
            .ok_or_else(|| ToolError::invalid_argument("query", "no such query"))
    }
}

/// Nanoseconds each contender's handlers spent on database work, by contender.
static DB_NANOS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn record(contender: usize, started: Instant) {
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    DB_NANOS[contender].fetch_add(nanos, Ordering::Relaxed);
}

fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::new(e.to_string())
}

async fn raw_item(pool: &Pool, args: &ItemArgs, contender: usize) -> Result<String, ToolError> {
    let started = Instant::now();
    let client = pool.get().await.map_err(failed)?;
    let statement = client
        .prepare_cached(args.sql(false)?)
        .await
        .map_err(failed)?;
    let rows = client
        .query(&statement, &[&args.id])
        .await
        .map_err(failed)?;
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

/// The mcp-lp checkpoint, with raw pools in the service.
#[derive(Clone)]
struct CheckpointRaw {
    reads: Pool,
    writes: Pool,
}

#[mcp_lp::server]
impl CheckpointRaw {
    /// One item's name.
    #[tool]
    async fn item(&self, Parameters(args): Parameters<ItemArgs>) -> Result<String, ToolError> {
        raw_item(&self.reads, &args, 1).await
    }

    /// Log one line: `BEGIN`, the insert, `COMMIT`.
    #[tool]
    async fn add(&self, Parameters(args): Parameters<ItemArgs>) -> Result<String, ToolError> {
        let started = Instant::now();
        let mut client = self.writes.get().await.map_err(failed)?;
        let transaction = client.transaction().await.map_err(failed)?;
        let statement = transaction.prepare_cached(INSERT).await.map_err(failed)?;
        let name = args.id.to_string();
        transaction
            .execute(&statement, &[&name])
            .await
            .map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        record(4, started);
        Ok("1".into())
    }
}

/// The mcp-lp checkpoint, with database capabilities.
#[derive(Clone)]
struct CheckpointDb;

#[mcp_lp::server]
impl CheckpointDb {
    /// One item's name, where no policy reads the principal.
    #[tool(db = "reader")]
    async fn item(
        &self,
        mut db: PgRead,
        Parameters(args): Parameters<ItemArgs>,
    ) -> Result<String, ToolError> {
        let started = Instant::now();
        let rows = db.query(args.sql(false)?, &[&args.id]).await?;
        record(2, started);
        Ok(rows.len().to_string())
    }

    /// One item's name, through a policy reading the principal.
    #[tool(db = "owned-reader")]
    async fn owned_item(
        &self,
        mut db: PgRead,
        Parameters(args): Parameters<ItemArgs>,
    ) -> Result<String, ToolError> {
        let started = Instant::now();
        let rows = db.query(args.sql(true)?, &[&args.id]).await?;
        record(3, started);
        Ok(rows.len().to_string())
    }

    /// Log one line, where no policy reads the principal.
    #[tool(db_write = "writer")]
    async fn add(
        &self,
        mut db: PgWrite,
        Parameters(args): Parameters<ItemArgs>,
    ) -> Result<String, ToolError> {
        let started = Instant::now();
        db.execute(INSERT, &[&args.id.to_string()]).await?;
        db.commit().await?;
        record(5, started);
        Ok("1".into())
    }

    /// Log one line for the caller, through a policy reading the principal.
    #[tool(db_write = "owned-writer")]
    async fn owned_add(
        &self,
        mut db: PgWrite,
        Parameters(args): Parameters<ItemArgs>,
    ) -> Result<String, ToolError> {
        let started = Instant::now();
        db.execute(INSERT_OWNED, &[&args.id.to_string()]).await?;
        db.commit().await?;
        record(6, started);
        Ok("1".into())
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

/// One contender: who answers, which tool, and which slot of `DB_NANOS` its handler fills.
struct Contender<'a> {
    name: &'a str,
    client: &'a Client,
    tool: &'static str,
    slot: usize,
}

/// Mean time per call over `calls` sequential round trips, and the mean database time.
async fn per_call(contender: &Contender<'_>, query: usize, calls: u32) -> (Duration, Duration) {
    DB_NANOS[contender.slot].store(0, Ordering::Relaxed);
    let started = Instant::now();
    for i in 0..calls {
        let id = i64::from(i % 9000 + 1);
        let params = CallToolRequestParams::new(contender.tool).with_arguments(
            mcp_lp_tests::object(serde_json::json!({ "query": query, "id": id })),
        );
        let result = contender
            .client
            .call_tool(params)
            .await
            .expect("tools/call");
        assert_ne!(
            result.is_error,
            Some(true),
            "{}",
            mcp_lp_tests::text(&result)
        );
    }
    let total = started.elapsed() / calls;
    let db = Duration::from_nanos(DB_NANOS[contender.slot].load(Ordering::Relaxed)) / calls;
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

/// Run `rounds` interleaved rounds of `contenders` (the baseline at `baseline`) and print a
/// table of times and ratios to the baseline.
async fn compare(
    title: &str,
    contenders: &[Contender<'_>],
    baseline: usize,
    query: usize,
    rounds: u32,
    calls: u32,
) {
    for contender in contenders {
        per_call(contender, query, calls).await;
    }
    let n = contenders.len();
    let mut totals: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut dbs: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut total_ratios: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut db_ratios: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds as usize {
        let mut this_round = vec![(0.0, 0.0); n];
        for k in 0..n {
            let i = (round + k) % n;
            let (total, db) = per_call(&contenders[i], query, calls).await;
            this_round[i] = (total.as_secs_f64() * 1e6, db.as_secs_f64() * 1e6);
        }
        for i in 0..n {
            totals[i].push(this_round[i].0);
            dbs[i].push(this_round[i].1);
            total_ratios[i].push(this_round[i].0 / this_round[baseline].0);
            db_ratios[i].push(this_round[i].1 / this_round[baseline].1);
        }
    }
    println!("\n{title}\n");
    println!(
        "| server | median µs/call | ratio: median (p10, p90) | handler's database µs | ratio: median (p10, p90) |"
    );
    println!("|---|---|---|---|---|");
    for (i, contender) in contenders.iter().enumerate() {
        let us = median(&mut totals[i]);
        let db = median(&mut dbs[i]);
        let (lo, mid, hi) = percentiles(&mut total_ratios[i]);
        let (dlo, dmid, dhi) = percentiles(&mut db_ratios[i]);
        println!(
            "| {} | {us:.1} | {mid:.3} ({lo:.3}, {hi:.3}) | {db:.1} | {dmid:.3} ({dlo:.3}, {dhi:.3}) |",
            contender.name
        );
    }
}

fn raw_pool(url_file: &std::path::Path) -> Pool {
    let url = std::fs::read_to_string(url_file).expect("role URL");
    let pg: tokio_postgres::Config = url.trim().parse().expect("role URL parses");
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(4)
        .runtime(Runtime::Tokio1)
        .build()
        .expect("raw pool")
}

fn main() {
    let rounds: u32 = env_or("ROUNDS", 30);
    let calls: u32 = env_or("CALLS", 1000);
    tracing::subscriber::set_global_default(mcp_lp::cli::json_subscriber::<CheckpointDb, _>(
        std::io::sink,
    ))
    .expect("the only subscriber");
    // One thread, as in the tools/call benchmark: client and server share a core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sandbox = Sandbox::new("bench").await;
        let reader = sandbox.role("reader", "").await;
        let owned_reader = sandbox.role("oreader", "").await;
        let writer = sandbox.role("writer", "").await;
        let owned_writer = sandbox.role("owriter", "").await;
        sandbox
            .sql(&format!(
                "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
                 INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 10000) AS i;
                 CREATE TABLE owned_items (id int PRIMARY KEY, name text NOT NULL,
                     owner text NOT NULL DEFAULT '{PRINCIPAL}');
                 INSERT INTO owned_items (id, name) SELECT id, name FROM items;
                 ALTER TABLE owned_items ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE owned_items FORCE ROW LEVEL SECURITY;
                 CREATE POLICY by_principal ON owned_items
                     USING (owner = current_setting('mcp_lp.principal', true));
                 CREATE TABLE log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
                 CREATE TABLE owned_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     name text NOT NULL, owner text NOT NULL DEFAULT current_setting('mcp_lp.principal'));
                 ALTER TABLE owned_log ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE owned_log FORCE ROW LEVEL SECURITY;
                 CREATE POLICY by_principal ON owned_log
                     WITH CHECK (owner = current_setting('mcp_lp.principal', true));
                 ALTER TABLE items OWNER TO {schema}_owner;
                 ALTER TABLE owned_items OWNER TO {schema}_owner;
                 ALTER TABLE log OWNER TO {schema}_owner;
                 ALTER TABLE owned_log OWNER TO {schema}_owner;
                 ANALYZE items; ANALYZE owned_items;
                 GRANT SELECT ON items TO {reader};
                 GRANT SELECT ON owned_items TO {owned_reader};
                 GRANT INSERT (name) ON log TO {writer};
                 GRANT INSERT (name) ON owned_log TO {owned_writer}",
                schema = sandbox.name,
                reader = reader.name,
                owned_reader = owned_reader.name,
                writer = writer.name,
                owned_writer = owned_writer.name,
            ))
            .await;
        let table = |capability: &str, role: &common::TestRole| {
            format!(
                "[db.{capability}]\nurl = {{ file = {:?} }}\nschemas = [\"{}\"]\nmax_connections = 4\n",
                role.url_file.display().to_string(),
                sandbox.name
            )
        };
        let config = sandbox.config(&format!(
            "{}{}{}{}",
            table("reader", &reader),
            table("owned-reader", &owned_reader),
            table("writer", &writer),
            table("owned-writer", &owned_writer),
        ));
        let databases = Databases::connect::<CheckpointDb>(&config)
            .await
            .expect("the bench database starts");
        for capability in ["reader", "owned-reader", "writer", "owned-writer"] {
            println!("envelope of `{capability}`: {:?}", databases.envelope(capability).expect("a configured capability"));
        }

        // The raw pools log in as the same roles as the capabilities without a policy.
        let reads = raw_pool(&reader.url_file);
        let writes = raw_pool(&writer.url_file);

        let principal = Principal::new(PRINCIPAL);
        let plain = connect_client({
            let server = Plain { pool: reads.clone(), tool_router: Plain::tool_router() };
            move |io| async move {
                let running = server.serve(tokio::io::split(io)).await.expect("plain server");
                let _ = running.waiting().await;
            }
        })
        .await;
        let raw = connect_client({
            let checkpoint = Checkpoint::new(
                CheckpointRaw { reads: reads.clone(), writes: writes.clone() },
                &mcp_lp::Config::defaults(),
                principal.clone(),
            )
            .expect("checkpoint");
            move |io| serve_checkpoint(checkpoint, io)
        })
        .await;
        let db = connect_client({
            let checkpoint = Checkpoint::new(
                Server::new(CheckpointDb).provide(databases),
                &config,
                principal.clone(),
            )
            .expect("checkpoint");
            move |io| serve_checkpoint(checkpoint, io)
        })
        .await;

        println!(
            "db calls, {rounds} interleaved rounds x {calls} sequential calls, current-thread runtime"
        );
        let readers = [
            Contender { name: "plain rmcp, raw pool", client: &plain, tool: "item", slot: 0 },
            Contender { name: "mcp-lp checkpoint, raw pool", client: &raw, tool: "item", slot: 1 },
            Contender { name: "`PgRead`, no policy reads the principal", client: &db, tool: "item", slot: 2 },
            Contender { name: "`PgRead`, a policy reads the principal", client: &db, tool: "owned_item", slot: 3 },
        ];
        for (query, (shape, sql, _)) in QUERIES.iter().enumerate() {
            compare(&format!("{shape}: `{sql}`"), &readers, 1, query, rounds, calls).await;
        }
        let writers = [
            Contender { name: "mcp-lp checkpoint, raw pool: BEGIN, INSERT, COMMIT", client: &raw, tool: "add", slot: 4 },
            Contender { name: "`PgWrite`, no policy reads the principal", client: &db, tool: "add", slot: 5 },
            Contender { name: "`PgWrite`, a policy reads the principal", client: &db, tool: "owned_add", slot: 6 },
        ];
        compare(&format!("one insert, committed: `{INSERT}`"), &writers, 0, 0, rounds, calls).await;
        drop((plain, raw, db));
        sandbox.cleanup().await;
    });
}
