//! A records server: `queryRecords` reads the caller's records through a role that cannot
//! write; `insertRecord` adds one through a separate write role, and only when the operator
//! granted `records:write`. Row-level security keeps each principal to its own rows.
//!
//! ```sh
//! scripts/postgres.sh start      # a local PostgreSQL with the schema, roles and policy
//! cargo run -p records-server -- --config examples/records-server/mcp-lp.toml          # serve
//! cargo run -p records-server -- --config examples/records-server/mcp-lp.toml check    # validate
//! ```
//!
//! The schema, the roles and the row-level security policy are in `schema.sql`. With
//! `[audit] postgres = true` and a `[state]` table, the audit trail is also written to
//! mcp-lp-state's insert-only audit table (`audit verify --db` reads it back).

use mcp_lp::prelude::*;
use mcp_lp_db::{Databases, PgRead, PgWrite, Row};
use serde::{Deserialize, Serialize};

/// The most rows one `queryRecords` call returns.
const MAX_LIMIT: i64 = 100;

#[derive(Debug, Clone)]
struct Records;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Query {
    /// Only records whose title contains this text, ignoring case.
    #[serde(default)]
    title_contains: Option<String>,
    /// How many records to return, newest first: 1 to 100 (default 20).
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NewRecord {
    /// The record's title: 1 to 200 characters.
    title: String,
    /// The record's text: up to 10,000 characters.
    body: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Record {
    /// The record's id.
    id: i64,
    /// The principal who inserted it.
    owner: String,
    /// Its title.
    title: String,
    /// Its text.
    body: String,
    /// When it was inserted, RFC 3339 in UTC.
    created_at: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct RecordList {
    /// The caller's matching records, newest first.
    records: Vec<Record>,
}

/// The columns every query returns, in `Record`'s order.
const COLUMNS: &str = "id, owner, title, body, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

impl Record {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            owner: row.get(1),
            title: row.get(2),
            body: row.get(3),
            created_at: row.get(4),
        }
    }
}

#[mcp_lp::server(
    instructions = "Your own records. Anyone connected may query them; inserting one needs the operator's grant and a person's approval."
)]
impl Records {
    /// List the caller's records, newest first, optionally only those whose title contains a text.
    #[tool(
        name = "queryRecords",
        db = "records-read",
        annotations(read_only_hint = true)
    )]
    async fn query_records(
        &self,
        mut db: PgRead,
        Parameters(query): Parameters<Query>,
    ) -> Result<Json<RecordList>, ToolError> {
        let limit = query.limit.unwrap_or(20);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ToolError::invalid_argument(
                "limit",
                format!("must be 1 to {MAX_LIMIT}"),
            ));
        }
        // Row-level security limits the rows to the caller's; no owner filter is needed here.
        let sql = format!(
            "SELECT {COLUMNS} FROM records \
             WHERE $1::text IS NULL OR strpos(lower(title), lower($1)) > 0 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = db.query(&sql, &[&query.title_contains, &limit]).await?;
        Ok(Json(RecordList {
            records: rows.iter().map(Record::from_row).collect(),
        }))
    }

    /// Insert a record owned by the caller. Runs only when the operator granted `records:write`
    /// and a person holding `records:approve` approved this record.
    #[tool(
        name = "insertRecord",
        db_write = "records-write",
        requires = "records:write",
        approval = "records:approve",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn insert_record(
        &self,
        mut db: PgWrite,
        Parameters(record): Parameters<NewRecord>,
    ) -> Result<Json<Record>, ToolError> {
        let title_chars = record.title.chars().count();
        if !(1..=200).contains(&title_chars) {
            return Err(ToolError::invalid_argument(
                "title",
                "must be 1 to 200 characters",
            ));
        }
        if record.body.chars().count() > 10_000 {
            return Err(ToolError::invalid_argument(
                "body",
                "must be at most 10,000 characters",
            ));
        }
        // The owner column defaults to the transaction's principal; the role may not set it.
        let sql = format!("INSERT INTO records (title, body) VALUES ($1, $2) RETURNING {COLUMNS}");
        let row = db.query_one(&sql, &[&record.title, &record.body]).await?;
        db.commit().await?;
        Ok(Json(Record::from_row(&row)))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mcp_lp::cli::Program::new(|config| async move {
        let databases = Databases::connect::<Records>(&config).await?;
        Ok(mcp_lp::Server::new(Records).provide(databases))
    })
    // With `[state]`, replicas share its approvals and revocation list; with
    // `[audit] postgres = true` the trail goes to its insert-only audit table too. The
    // governance commands open only these: `revoke --all` works while the app database is down.
    .shared_stores(mcp_lp_state::stores)
    .run()
    .await
}
