//! mcp-lp-aws against the local AWS emulator: what the credential cache does under load, counted
//! rather than timed where a count is the claim, and the warm-call cost of a role-bound client.
//!
//! ```sh
//! scripts/aws-emulator.sh start && eval "$(scripts/aws-emulator.sh env)"
//! cargo bench -p mcp-lp-aws --bench aws_roles            # FIRST=1000 ROUNDS=20 CALLS=200 ROLLOVER_SECS=12
//! ```
//!
//! 1. **First calls**: FIRST concurrent `tools/call`s of one tool, all arriving before its role
//!    was ever assumed. Counts AssumeRole calls twice: the cache's counter and the emulator's
//!    own CloudTrail record.
//! 2. **Warm calls**: the same S3 HeadObject from a tool holding the `S3` extractor and from a
//!    tool holding a client built once at startup with the same role's credentials, both through
//!    the checkpoint, interleaved round by round. Then the extractor alone, without a request.
//! 3. **Rollover**: 2-second sessions, one caller calling continuously and four more in
//!    parallel, for ROLLOVER_SECS: how many calls had to wait for STS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::ProvideCredentials as _;
use mcp_lp::Principal;
use mcp_lp::prelude::*;
use mcp_lp_aws::{AwsConfig, S3};
use mcp_lp_tests::bench::{env_or, median};
use support::{Connection, Seed, connect, seed};

#[derive(Clone)]
struct Bench {
    bucket: String,
    /// Built once at startup with the read role's credentials, as a server without mcp-lp-aws
    /// would hold it.
    prebuilt: Option<aws_sdk_s3::Client>,
}

const KEY: &str = "public/welcome.md";

#[mcp_lp::server]
impl Bench {
    /// HeadObject with the tool's own role.
    #[tool(role = "docs-read")]
    async fn head_with_role(&self, s3: S3) -> Result<String, ToolError> {
        s3.head_object()
            .bucket(&self.bucket)
            .key(KEY)
            .send()
            .await
            .map_err(|e| s3.error("HeadObject", &e))?;
        Ok("ok".into())
    }

    /// The same HeadObject with the pre-built client.
    #[tool]
    async fn head_prebuilt(&self) -> Result<String, ToolError> {
        let s3 = self
            .prebuilt
            .as_ref()
            .ok_or_else(|| ToolError::new("no client"))?;
        s3.head_object()
            .bucket(&self.bucket)
            .key(KEY)
            .send()
            .await
            .map_err(|e| ToolError::new(format!("{e:?}")))?;
        Ok("ok".into())
    }

    /// The extractor and a credential lookup, no request.
    #[tool(role = "docs-read")]
    async fn credentials_only(&self, aws: AwsConfig) -> Result<String, ToolError> {
        let provider = aws
            .credentials_provider()
            .ok_or_else(|| ToolError::new("none"))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| ToolError::new(e.to_string()))?;
        Ok("ok".into())
    }

    /// Nothing at all.
    #[tool]
    async fn nothing(&self) -> String {
        "ok".into()
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values[i]
}

fn config(seed: &Seed, duration: &str) -> String {
    format!(
        "{}\n[aws.roles.docs-read]\narn = \"{}\"\nduration = \"{duration}\"\n",
        seed.aws_header(),
        seed.role("mcp-read-only")
    )
}

