//! What recording one audit event costs: a `tools/call` record sealed into a keyed chain and
//! written through the CLI's JSON subscriber into a sink, as `serve` writes it to stderr.
//!
//! ```sh
//! cargo bench -p mcp-lp-tests --bench audit_record             # EVENTS=200000 ROUNDS=10
//! ```

use std::time::Instant;

use mcp_lp::audit::{AuditTrail, ChainKey, Record, TrailOptions};
use mcp_lp_tests::bench::{env_or, median};

fn main() {
    let events: u32 = env_or("EVENTS", 200_000);
    let rounds: u32 = env_or("ROUNDS", 10);
    tracing::subscriber::set_global_default(mcp_lp::cli::json_subscriber::<
        mcp_lp_tests::GuardedEcho,
        _,
    >(std::io::sink))
    .expect("the only subscriber");
    let secret = secrecy::SecretString::from("bench-audit-key-0123456789abcdef0123");
    let key = ChainKey::new("bench", &secret).expect("audit key");
    let trail = AuditTrail::start(
        TrailOptions {
            key,
            ..TrailOptions::default()
        },
        Vec::new(),
    );
    trail.end_startup();
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for i in 0..events {
            let request_id = itoa::Buffer::new().format(i).to_owned();
            let record = Record::new("tools/call")
                .str("request_id", &request_id)
                .str("principal", "alice@example.com")
                .str("tool", "echo")
                .str("requires", "bench:echo")
                .str("decision", "allow")
                .str("args_sha256", digest)
                .int("args_bytes", 38)
                .int("output_bytes", 120)
                .int("duration_us", 14)
                .str("outcome", "ok");
            std::hint::black_box(trail.record(&record));
        }
        samples.push(started.elapsed().as_secs_f64() * 1e9 / f64::from(events));
    }
    println!(
        "audit event recorded (sealed, written to the subscriber's sink): median {:.0} ns over {rounds} rounds of {events}",
        median(&mut samples)
    );
}
