//! Throughput of the PostgreSQL audit sink: 16 tasks, each recording a `tools/call` event and
//! waiting until it is durable (as a call under `fail_closed` waits before it is answered), for
//! a fixed time, with the sink and without a durable sink, alternating. Writes to the local
//! cluster's shared audit table (`scripts/postgres.sh start`), sealed with its audit key, and
//! afterwards deletes its rows as the cluster's admin (the sink's role cannot), so that the
//! table other runs verify does not grow by millions of rows.
//!
//! ```sh
//! eval "$(scripts/postgres.sh env)"
//! cargo bench -p mcp-lp-state --bench audit_sink -- --seconds 10 --tasks 16
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_lp::Config;
use mcp_lp::audit::{AuditSink, AuditTrail, ChainKey, Record, TrailOptions};
use mcp_lp_state::StateStore;
use secrecy::SecretString;

fn env_file(key: &str, default: &str) -> PathBuf {
    std::env::var_os(key).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default),
        PathBuf::from,
    )
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Events made durable per second by `tasks` tasks in `seconds`.
async fn run(trail: AuditTrail, tasks: u64, seconds: u64) -> (u64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (trail, count) = (trail.clone(), Arc::clone(&count));
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = format!("{task}-{n}");
                let recorded = trail.record(
                    &Record::new("tools/call")
                        .str("request_id", &id)
                        .str("principal", "bench@example.com")
                        .str("tool", "queryRecords")
                        .str("decision", "allow")
                        .str("outcome", "ok"),
                );
                if recorded.durable().await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    let events = count.load(Ordering::Relaxed);
    (events, started.elapsed().as_secs_f64())
}

/// Delete `instance`'s rows from the shared table, as the admin of `scripts/postgres.sh`.
async fn remove(instance: &str) -> Result<(), Box<dyn std::error::Error>> {
    let admin = env_file("MCP_LP_PG_ADMIN_URL_FILE", "../.cache/pg/secrets/admin.url");
    let mut pg: tokio_postgres::Config = std::fs::read_to_string(admin)?.trim().parse()?;
    pg.dbname("records");
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // The writer task may still hold a batch: wait until the row count stops moving.
    let mut last = -1i64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rows: i64 = client
            .query_one(
                "SELECT count(*) FROM mcp_lp_audit.events WHERE instance = $1",
                &[&instance],
            )
            .await?
            .get(0);
        if rows == last {
            break;
        }
        last = rows;
    }
    client
        .execute(
            "DELETE FROM mcp_lp_audit.events WHERE instance = $1",
            &[&instance],
        )
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg("--seconds", 10);
    let tasks = arg("--tasks", 16);
    let url = env_file("MCP_LP_PG_STATE_URL_FILE", "../.cache/pg/secrets/state.url");
    let key_file = env_file(
        "MCP_LP_PG_AUDIT_KEY_FILE",
        "../.cache/pg/secrets/audit-chain-key.password",
    );
    let dir = std::env::temp_dir();
    let config = Config::from_toml(
        &format!(
            "[state]\nurl = {{ file = {:?} }}\n",
            url.display().to_string()
        ),
        dir.join("mcp-lp-audit-bench.toml"),
    )?;
    let store = StateStore::connect(&config).await?;
    let secret = std::fs::read_to_string(&key_file)?;
    let key = ChainKey::new(
        "durability-1",
        &SecretString::from(secret.trim_end_matches('\n').to_owned()),
    )?;

    println!(
        "audit sink throughput: {tasks} tasks, {seconds} s per run, each event awaited until durable"
    );
    let mut totals = [(0u64, 0f64); 2];
    for round in 0..4 {
        let with_sink = round % 2 == 1;
        let sinks: Vec<Box<dyn AuditSink>> = if with_sink {
            vec![Box::new(store.audit_sink())]
        } else {
            Vec::new()
        };
        let trail = AuditTrail::start(
            TrailOptions {
                key: key.clone(),
                write_timeout: Duration::from_secs(30),
                ..TrailOptions::default()
            },
            sinks,
        );
        let instance = trail.instance();
        let (events, elapsed) = run(trail, tasks, seconds).await;
        if with_sink {
            remove(&instance).await?;
        }
        let name = if with_sink {
            "postgres sink"
        } else {
            "no durable sink"
        };
        println!(
            "  {name}: {events} events in {elapsed:.1} s = {:.0} events/s",
            events as f64 / elapsed
        );
        let total = &mut totals[usize::from(with_sink)];
        total.0 += events;
        total.1 += elapsed;
    }
    let rate = |(events, secs): (u64, f64)| events as f64 / secs;
    println!(
        "mean: no durable sink {:.0} events/s, postgres sink {:.0} events/s",
        rate(totals[0]),
        rate(totals[1])
    );
    Ok(())
}