/// AssumeRole calls the emulator's CloudTrail recorded since `since` for sessions naming `who`.
fn cloudtrail_assume_roles(since: f64, who: &str) -> usize {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(format!("{root}/.venv-aws/bin/python"))
        .arg(format!("{root}/scripts/aws-emulator/harness.py"))
        .arg("assume-roles")
        .arg(since.to_string())
        .output()
        .expect("harness.py runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    calls
        .iter()
        .filter(|c| {
            c["RoleSessionName"]
                .as_str()
                .is_some_and(|s| s.contains(who))
        })
        .count()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
        - 1.0
}

async fn call_ok(conn: &Connection, tool: &str) -> Duration {
    let started = Instant::now();
    let (failed, text) = conn.text(tool, serde_json::json!({})).await;
    assert!(!failed, "{tool}: {text}");
    started.elapsed()
}

async fn first_calls(seed: &Seed, calls: u64) {
    let who = format!("first-{}", std::process::id());
    let principal = Principal::new(format!("{who}@example.com"));
    let bench = Bench {
        bucket: seed.bucket.clone(),
        prebuilt: None,
    };
    let (conn, roles) = connect(bench, &config(seed, "15m"), principal).await;
    let since = epoch_now();
    let started = Instant::now();
    let all = (0..calls).map(|_| conn.text("head_with_role", serde_json::json!({})));
    let results = futures::future::join_all(all).await;
    let elapsed = started.elapsed();
    let ok = results.iter().filter(|(failed, _)| !failed).count();
    let stats = roles.stats();
    let recorded = cloudtrail_assume_roles(since, &who);
    println!("## 1. {calls} concurrent first calls to one role\n");
    println!(
        "| calls | succeeded | AssumeRole (cache counter) | AssumeRole (emulator CloudTrail) | calls that waited for it | wall time |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {calls} | {ok} | {} | {recorded} | {} | {:.2} s |\n",
        stats.assume_role_calls,
        stats.waited,
        elapsed.as_secs_f64()
    );
}

async fn warm_calls(seed: &Seed, rounds: u64, calls: u64) {
    // The pre-built client holds the same role's credentials, assumed once up front.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(seed.region.clone()))
        .endpoint_url(&seed.endpoint)
        .load()
        .await;
    let assumed = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(seed.role("mcp-read-only"))
        .role_session_name("bench-prebuilt")
        .duration_seconds(3600)
        .send()
        .await
        .expect("assume role for the pre-built client");
    let c = assumed.credentials.expect("credentials");
    let credentials = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "bench",
    );
    let prebuilt = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .credentials_provider(credentials)
            .force_path_style(true)
            .build(),
    );
    let bench = Bench {
        bucket: seed.bucket.clone(),
        prebuilt: Some(prebuilt),
    };
    let (conn, _roles) = connect(
        bench,
        &config(seed, "1h"),
        Principal::new("warm@example.com"),
    )
    .await;
    for tool in [
        "head_with_role",
        "head_prebuilt",
        "credentials_only",
        "nothing",
    ] {
        for _ in 0..20 {
            call_ok(&conn, tool).await;
        }
    }

    for (title, ours, theirs) in [
        (
            "S3 HeadObject against the emulator: `S3` extractor vs a pre-built client",
            "head_with_role",
            "head_prebuilt",
        ),
        (
            "in process, no request: `AwsConfig` extractor + cached credentials vs a tool taking nothing",
            "credentials_only",
            "nothing",
        ),
    ] {
        let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [ours, theirs]
            } else {
                [theirs, ours]
            };
            let mut per = [0.0f64; 2];
            for tool in order {
                let started = Instant::now();
                for _ in 0..calls {
                    call_ok(&conn, tool).await;
                }
                let us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
                per[usize::from(tool == theirs)] = us;
            }
            a.push(per[0]);
            b.push(per[1]);
            ratios.push(per[0] / per[1]);
        }
        let (m_a, m_b) = (median(&mut a), median(&mut b));
        let (r, p10, p90) = (
            median(&mut ratios),
            percentile(&mut ratios, 0.1),
            percentile(&mut ratios, 0.9),
        );
        println!("### {title}\n");
        println!("| tool | median µs/call | difference |");
        println!("|---|---|---|");
        println!("| `{theirs}` | {m_b:.1} | |");
        println!(
            "| `{ours}` | {m_a:.1} | {:+.1} µs; ratio median {r:.3} (p10 {p10:.3}, p90 {p90:.3}) |\n",
            m_a - m_b
        );
    }
}

async fn rollover(seed: &Seed, seconds: u64) {
    let bench = Bench {
        bucket: seed.bucket.clone(),
        prebuilt: None,
    };
    let (conn, roles) = connect(
        bench,
        &config(seed, "2s"),
        Principal::new("rollover@example.com"),
    )
    .await;
    call_ok(&conn, "head_with_role").await; // warm-up: the one call allowed to wait
    let after_warmup = roles.stats();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let conn = std::sync::Arc::new(conn);
    let workers: Vec<_> = (0..5)
        .map(|_| {
            let conn = std::sync::Arc::clone(&conn);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    latencies.push(call_ok(&conn, "head_with_role").await.as_secs_f64() * 1e3);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let stats = roles.stats();
    println!("## 3. Rollover: 2-second sessions, 5 callers for {seconds} s\n");
    println!(
        "| calls | failed | AssumeRole after warm-up | of them ahead of expiry | calls that waited for STS after warm-up | median ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let n = latencies.len();
    println!(
        "| {n} | 0 | {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
        stats.assume_role_calls - after_warmup.assume_role_calls,
        stats.refreshed_ahead - after_warmup.refreshed_ahead,
        stats.waited - after_warmup.waited,
        median(&mut latencies),
        percentile(&mut latencies, 0.99),
        latencies.iter().copied().fold(0.0, f64::max),
    );
}

fn main() {
    let seed = seed();
    let first: u64 = env_or("FIRST", 1000);
    let rounds: u64 = env_or("ROUNDS", 20);
    let calls: u64 = env_or("CALLS", 200);
    let seconds: u64 = env_or("ROLLOVER_SECS", 12);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        first_calls(&seed, first).await;
        println!("## 2. Warm calls, {rounds} interleaved rounds of {calls} calls each\n");
        warm_calls(&seed, rounds, calls).await;
        rollover(&seed, seconds).await;
    });
}
